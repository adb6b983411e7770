"""Computed reports by the projections' version they were computed at, and the version probe."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

#: (projections' version, commitments' token): what a report was computed from.
Version = tuple[int, str]


def covers(have: Version, want: Version) -> bool:
    """Whether a report computed at ``have`` may answer a request that found ``want``.

    The projections' version only grows (a rebuild continues it), so a newer one will do;
    the commitments' token changes with every write to them and must be the same.
    """
    return have[1] == want[1] and have[0] >= want[0]


def version_of(state: dict[str, Any]) -> Version:
    """The version of the projections' state (``report_store.state``)."""
    return int(state["version"]), str(state["settings"])


class _Entry:
    __slots__ = ("value", "version")

    def __init__(self, version: Version, value: Any) -> None:
        self.version = version
        self.value = value


class ReportCache:
    """Computed reports by key, each with the version it was computed at; the least
    recently used report makes room for a new one (never all at once: dropping every report
    when full made every reader of the popular ones wait for their recomputation)."""

    def __init__(self, *, max_entries: int = 2048) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._inflight: dict[Hashable, tuple[Version, asyncio.Future[Any]]] = {}

    def valid(self, key: Hashable, version: Version) -> Any | None:
        """The value of ``key`` if it was computed at ``version`` or later."""
        entry = self._entries.get(key)
        if entry is not None and covers(entry.version, version):
            self._entries.move_to_end(key)
            return entry.value
        return None

    async def compute(
        self,
        key: Hashable,
        version: Version,
        produce: Callable[[], Awaitable[tuple[Version, Any]]],
    ) -> Any:
        """The value of ``key`` at ``version`` or later, computed now.

        ``produce`` returns the version it actually computed at (its snapshot's, never older
        than the projections were when it was called). A caller joins a computation in
        flight only if that one was asked for at ``version`` or later: one started earlier
        may predate what this caller must show.
        """
        pending = self._inflight.get(key)
        if pending is not None and covers(pending[0], version):
            return await asyncio.shield(pending[1])
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = (version, future)
        try:
            computed, value = await produce()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters get it, nobody else must
            raise
        finally:
            if self._inflight.get(key, (None, None))[1] is future:
                del self._inflight[key]
        future.set_result(value)
        known = self._entries.get(key)
        if known is None or known.version[0] <= computed[0]:  # never replaced by an older one
            self._entries[key] = _Entry(computed, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return value


class StateProbe:
    """The projections' state, asked of the database for every request that wants it.

    Requests that arrive while no query is on its way share the next one. A request never
    joins a query already sent (it may have been answered before the request arrived, from
    older projections): it waits for the one after, shared with every request arriving
    meanwhile. Under load that is one query per round trip, however many requests.
    """

    def __init__(self, ask: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        self._ask = ask
        self._next: asyncio.Task[dict[str, Any]] | None = None  # not sent yet: joinable
        self._sent: asyncio.Task[dict[str, Any]] | None = None

    async def __call__(self) -> dict[str, Any]:
        task = self._next
        if task is None:
            task = asyncio.get_running_loop().create_task(self._round(self._sent))
            task.add_done_callback(_retrieve)
            self._next = task
        return await asyncio.shield(task)

    async def _round(self, before: asyncio.Task[dict[str, Any]] | None) -> dict[str, Any]:
        if before is not None and not before.done():
            await asyncio.wait({before})
        self._next, self._sent = None, asyncio.current_task()
        return await self._ask()


def _retrieve(task: asyncio.Task[Any]) -> None:
    # A round whose every waiter was cancelled must not log "exception never retrieved".
    if not task.cancelled():
        task.exception()
