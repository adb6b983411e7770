"""The platform's topics on a running cluster: their layout from settings, and reconciling it.

The layout of every contract topic and of its ``.dlq`` twin (partitions, replication factor,
``min.insync.replicas``, retention) is the contracts' default (``tpp_contracts.topics``)
overridden by ``TPP_TOPIC_*`` settings. ``reconcile`` makes a cluster match it: it creates
the missing topics, sets the topic configs that differ (IncrementalAlterConfigs: other
configs an operator set stay as they are), and adds partitions only when told to, since a
new partition count re-maps keys to partitions and breaks per-key order. Kafka cannot remove
partitions nor change a replication factor without a reassignment: such differences are
reported, never acted on.

    python -m tpp_plumbing.messaging.topics                    # wait up to 60 s, reconcile, report
    python -m tpp_plumbing.messaging.topics --list             # print the topics that exist
    python -m tpp_plumbing.messaging.topics --prefix t123-     # the same topics under a test prefix
    python -m tpp_plumbing.messaging.topics --allow-partition-increase

Runs as ``TPP_KAFKA_USERNAME`` (the admin). Exits 1 when the cluster could not be made to
match (a refused partition increase).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int8, Int16, Int32, Schema, String
from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from tpp_contracts.topics import ALL as ALL_TOPICS
from tpp_contracts.topics import Layout, default_layout

from tpp_plumbing.messaging.deadletter import SUFFIX
from tpp_plumbing.settings import KafkaSettings

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


# ------------------------------------------------------------------ IncrementalAlterConfigs
# aiokafka's admin client has only the legacy AlterConfigs, which replaces every dynamic
# config of a topic (an operator's own settings would be lost); its protocol classes carry
# the incremental request (KIP-339) as they carry the ACL requests (tpp_plumbing.messaging.acl).


class _IncrementalAlterConfigsResponseV0(Response):  # type: ignore[misc]  # aiokafka has no type hints
    API_KEY = 44
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "responses",
            Array(
                ("error_code", Int16),
                ("error_message", String("utf-8")),
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
            ),
        ),
    )


class _IncrementalAlterConfigsRequestV0(RequestStruct):  # type: ignore[misc]  # aiokafka has no type hints
    API_KEY = 44
    API_VERSION = 0
    RESPONSE_TYPE = _IncrementalAlterConfigsResponseV0
    SCHEMA = Schema(
        (
            "resources",
            Array(
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
                (
                    "configs",
                    Array(
                        ("name", String("utf-8")),
                        ("config_operation", Int8),
                        ("value", String("utf-8")),
                    ),
                ),
            ),
        ),
        ("validate_only", Boolean),
    )


class _IncrementalAlterConfigsRequest(Request[_IncrementalAlterConfigsRequestV0]):  # type: ignore[misc]  # aiokafka has no type hints
    API_KEY = 44
    _SET = 0

    def __init__(self, configs: dict[str, dict[str, str]]) -> None:
        self._resources = [
            (int(ConfigResourceType.TOPIC), topic, [(k, self._SET, v) for k, v in values.items()])
            for topic, values in configs.items()
        ]

    def build(
        self, request_struct_class: type[_IncrementalAlterConfigsRequestV0]
    ) -> _IncrementalAlterConfigsRequestV0:
        return request_struct_class(self._resources, False)


async def _set_configs(admin: AIOKafkaAdminClient, configs: dict[str, dict[str, str]]) -> None:
    """Set the given configs of each topic, leaving its other configs as they are."""
    # A private attribute, as in tpp_plumbing.messaging.acl: pinned by uv.lock, covered by the
    # tests.
    client = admin._client
    response = await client.send(client.get_random_node(), _IncrementalAlterConfigsRequest(configs))
    failed = [
        f"{name}: {for_code(code).__name__} {message or ''}".strip()
        for code, message, _, name in response.responses
        if code
    ]
    if failed:
        raise RuntimeError(f"cannot alter topic configs: {'; '.join(failed)}")


# ------------------------------------------------------------------ reconciling


@dataclass
class Report:
    """What ``reconcile`` did and what it would not do."""

    total: int = 0
    created: list[str] = field(default_factory=list)
    #: topic -> config -> (value before, value after)
    altered: dict[str, dict[str, tuple[str | None, str]]] = field(default_factory=dict)
    #: topic -> (partitions before, after)
    grown: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: topic -> why a difference was left as it is: acting on it needs a flag (exit status 1).
    refused: dict[str, str] = field(default_factory=dict)
    #: topic -> differences this command cannot act on (Kafka cannot), left as they are.
    warnings: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.refused

    def lines(self) -> list[str]:
        """The report, one line per action or problem."""
        out = [f"created {name}" for name in self.created]
        for name, changes in self.altered.items():
            diffs = ", ".join(f"{k} {old} -> {new}" for k, (old, new) in changes.items())
            out.append(f"altered {name}: {diffs}")
        out += [f"partitions of {n}: {a} -> {b}" for n, (a, b) in self.grown.items()]
        out += [f"warning: {w}" for ws in self.warnings.values() for w in ws]
        out += [f"refused: {r}" for r in self.refused.values()]
        touched = set(self.created) | set(self.altered) | set(self.grown)
        untouched = self.total - len(touched | set(self.refused) | set(self.warnings))
        out.append(
            f"topics: {self.total} in the layout, {len(self.created)} created,"
            f" {len(set(self.altered) | set(self.grown))} changed,"
            f" {untouched} already as laid out"
            + (f", {len(self.refused)} refused" if self.refused else "")
        )
        return out


async def _describe(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Existing topics among ``names``: (partition count, replication factor)."""
    found = {}
    for topic in await admin.describe_topics(list(names)):
        if topic["error_code"] == 0:
            partitions = topic["partitions"]
            replicas = max((len(p["replicas"]) for p in partitions), default=0)
            found[topic["topic"]] = (len(partitions), replicas)
    return found


