"""``tpp-ops dlq list|show|redrive``: read parked messages and send true copies back.

``--pending`` remembers what it redrove as the committed offsets of ``REDRIVE_GROUP`` on
each dead-letter topic, so the next ``--pending`` starts after them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from tpp_ops.commands._shared import console, fail, run
from tpp_ops.offsets import commit_offsets, committed_offsets
from tpp_ops.settings import kafka_settings

if TYPE_CHECKING:
    from tpp_plumbing.messaging import deadletter
    from tpp_plumbing.settings import KafkaSettings

#: The group whose committed offsets on a ``.dlq`` topic mark what ``--pending`` redrove.
REDRIVE_GROUP = "tpp-ops.redrive"

app = typer.Typer(help="Dead letters: list, show and redrive.", no_args_is_help=True)


def _dlq_topics(topic: str | None) -> list[str]:
    from tpp_contracts.topics import ALL as ALL_TOPICS
    from tpp_plumbing.messaging import deadletter

    kafka = kafka_settings()
    names = [topic.removesuffix(deadletter.SUFFIX)] if topic else [t.name for t in ALL_TOPICS]
    return [deadletter.dead_letter_topic(kafka.topic(n)) for n in names]


async def _marks(kafka: KafkaSettings, dlq_topic: str) -> dict[int, int]:
    committed = await committed_offsets(kafka, kafka.topic(REDRIVE_GROUP))
    return {tp.partition: off for tp, off in committed.items() if tp.topic == dlq_topic}


@app.command("list")
def dlq_list(
    topic: Annotated[str | None, typer.Argument(help="A topic (default: all).")] = None,
) -> None:
    """Parked messages: where they come from, why, how often they were tried."""
    run(lambda: _dlq_list(topic))


async def _dlq_list(topic: str | None) -> None:
    from rich.table import Table
    from tpp_plumbing.messaging import deadletter

    kafka = kafka_settings()
    table = Table(
        "dead-letter topic",
        "ref",
        "from",
        "kind",
        "error",
        "tries",
        "group",
        "parked at",
        "event",
        "redriven",
    )
    count = 0
    for name in _dlq_topics(topic):
        marks = await _marks(kafka, name)
        for letter in await deadletter.read_dead_letters(kafka, name):
            count += 1
            h = letter.headers
            envelope = letter.envelope() or {}
            partition = h.get(deadletter.ORIGINAL_PARTITION, "?")
            origin = f"{partition}:{h.get(deadletter.ORIGINAL_OFFSET, '?')}"
            claimed = h.get(deadletter.ORIGINAL_TOPIC)
            if claimed != letter.original_topic:
                origin += f" (claims {claimed or 'no topic'})"
            table.add_row(
                name.removeprefix(kafka.topic_prefix),
                letter.ref,
                origin,
                h.get(deadletter.KIND, "?"),
                h.get(deadletter.ERROR, ""),
                h.get(deadletter.ATTEMPTS, "?"),
                h.get(deadletter.GROUP, "?").removeprefix(kafka.topic_prefix),
                letter.parked_at.isoformat(timespec="seconds"),
                f"{envelope.get('type', '-')} {envelope.get('id', '')}".strip(),
                "yes" if letter.offset < marks.get(letter.partition, 0) else "",
            )
    console().print(table)
    console().print(f"{count} dead letter(s)")


def _ref(ref: str) -> tuple[int, int]:
    partition, _, offset = ref.partition(":")
    if not (partition.isdigit() and offset.isdigit()):
        raise typer.BadParameter(f"{ref!r} is not PARTITION:OFFSET (e.g. 2:17)")
    return int(partition), int(offset)


async def _select(name: str, refs: list[str]) -> list[deadletter.DeadLetter]:
    from tpp_plumbing.messaging import deadletter

    wanted = {_ref(r) for r in refs}
    letters = await deadletter.read_dead_letters(kafka_settings(), name)
    found = [d for d in letters if (d.partition, d.offset) in wanted]
    missing = wanted - {(d.partition, d.offset) for d in found}
    if missing:
        fail(f"not in {name}: {', '.join(f'{p}:{o}' for p, o in sorted(missing))}")
    return found


@app.command("show")
def dlq_show(
    topic: Annotated[str, typer.Argument(help="The topic (its .dlq twin is read).")],
    ref: Annotated[str, typer.Argument(help="PARTITION:OFFSET in the dead-letter topic.")],
) -> None:
    """One parked message: its headers and its value."""
    from rich.table import Table

    [name] = _dlq_topics(topic)
    [letter] = run(lambda: _select(name, [ref]))
    table = Table("header", "value")
    for key, value in letter.headers.items():
        table.add_row(key, value)
    console().print(table)
    console().print(f"key: {letter.key.decode('utf-8', 'replace') if letter.key else '-'}")
    envelope = letter.envelope()
    if envelope is not None:
        console().print_json(json.dumps(envelope))
    else:
        size = len(letter.value or b"")
        console().print(f"value (not JSON, {size} bytes): {letter.value!r:.300}")


@app.command("redrive")
def dlq_redrive(
    topic: Annotated[str, typer.Argument(help="The topic (its .dlq twin is read).")],
    refs: Annotated[
        list[str] | None, typer.Argument(help="PARTITION:OFFSET of each message to redrive.")
    ] = None,
    pending: Annotated[
        bool, typer.Option("--pending", help="Every message parked since the last --pending.")
    ] = False,
) -> None:
    """Send parked messages back to TOPIC; consumers' inboxes still deduplicate them.

    Only a true copy goes back: the original record at the partition and offset the dead
    letter names, in TOPIC, must have the same key and value; any other letter is refused with
    the reason (exit code 2) and the others still go.
    """
    if not refs and not pending:
        fail("name messages (PARTITION:OFFSET) or pass --pending")
    [name] = _dlq_topics(topic)
    result = run(lambda: _redrive(name, refs or [], pending))
    for refusal in result.refused:
        message = f"[red]refused {refusal.letter.ref}: {refusal.reason}[/red]"
        console().print(message, soft_wrap=True)
    console().print(f"redrove {len(result.sent)} message(s) from {name}")
    if result.refused:
        console().print(f"[red]refused {len(result.refused)} message(s)[/red]")
        raise typer.Exit(2)


async def _redrive(name: str, refs: list[str], pending: bool) -> deadletter.Redriven:
    from aiokafka import TopicPartition
    from tpp_plumbing.messaging import deadletter

    kafka = kafka_settings()
    if not pending:
        return await deadletter.redrive(kafka, await _select(name, refs))
    marks = await _marks(kafka, name)
    letters = await deadletter.read_dead_letters(kafka, name, after=marks)
    result = await deadletter.redrive(kafka, letters)
    # Refused letters are passed too: they were reported, and checking them again would
    # refuse them again.
    ends: dict[TopicPartition, int] = {}
    for letter in letters:
        tp = TopicPartition(name, letter.partition)
        ends[tp] = max(ends.get(tp, 0), letter.offset + 1)
    if ends:
        await commit_offsets(kafka, kafka.topic(REDRIVE_GROUP), ends)
    return result
