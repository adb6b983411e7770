"""The asyncpg connection under a SQLAlchemy session, for reporting's raw statements."""

from __future__ import annotations

from typing import cast

from sqlalchemy.ext.asyncio import AsyncSession

from tpp_reporting.store.projection import Connection


async def raw_connection(session: AsyncSession) -> Connection:
    """The asyncpg connection under a SQLAlchemy session, for reads.

    Not in a transaction: SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first
    statement *it* runs, so every statement sent straight to this connection commits on its
    own.
    """
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return cast(Connection, raw.driver_connection)
