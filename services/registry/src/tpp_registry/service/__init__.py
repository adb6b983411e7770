"""Registry use cases: each command is one unit of work that emits its events."""

from __future__ import annotations

from dataclasses import dataclass

from tpp_plumbing.db.reads import ReadPool
from tpp_plumbing.db.uow import UnitsOfWork

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
    def build(cls, units: UnitsOfWork, home_country: str, reads: ReadPool) -> Services:
        """Wire the services to their units of work (their reads too) and the raw read pool
        (the session lists and the catalogue)."""
        catalogue = CatalogueCache(reads)
        return cls(
            catalogue=catalogue,
            organizers=OrganizerService(units, catalogue),
            sessions=SessionService(units, home_country, reads, catalogue),
            plans=PlanService(units),
            imports=ImportService(units, home_country),
        )
