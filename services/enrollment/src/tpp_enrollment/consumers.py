"""Enrollment consumers: the registry's session events drive the session view."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_contracts.topics import SESSIONS
from tpp_plumbing.db.uow import UnitsOfWork
from tpp_plumbing.messaging.consumer import EventConsumer
from tpp_plumbing.messaging.inbox import Inbox
from tpp_plumbing.runtime import Subscription

from tpp_enrollment.service import SessionProjector
from tpp_enrollment.store import tables


def subscriptions(
    sessions: async_sessionmaker[AsyncSession], units: UnitsOfWork
) -> list[Subscription]:
    """What the enrollment service consumes (its reactions are units of work joining the
    consumer's transaction)."""
    consumer = EventConsumer(
        name="session-view",
        sessions=sessions,
        inbox=Inbox(tables.inbox),
        handlers=SessionProjector(units).handlers(),
    )
    return [Subscription(consumer, [SESSIONS.name])]
