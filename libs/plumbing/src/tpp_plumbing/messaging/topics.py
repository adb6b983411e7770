"""The layout of the platform's topics: the contracts' defaults under ``TPP_TOPIC_*`` settings.

The layout of every contract topic and of its ``.dlq`` twin (partitions, replication factor,
``min.insync.replicas``, retention) is the contracts' default (``tpp_contracts.topics``)
overridden by ``TPP_TOPIC_*`` settings; ``plan`` turns it into the topics a cluster should
have. Making a running cluster match them is ``tpp_plumbing.messaging.topic_reconcile``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from tpp_contracts.topics import ALL as ALL_TOPICS
from tpp_contracts.topics import Layout, default_layout

from tpp_plumbing.messaging.deadletter import SUFFIX

MIN_INSYNC = "min.insync.replicas"


class LayoutOverride(BaseModel):
    """What settings may change in a topic's layout; unset fields keep the layout's value."""

    partitions: int | None = Field(None, ge=1, description="Partition count.")
    replication_factor: int | None = Field(None, ge=1, description="Replicas of each partition.")
    min_insync_replicas: int | None = Field(
        None, ge=1, description="Replicas that must have a write before acks=all succeeds."
    )
    configs: dict[str, str] = Field(
        default_factory=dict, description="Topic configs (retention.ms, ...) set over the layout's."
    )

    def apply(self, layout: Layout) -> Layout:
        """``layout`` with this override's set fields."""
        return Layout(
            partitions=self.partitions or layout.partitions,
            replication_factor=self.replication_factor or layout.replication_factor,
            min_insync_replicas=self.min_insync_replicas or layout.min_insync_replicas,
            configs={**layout.configs, **self.configs},
        )


class TopicSettings(LayoutOverride, BaseSettings):
    """The layout of every platform topic, from ``TPP_TOPIC_*`` over the contracts' defaults.

    ``TPP_TOPIC_REPLICATION_FACTOR``, ``TPP_TOPIC_MIN_INSYNC_REPLICAS``,
    ``TPP_TOPIC_PARTITIONS`` and ``TPP_TOPIC_CONFIGS`` (JSON) apply to every topic;
    ``TPP_TOPIC_OVERRIDES`` (JSON, by unprefixed topic name) to one topic, e.g.
    ``{"enrollment.enrollments.v1": {"partitions": 12}}``. A topic's override applies to its
    ``.dlq`` twin too, which may have its own (``"enrollment.enrollments.v1.dlq": {...}``).
    """

    model_config = SettingsConfigDict(env_prefix="TPP_TOPIC_")

    overrides: dict[str, LayoutOverride] = Field(
        default_factory=dict, description="Per-topic overrides, by unprefixed topic name."
    )


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic as the cluster should have it."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


def _spec(name: str, layout: Layout) -> TopicSpec:
    if layout.min_insync_replicas > layout.replication_factor:
        raise ValueError(
            f"topic {name}: min.insync.replicas {layout.min_insync_replicas} is more than its"
            f" replication factor {layout.replication_factor} (no acks=all write could succeed)"
        )
    configs = {**layout.configs, MIN_INSYNC: str(layout.min_insync_replicas)}
    return TopicSpec(name, layout.partitions, layout.replication_factor, configs)


def plan(settings: TopicSettings | None = None, prefix: str = "") -> list[TopicSpec]:
    """Every contract topic and its ``.dlq`` twin as ``settings`` lay them out, under
    ``prefix``. Raises ValueError for an impossible layout or an override of no topic."""
    settings = settings if settings is not None else TopicSettings()
    known = {t.name for t in ALL_TOPICS} | {t.name + SUFFIX for t in ALL_TOPICS}
    unknown = sorted(set(settings.overrides) - known)
    if unknown:
        raise ValueError(f"TPP_TOPIC_OVERRIDES names no platform topic: {', '.join(unknown)}")
    specs = []
    for topic in ALL_TOPICS:
        layout = settings.apply(default_layout(topic))
        if own := settings.overrides.get(topic.name):
            layout = own.apply(layout)
        specs.append(_spec(prefix + topic.name, layout))
        if twin := settings.overrides.get(topic.name + SUFFIX):
            layout = twin.apply(layout)
        specs.append(_spec(prefix + topic.name + SUFFIX, layout))
    return specs
