"""The reporting service with slow batches (0.5 s more each): the SIGTERM test runs it.

uvicorn --app-dir tests/integration operations_app:create_app --factory
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from tpp_plumbing.messaging.consumer import Applied
from tpp_reporting.app import create_app as reporting_app

DELAY_S = 0.5


def create_app() -> FastAPI:
    """The reporting app whose consumers take ``DELAY_S`` longer per batch."""
    app = reporting_app()
    for runner in app.state.runtime.runners:
        apply = runner.consumer.apply

        async def slow(records: Sequence[Any], apply: Any = apply) -> Applied:
            await asyncio.sleep(DELAY_S)
            result: Applied = await apply(records)
            return result

        runner.consumer.apply = slow
    return app
