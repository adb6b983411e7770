"""The report cache: shared computations, and room made one least-recently-used report at a time."""

from __future__ import annotations

import asyncio
import functools

from tpp_reporting.service import ReportCache


async def test_a_full_cache_drops_only_the_least_recently_used_report() -> None:
    cache = ReportCache(max_entries=3)
    computed: list[str] = []

    async def produce(key: str) -> str:
        computed.append(key)
        return f"report {key}"

    for key in ("review", "year", "session-1"):
        await cache.compute(key, 1, functools.partial(produce, key))
    assert cache.valid("review", 1) == "report review"  # read: now the most recent
    await cache.compute("session-2", 1, lambda: produce("session-2"))
    # "year" was the least recently used: only it made room; the popular review stays.
    assert [k for k in ("review", "year", "session-1", "session-2") if cache.valid(k, 1)] == [
        "review",
        "session-1",
        "session-2",
    ]
    assert cache.valid("review", 2) is None  # a newer version of the projections
    assert cache.stale("review") == "report review"  # still served while it is recomputed
    assert computed == ["review", "year", "session-1", "session-2"]


async def test_concurrent_readers_of_one_report_share_one_computation() -> None:
    cache = ReportCache()
    calls = 0
    release = asyncio.Event()

    async def produce() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "review"

    readers = [asyncio.create_task(cache.compute("review", 1, produce)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*readers) == ["review"] * 5
    assert calls == 1
