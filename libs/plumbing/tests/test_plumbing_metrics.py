"""HTTP metrics under route templates, event type labels from a closed set, without I/O."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI
from tpp_contracts.envelope import encode, wrap
from tpp_contracts.registry import SessionCancelledV1
from tpp_plumbing.observability.metrics import HttpMetricsMiddleware, Metrics, sniff_event_type


async def test_http_latency_is_recorded_under_the_route_template_and_status() -> None:
    metrics = Metrics("test")
    app = FastAPI()
    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)

    @app.get("/trainees/{trainee_id}")
    async def trainee(trainee_id: uuid.UUID) -> dict[str, str]:
        return {"id": str(trainee_id)}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        trainee_id = uuid.uuid4()
        assert (await client.get(f"/trainees/{trainee_id}")).status_code == 200
        assert (await client.get("/trainees/not-a-uuid")).status_code == 422
        assert (await client.get("/nowhere?email=ana@example.org")).status_code == 404
    count = "tpp_http_request_duration_seconds_count"
    get = metrics.registry.get_sample_value
    assert get(count, {"method": "GET", "route": "/trainees/{trainee_id}", "status": "200"}) == 1
    assert get(count, {"method": "GET", "route": "/trainees/{trainee_id}", "status": "422"}) == 1
    assert get(count, {"method": "GET", "route": "unmatched", "status": "404"}) == 1
    exposed = "\n".join(
        str(s.labels) for family in metrics.registry.collect() for s in family.samples
    )
    assert str(trainee_id) not in exposed
    assert "example.org" not in exposed


def test_event_type_labels_come_from_the_known_types_only() -> None:
    event = SessionCancelledV1(
        session_id=uuid.uuid4(), version=2, reason="venue unavailable", previous_status="published"
    )
    assert sniff_event_type(encode(wrap(event, source="/t"))) == SessionCancelledV1.type
    assert sniff_event_type(b'{"type": "tpp.made.up.v1"}') == "other"
    assert sniff_event_type(b'{"type": "' + b"x" * 5000 + b'"}') == "other"
    assert sniff_event_type(b"\x00 not json") == "other"
    assert sniff_event_type(None) == "other"
