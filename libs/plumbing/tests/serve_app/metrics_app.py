"""A bare ASGI app counting its requests in the platform's metrics (for test_plumbing_serve).

``/count`` counts one published event; ``/metrics`` is the service's scrape.
"""

import os
from typing import Any

from tpp_plumbing.observability.metrics import Metrics

metrics = Metrics("metrics_app")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/metrics":
        body = metrics.exposition()
    else:
        metrics.events_published.labels("topic", "type").inc()
        body = str(os.getpid()).encode()
    headers = [(b"x-pid", str(os.getpid()).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
