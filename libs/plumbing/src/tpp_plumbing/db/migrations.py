"""Alembic environment shared by the services' migrations (online, async)."""

from __future__ import annotations

import asyncio
import os

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
