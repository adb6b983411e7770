"""Scratch databases and topics of the local stack for one benchmark, removed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
from tpp_plumbing.db.throwaway import create_throwaway, drop_abandoned

if TYPE_CHECKING:
    from harness import Context

ROOT = Path(__file__).resolve().parents[1]

UPGRADE = ("upgrade", "head")


def _replace_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextlib.asynccontextmanager
async def scratch_database(ctx: Context, service: str, label: str = "") -> AsyncIterator[str]:
    """A throwaway database owned by ``service``'s role, migrated to head; its SQLAlchemy URL.

    ``service=None``-like use (no migrations) is ``service="postgres"``: an empty database.
    """
    name = f"bench_{service}_{ctx.run_id}{label}"
    owner = "postgres" if service == "postgres" else service
    conn = await asyncpg.connect(ctx.admin_url)
    try:
        await drop_abandoned(conn)  # what killed runs left behind
        await create_throwaway(conn, name, owner)
    finally:
        await conn.close()
    if service == "postgres":
        url = _replace_database(ctx.admin_url, name)
    else:
        url = _replace_database(ctx.service_url(service), name)
        env = ctx.env | {f"TPP_{service.upper()}_DATABASE_URL": url}
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "alembic", "-c", f"services/{service}/alembic.ini", *UPGRADE],
            check=True,
            env=env,
            cwd=ROOT,
            capture_output=True,
        )
    try:
        yield url
    finally:
        conn = await asyncpg.connect(ctx.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def libpq(url: str) -> str:
    """A SQLAlchemy asyncpg URL as a plain libpq URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@contextlib.asynccontextmanager
async def scratch_topics(ctx: Context) -> AsyncIterator[str]:
    """The platform's topics under a fresh prefix (deleted afterwards), which the services'
    own Kafka principals may use as on the stack; yields the prefix."""
    from aiokafka.admin import AIOKafkaAdminClient
    from tpp_ops import acl as platform_acl
    from tpp_plumbing.messaging import acl

    prefix = f"bench-{ctx.run_id}-{uuid.uuid4().hex[:4]}-"
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "deploy/topics.py", "--prefix", prefix, "--wait", "30"],
        check=True,
        env=ctx.env,
        cwd=ROOT,
        capture_output=True,
    )
    bindings = (
        platform_acl.layout(prefix, platform_acl.principal_names(ctx.env))
        if ctx.kafka.uses_sasl
        else []
    )
    if bindings:
        await acl.grant(ctx.kafka, bindings)
    try:
        yield prefix
    finally:
        if bindings:
            await acl.revoke(ctx.kafka, bindings)
        admin = AIOKafkaAdminClient(**ctx.kafka.client_options())
        await admin.start()
        try:
            names = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if names:
                await admin.delete_topics(names)
        finally:
            await admin.close()
