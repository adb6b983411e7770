"""Stack dumps of a test or a teardown step that hangs, and the bounded teardown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import sys
import threading
import traceback
from collections.abc import Awaitable, Generator
from typing import Any

import pytest

#: A test still running after this many seconds has every thread's stack and every asyncio
#: task's stack printed (captured with the test's output, shown when the global timeout of
#: pyproject.toml fails it), so that a hang in CI says where it waits.
STALL_DUMP_S = float(os.environ.get("TPP_TEST_STALL_DUMP_S", "240"))


#: How long one step of a session fixture's teardown may take (services stop in 20 s).
TEARDOWN_S = 60.0


async def bounded_teardown(step: Awaitable[Any], what: str, seconds: float = TEARDOWN_S) -> None:
    """Await a teardown step for at most ``seconds``; past that, print where everything waits
    and go on: the tests have run, and a stuck close must not hang the run (the stacks say
    what to fix)."""
    try:
        await asyncio.wait_for(step, seconds)
    except TimeoutError:
        _dump_stall(f"teardown: {what}", seconds)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    timer = threading.Timer(STALL_DUMP_S, _dump_stall, args=(item.nodeid,))
    timer.daemon = True
    timer.start()
    try:
        return (yield)
    finally:
        timer.cancel()


def _dump_stall(nodeid: str, after_s: float = STALL_DUMP_S) -> None:
    """Every thread's stack and every pending asyncio task's stack (diagnostics only)."""
    out = sys.stderr
    print(f"\n=== {nodeid} still running after {after_s:g} s ===", file=out)
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        print(f"--- thread {names.get(ident, ident)}", file=out)
        print("".join(traceback.format_stack(frame)), file=out)
    loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop)]
    # A loop running a thread's frames (pytest-asyncio's runner) may not be among the objects
    # the collector tracks: find it through the frames' ``self``.
    for frame in sys._current_frames().values():
        while frame is not None:
            owner = frame.f_locals.get("self")
            if isinstance(owner, asyncio.AbstractEventLoop) and owner not in loops:
                loops.append(owner)
            frame = frame.f_back  # type: ignore[assignment]
    for loop in loops:
        if loop.is_closed():
            continue
        for _ in range(3):  # the loop's task set may change while it is read
            try:
                tasks = list(asyncio.all_tasks(loop))
                break
            except RuntimeError:
                tasks = []
        print(f"--- {len(tasks)} asyncio tasks of {loop!r}", file=out)
        for task in tasks:
            with contextlib.suppress(Exception):
                task.print_stack(file=out)
    out.flush()
