"""One replica's outbox relay, as its own process: the relay takeover tests run several.
As in a service (``tpp_plumbing.runtime``), the relay runs as a task on the process's loop, or
on a thread and loop of its own with ``RELAY_REPLICA_THREAD=1`` (``relay_mode`` "thread").

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

from tpp_plumbing.messaging.relay import OutboxRelay
from tpp_plumbing.messaging.relay_runner import RelayThread
from tpp_plumbing.settings import KafkaSettings

_SAYING = threading.Lock()  # the relay's hooks may speak from its thread
ON_THREAD = os.environ.get("RELAY_REPLICA_THREAD") == "1"


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
            if ON_THREAD:
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
    thread = RelayThread(relay, name="relay") if ON_THREAD else None
    task = None if thread else asyncio.create_task(relay.run())
    if thread:
        thread.start()
    role = None
    while thread.alive() if thread else not (task and task.done()):
        now = "leader" if relay.is_leader else "standby" if relay.heartbeat_at else None
        if now is not None and now != role:
            role = now
            say(role)
        await asyncio.sleep(0.02)
    if task:
        await task


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]) if len(sys.argv) > 2 else None))
