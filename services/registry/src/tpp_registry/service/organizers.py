"""Organizers: the institutions that run sessions."""

from __future__ import annotations

import uuid
from typing import Any

from tpp_contracts.envelope import new_id
from tpp_contracts.registry import OrganizerCreatedV1, OrganizerUpdatedV1
from tpp_contracts.vocab import OrganizerKind
from tpp_plumbing.db.uow import UnitsOfWork
from tpp_plumbing.web.problems import ConflictError, NotFoundError

from tpp_registry.api.models import Organizer, OrganizerIn, OrganizerPage, OrganizerPatch
from tpp_registry.service.catalogue import CatalogueCache
from tpp_registry.store import organizers as store


def _name_taken(name: str) -> ConflictError:
    return ConflictError(f"an organizer is already named {name!r}", field="name")


class OrganizerService:
    """Registers organizers and keeps their details; each change is an organizer event."""

    def __init__(self, units: UnitsOfWork, catalogue: CatalogueCache) -> None:
        self._uow = units
        self._catalogue = catalogue

    async def create(self, data: OrganizerIn) -> Organizer:
        """Register an organizer; 409 when the name (in any case) is taken."""
        organizer = Organizer(id=new_id(), **data.model_dump())
        async with self._uow() as uow:
            if not await store.add(uow.db, organizer.model_dump()):
                raise _name_taken(data.name)
            uow.emit(OrganizerCreatedV1(**_event(organizer)))
        return organizer

    async def update(self, organizer_id: uuid.UUID, patch: OrganizerPatch) -> Organizer:
        """Change an organizer's details; the event carries its full new state."""
        async with self._uow() as uow:
            current = _found(organizer_id, await store.get(uow.db, organizer_id, lock=True))
            new = current.model_copy(update=patch.changes())
            new = Organizer.model_validate(new.model_dump())
            if new != current:
                if not await store.save(uow.db, organizer_id, new.model_dump(exclude={"id"})):
                    raise _name_taken(patch.name or "")
                uow.emit(OrganizerUpdatedV1(**_event(new)))
        if new.name != current.name:
            self._catalogue.invalidate()  # catalogue entries carry the organizer's name
        return new

    async def get(self, organizer_id: uuid.UUID) -> Organizer:
        """One organizer."""
        async with self._uow.read() as db:
            return _found(organizer_id, await store.get(db, organizer_id))

    async def list(
        self,
        *,
        kind: OrganizerKind | None,
        country: str | None,
        offset: int,
        limit: int,
    ) -> OrganizerPage:
        """Organizers by name (case-insensitive), optionally of a kind or a country."""
        async with self._uow.read() as db:
            # One more than asked tells whether a next page exists.
            rows = await store.page(db, kind=kind, country=country, offset=offset, limit=limit + 1)
        items = [Organizer.model_validate(r) for r in rows[:limit]]
        return OrganizerPage(items=items, next_offset=offset + limit if len(rows) > limit else None)


def _found(organizer_id: uuid.UUID, row: dict[str, Any] | None) -> Organizer:
    if row is None:
        raise NotFoundError(f"no organizer {organizer_id}")
    return Organizer.model_validate(row)


def _event(organizer: Organizer) -> dict[str, Any]:
    return organizer.model_dump(exclude={"id"}) | {"organizer_id": organizer.id}
