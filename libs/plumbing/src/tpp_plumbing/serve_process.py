"""What runs in each process ``tpp_plumbing.serve`` starts: an HTTP worker on its own
``SO_REUSEPORT`` socket, or the service's relay process; both end with their parent.

Kept apart from the command and its supervisor (``tpp_plumbing.serve``): these functions are the
children's targets, and what the command runs itself when it serves one worker in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import multiprocessing
import os
import signal
import socket
import sys
from typing import Any

import uvicorn

from tpp_plumbing.workers import MULTIPROC_DIR, RELAY_WORKER, WORKER_ENV, register_worker

BACKLOG = 2048
#: The collector's first threshold in served processes (CPython's default is 700): higher,
#: so that a request or an import chunk holding many young objects triggers fewer collections.
GC_GEN0 = 10_000
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
#: The relay process's name (``/proc/<pid>/comm``, as ``ps -o comm`` and ``top`` show it).
RELAY_COMM = b"tpp-relay"
#: The relay child's exit code when the service has no relay process.
NO_RELAY = 3


def _tcp_socket(host: str) -> socket.socket:
    return socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` that other processes may bind too (SO_REUSEPORT)."""
    sock = _tcp_socket(host)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(BACKLOG)
    return sock


def check_free(host: str, port: int) -> None:
    """Fail now if anything listens on the port (a socket without SO_REUSEPORT cannot bind
    it then, whereas ours would silently share it with a stale server)."""
    probe = _tcp_socket(host)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    finally:
        probe.close()


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _end_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent dies (Linux), so that a
    supervisor killed with SIGKILL leaves no worker serving on its own."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the parent died before the prctl
            os.kill(os.getpid(), signal.SIGTERM)


def run_worker(options: dict[str, Any], index: int = 0) -> None:
    """One worker: its own socket, one uvicorn server on it (until SIGTERM/SIGINT), with the
    edge's limits (``tpp_plumbing.web.edge``, from ``TPP_HTTP_*``)."""
    if multiprocessing.parent_process() is not None:
        _end_with_parent()
    os.environ[WORKER_ENV] = str(index)  # static group membership names consumers by it
    directory = os.environ.get(MULTIPROC_DIR)
    if directory:
        register_worker(directory, index)
    from tpp_plumbing.web.edge import HttpSettings, protocol_class

    config = uvicorn.Config(**options, http=protocol_class(HttpSettings()))
    config.load()  # imports the application and builds it
    tune_gc()
    sock = listening_socket(config.host, config.port)
    uvicorn.Server(config).run(sockets=[sock])


def _load_app(options: dict[str, Any]) -> Any:
    """Import the application and build it (the factory called), as uvicorn would."""
    from uvicorn.importer import import_from_string

    app = import_from_string(options["app"])
    return app() if options["factory"] else app


def _relay_runtime(app: Any) -> Any:
    """The app's ``Runtime`` if it wants its relay in a process of its own, else None."""
    from tpp_plumbing.runtime import Runtime

    runtime = getattr(getattr(app, "state", None), "runtime", None)
    if isinstance(runtime, Runtime) and runtime.wants_relay_process:
        return runtime
    return None


def run_relay(options: dict[str, Any]) -> None:
    """The relay process: the service's leading relay on uvloop until SIGTERM, then a flush
    (``Runtime.serve_relay``); exits with ``NO_RELAY`` if the service runs none."""
    _end_with_parent()
    with contextlib.suppress(OSError, AttributeError):
        _libc().prctl(PR_SET_NAME, RELAY_COMM)
    # A terminal's Ctrl-C reaches the whole group: the supervisor stops this process with
    # SIGTERM once the workers made their last commits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ[WORKER_ENV] = RELAY_WORKER
    runtime = _relay_runtime(_load_app(options))
    if runtime is None:
        sys.exit(NO_RELAY)
    directory = os.environ.get(MULTIPROC_DIR)
    if directory:
        register_worker(directory, RELAY_WORKER)
    tune_gc()
    from tpp_plumbing.messaging.relay_runner import new_loop

    with asyncio.Runner(loop_factory=new_loop) as runner:
        runner.run(runtime.serve_relay())


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the long-lived heap of a served application.

    Everything loaded so far (modules, the app, its routes and schemas) lives as long as the
    process: ``gc.freeze`` moves it out of the collector's generations, so that collections
    triggered by requests scan only what requests made. The first generation's threshold
    rises from 700 to ``GC_GEN0`` allocations, so they run less often while a request or an
    import holds many young objects.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0, gen1, gen2)
