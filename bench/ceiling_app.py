"""The empty FastAPI app of the HTTP ceiling: no database, no middleware, a tiny JSON body."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/health/live")
async def live() -> dict[str, str]:
    """What the harness polls before load starts."""
    return {"status": "ok"}


@app.post("/empty", status_code=201)
async def empty_post() -> dict[str, str]:
    """Reads nothing, writes nothing."""
    return {"status": "ok"}


@app.get("/empty")
async def empty_get() -> dict[str, str]:
    """Reads nothing, writes nothing."""
    return {"status": "ok"}
