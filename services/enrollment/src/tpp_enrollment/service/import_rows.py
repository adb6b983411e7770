"""Parsing and validating a nominations CSV; pure, no I/O."""

from __future__ import annotations

import csv
import io
import itertools
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import email_validator
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from pydantic import ValidationError
from tpp_contracts.vocab import Gender, ProfessionCategory

from tpp_enrollment.api.models import TraineeIn

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
#: What each column holds, in the order of the example file (for the OpenAPI document).
COLUMNS: dict[str, str] = {
    SESSION_COLUMN: "the session's id (UUID): the session the trainee is nominated to",
    "full_name": "1-300 characters",
    "country": "ISO 3166-1 alpha-2 code, e.g. KE",
    "gender": ", ".join(g.value for g in Gender),
    "profession": ", ".join(p.value for p in ProfessionCategory),
    "organization": "up to 300 characters",
    "email": "an email address",
    "passport_number": "3-30 letters and digits; with country, it identifies the person (a"
    " trainee already registered is matched, not registered again)",
    "birth_date": "YYYY-MM-DD",
}
#: The example file's rows (fictional people), for any session.
_EXAMPLE_ROWS = (
    (
        "Amina Njoroge",
        "KE",
        "female",
        "technical_professional",
        "Kenya Forestry Research Institute",
        "amina.njoroge@example.org",
        "AK1234567",
        "1988-03-14",
    ),
    (
        "Nguyen Van An",
        "VN",
        "male",
        "expert",
        "Vietnam Academy of Science and Technology",
        "",
        "C9876543",
        "",
    ),
    ("Tesfaye Bekele", "ET", "undisclosed", "st_official", "", "", "EP7654321", "1979-11-02"),
)


class BadFileError(ValueError):
    """The file is not a nominations CSV (not UTF-8, or columns missing)."""


@dataclass(frozen=True, slots=True)
class Nomination:
    """A valid row: a trainee nominated to a session."""

    row: int
    trainee: TraineeIn
    session_id: uuid.UUID
    #: Who the row is about: passport number (upper case) and country.
    person: tuple[str, str]


@dataclass(frozen=True, slots=True)
class RowError:
    """An invalid row and why."""

    row: int
    reason: str


def columns_table() -> str:
    """The columns as a Markdown table (required ones first), for the route's description."""
    required = [SESSION_COLUMN, *(c for c in TRAINEE_COLUMNS if c in REQUIRED_COLUMNS)]
    optional = [c for c in TRAINEE_COLUMNS if c not in REQUIRED_COLUMNS]
    lines = ["| column | required | value |", "|---|---|---|"]
    lines += [f"| `{c}` | yes | {COLUMNS[c]} |" for c in required]
    lines += [f"| `{c}` | no | {COLUMNS[c]} |" for c in optional]
    return "\n".join(lines)


def example(session_id: uuid.UUID) -> bytes:
    """A nominations file that imports cleanly into ``session_id``: every column, optional
    values given and left empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for full_name, country, gender, profession, org, email, passport, born in _EXAMPLE_ROWS:
        values = {
            "full_name": full_name,
            "country": country,
            "gender": gender,
            "profession": profession,
            "organization": org,
            "email": email,
            "passport_number": passport,
            "birth_date": born,
            SESSION_COLUMN: str(session_id),
        }
        writer.writerow([values[c] for c in COLUMNS])
    return out.getvalue().encode()


def _lines(content: bytes) -> io.TextIOWrapper:
    """The file's text, decoded as it is read: neither a decoded copy of the whole file nor
    a StringIO of it (4 bytes a character: 18 MiB for a 30,000-row file) is ever made."""
    return io.TextIOWrapper(io.BytesIO(content), encoding="utf-8-sig", newline="")


def read(content: bytes) -> tuple[list[str], int]:
    """The header and row count of a CSV file (rows are not kept: ``chunks``).

    Raises BadFileError for an unusable file.
    """
    reader = csv.reader(_lines(content))
    try:
        header = [name.strip() for name in next(reader, [])]
        missing = (REQUIRED_COLUMNS | {SESSION_COLUMN}) - set(header)
        if missing:
            raise BadFileError(f"missing column(s): {', '.join(sorted(missing))}")
        total = sum(1 for row in reader if row)  # DictReader skips blank lines too
    except UnicodeDecodeError:
        raise BadFileError("the file is not UTF-8 text") from None
    except csv.Error as error:  # e.g. a field over the csv module's 128 KiB field limit
        raise BadFileError(f"not a readable CSV file (line {reader.line_num}: {error})") from None
    return header, total


def chunks(
    content: bytes, header: list[str], size: int, *, skip: int = 0
) -> Iterator[list[dict[str, str]]]:
    """The rows of a file ``read`` accepted, ``size`` at a time (one chunk in memory), after
    the first ``skip`` rows."""
    reader = csv.DictReader(_lines(content))
    reader.fieldnames = header
    next(reader, None)  # the header line
    for _ in itertools.islice(reader, skip):
        pass
    while chunk := list(itertools.islice(reader, size)):
        yield chunk


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
            trainee = _trainee(values)
        except ValidationError as error:
            yield RowError(number, _reason(error))
            continue
        person = (trainee.passport_number.upper(), trainee.country)
        yield Nomination(number, trainee, session_id, person)


class _PlainEmailTrainee(TraineeIn):
    """A TraineeIn whose email was already checked and normalized by ``simple_email``."""

    email: str | None = None


def _trainee(values: dict[str, str | None]) -> TraineeIn:
    # email-validator costs several times the rest of the row: common addresses take the
    # exact fast path; anything else, and every invalid row, gets the full validation (so
    # reasons read the same).
    email = values["email"]
    fast = simple_email(email) if email is not None else None
    if email is None or fast is not None:
        try:
            return _PlainEmailTrainee.model_validate(values | {"email": fast})
        except ValidationError:
            pass
    return TraineeIn.model_validate(values)


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_SIMPLE_EMAIL = re.compile(rf"({_ATEXT}+(?:\.{_ATEXT}+)*)@((?:{_LABEL}\.)+[A-Za-z]{{2,63}})")
_SPECIAL_USE = tuple(email_validator.SPECIAL_USE_DOMAIN_NAMES)
# Mailbox names (postmaster, abuse, noc...) that email-validator gives in lower case.
_CASE_INSENSITIVE = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)


def simple_email(value: str) -> str | None:
    """The normalized form of a plain ASCII address, exactly as EmailStr gives it; else None.

    Covers dot-atom local parts at ``letters-digits-hyphens`` domains with an alphabetic TLD
    (no IDNA: a label with ``--`` is left to the full validator), outside the special-use
    domains email-validator refuses. None means "not decided here": use EmailStr.
    """
    match = _SIMPLE_EMAIL.fullmatch(value)
    if match is None or len(value) > 254:
        return None
    local, domain = match.groups()
    if len(local) > 64 or len(domain) > 253 or "--" in domain:
        return None
    domain = domain.lower()
    if any(domain == name or domain.endswith("." + name) for name in _SPECIAL_USE):
        return None
    if local.lower() in _CASE_INSENSITIVE:  # RFC 2142 role mailboxes: lowercased
        local = local.lower()
    return f"{local}@{domain}"


def _reason(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        field = ".".join(str(p) for p in item["loc"]) or "row"
        parts.append(f"{field}: {item['msg']}")
    return "; ".join(parts)
