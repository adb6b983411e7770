"""Bulk import of a year's sessions from a CSV file, with a report per row.

Each valid row is keyed by a hash of its validated content (organizer resolved); a key
already imported is reported as a duplicate and creates nothing, so uploading the same
file twice creates each session once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from tpp_contracts.envelope import Event
from tpp_plumbing.db.uow import UnitOfWork, UnitsOfWork
from tpp_plumbing.web.limits import check_rows
from tpp_plumbing.web.problems import ProblemError

from tpp_registry import domain
from tpp_registry.api.models import ImportReport, ImportRow, RowOutcome, SessionIn
from tpp_registry.domain import InvalidSessionError, SessionState
from tpp_registry.service.sessions import details
from tpp_registry.store import Db
from tpp_registry.store import imports as store
from tpp_registry.store import sessions as session_store

REQUIRED = ("title", "field", "start_date", "end_date", "venue_city", "venue_country", "capacity")
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0", ""}


@dataclass(frozen=True, slots=True)
class _Valid:
    row: int
    key: str
    state: SessionState
    events: list[Event]


class ImportService:
    """Creates sessions from CSV uploads; rows already imported create nothing."""

    def __init__(self, units: UnitsOfWork, home_country: str) -> None:
        self._uow = units
        self._home = home_country

    async def import_csv(self, content: bytes, year: int | None, max_rows: int) -> ImportReport:
        """Validate every row, create the new ones, report each row's outcome."""
        rows = _read(content, max_rows)
        async with self._uow() as uow:
            # Imports are rare and short: one at a time keeps duplicate detection simple.
            await store.lock(uow.db)
            organizers = await store.organizers(uow.db)
            outcomes: list[ImportRow] = []
            valid: list[_Valid] = []
            for line, raw in rows:
                checked = self._check(line, raw, year, organizers)
                if isinstance(checked, ImportRow):
                    outcomes.append(checked)
                else:
                    valid.append(checked)
            outcomes += await self._create(uow, valid)
        outcomes.sort(key=lambda o: o.row)
        count = {o: sum(1 for r in outcomes if r.outcome is o) for o in RowOutcome}
        return ImportReport(
            year=year,
            created=count[RowOutcome.CREATED],
            duplicates=count[RowOutcome.DUPLICATE],
            rejected=count[RowOutcome.REJECTED],
            rows=outcomes,
        )

    def _check(
        self, line: int, raw: dict[str, str], year: int | None, organizers: dict[str, uuid.UUID]
    ) -> _Valid | ImportRow:
        def rejected(field: str, reason: str) -> ImportRow:
            return ImportRow(row=line, outcome=RowOutcome.REJECTED, field=field, reason=reason)

        values: dict[str, Any] = {k: v.strip() for k, v in raw.items() if k and v and v.strip()}
        reference = values.pop("organizer_id", None) or values.pop("organizer", None)
        values.pop("organizer", None)
        organizer_id = organizers.get((reference or "").lower())
        if organizer_id is None:
            return rejected("organizer", f"no organizer {reference!r}" if reference else "missing")
        values["organizer_id"] = organizer_id
        if year is not None:
            if values.setdefault("year", str(year)) != str(year):
                return rejected("year", f"the import is for {year}")
        elif "start_date" in values:
            values.setdefault("year", values["start_date"][:4])
        values["languages"] = values.get("languages", "en").replace(",", ";").split(";")
        values["languages"] = [x.strip() for x in values["languages"] if x.strip()]
        flag = values.get("review_required", "").lower()
        if flag not in _TRUE | _FALSE:
            return rejected("review_required", "expected true or false")
        values["review_required"] = flag in _TRUE
        try:
            data = SessionIn.model_validate(values)
            decision = domain.create(details(data), home_country=self._home)
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "row"
            return rejected(field, first["msg"])
        except InvalidSessionError as error:
            return rejected(error.field, error.detail)
        key = hashlib.sha256(data.model_dump_json().encode()).hexdigest()
        return _Valid(line, key, decision.state, decision.events)

    async def _create(self, uow: UnitOfWork[Db], valid: list[_Valid]) -> list[ImportRow]:
        known = await store.imported(uow.db, [v.key for v in valid])
        outcomes: list[ImportRow] = []
        new: list[_Valid] = []
        for item in valid:
            if item.key in known:
                outcomes.append(
                    ImportRow(
                        row=item.row, outcome=RowOutcome.DUPLICATE, session_id=known[item.key]
                    )
                )
            else:
                known[item.key] = item.state.id
                new.append(item)
                outcomes.append(
                    ImportRow(row=item.row, outcome=RowOutcome.CREATED, session_id=item.state.id)
                )
        if new:
            await session_store.add_sessions(uow.db, [item.state for item in new])
            await store.add_rows(uow.db, {item.key: item.state.id for item in new})
            uow.emit(*(e for item in new for e in item.events))
        return outcomes


def _read(content: bytes, max_rows: int) -> list[tuple[int, dict[str, str]]]:
    try:
        decoded = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ProblemError("the file is not UTF-8 text", status=422, field="file") from None
    reader = csv.DictReader(io.StringIO(decoded))
    try:
        return _rows(reader, max_rows)
    except csv.Error as error:  # e.g. a field over the csv module's 128 KiB field limit
        raise ProblemError(
            f"not a readable CSV file (line {reader.line_num}: {error})", status=422, field="file"
        ) from None


def _rows(reader: csv.DictReader[str], max_rows: int) -> list[tuple[int, dict[str, str]]]:
    columns = {c.strip() for c in reader.fieldnames or []}
    missing = [c for c in REQUIRED if c not in columns]
    if "organizer" not in columns and "organizer_id" not in columns:
        missing.insert(0, "organizer")
    if missing:
        raise ProblemError(
            f"missing column(s): {', '.join(missing)}", status=422, field="file", missing=missing
        )
    reader.fieldnames = [c.strip() for c in reader.fieldnames or []]
    rows: list[tuple[int, dict[str, str]]] = []
    for raw in reader:
        check_rows(len(rows) + 1, max_rows)  # stops at the first row past the cap
        rows.append((reader.line_num, {k: v or "" for k, v in raw.items() if k}))
    return rows
