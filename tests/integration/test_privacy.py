"""Personal data on the whole platform: a canary trainee leaves no trace outside the
enrollment database, and erasing a trainee leaves every report as it was."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tpp_contracts.envelope import encode, wrap
from tpp_contracts.topics import ALL as ALL_TOPICS
from tpp_contracts.topics import ENROLLMENTS, TRAINEES
from tpp_plumbing.db.engine import asyncpg_dsn
from tpp_plumbing.messaging import deadletter
from tpp_plumbing.observability import logs, telemetry
from tpp_plumbing.settings import KafkaSettings
from tpp_reporting.readers import KNOWN_TYPES
from tpp_testkit import fresh_year

from .operations_support import accepted, produce

pytestmark = pytest.mark.integration

BREAKDOWNS = ("country", "region", "field", "organizer", "profession", "gender")


def ok(response: Any, *codes: int) -> Any:
    assert response.status_code in (codes or (200, 201)), response.text
    return response.json()


@dataclass
class Driver:
    """Drives the platform over HTTP like operators do; every request asks to be traced."""

    platform: Any
    traced: bool = False

    def headers(self) -> dict[str, str]:
        if not self.traced:
            return {}
        trace_id, parent = random.getrandbits(128) | 1, random.getrandbits(64) | 1
        return {"traceparent": f"00-{trace_id:032x}-{parent:016x}-01"}

    async def post(self, service: str, path: str, body: Any = None, **kw: Any) -> Any:
        http = getattr(self.platform, service).http
        return await http.post(path, json=body, headers=self.headers(), **kw)

    async def get(self, service: str, path: str, **kw: Any) -> Any:
        http = getattr(self.platform, service).http
        return await http.get(path, headers=self.headers(), **kw)

    async def session(self, organizer_id: str, year: int, capacity: int, title: str) -> str:
        body = {
            "organizer_id": organizer_id,
            "title": title,
            "field": "information_technology",
            "year": year,
            "start_date": f"{year}-04-06",
            "end_date": f"{year}-04-24",
            "venue_city": "Chengdu",
            "venue_country": "CN",
            "capacity": capacity,
            "languages": ["en"],
        }
        session_id = str(ok(await self.post("registry", "/sessions", body))["id"])
        ok(await self.post("registry", f"/sessions/{session_id}/publish"))
        await self.seen(session_id, "published")
        return session_id

    async def seen(self, session_id: str, status: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while loop.time() < deadline:
            view = await self.get("enrollment", f"/sessions/{session_id}")
            if view.status_code == 200 and view.json()["status"] == status:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"enrollment never saw session {session_id} {status}")

    async def organizer(self) -> str:
        body = {"name": f"Privacy Institute {uuid.uuid4().hex[:6]}", "kind": "university"}
        return str(ok(await self.post("registry", "/organizers", body | {"country": "CN"}))["id"])

    async def trainee(self, **body: Any) -> dict[str, Any]:
        defaults = {
            "full_name": "Plain Trainee",
            "country": "NG",
            "gender": "male",
            "profession": "expert",
            "passport_number": f"A{uuid.uuid4().hex[:10].upper()}",
        }
        result: dict[str, Any] = ok(await self.post("enrollment", "/trainees", defaults | body))
        return result

    async def enroll(self, session_id: str, trainee_id: str) -> dict[str, Any]:
        path = f"/sessions/{session_id}/enrollments"
        result: dict[str, Any] = ok(await self.post("enrollment", path, {"trainee_id": trainee_id}))
        return result

    async def step(self, enrollment_id: str, action: str, body: Any = None) -> dict[str, Any]:
        result: dict[str, Any] = ok(
            await self.post("enrollment", f"/enrollments/{enrollment_id}/{action}", body)
        )
        return result


async def reporting_db(platform: Any, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(asyncpg_dsn(platform.urls["reporting"]))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def applied(platform: Any, event_ids: list[uuid.UUID]) -> bool:
    rows = await reporting_db(
        platform,
        "SELECT count(*) FROM inbox_message WHERE event_id = ANY($1::uuid[])",
        event_ids,
    )
    return bool(rows[0][0] == len(event_ids))


async def outbox_ids(platform: Any, since: int = 0) -> tuple[int, list[uuid.UUID]]:
    """The enrollment service's outbox events after row ``since`` that reporting projects
    (and the last row id)."""
    conn = await asyncpg.connect(asyncpg_dsn(platform.urls["enrollment"]))
    try:
        rows = await conn.fetch(
            "SELECT id, event_id FROM outbox_message WHERE id > $1 AND event_type = ANY($2)"
            " ORDER BY id",
            since,
            list(KNOWN_TYPES),
        )
    finally:
        await conn.close()
    return (rows[-1]["id"] if rows else since), [r["event_id"] for r in rows]


def without_volatile(value: Any) -> Any:
    """A report without its freshness and what depends on today's date."""
    if isinstance(value, dict):
        return {
            k: without_volatile(v)
            for k, v in value.items()
            if k not in {"freshness", "share_of_time_elapsed", "years_left", "yearly_pace_needed"}
        }
    if isinstance(value, list):
        return [without_volatile(v) for v in value]
    return value


