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
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

from tpp_contracts.envelope import new_id
from tpp_plumbing.db.uow import UnitsOfWork
from tpp_plumbing.observability.memory import release_free_memory
from tpp_plumbing.web.limits import check_rows
from tpp_plumbing.web.problems import NotFoundError, ProblemError

from tpp_enrollment.api.models import ImportJob, ImportRowError
from tpp_enrollment.personal import PersonalData
from tpp_enrollment.service.import_chunks import (
    Chunk,
    JobTakenOverError,
    Nominee,
    Progress,
    write_chunk,
)
from tpp_enrollment.service.import_rows import BadFileError, RowError, chunks, read, validate
from tpp_enrollment.store import imports as import_store

log = logging.getLogger(__name__)
# Rows per transaction. Three chunks are in memory (two in flight, one prepared), their rows
# without personal data once sealed: larger chunks gain little speed for the memory they hold
# (bench/RESULTS.md, "Figures behind the code").
CHUNK = 3000
MAX_ERRORS_SHOWN = 1000
#: A running job whose chunks stopped committing this long ago was abandoned (its process
#: was killed mid-file; a chunk commits every second or so): the next upload of the same
#: file takes it over and goes on after its last committed chunk. Duplicates of rows before
#: that point are then refused as already enrolled rather than "duplicate of row N".
ABANDONED_AFTER_S = 120.0


class ImportService:
    """Imports nominations; each chunk of rows is one transaction, its events included."""

    def __init__(self, units: UnitsOfWork, personal: PersonalData) -> None:
        self._uow = units
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
        async with self._uow() as uow:
            created = await import_store.create_job(uow.db, job_id, runner, digest, filename, total)
            if not created:
                # The file's job exists: unchanged, unless it failed (say, the database went
                # away mid-file) or was abandoned (its process was killed): then this run
                # takes it over where it stopped, after the rows it committed.
                resumed = await import_store.take_over_job(
                    uow.db, digest, runner, self._abandoned_after
                )
                if resumed is None:
                    existing = await import_store.job_of_file(uow.db, digest)
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
        async with self._uow.read() as db:
            job = await import_store.get_job(db, job_id)
            if job is None:
                raise NotFoundError(f"no import {job_id}")
            errors = await import_store.job_errors(db, job_id, max_errors)
            shown = [ImportRowError(row=e.row_number, reason=e.reason) for e in errors]
        return ImportJob.model_validate(dict(job) | {"errors": shown})

    async def _run(
        self,
        job_id: uuid.UUID,
        runner: uuid.UUID,
        parts: Iterator[list[dict[str, str]]],
        first_row: int,
    ) -> None:
        progress = Progress(job_id, runner)
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
                work = Chunk(chunk, people, previous, locked)
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
        async with self._uow() as uow:
            await import_store.finish_job(uow.db, job_id, runner, status, error)
        release_free_memory()  # the chunks' buffers: back to the system, not kept at the peak

    async def _transaction(self, chunk: Chunk, progress: Progress) -> None:
        """One chunk in one transaction, committed after the chunk before it (if that one
        failed, this one rolls back: ``_chunk``)."""
        async with self._uow() as uow:
            await write_chunk(uow, chunk, progress)

    async def _prepared(
        self, parts: Iterator[list[dict[str, str]]], first_row: int
    ) -> tuple[list[Nominee | RowError], dict[tuple[str, str], tuple[Any, ...]]] | None:
        """The next chunk of rows parsed and validated, and each person's row with sealed
        personal data (CPU work, in a worker thread); None after the last chunk."""

        def prepare() -> (
            tuple[list[Nominee | RowError], dict[tuple[str, str], tuple[Any, ...]]] | None
        ):
            part = next(parts, None)
            return None if part is None else self._prepare(part, first_row)

        return await asyncio.to_thread(prepare)

    def _prepare(
        self, part: list[dict[str, str]], first_row: int
    ) -> tuple[list[Nominee | RowError], dict[tuple[str, str], tuple[Any, ...]]]:
        items: list[Nominee | RowError] = []
        people: dict[tuple[str, str], tuple[Any, ...]] = {}
        for item in validate(part, first_row=first_row):
            if isinstance(item, RowError):
                items.append(item)
                continue
            # Only what the chunk's transaction needs is kept: the personal data is sealed.
            items.append(Nominee(item.row, item.session_id, item.person))
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
                    *(sealed[column] for column in import_store.TRAINEE_COLUMNS[6:]),
                )
        return items, people


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
