"""Training sessions: create, revise, move through the lifecycle, list, catalogue."""

from __future__ import annotations

import uuid
from typing import Any

from tpp_contracts.vocab import SessionStatus
from tpp_plumbing.db.reads import ReadPool
from tpp_plumbing.db.uow import UnitsOfWork
from tpp_plumbing.web.problems import NotFoundError

from tpp_registry import domain
from tpp_registry.api.models import (
    CatalogueEntry,
    RawPage,
    Session,
    SessionIn,
    SessionPatch,
)
from tpp_registry.domain import (
    Cancel,
    Command,
    DetailNotRevisableError,
    InvalidSessionError,
    InvalidTransitionError,
    Revise,
    SessionDetails,
    SessionFilter,
    SessionState,
    Transition,
)
from tpp_registry.service.catalogue import CachedPage, CatalogueCache
from tpp_registry.service.common import check_version, domain_problem, invalid_field
from tpp_registry.store import sessions as session_store

PUBLISHED = SessionStatus.PUBLISHED


def details(data: SessionIn) -> SessionDetails:
    """The domain's view of a new session."""
    values = data.model_dump()
    return SessionDetails(**values | {"languages": tuple(values["languages"])})


_SESSION_FIELDS = tuple(Session.model_fields)
_ENTRY_FIELDS = tuple(CatalogueEntry.model_fields)


def session(state: SessionState) -> Session:
    """The API's view of a session (the domain's state is valid: not validated again)."""
    return Session.model_construct(**_session_values(state))


def _session_values(state: SessionState) -> dict[str, Any]:
    values = {name: getattr(state, name) for name in _SESSION_FIELDS}
    values["languages"] = list(state.languages)
    return values


class SessionService:
    """Training sessions and their lifecycle; every change is an event on the sessions topic."""

    def __init__(
        self,
        units: UnitsOfWork,
        home_country: str,
        reads: ReadPool,
        catalogue: CatalogueCache,
    ) -> None:
        self._uow = units
        self._home = home_country
        self._reads = reads
        self._catalogue = catalogue

    async def create(self, data: SessionIn) -> Session:
        """Create a draft session for a known organizer."""
        try:
            decision = domain.create(details(data), home_country=self._home)
        except InvalidSessionError as error:
            raise domain_problem(error) from None
        # The busiest command: a raw transaction (tpp_plumbing.db.writes).
        async with self._uow.fast(transaction=True) as uow:
            if not await session_store.add_session_of_known_organizer(uow.db, decision.state):
                raise invalid_field("organizer_id", "names no organizer")
            uow.emit(*decision.events)
        return session(decision.state)

    async def revise(
        self, session_id: uuid.UUID, patch: SessionPatch, expected: int | None
    ) -> Session:
        """Change details: freely while draft, then only dates, venue and capacity."""
        return await self._decide(session_id, Revise(patch.changes()), expected)

    async def publish(self, session_id: uuid.UUID, expected: int | None = None) -> Session:
        """Publish a draft: it enters the catalogue and enrollment opens."""
        return await self._decide(session_id, Transition("publish"), expected)

    async def close_enrollment(self, session_id: uuid.UUID, expected: int | None = None) -> Session:
        """Stop taking enrollments."""
        return await self._decide(session_id, Transition("close_enrollment"), expected)

    async def start(self, session_id: uuid.UUID, expected: int | None = None) -> Session:
        """The session begins."""
        return await self._decide(session_id, Transition("start"), expected)

    async def complete(self, session_id: uuid.UUID, expected: int | None = None) -> Session:
        """The session ended and counts as held."""
        return await self._decide(session_id, Transition("complete"), expected)

    async def cancel(
        self, session_id: uuid.UUID, reason: str, expected: int | None = None
    ) -> Session:
        """Cancel a session that is not completed; its enrollments are cancelled with it."""
        return await self._decide(session_id, Cancel(reason), expected)

    async def get(self, session_id: uuid.UUID) -> Session:
        """One session, whatever its state."""
        async with self._uow.read() as db:
            state = await session_store.get_session(db, session_id)
        if state is None:
            raise NotFoundError(f"no session {session_id}")
        return session(state)

    async def list(self, where: SessionFilter, cursor: str | None, limit: int) -> RawPage:
        """A page of sessions matching the filters, by start date (shaped as SessionPage)."""
        rows, after = await session_store.list_sessions(
            self._reads.fetch, where, cursor, limit, _SESSION_FIELDS
        )
        return RawPage(rows, after)

    async def catalogue(
        self, where: SessionFilter, text: str | None, cursor: str | None, limit: int
    ) -> CachedPage:
        """The public catalogue: published sessions, optionally searched by words.

        Shaped as CataloguePage, rendered once per query until the catalogue changes.
        """

        async def render() -> bytes:
            rows, after = await session_store.catalogue(
                self._reads.fetch, where, text, cursor, limit, _ENTRY_FIELDS
            )
            return RawPage(rows, after).json()

        return await self._catalogue.page((where, text or None, cursor, limit), render)

    async def _decide(
        self, session_id: uuid.UUID, command: Command, expected: int | None
    ) -> Session:
        async with self._uow() as uow:
            # The row lock orders every change of one session, and so its events in the outbox.
            current = await session_store.get_session(uow.db, session_id, lock=True)
            if current is None:
                raise NotFoundError(f"no session {session_id}")
            check_version(expected, current.version)
            try:
                decision = domain.decide(current, command, home_country=self._home)
            except (InvalidTransitionError, InvalidSessionError, DetailNotRevisableError) as e:
                raise domain_problem(e) from None
            if decision.events:
                await session_store.save_session(uow.db, decision.state)
                uow.emit(*decision.events)
        if PUBLISHED in (current.status, decision.state.status):
            # This worker's next read sees it at once; the others on the trigger's NOTIFY.
            self._catalogue.invalidate()
        return session(decision.state)
