"""The unit of work's rules that need no database."""

from __future__ import annotations

import uuid
from typing import cast

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from tpp_contracts.examples import example
from tpp_contracts.registry import OrganizerCreatedV1
from tpp_plumbing.db.uow import UnitOfWork


def test_a_unit_of_work_without_an_outbox_refuses_events() -> None:
    """A service that publishes nothing (reporting) has no outbox: an event emitted there
    is a mistake, told at once rather than lost at the commit."""
    uow = UnitOfWork(cast(AsyncSession, object()), outbox=None)
    uow.emit()  # nothing emitted: fine
    with pytest.raises(RuntimeError, match="no outbox"):
        uow.emit(example(OrganizerCreatedV1, organizer_id=uuid.uuid4()))
