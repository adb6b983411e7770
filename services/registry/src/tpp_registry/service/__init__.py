"""Registry use cases: each method owns its transaction and writes its events to the outbox."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_plumbing.db.reads import ReadPool
from tpp_plumbing.db.writes import CommandPool
from tpp_plumbing.messaging.outbox import Outbox

from tpp_registry.domain import SessionFilter
from tpp_registry.service.catalogue import CatalogueCache
from tpp_registry.service.common import PreconditionFailedError, PreconditionRequiredError
from tpp_registry.service.imports import ImportService
from tpp_registry.service.organizers import OrganizerService
from tpp_registry.service.plans import PlanService
from tpp_registry.service.sessions import SessionService

__all__ = [
    "CatalogueCache",
    "ImportService",
    "OrganizerService",
    "PlanService",
    "PreconditionFailedError",
    "PreconditionRequiredError",
    "Services",
    "SessionFilter",
    "SessionService",
]


@dataclass(frozen=True, slots=True)
class Services:
    """The registry's services, built once per app."""

    organizers: OrganizerService
    sessions: SessionService
    plans: PlanService
    imports: ImportService

    catalogue: CatalogueCache

    @classmethod
    def build(
        cls,
        sessions: async_sessionmaker[AsyncSession],
        outbox: Outbox,
        home_country: str,
        reads: ReadPool,
        commands: CommandPool,
    ) -> Services:
        """Wire the services to a database, its raw read and command pools and an outbox."""
        catalogue = CatalogueCache(reads)
        return cls(
            catalogue=catalogue,
            organizers=OrganizerService(sessions, outbox, catalogue),
            sessions=SessionService(sessions, outbox, home_country, reads, catalogue, commands),
            plans=PlanService(sessions, outbox),
            imports=ImportService(sessions, outbox, home_country),
        )
