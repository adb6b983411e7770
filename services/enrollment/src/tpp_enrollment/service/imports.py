"""Bulk nominations: a CSV of trainees and sessions, processed in batched transactions.

One job per distinct file (its SHA-256): uploading the same file again returns the first
job and changes nothing. Rows are processed in chunks, each in one transaction with its
events; the job's counters show the progress.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Interval,
    Row,
    RowMapping,
    and_,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tpp_contracts.envelope import Event, new_id
from tpp_contracts.vocab import EnrollmentStatus
from tpp_plumbing.db.uow import UnitOfWork, UnitsOfWork
from tpp_plumbing.observability.memory import release_free_memory
from tpp_plumbing.web.limits import check_rows
from tpp_plumbing.web.problems import NotFoundError, ProblemError

from tpp_enrollment import store, tables
from tpp_enrollment.domain import EnrollmentRefusedError, decide
from tpp_enrollment.events import trainee_registered
from tpp_enrollment.imports.rows import (
    BadFileError,
    RowError,
    chunks,
    read,
    validate,
)
from tpp_enrollment.personal import PersonalData
from tpp_enrollment.schemas import ImportJob, ImportRowError
from tpp_enrollment.service.enrollments import created_event

log = logging.getLogger(__name__)
J = tables.import_job
S = EnrollmentStatus
# Rows per transaction. Three chunks are in memory (two in flight, one prepared), their rows
# without personal data once sealed: at 3,000 the worker's RSS after three 30,000-row imports
# was 142 MiB, and in process 4,000 gave ~5% more rows/s than 2,000.
CHUNK = 3000
MAX_ERRORS_SHOWN = 1000
#: A running job whose chunks stopped committing this long ago was abandoned (its process
#: was killed mid-file; a chunk commits every second or so): the next upload of the same
#: file takes it over and goes on after its last committed chunk. Duplicates of rows before
#: that point are then refused as already enrolled rather than "duplicate of row N".
ABANDONED_AFTER_S = 120.0

# A new person's row, as the import prepares it (the order of _NEW_TRAINEES's arrays).
_TRAINEE_COLUMNS = (
    "id",
    "full_name",
    "country",
    "gender",
    "profession",
    "organization",
    "passport_hash",
    "passport_number_sealed",
    "email_sealed",
    "birth_date_sealed",
)
_HASH = _TRAINEE_COLUMNS.index("passport_hash")
_NEW_TRAINEES = text(
    "INSERT INTO trainee (id, full_name, country, gender, profession, organization,"
    " passport_hash, passport_number_sealed, email_sealed, birth_date_sealed)"
    " SELECT * FROM unnest(CAST(:id AS uuid[]), CAST(:full_name AS text[]),"
    " CAST(:country AS text[]), CAST(:gender AS text[]), CAST(:profession AS text[]),"
    " CAST(:organization AS text[]), CAST(:passport_hash AS bytea[]),"
    " CAST(:passport_number_sealed AS bytea[]), CAST(:email_sealed AS bytea[]),"
    " CAST(:birth_date_sealed AS bytea[]))"
    " ON CONFLICT (passport_hash) DO NOTHING"
    " RETURNING id, passport_hash, country, gender, profession"
)
_TRAINEES = text(
    "SELECT id, passport_hash, country, gender, profession FROM trainee"
    " WHERE passport_hash = ANY(CAST(:passport_hash AS bytea[]))"
)
_REMEMBER = text(
    "INSERT INTO import_trainee (job_id, trainee_id)"
    " SELECT CAST(:job_id AS uuid), unnest(CAST(:ids AS uuid[])) ON CONFLICT DO NOTHING"
)
_VIEWS = text("SELECT * FROM session_view WHERE session_id = ANY(CAST(:ids AS uuid[]))")
_FORGET_TRAINEES = text("DELETE FROM trainee WHERE id = ANY(CAST(:ids AS uuid[]))")
# Set-based over every session of a chunk: a constant number of round trips per chunk.
# Locked in order (no deadlock between chunks), and their places_version moved (store).
_LOCK_VIEWS = text(
    "WITH locked AS (SELECT session_id FROM session_view"
    " WHERE session_id = ANY(CAST(:ids AS uuid[])) ORDER BY session_id FOR UPDATE)"
    " UPDATE session_view v SET places_version = v.places_version + 1 FROM locked"
    " WHERE v.session_id = locked.session_id RETURNING v.*"
)
_ENROLLED = text(
    "SELECT e.session_id, e.trainee_id, e.status FROM enrollment e"
    " JOIN unnest(CAST(:session_id AS uuid[]), CAST(:trainee_id AS uuid[])) AS k(s, t)"
    " ON e.session_id = k.s AND e.trainee_id = k.t"
)
_BY_COUNTRY = text(
    "SELECT session_id, country, count(*) AS n FROM enrollment"
    " WHERE session_id = ANY(CAST(:ids AS uuid[])) AND status = ANY(CAST(:occupying AS text[]))"
    " GROUP BY session_id, country"
)
_WAITING = text(
    "SELECT session_id, count(*) AS n FROM enrollment"
    " WHERE session_id = ANY(CAST(:ids AS uuid[])) AND status = 'waitlisted' GROUP BY session_id"
)
_NEW_ENROLLMENTS = text(
    "INSERT INTO enrollment (id, session_id, trainee_id, status, waitlist_seq, country)"
    " SELECT * FROM unnest(CAST(:id AS uuid[]), CAST(:session_id AS uuid[]),"
    " CAST(:trainee_id AS uuid[]), CAST(:status AS text[]), CAST(:seq AS bigint[]),"
    " CAST(:country AS text[]))"
)
_SEQS = text("SELECT nextval('enrollment_waitlist_seq') FROM generate_series(1, :n)")
_ADD_ACCEPTED = text(
    "UPDATE session_view v SET accepted = v.accepted + d.n"
    " FROM unnest(CAST(:ids AS uuid[]), CAST(:n AS int[])) AS d(id, n)"
    " WHERE v.session_id = d.id"
)


class JobTakenOverError(RuntimeError):
    """Another run took this import job over (this one was thought abandoned)."""


@dataclass(frozen=True, slots=True)
class _Nominee:
    """A valid row once its person is prepared: the row, the session and who."""

    row: int
    session_id: uuid.UUID
    person: tuple[str, str]  # passport number (upper case) and country


@dataclass(frozen=True, slots=True)
class _Chunk:
    """A chunk on its way: its rows, its people prepared, the chunk before it (committed
    first) and the event it sets once it holds its sessions' row locks."""

    items: list[_Nominee | RowError]
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
class _Progress:
    job_id: uuid.UUID
    runner: uuid.UUID
    # The first row of each (session, person) in the file, by a 16-byte digest of the pair:
    # a 30,000-row file's keys as tuples of UUIDs and strings held ~10 MiB to its end.
    seen: dict[bytes, int] = field(default_factory=dict)
    counts: dict[uuid.UUID, _Counts] = field(default_factory=dict)


