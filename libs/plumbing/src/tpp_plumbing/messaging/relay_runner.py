"""Where a service's outbox relay runs: a task on the caller's event loop (``RelayTask``), or
a thread and event loop of its own (``RelayThread``); both start, stop and say if they are
alive the same way (``tpp_plumbing.runtime`` picks one from ``relay_mode``)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import threading

from tpp_plumbing.messaging.relay import OutboxRelay


class RelayRunner(abc.ABC):
    """Runs an ``OutboxRelay`` (a leader, a standby or a notifier) until stopped."""

    def __init__(self, relay: OutboxRelay, *, name: str) -> None:
        self.relay = relay
        self.name = name

    @abc.abstractmethod
    def start(self) -> None:
        """Start the relay; it runs until ``stop``."""

    @abc.abstractmethod
    def alive(self) -> bool:
        """The relay still runs (it ends only when stopped, or on a bug)."""

    @abc.abstractmethod
    async def stop(self, *, grace_s: float, timeout_s: float) -> None:
        """Have the relay publish what is left for up to ``grace_s``; after ``timeout_s``
        (or at once if it ignores that), cancel it. Waits without blocking the caller's loop."""


class RelayTask(RelayRunner):
    """The relay as a task on the running loop (the HTTP worker's, or the relay process's)."""

    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.relay.run(), name=self.name)

    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self, *, grace_s: float, timeout_s: float) -> None:
        if self._task is None:
            return
        await self.relay.stop(grace_s)
        done, _ = await asyncio.wait({self._task}, timeout=timeout_s)
        if not done:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None


class RelayThread(RelayRunner):
    """The relay on an event loop of its own, in a thread of its own.

    On the HTTP server's loop, every step of the relay's round (the wake-up, the read, the
    broker's ack) waits behind all the handlers ready before it; on its own loop it waits
    at most for the interpreter's switch interval (docs/decisions/0007-relay-thread.md).
    The relay keeps its own connection and producer there, so its lock, keepalives and
    fencing are the same as on any loop.
    """

    _thread: threading.Thread | None = None
    _task: asyncio.Task[None] | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        # A daemon: a relay that outlives its stop's deadline does not hold the process.
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _main(self) -> None:
        with asyncio.Runner(loop_factory=new_loop) as runner:
            runner.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        await self.relay.run()

    async def stop(self, *, grace_s: float, timeout_s: float) -> None:
        if self._thread is None:
            return
        await self.relay.stop(grace_s)
        thread = self._thread
        await asyncio.to_thread(thread.join, timeout_s)
        if thread.is_alive() and self._loop is not None and self._task is not None:
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                self._loop.call_soon_threadsafe(self._task.cancel)
            await asyncio.to_thread(thread.join, 1.0)
        self._thread = None


def new_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (as uvicorn's HTTP loop is), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
