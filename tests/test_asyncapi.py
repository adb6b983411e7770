"""The AsyncAPI documents: every topic each service sends and receives, committed under
docs/asyncapi/ as the contracts give them, valid AsyncAPI 3.0, and saying what the relay sends."""

from __future__ import annotations

import copy
import importlib
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from opentelemetry.trace import INVALID_SPAN
from tpp_contracts import EVENT_TYPES, TOPIC_EVENTS, encode, wrap
from tpp_contracts.examples import example
from tpp_contracts.topics import ALL as ALL_TOPICS
from tpp_contracts.topics import ENROLLMENTS, SESSIONS, TRAINEES
from tpp_ops import asyncapi
from tpp_plumbing.messaging import publish
from tpp_plumbing.messaging.asyncapi import render, subscriber_document
from tpp_plumbing.settings import KafkaSettings

SPEC = Path(__file__).parent / "asyncapi" / "asyncapi-3.0.0.schema.json"  # see its README
CASES = [
    ("registry", ["registry.organizers.v1", "registry.plans.v1", "registry.sessions.v1"], []),
    ("enrollment", [TRAINEES.name, ENROLLMENTS.name], [SESSIONS.name]),
    ("reporting", [], [t.name for t in ALL_TOPICS]),  # every registry and enrollment topic
]


@pytest.fixture(scope="module")
def spec() -> jsonschema_rs.Draft7Validator:
    return jsonschema_rs.Draft7Validator(json.loads(SPEC.read_text()))


def committed(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((asyncapi.DIRECTORY / f"{name}.json").read_text())
    return document


def message_of(document: dict[str, Any], event_type: str) -> dict[str, Any]:
    """The document's message for an event type (what a subscriber looks up by `type`)."""
    messages: list[dict[str, Any]] = list(document["components"]["messages"].values())
    [message] = [m for m in messages if m["name"] == event_type]
    return message


@pytest.mark.parametrize(("service", "publishes", "consumes"), CASES)
def test_asyncapi_document_lists_the_services_topics_and_event_types(
    service: str, publishes: list[str], consumes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        f"TPP_{service.upper()}_DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/none"
    )
    app = importlib.import_module(f"tpp_{service}.app").create_app()
    document = app.state.runtime.asyncapi()
    assert document["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in document["channels"].values()}
    dead_letters = {f"{topic}.dlq" for topic in consumes}  # where the consumer parks poison
    assert addresses == set(publishes) | set(consumes) | dead_letters
    actions = {
        (document["channels"][op["channel"]["$ref"].split("/")[-1]]["address"], op["action"])
        for op in document["operations"].values()
    }
    assert {(t, "send") for t in publishes} <= actions
    assert {(t, "receive") for t in consumes} <= actions
    assert {(t, "send") for t in dead_letters} <= actions
    text = json.dumps(document)
    for topic in publishes:
        for model in TOPIC_EVENTS[topic]:
            assert model.__name__ in text


def test_the_committed_documents_are_what_the_contracts_give() -> None:
    assert asyncapi.check() == [], "docs/asyncapi/ drifted from the contracts"


def test_the_check_fails_on_a_stale_document(tmp_path: Path) -> None:
    for file, text in asyncapi.committed().items():
        (tmp_path / file).write_text(text)
    assert asyncapi.check(tmp_path) == []
    stale = committed("subscriber")
    del stale["components"]["messages"]["SessionCreatedV1"]["headers"]["properties"]["traceparent"]
    (tmp_path / "subscriber.json").write_text(render(stale))
    assert [p.split(":")[0] for p in asyncapi.check(tmp_path)] == ["docs/asyncapi/subscriber.json"]


@pytest.mark.parametrize("name", asyncapi.DOCUMENTS)
def test_each_document_is_valid_asyncapi_3(name: str, spec: jsonschema_rs.Draft7Validator) -> None:
    document = committed(name)
    errors = [f"{list(e.instance_path)}: {e.message[:200]}" for e in spec.iter_errors(document)]
    assert errors == []
    broken = copy.deepcopy(document)
    next(iter(broken["operations"].values()))["action"] = "publish"  # AsyncAPI 2's word
    assert not spec.is_valid(broken), "the validator does check the operations"


def test_a_secured_cluster_is_described_with_its_sasl_scheme() -> None:
    kafka = KafkaSettings(
        bootstrap="k1.example:9093,k2.example:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        username="subscriber",
        password="pw-never-shown",
    )
    document = subscriber_document(kafka, environment="production")
    servers = document["servers"]
    assert {s["host"] for s in servers.values()} == {"k1.example:9093", "k2.example:9093"}
    assert {s["protocol"] for s in servers.values()} == {"kafka-secure"}
    assert document["components"]["securitySchemes"]["kafka"]["type"] == "scramSha512"
    assert "pw-never-shown" not in json.dumps(document), "no password in the document"


def test_the_subscriber_document_names_its_own_groups_and_no_dead_letters() -> None:
    document = committed("subscriber")
    assert {c["address"] for c in document["channels"].values()} == {t.name for t in ALL_TOPICS}
    assert {o["action"] for o in document["operations"].values()} == {"receive"}
    group = next(iter(document["operations"].values()))["bindings"]["kafka"]["groupId"]
    assert group["pattern"] == "^subscriber[.].+$"
    assert document["servers"]["local"]["security"], "SASL/SCRAM, as deploy/local.env says"


@pytest.mark.parametrize("model", list(EVENT_TYPES.values()), ids=list(EVENT_TYPES))
def test_each_event_as_the_relay_encodes_it_matches_its_message(model: type[Any]) -> None:
    message = message_of(committed("subscriber"), model.type)
    value = json.loads(encode(wrap(example(model), source=model.topic.name.split(".")[0])))
    assert jsonschema_rs.validator_for(message["payload"]).is_valid(value)
    location = message["correlationId"]["location"]
    assert location == "$message.payload#/correlationid"
    assert "correlationid" in value
    # The headers the relay writes (untraced here: content-type alone) satisfy the document.
    headers = {k: v.decode() for k, v in publish._kafka_headers({}, INVALID_SPAN)}
    assert jsonschema_rs.validator_for(message["headers"]).is_valid(headers)
    assert set(headers) <= set(message["headers"]["properties"])
    wrong = dict(value, data={**value["data"], model.topic.key: 12})
    assert not jsonschema_rs.validator_for(message["payload"]).is_valid(wrong)
