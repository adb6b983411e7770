"""tpp_plumbing.serve: workers on their own SO_REUSEPORT sockets share the connections."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tpp_plumbing.serve_process import GC_GEN0

APP_DIR = Path(__file__).parent / "serve_app"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(port: int, workers: int, app: str = "pid_app:app", **env: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ) | {"PYTHONPATH": str(APP_DIR)} | env
    command = [sys.executable, "-m", "tpp_plumbing.serve", app, "--port", str(port)]
    return subprocess.Popen(  # noqa: S603 - this interpreter, our module
        [*command, "--workers", str(workers), "--no-access-log", "--log-level", "warning"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture
def two_workers() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    server = start(port, 2)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        yield server, port
    finally:
        if server.poll() is None:
            server.kill()  # the workers end with their supervisor (PR_SET_PDEATHSIG)
        server.communicate(timeout=30)  # and closes its output pipe


def test_connections_opened_together_are_served_by_both_workers(
    two_workers: tuple[subprocess.Popen[bytes], int],
) -> None:
    _, port = two_workers
    # 32 clients connecting at once, as a load generator or a proxy's pool does.
    pids = set()
    for _ in range(32):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            pids.add(client.get("/").text)
    assert len(pids) == 2, f"one worker served every connection: {pids}"


def test_the_loaded_application_is_frozen_out_of_the_garbage_collector(
    two_workers: tuple[subprocess.Popen[bytes], int],
) -> None:
    _, port = two_workers
    state = httpx.get(f"http://127.0.0.1:{port}/gc", timeout=5).json()
    # The worker imported uvicorn, the app and their modules before serving: all frozen.
    assert state["frozen"] > 10_000, state
    assert state["threshold"][0] == GC_GEN0, state


def test_sigterm_stops_the_workers_gracefully(
    two_workers: tuple[subprocess.Popen[bytes], int],
) -> None:
    server, port = two_workers
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=20) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=1)


def test_a_port_in_use_is_refused_rather_than_shared(
    two_workers: tuple[subprocess.Popen[bytes], int],
) -> None:
    _, port = two_workers
    second = start(port, 2)
    output, _ = second.communicate(timeout=20)
    assert second.returncode != 0
    assert b"Address already in use" in output


def test_a_worker_that_fails_its_start_is_started_again_after_a_wait(tmp_path: Path) -> None:
    """As when the broker is down while a service starts: the first starts fail, later ones
    do not; the service comes up instead of stopping."""
    port = free_port()
    counter = tmp_path / "starts"
    server = start(
        port,
        2,
        "flaky_app:app",
        FLAKY_COUNTER=str(counter),
        FLAKY_FAILURES="3",
        TPP_SERVE_START_BACKOFF_S="0.2",
    )
    try:
        deadline = time.monotonic() + 30
        # 3 failed starts, then one that held for each worker.
        while time.monotonic() < deadline and server.poll() is None:
            if counter.exists() and counter.stat().st_size >= 5:
                break
            time.sleep(0.1)
        answer = None
        while answer is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=1).text
        assert answer == "up"
        assert server.poll() is None
        assert counter.stat().st_size == 5
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert output.count(b"while starting: starting another in") == 3


def test_a_worker_that_never_starts_stops_the_service(tmp_path: Path) -> None:
    """As a broken build does: the supervisor gives up after its attempts and exits 1."""
    server = start(
        free_port(),
        1 + 1,
        "flaky_app:app",
        FLAKY_COUNTER=str(tmp_path / "starts"),
        FLAKY_FAILURES="1000",
        TPP_SERVE_START_BACKOFF_S="0.05",
    )
    output, _ = server.communicate(timeout=60)
    assert server.returncode == 1
    assert b"while starting, 5 times in a row: stopping" in output


def test_a_scrape_reaching_either_worker_sees_every_worker_and_no_counter_goes_back() -> None:
    port = free_port()
    server = start(port, 2, "metrics_app:app")
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{url}/metrics", timeout=1)
                break
            time.sleep(0.2)
        counted, served_by, scraped_by = 0, set(), set()
        last: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for _ in range(40):
            for _ in range(3):  # a new connection each: the kernel spreads them over workers
                served_by.add(httpx.get(f"{url}/count", timeout=5).text)
                counted += 1
            with httpx.Client(base_url=url) as client:
                scrape = client.get("/metrics")
            scraped_by.add(scrape.headers["x-pid"])
            now = _counters(scrape.text)
            for series, value in now.items():
                assert value >= last.get(series, 0.0), f"{series} went back: {value} < {last}"
            last = now
            # Every worker's counts, whichever worker answered.
            assert (
                now[("tpp_events_published_total", (("topic", "topic"), ("type", "type")))]
                == counted
            )
        assert len(served_by) == len(scraped_by) == 2
        workers = {labels for name, labels in last if name == "process_cpu_seconds_total"}
        assert workers == {(("worker", "0"),), (("worker", "1"),)}
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)


def _counters(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Each counter sample (and histogram count) by name and labels."""
    from prometheus_client.parser import text_string_to_metric_families

    found = {}
    for family in text_string_to_metric_families(text):
        if family.type not in ("counter", "histogram"):
            continue
        for sample in family.samples:
            if sample.name.endswith(("_total", "_count", "_bucket", "_sum")):
                found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found
