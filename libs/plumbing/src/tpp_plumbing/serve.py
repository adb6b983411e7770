"""Run an ASGI app under uvicorn in N worker processes, each with its own listening socket.

    python -m tpp_plumbing.serve tpp_enrollment.app:create_app --factory --port 8002 --workers 2

uvicorn's own ``--workers`` share one listening socket, and the worker that wakes first
accepts every connection waiting (uvloop drains the backlog): a client that opens its
connections together lands on one worker while the other idles. Here each
worker binds its own socket with ``SO_REUSEPORT``, and the kernel spreads new connections
over them (by a hash of the addresses).

The supervisor restarts a worker that dies (as uvicorn's does), and on SIGTERM or SIGINT
passes the signal on and waits for the workers' graceful shutdown. A worker that fails its
start (dies within ``STARTUP_S``) is started again after 1, 2, 4 and 8 s
(``TPP_SERVE_START_BACKOFF_S``, the first wait), so that a dependency down for a while (the
broker restarting) is waited out; after ``START_ATTEMPTS`` failed starts in a row, as a broken
build gives, the supervisor stops the service and exits 1.

The relay process: a service whose ``relay_mode`` is "process" has its outbox relay
(``tpp_plumbing.messaging.relay``) in a process of its own, next to the workers, with its own
interpreter lock; the workers' relays only NOTIFY it of their commits. This command learns the
mode from the service's settings, without importing the app: the app's top package names its
settings class (``SETTINGS = "tpp_enrollment.config:Settings"``), built from the environment as
the app will build it (``ServiceSettings.relay_process``). In process mode the supervisor starts
one more child, marked ``RELAY_PROCESS_ENV`` as the workers are, which builds the app (its
``app.state.runtime``: the service's settings, metrics and tracing) and runs
``Runtime.serve_relay``. It is restarted like a worker, and on SIGTERM stopped after the
workers, so that it publishes their last commits. A service in another mode, with no relay, or
an app whose package names no settings gets no relay process (its workers relay on their loops);
with ``--workers 1`` it is then served in this process, with no supervisor. Each process
imports and builds the app once: a replica's start costs one import of the app, not three.

Metrics: under the supervisor, the replica has its own, emptied ``PROMETHEUS_MULTIPROC_DIR``
(a fresh temporary folder unless one is set) so that any worker answers a scrape for all of
them and the relay process (``tpp_plumbing.observability.metrics``), and a dead worker's live
gauges are removed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from multiprocessing.context import SpawnProcess
from typing import Any

from tpp_plumbing.serve_process import NO_RELAY, check_free, run_relay, run_worker
from tpp_plumbing.workers import MULTIPROC_DIR, RELAY_PROCESS_ENV, WORKER_ENV

log = logging.getLogger("tpp.serve")
#: The attribute of a service's top package naming its settings class ("module:attribute").
SETTINGS_ATTR = "SETTINGS"
#: A worker that exits sooner than this after its start failed to start.
STARTUP_S = 10.0
#: Failed starts of a worker in a row before the supervisor gives up.
START_ATTEMPTS = 5


def relay_process_wanted(app: str) -> bool:
    """Whether the service served as ``app`` (``package.module:attribute``) wants its relay in a
    process of its own, from its settings (the class its top package names in ``SETTINGS``),
    without importing the app. False for an app whose package names no settings."""
    top, dot, _ = app.partition(":")[0].partition(".")
    if not dot:
        return False
    declared = getattr(importlib.import_module(top), SETTINGS_ATTR, None)
    if not isinstance(declared, str):
        return False
    from uvicorn.importer import import_from_string

    from tpp_plumbing.settings import ServiceSettings

    settings = import_from_string(declared)()
    return isinstance(settings, ServiceSettings) and settings.relay_process


class Supervisor:
    """Keeps ``workers`` processes serving ``options`` (uvicorn.Config keywords), and with
    ``relay`` the service's relay process."""

    def __init__(self, options: dict[str, Any], workers: int, *, relay: bool = False) -> None:
        self._options = options
        self._workers = workers
        self._relay = relay
        self._context = multiprocessing.get_context("spawn")
        # One per worker, then the relay process's. None: waiting to start again.
        self._processes: list[SpawnProcess | None] = []
        self._no_relay = False  # the relay child found no relay in the app it built
        self._started_at: dict[int | None, float] = {}
        self._stopping = False
        self._backoff_s = float(os.environ.get("TPP_SERVE_START_BACKOFF_S", "1"))
        self._metrics_dir: str | None = None
        self._own_metrics_dir = False

    def _prepare_metrics_dir(self) -> None:
        """The replica's own, empty multiprocess folder, in the workers' environment."""
        given = os.environ.get(MULTIPROC_DIR)
        if given:
            os.makedirs(given, exist_ok=True)
            for stale in os.scandir(given):  # values of an earlier run would add up
                if stale.is_file() and stale.name.endswith((".db", ".pid")):
                    os.unlink(stale.path)
            self._metrics_dir = given
        else:
            port = self._options["port"]
            self._metrics_dir = tempfile.mkdtemp(prefix=f"tpp-metrics-{port}-")
            self._own_metrics_dir = True
            os.environ[MULTIPROC_DIR] = self._metrics_dir

    def _worker_ended(self, pid: int | None) -> None:
        if self._metrics_dir and pid is not None:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self._metrics_dir)  # type: ignore[no-untyped-call]  # untyped in prometheus_client

    def _start_one(self, index: int) -> SpawnProcess:
        if index == self._workers:
            process = self._context.Process(target=run_relay, args=(self._options,), daemon=False)
        else:
            process = self._context.Process(
                target=run_worker, args=(self._options, index), daemon=False
            )
        process.start()
        self._started_at[process.pid] = time.monotonic()
        log.info("started %s %s", "relay" if index == self._workers else "worker", process.pid)
        return process

    def run(self) -> int:
        """Serve until a signal; the exit code (1 when a worker failed to start ``START_ATTEMPTS``
        times in a row)."""
        check_free(self._options["host"], self._options["port"])
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        self._prepare_metrics_dir()
        # The children inherit it: the workers leave the publishing to the relay process.
        if self._relay:
            os.environ[RELAY_PROCESS_ENV] = "1"
        else:
            os.environ.pop(RELAY_PROCESS_ENV, None)
        try:
            return self._supervise()
        finally:
            if self._own_metrics_dir and self._metrics_dir:
                shutil.rmtree(self._metrics_dir, ignore_errors=True)

    def _supervise(self) -> int:
        children = self._workers + (1 if self._relay else 0)
        self._processes = [self._start_one(i) for i in range(children)]
        failed_starts = [0] * children
        start_at = [0.0] * children
        failed = False
        while not self._stopping:
            for i, process in enumerate(self._processes):
                if self._stopping:
                    break
                if i == self._workers and self._no_relay:
                    continue
                if process is None:
                    if time.monotonic() >= start_at[i]:
                        self._processes[i] = self._start_one(i)
                    continue
                if process.is_alive():
                    continue
                self._worker_ended(process.pid)
                if i == self._workers and process.exitcode == NO_RELAY:
                    self._no_relay = True
                    self._processes[i] = None
                    continue
                lived = time.monotonic() - self._started_at.pop(process.pid, 0.0)
                if lived >= STARTUP_S:
                    failed_starts[i] = 0
                    log.warning("worker %s exited (%s): restarting", process.pid, process.exitcode)
                    self._processes[i] = self._start_one(i)
                    continue
                failed_starts[i] += 1
                if failed_starts[i] >= START_ATTEMPTS:  # e.g. an import error: it would loop
                    log.error(
                        "worker %s exited (%s) while starting, %d times in a row: stopping",
                        process.pid,
                        process.exitcode,
                        failed_starts[i],
                    )
                    failed = True
                    self._stop(signal.SIGTERM, None)
                    break
                wait = self._backoff_s * 2 ** (failed_starts[i] - 1)
                log.warning(
                    "worker %s exited (%s) while starting: starting another in %.1f s",
                    process.pid,
                    process.exitcode,
                    wait,
                )
                self._processes[i], start_at[i] = None, time.monotonic() + wait
            time.sleep(0.2)
        workers, relay = self._processes[: self._workers], self._processes[self._workers :]
        for each in workers:
            if each is not None:
                each.join()
        # The workers made their last commits: the relay publishes them, then ends.
        for each in relay:
            if each is not None:
                _signal(each, signal.SIGTERM)
                each.join()
        return 1 if failed else 0

    def _stop(self, signum: int, _: Any) -> None:
        self._stopping = True
        for process in self._processes[: self._workers]:
            if process is not None:
                _signal(process, signum)


