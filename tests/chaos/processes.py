"""A service's process group and port: kill the group, wait for the port, is a pid alive."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def kill_group(pid: int) -> None:
    """SIGKILL a service's process group (started in its own session: the group is its pid)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def wait_closed(port: int, timeout_s: float = 15.0) -> None:
    """Wait until nothing listens on ``port`` any more (the killed workers are gone)."""
    deadline = time.monotonic() + timeout_s
    while port_open(port) and time.monotonic() < deadline:
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of nobody here: /proc says so.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
