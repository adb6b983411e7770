"""Organizers: the institutions that run sessions."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_contracts.envelope import new_id
from tpp_contracts.registry import OrganizerCreatedV1, OrganizerUpdatedV1
from tpp_contracts.vocab import OrganizerKind
from tpp_plumbing.messaging.outbox import Outbox
from tpp_plumbing.web.problems import ConflictError, NotFoundError

from tpp_registry.api.models import Organizer, OrganizerIn, OrganizerPage, OrganizerPatch
from tpp_registry.service.catalogue import CatalogueCache
from tpp_registry.service.common import violates
from tpp_registry.store import tables

org = tables.organizer
UNIQUE_NAME = "uq_organizer_lower_name"
_COLUMNS = [org.c.id, org.c.name, org.c.kind, org.c.province, org.c.country, org.c.contact]


def _name_taken(name: str) -> ConflictError:
    return ConflictError(f"an organizer is already named {name!r}", field="name")


class OrganizerService:
    """Registers organizers and keeps their details; each change is an organizer event."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        catalogue: CatalogueCache,
    ) -> None:
        self._sessions = sessions
        self._outbox = outbox
        self._catalogue = catalogue

    async def create(self, data: OrganizerIn) -> Organizer:
        """Register an organizer; 409 when the name (in any case) is taken."""
        organizer = Organizer(id=new_id(), **data.model_dump())
        try:
            async with self._sessions() as db, db.begin():
                await db.execute(insert(org).values(**organizer.model_dump()))
                await self._outbox.add(db, [OrganizerCreatedV1(**_event(organizer))])
        except IntegrityError as error:
            if violates(error, UNIQUE_NAME):
                raise _name_taken(data.name) from None
            raise
        return organizer

    async def update(self, organizer_id: uuid.UUID, patch: OrganizerPatch) -> Organizer:
        """Change an organizer's details; the event carries its full new state."""
        try:
            async with self._sessions() as db, db.begin():
                current = await self._get(db, organizer_id, lock=True)
                new = current.model_copy(update=patch.changes())
                new = Organizer.model_validate(new.model_dump())
                if new != current:
                    values = new.model_dump(exclude={"id"})
                    await db.execute(
                        update(org)
                        .where(org.c.id == organizer_id)
                        .values(**values, updated_at=func.now())
                    )
                    await self._outbox.add(db, [OrganizerUpdatedV1(**_event(new))])
        except IntegrityError as error:
            if violates(error, UNIQUE_NAME):
                raise _name_taken(patch.name or "") from None
            raise
        if new.name != current.name:
            self._catalogue.invalidate()  # catalogue entries carry the organizer's name
        return new

    async def get(self, organizer_id: uuid.UUID) -> Organizer:
        """One organizer."""
        async with self._sessions() as db:
            return await self._get(db, organizer_id)

    async def list(
        self,
        *,
        kind: OrganizerKind | None,
        country: str | None,
        offset: int,
        limit: int,
    ) -> OrganizerPage:
        """Organizers by name (case-insensitive), optionally of a kind or a country."""
        query = select(*_COLUMNS).order_by(func.lower(org.c.name), org.c.id)
        if kind is not None:
            query = query.where(org.c.kind == kind.value)
        if country is not None:
            query = query.where(org.c.country == country.upper())
        async with self._sessions() as db:
            rows = list((await db.execute(query.offset(offset).limit(limit + 1))).mappings())
        items = [Organizer.model_validate(dict(r)) for r in rows[:limit]]
        return OrganizerPage(items=items, next_offset=offset + limit if len(rows) > limit else None)

    async def _get(
        self, db: AsyncSession, organizer_id: uuid.UUID, *, lock: bool = False
    ) -> Organizer:
        query = select(*_COLUMNS).where(org.c.id == organizer_id)
        if lock:
            query = query.with_for_update()
        row = (await db.execute(query)).mappings().first()
        if row is None:
            raise NotFoundError(f"no organizer {organizer_id}")
        return Organizer.model_validate(dict(row))


def _event(organizer: Organizer) -> dict[str, Any]:
    return organizer.model_dump(exclude={"id"}) | {"organizer_id": organizer.id}
