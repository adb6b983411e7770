"""How a batch consumer's fetch is split between its transactions."""

from __future__ import annotations

from aiokafka import TopicPartition
from tpp_plumbing.messaging.runner import split


def fetch(*sizes: int) -> dict[TopicPartition, list[int]]:
    return {TopicPartition("t", p): list(range(n)) for p, n in enumerate(sizes)}


def test_one_transaction_keeps_the_whole_fetch() -> None:
    whole = fetch(5, 3, 1)
    assert split(whole, 1) == [whole]


def test_a_fetch_of_one_partition_is_never_split() -> None:
    whole = fetch(20_000)
    assert split(whole, 4) == [whole]


def test_partitions_are_shared_out_by_their_records_each_kept_whole() -> None:
    whole = fetch(9_000, 1_000, 4_000, 4_000, 2_000, 500)
    parts = split(whole, 2)
    assert len(parts) == 2
    # Every partition in exactly one part, with all its records in their order.
    merged = {tp: records for part in parts for tp, records in part.items()}
    assert merged == whole
    assert sum(map(len, parts)) == len(whole)
    # About as many records each (9,000 + 1,000 + 500 against 4,000 + 4,000 + 2,000).
    sizes = sorted(sum(map(len, part.values())) for part in parts)
    assert sizes == [10_000, 10_500]


def test_no_more_parts_than_partitions() -> None:
    assert len(split(fetch(3, 3), 4)) == 2
