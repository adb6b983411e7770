"""``tpp-ops status`` and ``tpp-ops outbox``: is the stack up, is every service publishing."""

from __future__ import annotations

import asyncio
import os

import typer

from tpp_ops.commands._shared import console, run
from tpp_ops.platform import SERVICES
from tpp_ops.settings import kafka_settings, service_urls


def status() -> None:
    """PostgreSQL, Kafka (brokers and topics) and each service's readiness."""
    ok = run(_status)
    if not ok:
        raise typer.Exit(3)


async def _status() -> bool:
    import asyncpg
    import httpx
    from aiokafka.admin import AIOKafkaAdminClient
    from rich.table import Table
    from tpp_contracts.topics import ALL as ALL_TOPICS
    from tpp_plumbing.messaging import deadletter

    table = Table("part", "state", "detail")
    healthy = True
    admin_url = os.environ.get("TPP_PG_ADMIN_URL")
    if admin_url:
        try:
            conn = await asyncpg.connect(admin_url, timeout=3)
            try:
                version = await conn.fetchval("SHOW server_version")
            finally:
                await conn.close()
            table.add_row("postgresql", "[green]up[/green]", f"version {version}")
        except Exception as error:
            healthy = False
            table.add_row("postgresql", "[red]down[/red]", type(error).__name__)
    kafka = kafka_settings()
    try:
        admin = AIOKafkaAdminClient(**kafka.client_options(), request_timeout_ms=3000)
        await asyncio.wait_for(admin.start(), 5)
        try:
            cluster = await admin.describe_cluster()
            topics = set(await admin.list_topics())
        finally:
            await admin.close()
        expected = {kafka.topic(t.name) + s for t in ALL_TOPICS for s in ("", deadletter.SUFFIX)}
        missing = sorted(expected - topics)
        detail = f"{len(cluster['brokers'])} broker(s), {len(expected & topics)} platform topics"
        if missing:
            healthy = False
            detail += f"; missing: {', '.join(missing)}"
        table.add_row(
            "kafka", "[green]up[/green]" if not missing else "[yellow]up[/yellow]", detail
        )
    except Exception as error:
        healthy = False
        table.add_row("kafka", "[red]down[/red]", type(error).__name__)
    async with httpx.AsyncClient(timeout=3) as client:
        for name in SERVICES:
            for url in service_urls(name):
                try:
                    response = await client.get(f"{url}/health/ready")
                    checks = response.json().get("checks", {})
                    state = (
                        "[green]ready[/green]"
                        if response.status_code == 200
                        else "[red]not ready[/red]"
                    )
                    healthy &= response.status_code == 200
                    detail = ", ".join(f"{k}: {v}" for k, v in checks.items())
                    table.add_row(name, state, f"{url}: {detail}")
                except httpx.HTTPError as error:
                    healthy = False
                    table.add_row(name, "[red]down[/red]", f"{url}: {type(error).__name__}")
    console().print(table)
    return healthy


def outbox() -> None:
    """Unsent outbox rows per service, the oldest one's age, and the last publication."""
    run(_outbox)


async def _outbox() -> None:
    import asyncpg
    from rich.table import Table
    from tpp_plumbing.db.engine import asyncpg_dsn

    table = Table("service", "unsent", "oldest unsent", "published (1 h)", "last published")
    for name in SERVICES:
        url = os.environ.get(f"TPP_{name.upper()}_DATABASE_URL")
        if not url:
            continue
        try:
            conn = await asyncpg.connect(asyncpg_dsn(url), timeout=3)
        except Exception as error:
            table.add_row(name, f"[red]{type(error).__name__}[/red]", "", "", "")
            continue
        try:
            if await conn.fetchval("SELECT to_regclass('outbox_message')") is None:
                table.add_row(name, "-", "no outbox", "", "")
                continue
            row = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE published_at IS NULL) AS unsent,"
                " extract(epoch FROM now() - min(created_at) FILTER (WHERE published_at IS NULL))"
                " AS age,"
                " count(*) FILTER (WHERE published_at > now() - interval '1 hour') AS recent,"
                " max(published_at) AS last FROM outbox_message"
            )
        finally:
            await conn.close()
        assert row is not None
        age = f"{row['age']:.1f} s" if row["age"] is not None else "-"
        last = row["last"].isoformat(timespec="seconds") if row["last"] else "-"
        table.add_row(name, str(row["unsent"]), age, str(row["recent"]), last)
    console().print(table)
