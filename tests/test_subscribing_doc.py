"""The subscriber guide names what really exists: every topic, the local principal."""

from __future__ import annotations

from pathlib import Path

from tpp_contracts.topics import ALL as ALL_TOPICS
from tpp_ops.acl import ROLES
from tpp_plumbing.messaging import acl

ROOT = Path(__file__).parents[1]
GUIDE = (ROOT / "docs" / "subscribing.md").read_text()
LOCAL_ENV = dict(
    line.split("=", 1)
    for line in (ROOT / "deploy" / "local.env").read_text().splitlines()
    if line and not line.startswith("#")
)


def test_the_guide_lists_every_topic() -> None:
    assert [t.name for t in ALL_TOPICS if f"`{t.name}`" not in GUIDE] == []


def test_the_guide_gives_the_local_subscriber_principal() -> None:
    user = LOCAL_ENV["TPP_SUBSCRIBER_KAFKA_USERNAME"]
    assert f"`{user}` / `{LOCAL_ENV['TPP_SUBSCRIBER_KAFKA_PASSWORD']}`" in GUIDE
    assert f"`{acl.subscriber_group_prefix(user)}alumni`" in GUIDE
    assert "subscriber" in ROLES
