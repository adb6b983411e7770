"""Makes a running cluster's topics match the platform's layout (``topics.plan``).

``reconcile`` creates the missing topics, sets the topic configs that differ
(IncrementalAlterConfigs: other configs an operator set stay as they are), and adds
partitions only when told to, since a new partition count re-maps keys to partitions and
breaks per-key order. Kafka cannot remove partitions nor change a replication factor without
a reassignment: such differences are reported, never acted on.

    python -m tpp_plumbing.messaging.topic_reconcile                # wait, reconcile, report
    python -m tpp_plumbing.messaging.topic_reconcile --list         # the topics that exist
    python -m tpp_plumbing.messaging.topic_reconcile --prefix t1-   # the same under a prefix
    python -m tpp_plumbing.messaging.topic_reconcile --allow-partition-increase

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

from tpp_plumbing.messaging.kafka_admin import set_topic_configs
from tpp_plumbing.messaging.topics import TopicSettings, TopicSpec, plan
from tpp_plumbing.settings import KafkaSettings


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
        await set_topic_configs(admin, changes)
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
