"""Parsing and validating a nominations CSV; pure, no I/O."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import ValidationError

from tpp_enrollment.schemas import TraineeIn

TRAINEE_COLUMNS = (
    "full_name",
    "country",
    "gender",
    "profession",
    "organization",
    "email",
    "passport_number",
    "birth_date",
)
REQUIRED_COLUMNS = frozenset({"full_name", "country", "gender", "profession", "passport_number"})
SESSION_COLUMN = "session_id"


class BadFileError(ValueError):
    """The file is not a nominations CSV (not UTF-8, or columns missing)."""


@dataclass(frozen=True, slots=True)
class Nomination:
    """A valid row: a trainee nominated to a session."""

    row: int
    trainee: TraineeIn
    session_id: uuid.UUID

    @property
    def person(self) -> tuple[str, str]:
        """Who the row is about: passport number and country."""
        return self.trainee.passport_number.upper(), self.trainee.country


@dataclass(frozen=True, slots=True)
class RowError:
    """An invalid row and why."""

    row: int
    reason: str


def read(content: bytes) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows of a CSV file; raises BadFileError for an unusable file."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadFileError("the file is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = (REQUIRED_COLUMNS | {SESSION_COLUMN}) - set(header)
    if missing:
        raise BadFileError(f"missing column(s): {', '.join(sorted(missing))}")
    reader.fieldnames = header
    return header, list(reader)


def validate(rows: list[dict[str, str]], first_row: int) -> Iterator[Nomination | RowError]:
    """Each row as a nomination, or the reason it is invalid (rows numbered from first_row)."""
    for number, raw in enumerate(rows, start=first_row):
        if None in raw:
            yield RowError(number, "more fields than columns")
            continue
        values = {k: (raw.get(k) or "").strip() or None for k in TRAINEE_COLUMNS}
        try:
            session_id = uuid.UUID((raw.get(SESSION_COLUMN) or "").strip())
        except ValueError:
            yield RowError(number, "session_id: not a UUID")
            continue
        try:
            trainee = TraineeIn.model_validate(values)
        except ValidationError as error:
            yield RowError(number, _reason(error))
            continue
        yield Nomination(number, trainee, session_id)


def _reason(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        field = ".".join(str(p) for p in item["loc"]) or "row"
        parts.append(f"{field}: {item['msg']}")
    return "; ".join(parts)
