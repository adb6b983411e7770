"""Alembic environment shared by the services' migrations (online, async)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping

from alembic import context
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine


def run(metadata: MetaData, *, url_env: str) -> None:
    """Run migrations for a service; its database URL comes from ``url_env``."""
    url = context.config.get_main_option("sqlalchemy.url") or os.environ.get(url_env)
    if not url:
        raise RuntimeError(f"set {url_env} to the service's database URL")

    def migrate(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=metadata, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(migrate)
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(main())


# --- autovacuum on the tables every command writes ----------------------------------------
#
# Under a steady stream of commands, each autovacuum round was a burst of slow answers. Its
# ANALYZEs did it, not its VACUUMs: statistics on every event's payload and headers of
# outbox_message (which no query filters on), on audit_log and on a service's busiest table,
# and every cached plan on those tables replanned after (figures: bench/RESULTS.md,
# "Autovacuum"). So these tables are analyzed when they have grown by a half or more (ANALYZE
# of an append-mostly log changes no plan: each query has its index), the outbox without
# statistics on its payload and headers, and autovacuum works on them at a gentler pace (a
# 20 ms pause per 200 pages of cost instead of 2 ms), which spreads a round's work over a
# second or two rather than taking a core at once.

#: Columns no query filters or sorts on: no statistics gathered.
NO_STATISTICS = {"outbox_message": ("payload", "headers")}
#: Analyzed after this share of the table changed (PostgreSQL's default 0.1); a service's own
#: tables are given theirs by its migration.
ANALYZE_SCALE_FACTOR = {"outbox_message": 1.0, "audit_log": 1.0}
#: Pause of autovacuum, in ms, per vacuum_cost_limit of work (PostgreSQL's default 2).
VACUUM_COST_DELAY_MS = 20


def gentle_autovacuum(
    *tables: str, analyze_scale_factor: Mapping[str, float] | None = None
) -> list[str]:
    """The statements that set these tables' autovacuum as above (for a migration);
    ``analyze_scale_factor`` adds the service's own tables' to ``ANALYZE_SCALE_FACTOR``."""
    factors = {**ANALYZE_SCALE_FACTOR, **(analyze_scale_factor or {})}
    statements = []
    for table in tables:
        options = [f"autovacuum_vacuum_cost_delay = {VACUUM_COST_DELAY_MS}"]
        if table in factors:
            options.append(f"autovacuum_analyze_scale_factor = {factors[table]}")
        statements.append(f"ALTER TABLE {table} SET ({', '.join(options)})")
        statements += [
            f"ALTER TABLE {table} ALTER COLUMN {column} SET STATISTICS 0"
            for column in NO_STATISTICS.get(table, ())
        ]
    return statements


def default_autovacuum(*tables: str) -> list[str]:
    """The statements that undo ``gentle_autovacuum(*tables)``."""
    statements = []
    for table in tables:
        statements.append(
            f"ALTER TABLE {table} RESET"
            " (autovacuum_vacuum_cost_delay, autovacuum_analyze_scale_factor)"
        )
        statements += [
            f"ALTER TABLE {table} ALTER COLUMN {column} SET STATISTICS -1"
            for column in NO_STATISTICS.get(table, ())
        ]
    return statements