async def _configs(
    admin: AIOKafkaAdminClient, names: Iterable[str], keys: Iterable[str]
) -> dict[str, dict[str, str | None]]:
    """The current value of each of ``keys`` for each topic (None: not a known config)."""
    keys = sorted(set(keys))
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    if not resources:
        return {}
    values: dict[str, dict[str, str | None]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            if resource["error_code"]:
                error = for_code(resource["error_code"]).__name__
                raise RuntimeError(f"cannot describe {resource['resource_name']}: {error}")
            entries = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
            values[resource["resource_name"]] = {k: entries.get(k) for k in keys}
    return values


async def reconcile(
    admin: AIOKafkaAdminClient,
    specs: Sequence[TopicSpec],
    *,
    allow_partition_increase: bool = False,
) -> Report:
    """Make the cluster's topics match ``specs`` as far as is safe; report what was done."""
    report = Report(total=len(specs))
    existing = await _describe(admin, [s.name for s in specs])
    missing = [s for s in specs if s.name not in existing]
    if missing:
        response = await admin.create_topics(
            [
                NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.configs)
                for s in missing
            ]
        )
        for name, code, *rest in response.topic_errors:
            if code and for_code(code) is not TopicAlreadyExistsError:
                message = rest[0] if rest else ""
                raise RuntimeError(
                    f"cannot create topic {name}: {for_code(code).__name__} {message}"
                )
        report.created = [s.name for s in missing]

    present = [s for s in specs if s.name in existing]
    current = await _configs(
        admin, [s.name for s in present], {k for s in present for k in s.configs}
    )
    changes: dict[str, dict[str, str]] = {}
    grow: dict[str, NewPartitions] = {}
    for spec in present:
        partitions, replicas = existing[spec.name]
        differ = {k: v for k, v in spec.configs.items() if current[spec.name].get(k) != v}
        if differ:
            changes[spec.name] = differ
            report.altered[spec.name] = {
                k: (current[spec.name].get(k), v) for k, v in differ.items()
            }
        if spec.partitions > partitions:
            if allow_partition_increase:
                grow[spec.name] = NewPartitions(total_count=spec.partitions)
                report.grown[spec.name] = (partitions, spec.partitions)
            else:
                report.refused[spec.name] = (
                    f"{spec.name} has {partitions} partitions, the layout says {spec.partitions}:"
                    " adding partitions re-maps keys to other partitions and breaks per-key"
                    " order (events of one key would be consumed out of order while the old"
                    " partitions drain); run again with --allow-partition-increase once"
                    " producers and consumers of the topic are stopped and caught up"
                )
        elif spec.partitions < partitions:
            report.warnings.setdefault(spec.name, []).append(
                f"{spec.name} has {partitions} partitions, the layout says {spec.partitions}:"
                " Kafka cannot remove partitions; left as is"
            )
        if replicas != spec.replication_factor:
            report.warnings.setdefault(spec.name, []).append(
                f"{spec.name} has replication factor {replicas}, the layout says"
                f" {spec.replication_factor}: changing it needs a partition reassignment"
                " (kafka-reassign-partitions); left as is"
            )
    if changes:
        await _set_configs(admin, changes)
    if grow:
        await admin.create_partitions(grow)
    return report


