"""An ASGI app whose first starts fail (for test_plumbing_serve), as while a broker is down.

Each start counts itself in the file ``FLAKY_COUNTER`` names; the first ``FLAKY_FAILURES``
starts (all of them with a large number) report a failed start-up.
"""

import fcntl
import os
from typing import Any


def _count_start() -> int:
    with open(os.environ["FLAKY_COUNTER"], "a+") as counter:
        fcntl.flock(counter, fcntl.LOCK_EX)
        counter.write("x")
        counter.flush()
        return os.path.getsize(os.environ["FLAKY_COUNTER"])


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            if _count_start() <= int(os.environ["FLAKY_FAILURES"]):
                await send({"type": "lifespan.startup.failed", "message": "broker down"})
                return
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"up"})
