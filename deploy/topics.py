"""Wait for the Kafka broker, then create the platform's topics and their dead-letter topics.

The topic list comes from `python -m tpp_contracts.topics` (lines `name partitions`), the one
place where topics are declared. Creating is idempotent: existing topics are left alone.

    uv run python deploy/topics.py                      # wait up to 60 s, create missing topics
    uv run python deploy/topics.py --list               # print the topics that exist
    uv run python deploy/topics.py --wait 0 --list      # fail at once if the broker is down
    uv run python deploy/topics.py --prefix t123-       # the same topics under a test prefix
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from tpp_plumbing.settings import KafkaSettings

DLQ_SUFFIX = ".dlq"
# The whole history is kept: projections are rebuilt by replaying topics from the beginning.
TOPIC_CONFIGS = {"retention.ms": "-1", "retention.bytes": "-1"}


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create: its name and partition count."""

    name: str
    partitions: int


def contract_topics(prefix: str = "") -> list[TopicSpec]:
    """The contracts' topics and, for each, a dead-letter topic with the same partitions."""
    # Same interpreter, fixed arguments: nothing here comes from user input.
    output = subprocess.run(
        [sys.executable, "-m", "tpp_contracts.topics"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    specs: list[TopicSpec] = []
    for line in output.splitlines():
        if not line.strip():
            continue
        name, partitions = line.split()
        name = prefix + name
        specs.append(TopicSpec(name, int(partitions)))
        specs.append(TopicSpec(name + DLQ_SUFFIX, int(partitions)))
    if not specs:
        raise SystemExit("tpp_contracts.topics printed no topics")
    return specs


async def connect(kafka: KafkaSettings, wait_s: float) -> AIOKafkaAdminClient:
    """An admin client connected to a broker that answers metadata requests."""
    deadline = time.monotonic() + wait_s
    bootstrap = kafka.bootstrap
    while True:
        admin = AIOKafkaAdminClient(**kafka.client_options(), request_timeout_ms=10_000)
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            if cluster.get("brokers") and cluster.get("controller_id", -1) >= 0:
                return admin
            problem = "no broker or controller in the metadata yet"
        except (KafkaError, OSError) as error:
            problem = f"{type(error).__name__}: {error}"
        await admin.close()
        if time.monotonic() >= deadline:
            raise SystemExit(f"Kafka at {bootstrap} is not ready after {wait_s:.0f} s ({problem})")
        await asyncio.sleep(0.25)


async def create_missing(admin: AIOKafkaAdminClient, specs: list[TopicSpec]) -> None:
    """Create the topics that do not exist yet; warn when an existing one differs."""
    existing = {
        topic["topic"]: len(topic["partitions"])
        for topic in await admin.describe_topics([spec.name for spec in specs])
        if topic["error_code"] == 0
    }
    for spec in specs:
        if spec.name in existing and existing[spec.name] != spec.partitions:
            print(
                f"warning: topic {spec.name} has {existing[spec.name]} partitions, "
                f"the contracts say {spec.partitions}",
                file=sys.stderr,
            )
    missing = [spec for spec in specs if spec.name not in existing]
    if not missing:
        print(f"topics: all {len(specs)} exist")
        return
    response = await admin.create_topics(
        [NewTopic(spec.name, spec.partitions, 1, topic_configs=TOPIC_CONFIGS) for spec in missing]
    )
    for name, error_code, *rest in response.topic_errors:
        if error_code and for_code(error_code) is not TopicAlreadyExistsError:
            message = rest[0] if rest else ""
            raise SystemExit(
                f"cannot create topic {name}: {for_code(error_code).__name__} {message}"
            )
    print(f"topics: created {len(missing)} of {len(specs)}: {' '.join(s.name for s in missing)}")


async def main() -> None:
    """Parse the command line, wait for the broker, list or create topics."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("TPP_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
        help="Kafka bootstrap servers (default: $TPP_KAFKA_BOOTSTRAP or 127.0.0.1:9092)",
    )
    parser.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for the broker (default: 60)"
    )
    parser.add_argument(
        "--prefix",
        default=os.environ.get("TPP_KAFKA_TOPIC_PREFIX", ""),
        help="prefix for every topic name (default: $TPP_KAFKA_TOPIC_PREFIX or none)",
    )
    parser.add_argument("--list", action="store_true", help="only print the existing topics")
    args = parser.parse_args()

    # As TPP_KAFKA_USERNAME (the admin: creating topics is no service's business).
    admin = await connect(KafkaSettings(bootstrap=args.bootstrap), args.wait)
    try:
        if args.list:
            for name in sorted(await admin.list_topics()):
                print(name)
        else:
            await create_missing(admin, contract_topics(args.prefix))
    finally:
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
