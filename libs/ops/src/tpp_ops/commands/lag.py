"""``tpp-ops lag``: how far each consumer group is behind, per partition."""

from __future__ import annotations

from typing import Annotated

import typer

from tpp_ops.commands._shared import console, run
from tpp_ops.offsets import group_lag
from tpp_ops.platform import CONSUMER_GROUPS
from tpp_ops.settings import kafka_settings


def lag(
    group: Annotated[
        list[str] | None, typer.Option(help="Consumer group (default: enrollment, reporting).")
    ] = None,
) -> None:
    """Consumer lag per partition: the high-water mark minus the committed offset."""
    run(lambda: _lag(group or list(CONSUMER_GROUPS)))


async def _lag(groups: list[str]) -> None:
    from rich.table import Table

    kafka = kafka_settings()
    table = Table("group", "topic", "partition", "committed", "high-water", "lag")
    for name in groups:
        full = kafka.topic(name)
        rows = await group_lag(kafka, full)
        if not rows:
            table.add_row(name, "-", "-", "-", "-", "no committed offsets")
        total = 0
        for tp, (committed, end) in rows.items():
            total += end - committed
            table.add_row(
                name,
                tp.topic.removeprefix(kafka.topic_prefix),
                str(tp.partition),
                str(committed),
                str(end),
                str(end - committed),
            )
        if rows:
            table.add_row(name, "[b]total[/b]", "", "", "", f"[b]{total}[/b]", end_section=True)
    console().print(table)