async def connect(kafka: KafkaSettings, wait_s: float, brokers: int = 1) -> AIOKafkaAdminClient:
    """An admin client of a cluster whose controller and at least ``brokers`` brokers answer
    (topics with replication factor N need N brokers)."""
    deadline = time.monotonic() + wait_s
    while True:
        admin = AIOKafkaAdminClient(**kafka.client_options(), request_timeout_ms=10_000)
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            seen = len(cluster.get("brokers") or ())
            if seen >= brokers and cluster.get("controller_id", -1) >= 0:
                return admin
            problem = f"{seen} of {brokers} broker(s) or no controller in the metadata yet"
        except (KafkaError, OSError) as error:
            problem = f"{type(error).__name__}: {error}"
        await admin.close()
        if time.monotonic() >= deadline:
            raise SystemExit(
                f"Kafka at {kafka.bootstrap} is not ready after {wait_s:.0f} s ({problem})"
            )
        await asyncio.sleep(0.25)


async def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, wait for the cluster, list or reconcile the topics."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("TPP_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        help="Kafka bootstrap servers (default: $TPP_KAFKA_BOOTSTRAP or 127.0.0.1:9092)",
    )
    parser.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for the cluster (default: 60)"
    )
    parser.add_argument(
        "--prefix",
        default=os.environ.get("TPP_KAFKA_TOPIC_PREFIX", ""),
        help="prefix for every topic name (default: $TPP_KAFKA_TOPIC_PREFIX or none)",
    )
    parser.add_argument("--list", action="store_true", help="only print the existing topics")
    parser.add_argument(
        "--allow-partition-increase",
        action="store_true",
        help="add partitions to existing topics whose layout has more (re-maps keys)",
    )
    args = parser.parse_args(argv)

    try:
        specs = plan(TopicSettings(), args.prefix)
    except ValueError as error:
        print(f"topics: {error}", file=sys.stderr)
        return 2
    # As TPP_KAFKA_USERNAME (the admin: creating topics is no service's business).
    brokers = 1 if args.list else max(s.replication_factor for s in specs)
    admin = await connect(KafkaSettings(bootstrap=args.bootstrap), args.wait, brokers)
    try:
        if args.list:
            for name in sorted(await admin.list_topics()):
                print(name)
            return 0
        report = await reconcile(
            admin, specs, allow_partition_increase=args.allow_partition_increase
        )
    finally:
        await admin.close()
    for line in report.lines():
        problem = line.startswith(("warning:", "refused:"))
        print(line, file=sys.stderr if problem else sys.stdout)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
