"""One chunk of a nominations file in one transaction: its people registered, its sessions
locked, its nominees enrolled, its events emitted, the job's counters moved."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tpp_contracts.envelope import Event, new_id
from tpp_contracts.vocab import EnrollmentStatus
from tpp_plumbing.db.uow import UnitOfWork

from tpp_enrollment.domain import EnrollmentRefusedError, decide
from tpp_enrollment.events import trainee_registered
from tpp_enrollment.service.enrollments import created_event
from tpp_enrollment.service.import_rows import RowError
from tpp_enrollment.store import Db, Record, Row
from tpp_enrollment.store import enrollments as store
from tpp_enrollment.store import imports as import_store

S = EnrollmentStatus
_HASH = import_store.TRAINEE_COLUMNS.index("passport_hash")


class JobTakenOverError(RuntimeError):
    """Another run took this import job over (this one was thought abandoned)."""


@dataclass(frozen=True, slots=True)
class Nominee:
    """A valid row once its person is prepared: the row, the session and who."""

    row: int
    session_id: uuid.UUID
    person: tuple[str, str]  # passport number (upper case) and country


@dataclass(frozen=True, slots=True)
class Chunk:
    """A chunk on its way: its rows, its people prepared, the chunk before it (committed
    first) and the event it sets once it holds its sessions' row locks."""

    items: list[Nominee | RowError]
    people: dict[tuple[str, str], tuple[Any, ...]]
    previous: asyncio.Task[None] | None
    locked: asyncio.Event


@dataclass(frozen=True, slots=True)
class _Counts:
    """A session's counts as a job's last chunk left them."""

    version: int  # the places_version the next chunk's lock finds if nobody else locked
    waiting: int
    countries: dict[str, int]  # places taken by country (where the session limits them)


@dataclass
class Progress:
    """What one run of a job carries from chunk to chunk."""

    job_id: uuid.UUID
    runner: uuid.UUID
    # The first row of each (session, person) in the file, by a 16-byte digest of the pair:
    # a 30,000-row file's keys as tuples of UUIDs and strings held ~10 MiB to its end.
    seen: dict[bytes, int] = field(default_factory=dict)
    counts: dict[uuid.UUID, _Counts] = field(default_factory=dict)


async def write_chunk(uow: UnitOfWork[Db], chunk: Chunk, progress: Progress) -> None:
    """The chunk's rows in ``uow``: committed after the chunk before it (if that one failed,
    this one rolls back)."""
    db = uow.db
    people, previous, locked = chunk.people, chunk.previous, chunk.locked
    errors = [item for item in chunk.items if isinstance(item, RowError)]
    valid: list[Nominee] = []
    for item in chunk.items:
        if isinstance(item, Nominee):
            first = progress.seen.setdefault(_pair_key(item), item.row)
            if first != item.row:
                errors.append(RowError(item.row, f"duplicate of row {first}"))
            else:
                valid.append(item)
    # Rows for sessions that take no nominations are refused before anyone is registered.
    session_ids = sorted({item.session_id for item in valid})
    seen = await import_store.session_views(db, session_ids)
    open_rows = _open(valid, seen, errors)
    # People are registered before the sessions are locked: this overlaps the chunk
    # before, which holds them.
    registered, fresh = await _register(uow, open_rows, people)
    # One statement locks every session of the chunk, in a fixed order (no deadlock
    # between jobs), once the chunk before holds its own locks.
    views = await import_store.lock_views(db, session_ids)
    locked.set()
    still_open = _open(open_rows, views, errors)
    before = set(fresh)
    if len(still_open) < len(open_rows):
        # A session stopped taking nominations since the first read: its rows change
        # nothing, so the people registered only for them are not registered after all.
        fresh = await _unregister(uow, still_open, registered, fresh)
    await _remember(db, progress.job_id, valid, people, registered, before - set(fresh))
    by_session: dict[uuid.UUID, list[Nominee]] = defaultdict(list)
    for item in still_open:
        by_session[item.session_id].append(item)
    succeeded, refused, enrolled = await _enroll(
        db, views, by_session, registered, set(fresh), progress
    )
    errors.extend(refused)
    uow.emit(*enrolled)
    await uow.flush()  # now, not after the chunk before committed
    await import_store.add_errors(db, progress.job_id, [(e.row, e.reason) for e in errors])
    if previous is not None:
        await previous  # the job's counters move in the chunks' order
    # Committed with the chunk, and only while this run still holds the job.
    held = await import_store.advance_job(
        db,
        progress.job_id,
        progress.runner,
        processed=len(chunk.items),
        succeeded=succeeded,
        failed=len(errors),
    )
    if not held:
        raise JobTakenOverError(progress.job_id)