async def reports(platform: Any, year: int, commitment_id: str, eventually: Any) -> dict[str, Any]:
    """Every report about ``year``, each computed after everything applied so far."""
    http = platform.reporting.http
    now = ok(await http.get("/reports/freshness"))["events_applied"]
    paths = [
        f"/reports/years/{year}",
        f"/reports/years?from={year - 1}&to={year + 1}",
        f"/reports/sessions?year={year}",
        f"/reports/years/{year}/follow-ups",
        f"/reports/annual-review/{year}",
        f"/commitments/{commitment_id}",
        *(f"/reports/years/{year}/breakdown/{by}" for by in BREAKDOWNS),
    ]
    out: dict[str, Any] = {}
    for path in paths:

        async def current(path: str = path) -> Any:
            body = ok(await http.get(path))
            return body if body["freshness"]["events_applied"] >= now else None

        out[path] = without_volatile(await eventually(current, what=f"{path} recomputed"))
    # Each session's own report too.
    for item in out[f"/reports/sessions?year={year}"]["rows"]:
        sid = item["session_id"]

        async def one(sid: str = sid) -> Any:
            body = ok(await http.get(f"/reports/sessions/{sid}"))
            return body if body["freshness"]["events_applied"] >= now else None

        out[f"/reports/sessions/{sid}"] = without_volatile(await eventually(one))
    return out


async def test_erasure_leaves_every_report_as_it_was(platform: Any, eventually: Any) -> None:
    drive = Driver(platform)
    year = fresh_year()
    ok(await platform.registry.http.put(f"/plans/{year}", json={"planned_sessions": 3}))
    organizer = await drive.organizer()
    first = await drive.session(organizer, year, 5, "Cloud operations")
    second = await drive.session(organizer, year, 5, "Data centres")
    # The trainee to erase takes part in both sessions of the year (one person, counted
    # once), completes one, evaluates it and is followed up.
    person = await drive.trainee(full_name="Erased Later", country="KE", gender="female")
    others = [await drive.trainee(country=c) for c in ("KE", "UG", "VN")]
    mine = [await drive.enroll(s, person["id"]) for s in (first, second)]
    for other in others:
        await drive.enroll(first, other["id"])
    await drive.enroll(second, others[0]["id"])
    for step in ("close-enrollment", "start"):
        ok(await drive.post("registry", f"/sessions/{first}/{step}"))
    await drive.seen(first, "in_progress")
    await drive.step(mine[0]["id"], "check-in")
    await drive.step(mine[0]["id"], "complete", {"completed_on": f"{year}-04-24"})
    await drive.step(mine[0]["id"], "evaluation", {"score": 4, "comment": "Useful"})
    await drive.step(
        mine[0]["id"],
        "follow-ups",
        {"followed_up_on": f"{year}-08-01", "channel": "email", "outcome": "technology_adopted"},
    )
    await drive.step(mine[1]["id"], "withdraw", {"reason": "schedule_conflict"})
    commitment = ok(
        await platform.reporting.http.post(
            "/commitments",
            json={
                "name": f"Privacy {year}",
                "metric": "trainees_enrolled",
                "target": 10,
                "start_year": year,
                "end_year": year,
            },
        )
    )
    last, events = await outbox_ids(platform)
    await eventually(lambda: applied(platform, events), within=60, what="reporting applies all")
    before = await reports(platform, year, commitment["commitment_id"], eventually)
    assert before[f"/reports/years/{year}"]["trainees_enrolled"] == 4  # people, not enrollments

    erased = ok(await drive.post("enrollment", f"/trainees/{person['id']}/erasure"))
    assert erased["erased_at"] is not None
    _, erasure = await outbox_ids(platform, last)
    assert len(erasure) == 1
    await eventually(lambda: applied(platform, erasure), within=30, what="reporting applies it")
    linked = await reporting_db(
        platform,
        "SELECT count(*) FROM enrollment_fact WHERE trainee_id = $1",
        uuid.UUID(person["id"]),
    )
    assert linked[0][0] == 0  # reporting no longer links the enrollments to the person's id
    after = await reports(platform, year, commitment["commitment_id"], eventually)

    assert after == before


