"""The audit writer's group commits: batching, and no request left waiting on a failure."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, Table
from tpp_plumbing.web.audit import AuditWriter

TABLE = Table("audit_log", MetaData(), Column("status", Integer))


def _row(status: int) -> dict[str, Any]:
    return {
        "subject": "op",
        "role": "operator",
        "organizer_id": None,
        "method": "POST",
        "operation": "POST /x",
        "target": None,
        "request_id": f"r{status}",
        "status": status,
    }


class _Commands:
    """Records each insert's statuses (its last array); ``hold`` keeps an insert waiting."""

    def __init__(self) -> None:
        self.transactions: list[list[int]] = []
        self.hold = asyncio.Event()
        self.hold.set()

    async def execute(self, query: str, *columns: list[Any]) -> None:
        assert query.startswith("INSERT INTO audit_log (subject,")
        await self.hold.wait()
        self.transactions.append(columns[-1])


async def test_rows_arriving_during_a_commit_share_the_next_transaction() -> None:
    engine = _Commands()
    writer = AuditWriter(engine, TABLE)  # type: ignore[arg-type]
    engine.hold.clear()
    first = asyncio.create_task(writer.record(_row(1)))
    await asyncio.sleep(0)
    others = [asyncio.create_task(writer.record(_row(n))) for n in range(2, 6)]
    await asyncio.sleep(0)
    engine.hold.set()
    await asyncio.gather(first, *others)
    assert engine.transactions == [[1], [2, 3, 4, 5]]


@pytest.mark.parametrize("turns", [1, 3], ids=["before-it-ran", "during-its-transaction"])
async def test_a_cancelled_writer_fails_its_waiting_requests_instead_of_hanging_them(
    turns: int,
) -> None:
    engine = _Commands()
    writer = AuditWriter(engine, TABLE)  # type: ignore[arg-type]
    engine.hold.clear()
    waiting = [asyncio.create_task(writer.record(_row(n))) for n in range(3)]
    for _ in range(turns):
        await asyncio.sleep(0)
    assert writer._writing is not None
    writer._writing.cancel()  # e.g. the event loop shutting down
    for task in waiting:
        with pytest.raises(RuntimeError, match="cancelled"):
            await asyncio.wait_for(task, 5)
