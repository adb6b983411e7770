"""The ops CLI on real Kafka: list, show and redrive dead letters; lag; replay a group."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tpp_contracts.envelope import encode, wrap
from tpp_contracts.topics import ENROLLMENTS
from tpp_ops import cli as ops
from tpp_plumbing.messaging.retry import RetryPolicy
from typer.testing import CliRunner

from .operations_support import accepted, own_topics, produce, running, sample, scratch

pytestmark = pytest.mark.integration


async def cli(env: dict[str, str], *args: str) -> str:
    """Run ``tpp-ops ARGS`` (in a thread: it runs its own event loop); returns its output."""
    result = await asyncio.to_thread(
        CliRunner().invoke, ops.app, list(args), env=env | {"COLUMNS": "400"}
    )
    assert result.exit_code == 0, result.output
    return result.output


async def test_an_operator_parks_inspects_redrives_and_replays_without_stopping_anything(
    infrastructure: Any, databases: Any, eventually: Any
) -> None:
    kafka = infrastructure.kafka
    async with (
        own_topics(infrastructure, ENROLLMENTS.name) as prefix,
        scratch(databases.create) as proj,
    ):
        # tpp-ops runs as its own principal (TPP_OPS_KAFKA_USERNAME) where Kafka has ACLs.
        env = infrastructure.kafka_env(kafka.with_prefix(prefix))
        topic, group = prefix + ENROLLMENTS.name, prefix + "ops-cli"
        session_id = uuid.uuid4()
        key = str(session_id).encode()
        broken, fine = (wrap(accepted(session_id), source="/tests") for _ in range(2))
        proj.failures[broken.id] = -1
        before = datetime.now(UTC) - timedelta(seconds=5)
        retry = RetryPolicy(max_attempts=2, backoff_s=0.1)
        async with running(
            proj.consumer(), kafka=kafka, topics=[topic], group=group, retry=retry
        ) as (runner, _):
            await produce(kafka, topic, [(key, encode(broken)), (key, encode(fine))])
            await eventually(lambda: proj.applied(fine.id), what="the event after the bad one")

            listed = await cli(env, "dlq", "list", ENROLLMENTS.name)
            assert "1 dead letter(s)" in listed
            assert "handler failed: builtins.RuntimeError" in listed
            assert str(broken.id) in listed
            [row] = [line for line in listed.splitlines() if str(broken.id) in line]
            ref = next(cell.strip() for cell in row.split("│") if ":" in cell and "-" not in cell)

            shown = await cli(env, "dlq", "show", ENROLLMENTS.name, ref)
            assert "dlq-original-topic" in shown
            assert "tpp.enrollment.enrollment.accepted.v1" in shown

            # The handler is fixed; the parked event is redriven and applied once.
            proj.failures[broken.id] = 0
            assert "redrove 1 message(s)" in await cli(
                env, "dlq", "redrive", ENROLLMENTS.name, "--pending"
            )
            await eventually(lambda: proj.applied(broken.id), what="the redriven event")
            assert "redrove 0 message(s)" in await cli(
                env, "dlq", "redrive", ENROLLMENTS.name, "--pending"
            )
            assert "redrove 1 message(s)" in await cli(env, "dlq", "redrive", ENROLLMENTS.name, ref)

            async def drained() -> bool:
                lag = await runner.measure_lag()
                return bool(lag) and sum(lag.values()) == 0

            await eventually(drained, what="the second copy consumed")
            assert await proj.applied(broken.id) == 1
            assert "yes" in (await cli(env, "dlq", "list", ENROLLMENTS.name))
            lag = await cli(env, "lag", "--group", "ops-cli")
            assert "total" in lag

        # With the group stopped, replay it from before the events: all come again, and the
        # inbox keeps every event applied once.
        replayed = await cli(env, "replay", "ops-cli", "--since", before.isoformat())
        assert "will replay" in replayed
        async with running(
            proj.consumer(), kafka=kafka, topics=[topic], group=group, retry=retry
        ) as (runner, metrics):

            async def replayed_all() -> bool:
                return (
                    sample(metrics, "tpp_consumer_outcomes_total", group=group, outcome="duplicate")
                    >= 4
                )

            await eventually(replayed_all, what="the replayed events consumed as duplicates")
        assert await proj.applied(broken.id) == 1
        assert await proj.applied(fine.id) == 1