async def _register(
    uow: UnitOfWork[Db],
    valid: Sequence[Nominee],
    prepared: dict[tuple[str, str], tuple[Any, ...]],
) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[uuid.UUID, uuid.UUID]]:
    """Register the new people, with one event each: every person's id and profile, and
    the id of each person registered now with their event's id."""
    unique = list({item.person for item in valid})
    if not unique:
        return {}, {}
    values = [prepared[person] for person in unique]
    columns = dict(
        zip(import_store.TRAINEE_COLUMNS, map(list, zip(*values, strict=True)), strict=True)
    )
    db = uow.db
    new = await import_store.new_trainees(db, columns)
    by_hash = {r.passport_hash: _profile(r) for r in new}
    events = [trainee_registered(person) for person in by_hash.values()]
    # Written now, before the sessions' locks: that much less to do while holding them.
    uow.emit(*events)
    event_ids = await uow.flush()
    fresh = {e.trainee_id: event_id for e, event_id in zip(events, event_ids, strict=True)}
    # People registered before (by an earlier file or the API): read them (only them).
    known = [h for h in columns["passport_hash"] if h not in by_hash]
    if known:
        found = await import_store.trainees_by_hash(db, known)
        by_hash |= {r.passport_hash: _profile(r) for r in found}
    registered = {
        person: by_hash[row[_HASH]]
        for person, row in zip(unique, values, strict=True)
        if row[_HASH] in by_hash
    }
    return registered, fresh


async def _remember(
    db: Db,
    job_id: uuid.UUID,
    valid: Sequence[Nominee],
    prepared: dict[tuple[str, str], tuple[Any, ...]],
    registered: dict[tuple[str, str], dict[str, Any]],
    dropped: set[uuid.UUID],
) -> None:
    """Record which trainees the job's file holds (its valid rows' people, registered
    before or now): erasing one of them neutralizes the job's file name and hash."""
    ids = {person["id"] for person in registered.values()} - dropped
    others = {prepared[i.person][_HASH] for i in valid if i.person not in registered}
    if others:
        found = await import_store.trainees_by_hash(db, list(others))
        ids |= {r.id for r in found}
    if ids:
        await import_store.remember(db, job_id, list(ids))


async def _unregister(
    uow: UnitOfWork[Db],
    kept: Sequence[Nominee],
    people: dict[tuple[str, str], dict[str, Any]],
    fresh: dict[uuid.UUID, uuid.UUID],
) -> dict[uuid.UUID, uuid.UUID]:
    """Undo the registrations (made in this transaction) that no kept row needs, with
    their events; the others."""
    needed = {people[item.person]["id"] for item in kept}
    dropped = [trainee_id for trainee_id in fresh if trainee_id not in needed]
    if dropped:
        await import_store.forget_trainees(uow.db, dropped)
        await uow.retract([fresh[t] for t in dropped])
    return {t: event_id for t, event_id in fresh.items() if t in needed}


async def _enroll(
    db: Db,
    views: dict[uuid.UUID, Row],
    by_session: dict[uuid.UUID, list[Nominee]],
    people: dict[tuple[str, str], dict[str, Any]],
    fresh: set[uuid.UUID],
    progress: Progress,
) -> tuple[int, list[RowError], list[Event]]:
    """Enroll each session's nominees under its row lock: how many, the rows refused
    and why, and the enrollments' events. ``fresh``: people registered by this chunk."""
    if not by_session:
        return 0, [], []
    # People registered by this chunk have no enrollment yet: only the others are looked
    # up (in a file of new people, nobody).
    pairs = [
        (sid, people[i.person]["id"])
        for sid, items in by_session.items()
        for i in items
        if people[i.person]["id"] not in fresh
    ]
    enrolled: dict[tuple[uuid.UUID, uuid.UUID], str] = {}
    if pairs:
        enrolled = await import_store.enrolled(db, pairs)
    waiting, by_country = await _counts(db, views, list(by_session), progress)
    errors: list[RowError] = []
    rows: list[dict[str, Any]] = []
    taken: dict[uuid.UUID, int] = {}
    for session_id, items in by_session.items():
        view = views[session_id]
        places = store.places(view)
        countries = by_country[session_id]
        waitlisted = 0
        for item in items:
            person = people[item.person]
            if (earlier := enrolled.get((session_id, person["id"]))) is not None:
                refusal = f"already has an enrollment in this session ({earlier})"
                errors.append(RowError(item.row, refusal))
                continue
            try:
                status = decide(places, countries.get(person["country"], 0))
            except EnrollmentRefusedError as error:
                errors.append(RowError(item.row, str(error)))
                continue
            if status is S.ACCEPTED:
                places = replace(places, accepted=places.accepted + 1)
                countries[person["country"]] = countries.get(person["country"], 0) + 1
            elif status is S.WAITLISTED:
                waitlisted += 1
            profile = {k: person[k] for k in ("country", "gender", "profession")}
            rows.append(
                {"id": new_id(), "session_id": session_id, "trainee_id": person["id"]}
                | {"status": status}
                | profile
            )
        taken[session_id] = places.accepted - view["accepted"]
        # What the next chunk finds if nobody else moves the session's places meanwhile
        # (its lock moves the version by one).
        progress.counts[session_id] = _Counts(
            view["places_version"] + 1, waiting.get(session_id, 0) + waitlisted, countries
        )
    events = await _insert(db, rows, waiting)
    await import_store.add_accepted(db, {sid: n for sid, n in taken.items() if n})
    return len(rows), errors, events


