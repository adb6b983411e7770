"""The relay process's life: a replica's one leading relay, on a process of its own.

``RelayProcess`` is ``Runtime``'s base (``tpp_plumbing.runtime``): how the service's relay is
made, whether it wants a process of its own (``relay_mode`` "process"), and ``serve_relay``,
which ``tpp_plumbing.serve`` runs in that process. Kept apart from the runtime so the
process's start, wait and graceful stop read in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from tpp_plumbing.db.engine import asyncpg_dsn
from tpp_plumbing.messaging.relay import OutboxRelay
from tpp_plumbing.messaging.relay_runner import RelayTask
from tpp_plumbing.observability import logs
from tpp_plumbing.observability.metrics import Metrics
from tpp_plumbing.settings import RelayMode, ServiceSettings

log = logging.getLogger(__name__)


class RelayProcess:
    """The service's relay and its process; ``Runtime`` sets these."""

    settings: ServiceSettings
    name: str
    metrics: Metrics
    relay_mode: RelayMode

    def _new_relay(self, *, leads: bool) -> OutboxRelay:
        s = self.settings
        return OutboxRelay(
            dsn=asyncpg_dsn(s.database_url),
            kafka=s.kafka,
            batch_size=s.relay_batch_size,
            poll_interval_s=s.relay_poll_interval_s,
            lease_s=s.relay_lease_s,
            metrics=self.metrics,
            service=self.name,
            leads=leads,
        )

    @property
    def wants_relay_process(self) -> bool:
        """The service's relay runs in a process of its own (``relay_mode`` "process"), which
        ``tpp_plumbing.serve`` starts next to the HTTP workers."""
        return self.settings.relay_process and self.relay_mode == "process"

    async def serve_relay(self) -> None:
        """The relay process's life: the replica's one relay that tries for the lock, on this
        process's loop, until SIGTERM; then it publishes what is left within
        ``shutdown_timeout_s``. Its metrics go to the replica's multiprocess folder and its
        PRODUCER spans to the same exporter as the workers' (both set up with this runtime)."""
        s = self.settings
        if s.log_json:
            logs.configure_logging(self.name, s.log_level)
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stopping.set)
        runner = RelayTask(self._new_relay(leads=True), name=f"{self.name}-relay")
        runner.start()
        log.info("relay process started", extra={"service": self.name})
        while not stopping.is_set() and runner.alive():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 1.0)
        if not stopping.is_set():
            raise RuntimeError("the outbox relay ended without being stopped")
        deadline = loop.time() + s.shutdown_timeout_s
        await runner.stop(
            grace_s=max(deadline - loop.time() - 1.0, 0.0), timeout_s=max(deadline - loop.time(), 1)
        )
        log.info("relay process stopped", extra={"service": self.name})
