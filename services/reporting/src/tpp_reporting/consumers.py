"""Reporting consumers: registry and enrollment events, applied in batches."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_contracts.topics import ENROLLMENTS, SESSIONS
from tpp_plumbing.consumer import EventConsumer
from tpp_plumbing.inbox import Inbox
from tpp_plumbing.runtime import Subscription

from tpp_reporting import tables
from tpp_reporting.projection import HANDLERS


def subscriptions(
    sessions: async_sessionmaker[AsyncSession], *, batch_size: int
) -> list[Subscription]:
    """What reporting consumes: one batched consumer over the registry and enrollment topics."""
    consumer = EventConsumer(
        name="projections", sessions=sessions, inbox=Inbox(tables.inbox), handlers=HANDLERS
    )
    return [
        Subscription(
            consumer, [SESSIONS.name, ENROLLMENTS.name], batch=True, max_records=batch_size
        )
    ]
