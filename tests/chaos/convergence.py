"""Waiting, after the faults heal, for empty outboxes and zero consumer lag (a check itself)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from tests.chaos.faults import CONSUMERS
from tests.chaos.stack import ChaosStack, log
from tests.chaos.topic_reads import lag_of
from tests.chaos.verdict import Verdict

LAG_WITHIN_S = 30.0


async def unsent_outbox(stack: ChaosStack) -> dict[str, int]:
    counts = {}
    for name in ("registry", "enrollment"):
        conn = await asyncpg.connect(stack.database_url(name), timeout=5)
        try:
            counts[name] = int(
                await conn.fetchval(
                    "SELECT count(*) FROM outbox_message WHERE published_at IS NULL"
                )
            )
        finally:
            await conn.close()
    return counts


async def converge(stack: ChaosStack, verdict: Verdict) -> None:
    """Wait for empty outboxes and zero lag; lag must reach 0 within 30 s."""
    groups = {
        group: [t for t, readers in CONSUMERS.items() if group in readers]
        for group in ("enrollment", "reporting")
    }
    started = time.monotonic()
    state: dict[str, Any] = {}
    while True:
        try:
            outbox = await unsent_outbox(stack)
            lags = {g: await lag_of(stack.kafka, g, topics) for g, topics in groups.items()}
            state = {"outbox": outbox, "lag": lags}
            if not any(outbox.values()) and not any(lags.values()):
                break
        except Exception as error:  # a check that cannot run yet: try again
            state = {"error": type(error).__name__}
        if time.monotonic() - started > 120:
            break
        await asyncio.sleep(0.5)
    took = time.monotonic() - started
    verdict.counts["converged_in_s"] = round(took, 1)
    log(f"outboxes and consumer lag: {state} after {took:.1f} s")
    verdict.check("error" not in state, f"could not measure lag/outbox: {state}")
    outbox = state.get("outbox", {})
    lags = state.get("lag", {})
    verdict.check(not any(outbox.values()), f"outbox rows left unsent: {outbox}")
    verdict.check(not any(lags.values()), f"consumer lag not back to 0: {lags}")
    verdict.check(took <= LAG_WITHIN_S, f"lag took {took:.1f} s to reach 0 (limit 30 s)")