def _signal(process: SpawnProcess, signum: int) -> None:
    if process.is_alive() and process.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse uvicorn-like arguments and serve."""
    parser = argparse.ArgumentParser(prog="python -m tpp_plumbing.serve", description=__doc__)
    parser.add_argument("app", help="module:attribute of the ASGI app (or its factory)")
    parser.add_argument("--factory", action="store_true", help="the attribute builds the app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="no access log (sets TPP_HTTP_ACCESS_LOG=false for the app)",
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--timeout-graceful-shutdown", type=int, default=None)
    parser.add_argument("--timeout-keep-alive", type=int, default=5)
    parser.add_argument("--app-dir", default=None, help="a folder to import the app from")
    parser.add_argument(
        "--supervise",
        action="store_true",
        help="run the supervisor even for one worker with no relay process (it restarts the"
        " worker if it dies)",
    )
    args = parser.parse_args(argv)
    if args.app_dir:  # for this process and, through the environment, its workers
        app_dir = os.path.abspath(args.app_dir)
        sys.path.insert(0, app_dir)
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [app_dir, *filter(None, [os.environ.get("PYTHONPATH")])]
        )
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    if not args.access_log:  # the services' own access log (uvicorn's holds raw paths)
        os.environ["TPP_HTTP_ACCESS_LOG"] = "false"
    options: dict[str, Any] = {
        "app": args.app,
        "factory": args.factory,
        "host": args.host,
        "port": args.port,
        "access_log": False,
        "log_level": args.log_level,
        "timeout_graceful_shutdown": args.timeout_graceful_shutdown,
        "timeout_keep_alive": args.timeout_keep_alive,
        "loop": "auto",  # uvloop when installed
    }
    relay = relay_process_wanted(args.app)
    if args.workers <= 1 and not args.supervise and not relay:
        check_free(args.host, args.port)
        os.environ[WORKER_ENV] = "0"
        os.environ.pop(RELAY_PROCESS_ENV, None)
        run_worker(options)
        return 0
    return Supervisor(options, max(args.workers, 1), relay=relay).run()


if __name__ == "__main__":
    sys.exit(main())
