"""The report cache and the version probe: never a report older than the request's version."""

from __future__ import annotations

import asyncio
from typing import Any

from tpp_reporting.service import ReportCache, StateProbe, Version


def at(version: int, settings: str = "") -> Version:
    return version, settings


async def test_a_full_cache_drops_only_the_least_recently_used_report() -> None:
    cache = ReportCache(max_entries=3)
    computed: list[str] = []

    def producer(key: str) -> Any:
        async def produce() -> tuple[Version, str]:
            computed.append(key)
            return at(1), f"report {key}"

        return produce

    for key in ("review", "year", "session-1"):
        await cache.compute(key, at(1), producer(key))
    assert cache.valid("review", at(1)) == "report review"  # read: now the most recent
    await cache.compute("session-2", at(1), producer("session-2"))
    # "year" was the least recently used: only it made room; the popular review stays.
    assert [k for k in ("review", "year", "session-1", "session-2") if cache.valid(k, at(1))] == [
        "review",
        "session-1",
        "session-2",
    ]
    assert computed == ["review", "year", "session-1", "session-2"]


async def test_a_report_older_than_the_request_or_of_other_commitments_is_not_served() -> None:
    cache = ReportCache()

    async def produce() -> tuple[Version, str]:
        return at(5, "a"), "v5"

    await cache.compute("review", at(5, "a"), produce)
    assert cache.valid("review", at(5, "a")) == "v5"
    assert cache.valid("review", at(4, "a")) == "v5"  # newer than asked: fine
    assert cache.valid("review", at(6, "a")) is None  # the projections moved on
    assert cache.valid("review", at(5, "b")) is None  # a commitment changed


async def test_concurrent_readers_of_one_report_share_one_computation() -> None:
    cache = ReportCache()
    calls = 0
    release = asyncio.Event()

    async def produce() -> tuple[Version, str]:
        nonlocal calls
        calls += 1
        await release.wait()
        return at(1), "review"

    readers = [asyncio.create_task(cache.compute("review", at(1), produce)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*readers) == ["review"] * 5
    assert calls == 1


async def test_a_reader_never_joins_a_computation_asked_for_an_older_version() -> None:
    cache = ReportCache()
    release = asyncio.Event()

    def producer(version: int) -> Any:
        async def produce() -> tuple[Version, str]:
            await release.wait()
            return at(version), f"v{version}"

        return produce

    older = asyncio.create_task(cache.compute("year", at(1), producer(1)))
    await asyncio.sleep(0)
    newer = asyncio.create_task(cache.compute("year", at(2), producer(2)))
    same = asyncio.create_task(cache.compute("year", at(2), producer(99)))  # joins v2's
    await asyncio.sleep(0)
    release.set()
    assert list(await asyncio.gather(older, newer, same)) == ["v1", "v2", "v2"]
    assert cache.valid("year", at(2)) == "v2"  # the older result, done last, did not replace it


async def test_the_probe_shares_a_query_only_with_requests_that_came_before_it_was_sent() -> None:
    sent: list[asyncio.Future[dict[str, Any]]] = []

    async def ask() -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        sent.append(future)
        return await future

    probe = StateProbe(ask)
    first = [asyncio.create_task(probe()) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert len(sent) == 1  # one query for the three
    later = [asyncio.create_task(probe()) for _ in range(3)]  # arrive while it is on its way
    await asyncio.sleep(0.01)
    assert len(sent) == 1  # they wait for the next query, not this one
    sent[0].set_result({"version": 1})
    assert [await t for t in first] == [{"version": 1}] * 3
    await asyncio.sleep(0.01)
    assert len(sent) == 2
    sent[1].set_result({"version": 2})
    assert [await t for t in later] == [{"version": 2}] * 3
