"""One replica's outbox relay, as its own process: the relay takeover tests run several.
As in a service (``tpp_plumbing.runtime``), the relay runs on its own thread and loop.

python tests/integration/relay_replica.py <asyncpg DSN> [<trap file>]

Kafka from ``TPP_KAFKA_*``. Prints JSON lines: ``leader`` / ``standby`` when its role changes,
``published`` with the row ids the broker acknowledged (before they are marked), and
``pausing`` when a batch holds a row id from the one in the trap file on: the process then stops
itself (SIGSTOP) between reading the batch and sending it, the worst moment to be paused.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tpp_plumbing.messaging.relay import OutboxRelay, RelayThread
from tpp_plumbing.settings import KafkaSettings

_SAYING = threading.Lock()  # the relay's hooks speak from its thread


def say(event: str, **fields: Any) -> None:
    with _SAYING:
        print(json.dumps({"event": event, "at": time.time(), **fields}), flush=True)


def sprung(trap: Path | None, ids: Sequence[int]) -> bool:
    """The batch holds a trapped row id (the trap is then removed)."""
    if trap is None or not trap.exists() or max(ids) < int(trap.read_text()):
        return False
    trap.unlink()
    return True


async def main(dsn: str, trap: Path | None) -> None:
    resumed = threading.Event()
    signal.signal(signal.SIGCONT, lambda *_: resumed.set())

    async def before_publish(ids: Sequence[int]) -> None:
        if sprung(trap, ids):
            say("pausing", ids=list(ids))
            resumed.clear()
            os.kill(os.getpid(), signal.SIGSTOP)
            # The process stops, but the thread that sent the signal may run on for a while
            # first: it goes no further until the process is resumed.
            resumed.wait()

    async def after_publish(ids: Sequence[int]) -> None:
        say("published", ids=list(ids))

    relay = OutboxRelay(
        dsn=dsn,
        kafka=KafkaSettings(),
        poll_interval_s=0.2,
        before_publish=before_publish,
        after_publish=after_publish,
    )
    thread = RelayThread(relay, name="relay")
    thread.start()
    role = None
    while thread.is_alive():
        now = "leader" if relay.is_leader else "standby" if relay.heartbeat_at else None
        if now is not None and now != role:
            role = now
            say(role)
        await asyncio.sleep(0.02)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]) if len(sys.argv) > 2 else None))
