"""The load generator: enrollments and registry changes through the HTTP APIs.

Every command carries an ``Idempotency-Key``; a request that fails during a fault
(connection refused, timeout, 5xx, "request in progress") is retried with the same key until
it gets an answer or ``retry_window_s`` passes. Every 2xx answer to an enrollment is recorded
with its enrollment id and outcome. A command whose answer was lost (the service died after
committing, before answering) is resolved the way a client would: by reading the trainee's
enrollments (a 2xx read). The checks compare the platform with these records.

The requests go through ``client.StackClient`` (balanced over replicas, retried).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from typing import Any

import httpx

from tests.chaos.answers import already_enrolled, answer_lost, in_progress
from tests.chaos.client import StackClient, operator_token
from tests.chaos.stack import ChaosStack, log
from tests.chaos.tally import Confirmed, Tally

FIELDS = ("new_energy", "agriculture_forestry", "medical_health", "information_technology")
COUNTRIES = ("KE", "NG", "ET", "PK", "VN", "BR", "EG", "GH", "TZ", "LA", "KH", "PE")
GENDERS = ("female", "male")
PROFESSIONS = ("technical_professional", "expert", "scholar", "st_official")


class Load(StackClient):
    """Drives the platform with ``commands`` commands from ``concurrency`` clients."""

    def __init__(
        self,
        stack: ChaosStack,
        *,
        commands: int,
        concurrency: int,
        rng: random.Random,
        year: int,
        retry_window_s: float = 150.0,
    ) -> None:
        super().__init__(stack, rng=rng, retry_window_s=retry_window_s)
        self.total = commands
        self.concurrency = concurrency
        self.year = year
        self.confirmed: dict[uuid.UUID, Confirmed] = {}
        self.organizers: list[str] = []
        self.sessions: list[str] = []  # published and visible to enrollment
        self.all_sessions: dict[str, int] = {}  # every confirmed session: its last capacity
        self.trainees: list[str] = []
        self.pairs: set[tuple[str, str]] = set()
        self.started = 0
        self.done = 0
        self._pending_sessions: list[str] = []
        self.finished = asyncio.Event()
        #: When set by the caller, the run goes on past ``commands`` until this is set too
        #: (steady load through every fault).
        self.keep_going_until: asyncio.Event | None = None

    @property
    def progress(self) -> float:
        return self.done / self.total if self.total else 1.0

    async def reached(self, point: float) -> None:
        """Return once ``point`` (0..1) of the commands are done (or the run ended)."""
        while self.progress < point and not self.finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.finished.wait(), 0.2)

    # ------------------------------------------------------------------ setup

    async def setup(self, *, organizers: int, sessions: int, trainees: int) -> None:
        """Organizers, published sessions (seen by enrollment), trainees, a plan."""
        limits = httpx.Limits(max_connections=self.concurrency * 3)
        self._client = httpx.AsyncClient(
            timeout=15, limits=limits, headers={"Authorization": operator_token()}
        )
        sem = asyncio.Semaphore(self.concurrency)

        async def bounded(work: Any) -> None:
            async with sem:
                await work

        await asyncio.gather(*(bounded(self.create_organizer()) for _ in range(organizers)))
        if not self.organizers:
            raise RuntimeError("no organizer could be created")
        plan = await self.call(
            "PUT", "registry", f"/plans/{self.year}", json={"planned_sessions": sessions}
        )
        if plan is None or plan.status_code >= 300:
            raise RuntimeError(f"plan not set: {plan.status_code if plan else 'no answer'}")
        await asyncio.gather(*(bounded(self.create_session()) for _ in range(sessions)))
        await asyncio.gather(*(bounded(self.create_trainee()) for _ in range(trainees)))
        deadline = time.monotonic() + 120
        while self._pending_sessions and time.monotonic() < deadline:
            await self.promote_sessions()
            await asyncio.sleep(0.5)
        if not self.sessions:
            raise RuntimeError("enrollment sees none of the published sessions")
        log(
            f"setup: {len(self.organizers)} organizers, {len(self.sessions)} sessions,"
            f" {len(self.trainees)} trainees"
        )
        self.tally = Tally()  # the run's counts start here

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    # ------------------------------------------------------------------ commands

    async def create_organizer(self) -> None:
        body = {
            "name": f"Chaos Institute {uuid.uuid4().hex[:10]}",
            "kind": "university",
            "province": "Zhejiang",
            "country": "CN",
        }
        response = await self.call("POST", "registry", "/organizers", json=body)
        if response is not None and response.status_code == 201:
            self.organizers.append(response.json()["id"])
            self.tally.organizers_created += 1
        else:
            self.unexpected(response)
            self.tally.registry_failed += 1

    async def create_session(self) -> None:
        capacity = self.rng.randint(20, 80)
        body = {
            "organizer_id": self.rng.choice(self.organizers),
            "title": f"Chaos session {uuid.uuid4().hex[:8]}",
            "field": self.rng.choice(FIELDS),
            "year": self.year,
            "start_date": f"{self.year}-06-01",
            "end_date": f"{self.year}-06-20",
            "venue_city": "Hangzhou",
            "venue_country": self.rng.choice(("CN", "KE")),
            "capacity": capacity,
            "languages": ["en"],
        }
        created = await self.call("POST", "registry", "/sessions", json=body)
        if created is None or created.status_code != 201:
            self.unexpected(created)
            self.tally.registry_failed += 1
            return
        session_id = created.json()["id"]
        self.all_sessions[session_id] = capacity
        self.tally.sessions_created += 1
        published = await self.call("POST", "registry", f"/sessions/{session_id}/publish")
        if published is None or published.status_code != 200:
            self.unexpected(published)
            self.tally.registry_failed += 1
            return
        self.tally.sessions_published += 1
        self._pending_sessions.append(session_id)

    async def promote_sessions(self) -> None:
        """Sessions enrollment already sees as published join the pool of the load."""
        for session_id in list(self._pending_sessions):
            try:
                response = await self.send("GET", "enrollment", f"/sessions/{session_id}")
            except httpx.TransportError:
                return
            if response.status_code == 200 and response.json()["status"] == "published":
                self._pending_sessions.remove(session_id)
                self.sessions.append(session_id)

    async def change_capacity(self) -> None:
        session_id = self.rng.choice(list(self.all_sessions))
        current = await self.call("GET", "registry", f"/sessions/{session_id}")
        if current is None or current.status_code != 200:
            self.tally.registry_failed += 1
            return
        session = current.json()
        capacity = max(1, session["capacity"] + self.rng.choice((-5, -2, 3, 5, 10)))
        response = await self.call(
            "PATCH",
            "registry",
            f"/sessions/{session_id}",
            json={"capacity": capacity},
            headers={"If-Match": current.headers.get("etag", f'"{session["version"]}"')},
        )
        if response is not None and response.status_code == 200:
            self.tally.capacity_changes += 1
        else:
            # A lost answer's retry meets the new version (412) or a concurrent change did.
            self.tally.registry_failed += 1

    async def create_trainee(self) -> None:
        body = {
            "full_name": "Chaos Trainee",
            "country": self.rng.choice(COUNTRIES),
            "gender": self.rng.choice(GENDERS),
            "profession": self.rng.choice(PROFESSIONS),
            "organization": "Chaos Works",
            "email": "trainee@example.org",
            "passport_number": f"C{uuid.uuid4().hex[:10].upper()}",
            "birth_date": "1990-01-01",
        }
        response = await self.call("POST", "enrollment", "/trainees", json=body)
        if response is not None and answer_lost(response):
            # The person was registered by a try whose answer was lost with its process:
            # registering them again (a new command) answers with that trainee.
            response = await self.call("POST", "enrollment", "/trainees", json=body)
        if response is not None and response.status_code in (200, 201):
            self.trainees.append(response.json()["id"])
            self.tally.trainees_created += 1
        else:
            self.unexpected(response)

    def _pair(self) -> tuple[str, str] | None:
        for _ in range(50):
            pair = (self.rng.choice(self.sessions), self.rng.choice(self.trainees))
            if pair not in self.pairs:
                self.pairs.add(pair)
                return pair
        return None

    async def enroll(self) -> None:
        pair = self._pair()
        if pair is None:
            await self.create_trainee()
            return
        session_id, trainee_id = pair
        self.tally.enroll_commands += 1
        response = await self.call(
            "POST",
            "enrollment",
            f"/sessions/{session_id}/enrollments",
            json={"trainee_id": trainee_id},
        )
        if response is not None and response.status_code == 201:
            self._confirm(response.json(), by_read=False)
            return
        if (
            response is not None
            and response.status_code < 500
            and not in_progress(response)
            and not already_enrolled(response)
            and not answer_lost(response)
        ):
            self.unexpected(response)
            self.tally.enroll_refused += 1  # a plain refusal: nothing was written
            return
        # The answer was lost with the first try's process (a retry says so, or meets the
        # first try's enrollment): read it.
        await self.resolve(session_id, trainee_id)

    async def resolve(self, session_id: str, trainee_id: str) -> None:
        """Find out by reading whether an enrollment whose answer was lost exists."""
        response = await self.call("GET", "enrollment", f"/trainees/{trainee_id}/enrollments")
        if response is None or response.status_code != 200:
            self.tally.enroll_unresolved += 1
            return
        for item in response.json():
            if item["session_id"] == session_id:
                self._confirm(item, by_read=True)
                return
        self.tally.enroll_resolved_absent += 1

    def _confirm(self, body: dict[str, Any], *, by_read: bool) -> None:
        confirmed = Confirmed(
            enrollment_id=uuid.UUID(body["id"]),
            session_id=uuid.UUID(body["session_id"]),
            trainee_id=uuid.UUID(body["trainee_id"]),
            status=body["status"],
            by_read=by_read,
        )
        self.confirmed[confirmed.enrollment_id] = confirmed
        self.tally.statuses[confirmed.status] = self.tally.statuses.get(confirmed.status, 0) + 1

    async def one_command(self) -> None:
        roll = self.rng.random()
        if roll < 0.004:
            await self.create_organizer()
        elif roll < 0.014:
            await self.create_session()
        elif roll < 0.04:
            await self.change_capacity()
        elif roll < 0.08:
            await self.create_trainee()
        else:
            await self.enroll()

    # ------------------------------------------------------------------ the run

    async def run(self) -> float:
        """Send every command; returns the seconds it took."""
        started = time.monotonic()
        stop = asyncio.Event()

        def more() -> bool:
            if self.started < self.total:
                return True
            until = self.keep_going_until
            return until is not None and not until.is_set()

        async def worker() -> None:
            while more():
                self.started += 1
                self.tally.commands += 1
                await self.one_command()
                self.done += 1

        async def promoter() -> None:
            while not stop.is_set():
                await self.promote_sessions()
                await asyncio.sleep(1)

        async def reporter() -> None:
            last = 0
            while not stop.is_set():
                await asyncio.sleep(10)
                rate = (self.done - last) / 10
                last = self.done
                log(
                    f"load: {self.done:,}/{self.total:,} commands ({rate:.0f}/s),"
                    f" {len(self.confirmed):,} enrollments confirmed,"
                    f" {self.tally.retries:,} retries"
                )

        helpers = [asyncio.create_task(promoter()), asyncio.create_task(reporter())]
        try:
            await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        finally:
            stop.set()
            self.finished.set()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        return time.monotonic() - started
