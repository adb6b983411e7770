"""The relay's partitioner puts every key where aiokafka's (Java's) default one does."""

from __future__ import annotations

import uuid

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st
from tpp_plumbing.messaging.publish import partition_of


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=64))
def test_same_partition_as_the_default_partitioner(key: bytes, count: int) -> None:
    partitions = list(range(count))
    expected = DefaultPartitioner()(key, partitions, partitions)
    assert partition_of(key, partitions, partitions) == expected


def test_aggregate_ids_spread_like_the_default_partitioner() -> None:
    partitions = list(range(6))
    keys = [str(uuid.uuid4()).encode() for _ in range(500)]
    ours = [partition_of(k, partitions, partitions) for k in keys]
    assert ours == [DefaultPartitioner()(k, partitions, partitions) for k in keys]
    assert set(ours) == set(partitions)


def test_no_key_goes_to_an_available_partition() -> None:
    assert partition_of(None, [0, 1, 2], [2]) == 2
