"""Database plumbing: engine, session factory, naming convention."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    """A MetaData with the platform's constraint naming convention."""
    return MetaData(naming_convention=NAMING_CONVENTION)


#: Connections older than this are replaced at checkout (server-side timeouts, failovers).
POOL_RECYCLE_S = 1800

#: ``session.info`` key of a callable run after a commit that wrote outbox rows.
AFTER_OUTBOX_COMMIT = "tpp_after_outbox_commit"

_DISCONNECT_ERRORS = {
    "ConnectionDoesNotExistError",
    "CannotConnectNowError",
    "InterfaceError",
    "ConnectionFailureError",
    "TooManyConnectionsError",
    "AdminShutdownError",
}


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An asyncpg engine, without pre-ping: a restarted PostgreSQL costs one failed request.

    The pre-ping costs ``BEGIN; ; ROLLBACK`` per checkout (one more round trip per
    transaction: the writers' ceiling, ``bench`` ``ceiling.pg.row_outbox*.c32``, 4,902 ->
    4,169 tx/s). It was on while the fault-injection suite (``make chaos``) saw reporting lose
    applied events after a PostgreSQL restart; the cause was reporting's batches autocommitting
    statement by statement (fixed: each batch is one transaction), and
    ``make chaos`` passes without it. After a restart, the first statement on a dead pooled
    connection fails: SQLAlchemy sees the disconnect and invalidates the whole pool, and that
    request is answered 503 + Retry-After (``problems``); consumers retry it.
    """
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        pool_recycle=POOL_RECYCLE_S,
    )


def is_database_outage(error: BaseException) -> bool:
    """True if ``error`` (or its cause) says PostgreSQL could not be reached or went away."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError | TimeoutError):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if type(current).__name__ in _DISCONNECT_ERRORS:
            return True
        if isinstance(current, BaseExceptionGroup) and any(
            is_database_outage(inner) for inner in current.exceptions
        ):
            return True  # a task group (a middleware's) carries the outage inside
        current = current.__cause__ or current.__context__
    return False


def session_factory(
    engine: AsyncEngine, *, after_outbox_commit: Callable[[], None] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit.

    ``after_outbox_commit`` runs after each commit that wrote outbox rows (the relay's
    in-process wake-up: writers do not NOTIFY inside their transactions).
    """
    info: dict[str, Any] = {}
    if after_outbox_commit is not None:
        info[AFTER_OUTBOX_COMMIT] = after_outbox_commit
    return async_sessionmaker(engine, expire_on_commit=False, info=info)


def asyncpg_dsn(url: str) -> str:
    """The plain libpq DSN of a SQLAlchemy URL (for raw asyncpg connections)."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)
