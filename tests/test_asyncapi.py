"""The AsyncAPI documents name every topic each service publishes and consumes."""

from __future__ import annotations

import importlib
import json

import pytest
from tpp_contracts import TOPIC_EVENTS
from tpp_contracts.topics import ALL as ALL_TOPICS
from tpp_contracts.topics import ENROLLMENTS, SESSIONS, TRAINEES

CASES = [
    ("registry", ["registry.organizers.v1", "registry.plans.v1", "registry.sessions.v1"], []),
    ("enrollment", [TRAINEES.name, ENROLLMENTS.name], [SESSIONS.name]),
    ("reporting", [], [t.name for t in ALL_TOPICS]),  # every registry and enrollment topic
]


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