class ImportService:
    """Imports nominations; each chunk of rows is one transaction, its events included."""

    def __init__(
        self,
        units: UnitsOfWork,
        sessions: async_sessionmaker[AsyncSession],
        personal: PersonalData,
    ) -> None:
        self._uow = units
        self._sessions = sessions
        self._personal = personal
        self._tasks: set[asyncio.Task[None]] = set()
        self._abandoned_after = timedelta(seconds=ABANDONED_AFTER_S)

    async def start_import(
        self, content: bytes, filename: str | None, max_rows: int
    ) -> tuple[ImportJob, bool]:
        """Create the file's job and start it (True), or return its existing job (False)."""
        try:
            header, total = read(content)
        except BadFileError as error:
            raise ProblemError(str(error), status=422, field="file") from None
        check_rows(total, max_rows)
        job_id, runner = new_id(), new_id()
        digest = hashlib.sha256(content).hexdigest()
        skip = 0
        async with self._sessions() as db, db.begin():
            created = await db.scalar(
                pg_insert(J)
                .values(id=job_id, sha256=digest, filename=filename, status="running")
                .values(total=total, runner=runner)
                .on_conflict_do_nothing(index_elements=["sha256"])
                .returning(J.c.id)
            )
            if created is None:
                # The file's job exists: unchanged, unless it failed (say, the database went
                # away mid-file) or was abandoned (its process was killed): then this run
                # takes it over where it stopped, after the rows it committed.
                abandoned = func.now() - cast(literal(self._abandoned_after), Interval)
                resumed = (
                    await db.execute(
                        update(J)
                        .where(
                            J.c.sha256 == digest,
                            or_(
                                J.c.status == "failed",
                                and_(J.c.status == "running", J.c.progressed_at < abandoned),
                            ),
                        )
                        .values(runner=runner, progressed_at=func.now())
                        .values(status="running", error=None, finished_at=None)
                        .returning(J.c.id, J.c.processed)
                    )
                ).first()
                if resumed is None:
                    existing = await db.scalar(select(J.c.id).where(J.c.sha256 == digest))
                    assert existing is not None
                    return await self.get_import(existing), False
                job_id, skip = resumed.id, resumed.processed
                log.warning("import %s stopped after %d rows: taken over", job_id, skip)
        parts = chunks(content, header, CHUNK, skip=skip)
        task = asyncio.create_task(
            self._run(job_id, runner, parts, first_row=2 + skip), name=f"import-{job_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await self.get_import(job_id), True

    async def wait(self) -> None:
        """Wait for the running imports (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def get_import(self, job_id: uuid.UUID, max_errors: int = MAX_ERRORS_SHOWN) -> ImportJob:
        """An import job with its progress and (the first) row errors."""
        async with self._sessions() as db:
            job = (await db.execute(select(J).where(J.c.id == job_id))).mappings().first()
            if job is None:
                raise NotFoundError(f"no import {job_id}")
            errors = await db.execute(
                select(tables.import_error)
                .where(tables.import_error.c.job_id == job_id)
                .order_by(tables.import_error.c.row_number)
                .limit(max_errors)
            )
            shown = [ImportRowError(row=e.row_number, reason=e.reason) for e in errors]
        return ImportJob.model_validate(dict(job) | {"errors": shown})

    async def _run(
        self,
        job_id: uuid.UUID,
        runner: uuid.UUID,
        parts: Iterator[list[dict[str, str]]],
        first_row: int,
    ) -> None:
        progress = _Progress(job_id, runner)
        previous: asyncio.Task[None] | None = None
        flying: list[asyncio.Task[None]] = []  # chunks not yet known to have ended
        try:
            # Parsing and validation (CPU, in a worker thread) of the next chunk overlap the
            # database writes of this one. Sealing the personal data (encryption, keyed
            # hashes) is done there too.
            pending = asyncio.create_task(self._prepared(parts, first_row))
            while (prepared := await pending) is not None:
                chunk, people = prepared
                first_row += len(chunk)
                pending = asyncio.create_task(self._prepared(parts, first_row))
                # Two chunks in flight: this one registers its people while the one before
                # still writes its enrollments. It takes the sessions' row locks only after
                # that one took them (so its waitlist entries come after), and it commits
                # only after that one committed (``processed`` counts committed rows).
                for task in flying:
                    if task.done():
                        task.result()  # a chunk that failed ends the job here
                locked = asyncio.Event()
                work = _Chunk(chunk, people, previous, locked)
                current = asyncio.create_task(self._transaction(work, progress))
                flying = [task for task in flying if not task.done()] + [current]
                await _first_of(locked, current)
                previous = current
                if current.done():
                    current.result()
            if previous is not None:
                await previous
            status, error = "done", None
        except JobTakenOverError:
            log.warning("import %s was taken over by another run: this one stops", job_id)
            pending.cancel()
            await _settled(flying)
            release_free_memory()
            return
        except Exception as failure:
            log.exception("import %s failed", job_id)
            pending.cancel()
            await _settled(flying)
            status, error = "failed", f"{type(failure).__name__}: {failure}"
        async with self._sessions() as db, db.begin():
            await db.execute(
                update(J)
                .where(J.c.id == job_id, J.c.runner == runner)
                .values(status=status, error=error, finished_at=func.now())
            )
        release_free_memory()  # the chunks' buffers: back to the system, not kept at the peak

    async def _transaction(self, chunk: _Chunk, progress: _Progress) -> None:
        """One chunk in one transaction, committed after the chunk before it (if that one
        failed, this one rolls back: ``_chunk``)."""
        async with self._uow() as uow:
            await self._chunk(uow, chunk, progress)

    async def _chunk(
        self, uow: UnitOfWork[AsyncSession], chunk: _Chunk, progress: _Progress
    ) -> None:
        db = uow.db
        people, previous, locked = chunk.people, chunk.previous, chunk.locked
        errors = [item for item in chunk.items if isinstance(item, RowError)]
        valid: list[_Nominee] = []
        for item in chunk.items:
            if isinstance(item, _Nominee):
                first = progress.seen.setdefault(_pair_key(item), item.row)
                if first != item.row:
                    errors.append(RowError(item.row, f"duplicate of row {first}"))
                else:
                    valid.append(item)
        # Rows for sessions that take no nominations are refused before anyone is registered.
        session_ids = sorted({item.session_id for item in valid})
        seen = await db.execute(_VIEWS, {"ids": session_ids})
        open_rows = _open(valid, {r["session_id"]: r for r in seen.mappings()}, errors)
        # People are registered before the sessions are locked: this overlaps the chunk
        # before, which holds them.
        registered, fresh = await self._register(uow, open_rows, people)
        # One statement locks every session of the chunk, in a fixed order (no deadlock
        # between jobs), once the chunk before holds its own locks.
        locked_views = await db.execute(_LOCK_VIEWS, {"ids": session_ids})
        locked.set()
        views: dict[uuid.UUID, RowMapping] = {r["session_id"]: r for r in locked_views.mappings()}
        still_open = _open(open_rows, views, errors)
        before = set(fresh)
        if len(still_open) < len(open_rows):
            # A session stopped taking nominations since the first read: its rows change
            # nothing, so the people registered only for them are not registered after all.
            fresh = await self._unregister(uow, still_open, registered, fresh)
        await self._remember(db, progress.job_id, valid, people, registered, before - set(fresh))
        by_session: dict[uuid.UUID, list[_Nominee]] = defaultdict(list)
        for item in still_open:
            by_session[item.session_id].append(item)
        succeeded, refused, enrolled = await self._enroll(
            db, views, by_session, registered, set(fresh), progress
        )
        errors.extend(refused)
        uow.emit(*enrolled)
        await uow.flush()  # now, not after the chunk before committed
        if errors:
            await db.execute(
                insert(tables.import_error),
                [
                    {"job_id": progress.job_id, "row_number": e.row, "reason": e.reason}
                    for e in errors
                ],
            )
        if previous is not None:
            await previous  # the job's counters move in the chunks' order
        # Committed with the chunk, and only while this run still holds the job.
        held = await db.scalar(
            update(J)
            .where(J.c.id == progress.job_id, J.c.runner == progress.runner)
            .values(
                processed=J.c.processed + len(chunk.items),
                succeeded=J.c.succeeded + succeeded,
                failed=J.c.failed + len(errors),
                progressed_at=func.now(),
            )
            .returning(J.c.id)
        )
        if held is None:
            raise JobTakenOverError(progress.job_id)

    async def _register(
        self,
        uow: UnitOfWork[AsyncSession],
        valid: Sequence[_Nominee],
        prepared: dict[tuple[str, str], tuple[Any, ...]],
    ) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[uuid.UUID, uuid.UUID]]:
        """Register the new people, with one event each: every person's id and profile, and
        the id of each person registered now with their event's id."""
        unique = list({item.person for item in valid})
        if not unique:
            return {}, {}
        values = [prepared[person] for person in unique]
        columns = dict(zip(_TRAINEE_COLUMNS, map(list, zip(*values, strict=True)), strict=True))
        db = uow.db
        new = (await db.execute(_NEW_TRAINEES, columns)).all()
        by_hash = {r.passport_hash: _profile(r) for r in new}
        events = [trainee_registered(person) for person in by_hash.values()]
        # Written now, before the sessions' locks: that much less to do while holding them.
        uow.emit(*events)
        event_ids = await uow.flush()
        fresh = {e.trainee_id: event_id for e, event_id in zip(events, event_ids, strict=True)}
        # People registered before (by an earlier file or the API): read them (only them).
        known = [h for h in columns["passport_hash"] if h not in by_hash]
        if known:
            found = await db.execute(_TRAINEES, {"passport_hash": known})
            by_hash |= {r.passport_hash: _profile(r) for r in found}
        registered = {
            person: by_hash[row[_HASH]]
            for person, row in zip(unique, values, strict=True)
            if row[_HASH] in by_hash
        }
        return registered, fresh

    async def _remember(
        self,
        db: AsyncSession,
        job_id: uuid.UUID,
        valid: Sequence[_Nominee],
        prepared: dict[tuple[str, str], tuple[Any, ...]],
        registered: dict[tuple[str, str], dict[str, Any]],
        dropped: set[uuid.UUID],
    ) -> None:
        """Record which trainees the job's file holds (its valid rows' people, registered
        before or now): erasing one of them neutralizes the job's file name and hash."""
        ids = {person["id"] for person in registered.values()} - dropped
        others = {prepared[i.person][_HASH] for i in valid if i.person not in registered}
        if others:
            found = await db.execute(_TRAINEES, {"passport_hash": list(others)})
            ids |= {r.id for r in found}
        if ids:
            await db.execute(_REMEMBER, {"job_id": job_id, "ids": list(ids)})

    async def _unregister(
        self,
        uow: UnitOfWork[AsyncSession],
        kept: Sequence[_Nominee],
        people: dict[tuple[str, str], dict[str, Any]],
        fresh: dict[uuid.UUID, uuid.UUID],
    ) -> dict[uuid.UUID, uuid.UUID]:
        """Undo the registrations (made in this transaction) that no kept row needs, with
        their events; the others."""
        needed = {people[item.person]["id"] for item in kept}
        dropped = [trainee_id for trainee_id in fresh if trainee_id not in needed]
        if dropped:
            await uow.db.execute(_FORGET_TRAINEES, {"ids": dropped})
            await uow.retract([fresh[t] for t in dropped])
        return {t: event_id for t, event_id in fresh.items() if t in needed}

    async def _prepared(
        self, parts: Iterator[list[dict[str, str]]], first_row: int
    ) -> tuple[list[_Nominee | RowError], dict[tuple[str, str], tuple[Any, ...]]] | None:
        """The next chunk of rows parsed and validated, and each person's row with sealed
        personal data (CPU work, in a worker thread); None after the last chunk."""

        def prepare() -> (
            tuple[list[_Nominee | RowError], dict[tuple[str, str], tuple[Any, ...]]] | None
        ):
            part = next(parts, None)
            return None if part is None else self._prepare(part, first_row)

        return await asyncio.to_thread(prepare)

    def _prepare(
        self, part: list[dict[str, str]], first_row: int
    ) -> tuple[list[_Nominee | RowError], dict[tuple[str, str], tuple[Any, ...]]]:
        items: list[_Nominee | RowError] = []
        people: dict[tuple[str, str], tuple[Any, ...]] = {}
        for item in validate(part, first_row=first_row):
            if isinstance(item, RowError):
                items.append(item)
                continue
            # Only what the chunk's transaction needs is kept: the personal data is sealed.
            items.append(_Nominee(item.row, item.session_id, item.person))
            if item.person not in people:
                t = item.trainee
                trainee_id = new_id()
                sealed = self._personal.seal_trainee(
                    trainee_id, t.passport_number, t.country, t.email, t.birth_date
                )
                people[item.person] = (
                    trainee_id,
                    t.full_name,
                    t.country,
                    t.gender.value,
                    t.profession.value,
                    t.organization,
                    *(sealed[column] for column in _TRAINEE_COLUMNS[6:]),
                )
        return items, people

    async def _enroll(
        self,
        db: AsyncSession,
        views: dict[uuid.UUID, RowMapping],
        by_session: dict[uuid.UUID, list[_Nominee]],
        people: dict[tuple[str, str], dict[str, Any]],
        fresh: set[uuid.UUID],
        progress: _Progress,
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
            found = await db.execute(
                _ENROLLED,
                {"session_id": [p[0] for p in pairs], "trainee_id": [p[1] for p in pairs]},
            )
            enrolled = {(r.session_id, r.trainee_id): r.status for r in found}
        waiting, by_country = await self._counts(db, views, list(by_session), progress)
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
        events = await self._insert(db, rows, waiting)
        changed = {sid: n for sid, n in taken.items() if n}
        if changed:
            await db.execute(_ADD_ACCEPTED, {"ids": list(changed), "n": list(changed.values())})
        return len(rows), errors, events

    async def _counts(
        self,
        db: AsyncSession,
        views: dict[uuid.UUID, RowMapping],
        ids: list[uuid.UUID],
        progress: _Progress,
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
            counts = await db.execute(
                _BY_COUNTRY, {"ids": limited, "occupying": store.OCCUPYING_VALUES}
            )
            for r in counts:
                by_country[r.session_id][r.country] = int(r.n)
        found = await db.execute(_WAITING, {"ids": stale})
        waiting |= {sid: 0 for sid in stale} | {r.session_id: int(r.n) for r in found}
        return waiting, by_country

    async def _insert(
        self, db: AsyncSession, rows: list[dict[str, Any]], waiting: dict[uuid.UUID, int]
    ) -> list[Event]:
        """Insert the new enrollments; their events."""
        if not rows:
            return []
        waitlisted = [row for row in rows if row["status"] is S.WAITLISTED]
        positions: dict[uuid.UUID, int] = {}
        if waitlisted:
            # Numbers in row order, so each session's waitlist keeps the file's order.
            seqs = list((await db.execute(_SEQS, {"n": len(waitlisted)})).scalars())
            ahead = dict(waiting)
            for row, seq in zip(waitlisted, seqs, strict=True):
                row["waitlist_seq"] = seq
                ahead[row["session_id"]] = ahead.get(row["session_id"], 0) + 1
                positions[row["id"]] = ahead[row["session_id"]]
        await db.execute(
            _NEW_ENROLLMENTS,
            {
                "id": [row["id"] for row in rows],
                "session_id": [row["session_id"] for row in rows],
                "trainee_id": [row["trainee_id"] for row in rows],
                "status": [row["status"].value for row in rows],
                "seq": [row.get("waitlist_seq") for row in rows],
                "country": [row["country"] for row in rows],
            },
        )
        return [created_event(row["status"], row, positions.get(row["id"])) for row in rows]


def _pair_key(item: _Nominee) -> bytes:
    passport, country = item.person
    pair = f"{item.session_id}\x1f{passport}\x1f{country}".encode()
    return hashlib.blake2b(pair, digest_size=16).digest()


def _profile(row: Row[Any]) -> dict[str, Any]:
    """A registered person's id and the profile their events carry."""
    id_, country, gender, profession = row.id, row.country, row.gender, row.profession
    return {"id": id_, "country": country, "gender": gender, "profession": profession}


def _open(
    rows: Sequence[_Nominee], views: dict[uuid.UUID, RowMapping], errors: list[RowError]
) -> list[_Nominee]:
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


async def _first_of(event: asyncio.Event, task: asyncio.Task[None]) -> None:
    """Wait until the event is set or the task has ended."""
    waiter = asyncio.create_task(event.wait())
    try:
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


async def _settled(tasks: Sequence[asyncio.Task[None]]) -> None:
    """Wait for the chunks still in flight to end, whatever their outcome."""
    await asyncio.gather(*tasks, return_exceptions=True)


def _refusal(view: RowMapping | None, session_id: uuid.UUID) -> str | None:
    """Why a session takes no nominations now (None when it does)."""
    if view is None:
        return f"no session {session_id}"
    try:
        decide(store.places(view))
    except EnrollmentRefusedError as error:
        return str(error)
    return None