async def _counts(
    db: Db,
    views: dict[uuid.UUID, Row],
    ids: list[uuid.UUID],
    progress: Progress,
) -> tuple[dict[uuid.UUID, int], dict[uuid.UUID, dict[str, int]]]:
    """Each session's waitlist length, and its places taken by country where it limits
    them (only there: a scan of every enrollment of the session).

    Counted once per session and job: the next chunk carries the counts on, unless the
    session's ``places_version`` says someone else moved its places in between (every
    change to a session's enrollments is made under its row lock, which moves it).
    """
    waiting: dict[uuid.UUID, int] = {}
    by_country: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
    stale = []
    for sid in ids:
        known = progress.counts.get(sid)
        if known is not None and known.version == views[sid]["places_version"]:
            waiting[sid], by_country[sid] = known.waiting, dict(known.countries)
        else:
            stale.append(sid)
    if not stale:
        return waiting, by_country
    limited = [sid for sid in stale if views[sid]["country_limit"] is not None]
    if limited:
        for r in await import_store.occupying_by_country(db, limited):
            by_country[r.session_id][r.country] = int(r.n)
    waiting |= {sid: 0 for sid in stale} | await import_store.waitlisted(db, stale)
    return waiting, by_country


async def _insert(db: Db, rows: list[dict[str, Any]], waiting: dict[uuid.UUID, int]) -> list[Event]:
    """Insert the new enrollments; their events."""
    if not rows:
        return []
    waitlisted = [row for row in rows if row["status"] is S.WAITLISTED]
    positions: dict[uuid.UUID, int] = {}
    if waitlisted:
        # Numbers in row order, so each session's waitlist keeps the file's order.
        seqs = await import_store.waitlist_seqs(db, len(waitlisted))
        ahead = dict(waiting)
        for row, seq in zip(waitlisted, seqs, strict=True):
            row["waitlist_seq"] = seq
            ahead[row["session_id"]] = ahead.get(row["session_id"], 0) + 1
            positions[row["id"]] = ahead[row["session_id"]]
    await import_store.add_enrollments(db, rows)
    return [created_event(row["status"], row, positions.get(row["id"])) for row in rows]


def _pair_key(item: Nominee) -> bytes:
    passport, country = item.person
    pair = f"{item.session_id}\x1f{passport}\x1f{country}".encode()
    return hashlib.blake2b(pair, digest_size=16).digest()


def _profile(row: Record) -> dict[str, Any]:
    """A registered person's id and the profile their events carry."""
    id_, country, gender, profession = row.id, row.country, row.gender, row.profession
    return {"id": id_, "country": country, "gender": gender, "profession": profession}


def _open(
    rows: Sequence[Nominee], views: dict[uuid.UUID, Row], errors: list[RowError]
) -> list[Nominee]:
    """The rows whose session takes nominations; the others added to ``errors``."""
    taken = []
    refusals = {sid: _refusal(views.get(sid), sid) for sid in {item.session_id for item in rows}}
    for item in rows:
        refusal = refusals[item.session_id]
        if refusal:
            errors.append(RowError(item.row, refusal))
        else:
            taken.append(item)
    return taken


def _refusal(view: Row | None, session_id: uuid.UUID) -> str | None:
    """Why a session takes no nominations now (None when it does)."""
    if view is None:
        return f"no session {session_id}"
    try:
        decide(store.places(view))
    except EnrollmentRefusedError as error:
        return str(error)
    return None
