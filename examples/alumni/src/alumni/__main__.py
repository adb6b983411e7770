"""Run the alumni service: ``python -m alumni`` (port ``ALUMNI_PORT``, default 8010)."""

from __future__ import annotations

import os

import uvicorn

from alumni.app import create_app

if __name__ == "__main__":
    uvicorn.run(create_app(), host="127.0.0.1", port=int(os.environ.get("ALUMNI_PORT", "8010")))
