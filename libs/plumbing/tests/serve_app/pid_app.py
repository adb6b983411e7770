"""A bare ASGI app answering with its worker's process id (for test_plumbing_serve).

``/gc`` answers with the worker's garbage collector state instead: objects frozen, threshold.
"""

import gc
import json
import os
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/gc":
        state = {"frozen": gc.get_freeze_count(), "threshold": list(gc.get_threshold())}
        body = json.dumps(state).encode()
    else:
        body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
