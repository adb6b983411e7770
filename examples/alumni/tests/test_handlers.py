"""The subscriber's wiring, without Kafka or a database (FastStream's TestKafkaBroker)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from faststream.kafka import TestKafkaBroker
from tpp_contracts import ENROLLMENTS, Decoded, EnrollmentCompletedV1, encode, wrap
from tpp_contracts.examples import example

from alumni.app import Alumni
from alumni.config import Settings


class FakeRoster:
    """Records what it is given, as the real roster would apply it."""

    def __init__(self) -> None:
        self.batches: list[list[Decoded]] = []

    async def apply(self, batch: Sequence[Decoded]) -> int:
        self.batches.append(list(batch))
        return len(batch)


async def test_a_batch_reaches_the_roster_decoded_and_unknown_types_come_as_none() -> None:
    alumni = Alumni(Settings(kafka_security_protocol="PLAINTEXT", topic_prefix=""))
    roster = FakeRoster()
    alumni.roster = roster  # type: ignore[assignment]  # the fake has the one method used
    completed = encode(wrap(example(EnrollmentCompletedV1), source="enrollment"))
    unknown = json.loads(completed) | {"type": "tpp.enrollment.enrollment.teleported.v9"}

    async with TestKafkaBroker(alumni.broker) as broker:
        await broker.publish_batch(
            completed, json.dumps(unknown).encode(), b"not json", topic=ENROLLMENTS.name
        )

    [batch] = roster.batches
    assert [type(item.event) for item in batch] == [EnrollmentCompletedV1, type(None)]
    assert batch[1].envelope.type.endswith("teleported.v9")