# --- the canary scan -------------------------------------------------------------------------


@dataclass
class Canary:
    """Personal data no system outside the enrollment database may ever hold."""

    marker: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def passport(self) -> str:
        return f"CNRY{self.marker.upper()}"

    @property
    def surname(self) -> str:
        return f"Canarywing{self.marker}"

    @property
    def name(self) -> str:
        return f"Quetzalia {self.surname}"

    @property
    def email(self) -> str:
        return f"quetzalia.{self.marker}@canary-mail.org"

    birth_date: str = "1961-07-29"

    def strings(self) -> list[str]:
        return [
            self.passport,
            self.surname,
            self.name,
            self.email,
            f"quetzalia.{self.marker}",
            self.birth_date,
            self.birth_date.replace("-", ""),
        ]


def scan(needles: list[str], haystacks: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Every (where, needle) such that the needle occurs, in any case, in that haystack."""
    lowered = [n.lower() for n in needles]
    return [
        (where, needle)
        for where, text in haystacks
        for needle, low in zip(needles, lowered, strict=True)
        if low in text.lower()
    ]


async def kafka_texts(kafka: KafkaSettings, topics: list[str]) -> list[tuple[str, str]]:
    """Key, value and every header of every message of the topics, from the first offset."""
    consumer = AIOKafkaConsumer(**kafka.client_options(), enable_auto_commit=False)
    await consumer.start()
    texts: list[tuple[str, str]] = []
    try:
        partitions = [
            TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
        ]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        pending = {tp for tp, end in ends.items() if end > 0}
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=2000)
            for tp, records in batches.items():
                for r in records:
                    where = f"kafka {tp.topic}[{tp.partition}]@{r.offset}"
                    texts.append((f"{where} key", (r.key or b"").decode("latin-1")))
                    texts.append((f"{where} value", (r.value or b"").decode("latin-1")))
                    for name, value in r.headers or ():
                        texts.append((f"{where} header", f"{name}={value.decode('latin-1')}"))
            pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
    finally:
        await consumer.stop()
    return texts


def span_texts(spans: tuple[ReadableSpan, ...]) -> list[tuple[str, str]]:
    """Name, attributes, events, links and status of every span."""
    texts: list[tuple[str, str]] = []
    for span in spans:
        where = f"span {span.name!r}"
        texts.append((f"{where} name", span.name))
        texts.append((f"{where} attributes", json.dumps(dict(span.attributes or {}), default=str)))
        texts.append((f"{where} status", str(span.status.description or "")))
        for event in span.events:
            attributes = json.dumps(dict(event.attributes or {}), default=str)
            texts.append((f"{where} event", f"{event.name} {attributes}"))
        for link in span.links:
            texts.append((f"{where} link", json.dumps(dict(link.attributes or {}), default=str)))
        resource = json.dumps(dict(span.resource.attributes), default=str)
        texts.append((f"{where} resource", resource))
    return texts


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """The services' log lines during the test, as the platform's JSON formatter writes them."""
    stream = io.StringIO()
    handler = logs.json_handler("privacy-test", stream)
    # Not the services': the test's own HTTP client logs each URL it calls.
    handler.addFilter(lambda record: not record.name.startswith("httpx"))
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)  # the services' level (TPP_*_LOG_LEVEL), whatever pytest set
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def spans(platform: Any) -> Iterator[InMemorySpanExporter]:
    """Every span the in-process platform finishes during the test."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        pytest.skip("tracing is disabled (OTEL_SDK_DISABLED=true): no spans to scan")
    exporter = InMemorySpanExporter()
    processor = telemetry.export_to(exporter)
    assert processor is not None
    yield exporter
    processor.shutdown()


def nominations(canary: Canary, session_id: str) -> bytes:
    header = "full_name,country,gender,profession,email,passport_number,birth_date,session_id"
    rows = [
        # The canary again (same passport: the same trainee), nominated to another session.
        f"{canary.name},BR,female,scholar,{canary.email},{canary.passport.lower()},"
        f"{canary.birth_date},{session_id}",
        # An invalid row about the canary: its reason is reported, without the values.
        f"{canary.name},BR,female,scholar,{canary.email},{canary.passport}-X,"
        f"{canary.birth_date},{session_id}",
    ]
    return ("\n".join([header, *rows]) + "\n").encode()


async def test_a_canary_trainee_leaves_no_personal_data_in_kafka_logs_spans_or_metrics(
    platform: Any,
    eventually: Any,
    captured_logs: io.StringIO,
    spans: InMemorySpanExporter,
) -> None:
    canary = Canary()
    drive = Driver(platform, traced=True)  # every request sampled: all its spans recorded
    year = fresh_year()
    organizer = await drive.organizer()
    small = await drive.session(organizer, year, 1, "Network security")
    attended = await drive.session(organizer, year, 5, "Embedded systems")
    nominated = await drive.session(organizer, year, 5, "Open data")
    personal = {
        "full_name": canary.name,
        "email": canary.email,
        "passport_number": canary.passport,
        "birth_date": canary.birth_date,
        "organization": f"{canary.surname} Family Farm",
        "country": "BR",
        "gender": "female",
        "profession": "scholar",
    }

    # Register (and register again: the same trainee), enroll, waitlist, withdraw.
    trainee = await drive.trainee(**personal)
    again = await drive.post("enrollment", "/trainees", personal)
    assert (again.status_code, again.json()["id"]) == (200, trainee["id"])
    # Another organizer: refused the canary's record; holding the passport, it attaches the
    # same trainee but is shown nothing that was stored.
    stranger = platform.enrollment.as_role("organizer", await drive.organizer())
    refused = await stranger.get(f"/trainees/{trainee['id']}")
    guess = {"full_name": "Someone Else", "email": None, "organization": None}
    matched = await stranger.post("/trainees", json=personal | guess | {"birth_date": None})
    assert (refused.status_code, matched.status_code) == (403, 200)
    assert (matched.json()["id"], matched.json()["withheld"]) == (trainee["id"], True)
    assert scan(canary.strings(), [("403", refused.text), ("match", matched.text)]) == []
    other = await drive.trainee()
    first = await drive.enroll(small, trainee["id"])
    waiting = await drive.enroll(small, other["id"])
    assert (first["status"], waiting["status"]) == ("accepted", "waitlisted")
    # The withdrawal's note names the trainee; its event carries the category only.
    why = f"{canary.name} ({canary.passport}) was refused a visa"
    await drive.step(first["id"], "withdraw", {"reason": "visa_or_travel", "note": why})
    # Attend, complete, evaluate (a comment naming the trainee), follow up (a note too).
    place = await drive.enroll(attended, trainee["id"])
    for step in ("close-enrollment", "start"):
        ok(await drive.post("registry", f"/sessions/{attended}/{step}"))
    await drive.seen(attended, "in_progress")
    await drive.step(place["id"], "check-in")
    await drive.step(place["id"], "complete", {"completed_on": f"{year}-04-24"})
    comment = f"{canary.name} ({canary.email}) found it useful"
    await drive.step(place["id"], "evaluation", {"score": 5, "comment": comment})
    note = f"Called {canary.name}, born {canary.birth_date}, passport {canary.passport}"
    await drive.step(
        place["id"],
        "follow-ups",
        {
            "followed_up_on": f"{year}-09-01",
            "channel": "phone",
            "outcome": "cooperation_project_started",
            "note": note,
        },
    )
    # A CSV nomination, with one invalid row.
    upload = await platform.enrollment.http.post(
        "/imports",
        files={"file": (f"{canary.surname}.csv", nominations(canary, nominated), "text/csv")},
        headers=drive.headers(),
    )
    job = ok(upload, 202)

    async def finished() -> Any:
        state = ok(await drive.get("enrollment", f"/imports/{job['id']}"))
        return state if state["status"] != "running" else None

    state = await eventually(finished, what="the nominations import finishes")
    assert (state["status"], state["succeeded"], state["failed"]) == ("done", 1, 1)
    # Failing requests: invalid data, an unknown session, a search by the trainee's name.
    invalid = await drive.post(
        "enrollment", "/trainees", personal | {"passport_number": f"{canary.passport}-!"}
    )
    assert invalid.status_code == 422
    unknown = await drive.post(
        "enrollment", f"/sessions/{uuid.uuid4()}/enrollments", {"trainee_id": trainee["id"]}
    )
    assert unknown.status_code == 404
    found = ok(await drive.get("enrollment", "/trainees", params={"name": canary.surname}))
    assert [t["id"] for t in found["items"]] == [trainee["id"]]
    # A poison message about the trainee's enrollment: parked in the dead-letter topic.
    topic = platform.kafka.topic(ENROLLMENTS.name)
    good = wrap(accepted(uuid.UUID(attended)), source="/tests")
    poison = good.model_copy(
        update={"id": uuid.uuid4(), "data": {**good.data, "trainee_id": trainee["id"], "gender": 7}}
    )
    await produce(platform.kafka, topic, [(attended.encode(), encode(poison))])

    async def parked() -> Any:
        letters = await deadletter.read_dead_letters(
            platform.kafka, deadletter.dead_letter_topic(topic)
        )
        return [d for d in letters if str(poison.id).encode() in (d.value or b"")]

    await eventually(parked, what="the poison message in the dead-letter topic")
    # Erasure, and everything published and applied.
    ok(await drive.post("enrollment", f"/trainees/{trainee['id']}/erasure"))
    # The import job stays (its counts), without the file's name (the canary's surname).
    assert ok(await drive.get("enrollment", f"/imports/{job['id']}"))["filename"] is None
    _, events = await outbox_ids(platform)
    await eventually(lambda: applied(platform, events), within=60, what="reporting applies all")
    metrics = {
        name: (await getattr(platform, name).http.get("/metrics")).text
        for name in ("registry", "enrollment", "reporting")
    }

    # Positive controls: a planted string is found in each kind of place scanned.
    control = f"PLANTEDCONTROL{canary.marker}"
    control_topic = platform.kafka.topic(TRAINEES.name) + deadletter.SUFFIX
    await produce(
        platform.kafka,
        control_topic,
        [(b"control", f'{{"planted": "{control}"}}'.encode())],
    )
    await produce(
        platform.kafka,
        control_topic,
        [(b"control", b"{}")],
        headers=[("planted", control.encode())],
    )
    logging.getLogger("tpp_enrollment.control").warning("planted %s", control)
    sampled = trace.NonRecordingSpan(  # a sampled parent: the control span is recorded
        trace.SpanContext(
            random.getrandbits(128) | 1,
            random.getrandbits(64) | 1,
            is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
    )
    with telemetry.tracer().start_as_current_span(
        "control", context=trace.set_span_in_context(sampled), attributes={"planted": control}
    ) as s:
        s.add_event("planted", {"value": control})

    topics = [
        platform.kafka.topic(t.name) + sfx for t in ALL_TOPICS for sfx in ("", deadletter.SUFFIX)
    ]
    kafka = await kafka_texts(platform.kafka, topics)
    log_lines = [line for line in captured_logs.getvalue().splitlines() if line.strip()]
    log_texts = [(f"log line {n}", line) for n, line in enumerate(log_lines, 1)]
    finished_spans = spans.get_finished_spans()
    haystacks = (
        kafka
        + log_texts
        + span_texts(finished_spans)
        + [(f"{name} /metrics", text) for name, text in metrics.items()]
    )
    messages = len({where.rsplit(" ", 1)[0] for where, _ in kafka})
    print(
        f"\ncanary scan: {messages} Kafka messages in {len(topics)} topics (values, keys and"
        f" headers), {len(log_lines)} log lines, {len(finished_spans)} spans,"
        f" {sum(len(t.splitlines()) for t in metrics.values())} /metrics lines"
    )

    controls = {
        where.split(" ")[0] + " " + where.rsplit(" ", 1)[-1]
        for where, _ in scan([control], haystacks)
    }
    assert any(c.startswith("kafka") and c.endswith("value") for c in controls), controls
    assert any(c.startswith("kafka") and c.endswith("header") for c in controls), controls
    assert any(c.startswith("log") for c in controls), controls
    assert any(c.startswith("span") and c.endswith("attributes") for c in controls), controls
    assert any(c.startswith("span") and c.endswith("event") for c in controls), controls
    # The scan covered what the journey did (its events, spans and metrics are there).
    assert any(trainee["id"] in text for where, text in kafka if where.endswith("value"))
    assert any(f"{attended}" in text for _, text in kafka)  # the parked poison message
    assert any("/trainees/{trainee_id}/erasure" in text for text in metrics.values())
    assert any(s.name.startswith("POST /imports") for s in finished_spans)

    leaks = scan(canary.strings(), haystacks)
    assert leaks == [], [(w, n, dict(haystacks)[w][:300]) for w, n in leaks[:5]]
