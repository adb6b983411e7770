"""The AsyncAPI document matches the wire: a real record, published by the relay and read as
an outside subscriber, has the channel, key, partition, headers and value its document says."""

from __future__ import annotations

import json
import random
import time
import uuid
from typing import Any

import jsonschema_rs
import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from tpp_contracts import decode
from tpp_contracts.topics import ORGANIZERS
from tpp_plumbing.messaging.asyncapi import subscriber_document
from tpp_plumbing.messaging.publish import partition_of
from tpp_plumbing.settings import KafkaSettings
from tpp_testkit import Platform

pytestmark = pytest.mark.integration


async def find(kafka: KafkaSettings, topic: str, aggregate_id: str) -> ConsumerRecord[Any, Any]:
    """The first record keyed ``aggregate_id`` on ``topic``, read from the start within 30 s."""
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(ORGANIZERS.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    if record.key == aggregate_id.encode():
                        return record
    finally:
        await consumer.stop()
    raise AssertionError(f"no record keyed {aggregate_id} on {topic} within 30 s")


async def test_a_published_event_is_what_the_document_says(
    platform: Platform, subscriber: KafkaSettings
) -> None:
    trace_id = f"{random.getrandbits(128) | 1:032x}"
    response = await platform.registry.http.post(
        "/organizers",
        json={
            "name": f"Wire Institute {uuid.uuid4().hex[:6]}",
            "kind": "university",
            "country": "KE",
        },
        headers={"traceparent": f"00-{trace_id}-{random.getrandbits(64) | 1:016x}-01"},
    )
    assert response.status_code == 201, response.text
    organizer_id = response.json()["id"]
    topic = platform.kafka.topic(ORGANIZERS.name)

    record = await find(subscriber, topic, organizer_id)  # as an outside subscriber reads it

    document = subscriber_document(subscriber)
    [channel] = [c for c in document["channels"].values() if c["address"] == record.topic]
    assert channel["bindings"]["kafka"]["partitions"] == ORGANIZERS.partitions
    event = decode(record.value)
    [message] = [
        m for m in document["components"]["messages"].values() if m["name"] == event.envelope.type
    ]
    assert message["title"] in channel["messages"]
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["content-type"] == message["contentType"]
    assert set(headers) <= set(message["headers"]["properties"]), "no undocumented header"
    assert jsonschema_rs.validator_for(message["headers"]).is_valid(headers)
    assert headers["traceparent"].split("-")[1] == trace_id, "the request's trace goes on"
    payload = jsonschema_rs.validator_for(message["payload"])
    value = json.loads(record.value)
    errors = [f"{list(e.instance_path)}: {e.message}" for e in payload.iter_errors(value)]
    assert errors == []
    assert record.key.decode() == event.envelope.data[ORGANIZERS.key] == organizer_id
    everything = list(range(ORGANIZERS.partitions))
    assert record.partition == partition_of(record.key, everything, everything)
