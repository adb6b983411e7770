"""The operators' command line: stack status, outbox, consumer lag, dead letters, replay.

    tpp-ops status                     PostgreSQL, Kafka and the three services' readiness
    tpp-ops outbox                     unsent outbox rows and the oldest one's age, per service
    tpp-ops lag [--group G]            consumer lag per partition (high-water - committed)
    tpp-ops dlq list [TOPIC]           parked messages: where from, why, how often tried
    tpp-ops dlq show TOPIC P:O         one parked message: headers and value
    tpp-ops dlq redrive TOPIC P:O...   send parked messages back to TOPIC (if true copies)
    tpp-ops dlq redrive TOPIC --pending    ...every one parked since the last --pending
    tpp-ops replay GROUP --since T     move a stopped group's offsets back to a time
    tpp-ops token --role ROLE [--organizer-id ID]   a development bearer token

Settings come from the environment (``deploy/local.env`` for the local stack): the
``TPP_KAFKA_*`` variables (as the ``TPP_OPS_KAFKA_USERNAME`` principal when set),
``TPP_PG_ADMIN_URL``, ``TPP_<SERVICE>_DATABASE_URL``, and where each service's replicas answer:
``TPP_OPS_<SERVICE>_URLS`` (comma-separated base URLs; by default ``TPP_<SERVICE>_PORT`` on
127.0.0.1 and, with ``TPP_REPLICAS=N``, the ports ``deploy/platform.sh`` gives the other
replicas: 10, 20, ... above it); ``TPP_AUTH_*`` for tokens. Topics and groups are named
without the ``TPP_KAFKA_TOPIC_PREFIX``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from tpp_plumbing.web.tokens import Role, dev_token

from tpp_ops.platform import CONSUMER_GROUPS, SERVICES

# The Kafka, PostgreSQL and HTTP clients are imported by the commands that use them: a
# development token (tpp-ops token) needs none of them, and importing them all took seconds.
if TYPE_CHECKING:
    from aiokafka import TopicPartition
    from rich.console import Console
    from tpp_plumbing.messaging import deadletter
    from tpp_plumbing.settings import KafkaSettings

#: The group whose committed offsets on a ``.dlq`` topic mark what ``--pending`` redrove.
REDRIVE_GROUP = "tpp-ops.redrive"

T = TypeVar("T")
app = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True)
dlq = typer.Typer(help="Dead letters: list, show and redrive.", no_args_is_help=True)
app.add_typer(dlq, name="dlq")


@functools.cache
def _console() -> Console:
    from rich.console import Console

    return Console()


def _run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(work())


class OpsSettings(BaseSettings):
    """The operators' own Kafka principal (``TPP_OPS_*``), which may read every topic and
    group and write any topic (redrive); the connection itself comes from ``TPP_KAFKA_*``.
    And where the services' replicas answer (``service_urls``)."""

    model_config = SettingsConfigDict(env_prefix="TPP_OPS_")

    kafka_username: str | None = Field(
        None, description="Kafka user of tpp-ops (default: TPP_KAFKA_USERNAME)."
    )
    kafka_password: SecretStr | None = Field(None, description="Its password.")
    registry_urls: str | None = Field(
        None, description="Base URLs of the registry's replicas, comma-separated."
    )
    enrollment_urls: str | None = Field(
        None, description="Base URLs of the enrollment service's replicas, comma-separated."
    )
    reporting_urls: str | None = Field(
        None, description="Base URLs of the reporting service's replicas, comma-separated."
    )


#: deploy/platform.sh: replica r of a service listens on its port + r * REPLICA_PORT_STEP.
REPLICA_PORT_STEP = 10


def service_urls(name: str, env: dict[str, str] | None = None) -> list[str]:
    """Where ``name``'s replicas answer: ``TPP_OPS_<NAME>_URLS``, else the local ports."""
    env = dict(os.environ) if env is None else env
    urls = env.get(f"TPP_OPS_{name.upper()}_URLS")  # OpsSettings documents it
    if urls:
        return [url.strip().rstrip("/") for url in urls.split(",") if url.strip()]
    port = env.get(f"TPP_{name.upper()}_PORT")
    if not port:
        return []
    replicas = int(env.get("TPP_REPLICAS") or 1)
    return [f"http://127.0.0.1:{int(port) + r * REPLICA_PORT_STEP}" for r in range(replicas)]


def _kafka() -> KafkaSettings:
    from tpp_plumbing.settings import KafkaSettings

    kafka = KafkaSettings()
    ops = OpsSettings()
    if ops.kafka_username and ops.kafka_password is not None:
        return kafka.as_principal(ops.kafka_username, ops.kafka_password)
    return kafka


def _fail(message: str) -> None:
    _console().print(f"[red]{message}[/red]")
    raise typer.Exit(1)


# ---------------------------------------------------------------------------- status


@app.command()
def status() -> None:
    """PostgreSQL, Kafka (brokers and topics) and each service's readiness."""
    ok = _run(_status)
    if not ok:
        raise typer.Exit(3)


async def _status() -> bool:
    import asyncpg
    import httpx
    from aiokafka.admin import AIOKafkaAdminClient
    from rich.table import Table
    from tpp_contracts.topics import ALL as ALL_TOPICS
    from tpp_plumbing.messaging import deadletter

    table = Table("part", "state", "detail")
    healthy = True
    admin_url = os.environ.get("TPP_PG_ADMIN_URL")
    if admin_url:
        try:
            conn = await asyncpg.connect(admin_url, timeout=3)
            try:
                version = await conn.fetchval("SHOW server_version")
            finally:
                await conn.close()
            table.add_row("postgresql", "[green]up[/green]", f"version {version}")
        except Exception as error:
            healthy = False
            table.add_row("postgresql", "[red]down[/red]", type(error).__name__)
    kafka = _kafka()
    try:
        admin = AIOKafkaAdminClient(**kafka.client_options(), request_timeout_ms=3000)
        await asyncio.wait_for(admin.start(), 5)
        try:
            cluster = await admin.describe_cluster()
            topics = set(await admin.list_topics())
        finally:
            await admin.close()
        expected = {kafka.topic(t.name) + s for t in ALL_TOPICS for s in ("", deadletter.SUFFIX)}
        missing = sorted(expected - topics)
        detail = f"{len(cluster['brokers'])} broker(s), {len(expected & topics)} platform topics"
        if missing:
            healthy = False
            detail += f"; missing: {', '.join(missing)}"
        table.add_row(
            "kafka", "[green]up[/green]" if not missing else "[yellow]up[/yellow]", detail
        )
    except Exception as error:
        healthy = False
        table.add_row("kafka", "[red]down[/red]", type(error).__name__)
    async with httpx.AsyncClient(timeout=3) as client:
        for name in SERVICES:
            for url in service_urls(name):
                try:
                    response = await client.get(f"{url}/health/ready")
                    checks = response.json().get("checks", {})
                    state = (
                        "[green]ready[/green]"
                        if response.status_code == 200
                        else "[red]not ready[/red]"
                    )
                    healthy &= response.status_code == 200
                    detail = ", ".join(f"{k}: {v}" for k, v in checks.items())
                    table.add_row(name, state, f"{url}: {detail}")
                except httpx.HTTPError as error:
                    healthy = False
                    table.add_row(name, "[red]down[/red]", f"{url}: {type(error).__name__}")
    _console().print(table)
    return healthy


# ---------------------------------------------------------------------------- outbox


@app.command()
def outbox() -> None:
    """Unsent outbox rows per service, the oldest one's age, and the last publication."""
    _run(_outbox)


async def _outbox() -> None:
    import asyncpg
    from rich.table import Table
    from tpp_plumbing.db.engine import asyncpg_dsn

    table = Table("service", "unsent", "oldest unsent", "published (1 h)", "last published")
    for name in SERVICES:
        url = os.environ.get(f"TPP_{name.upper()}_DATABASE_URL")
        if not url:
            continue
        try:
            conn = await asyncpg.connect(asyncpg_dsn(url), timeout=3)
        except Exception as error:
            table.add_row(name, f"[red]{type(error).__name__}[/red]", "", "", "")
            continue
        try:
            if await conn.fetchval("SELECT to_regclass('outbox_message')") is None:
                table.add_row(name, "-", "no outbox", "", "")
                continue
            row = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE published_at IS NULL) AS unsent,"
                " extract(epoch FROM now() - min(created_at) FILTER (WHERE published_at IS NULL))"
                " AS age,"
                " count(*) FILTER (WHERE published_at > now() - interval '1 hour') AS recent,"
                " max(published_at) AS last FROM outbox_message"
            )
        finally:
            await conn.close()
        assert row is not None
        age = f"{row['age']:.1f} s" if row["age"] is not None else "-"
        last = row["last"].isoformat(timespec="seconds") if row["last"] else "-"
        table.add_row(name, str(row["unsent"]), age, str(row["recent"]), last)
    _console().print(table)


# ---------------------------------------------------------------------------- lag


@app.command()
def lag(
    group: Annotated[
        list[str] | None, typer.Option(help="Consumer group (default: enrollment, reporting).")
    ] = None,
) -> None:
    """Consumer lag per partition: the high-water mark minus the committed offset."""
    _run(lambda: _lag(group or list(CONSUMER_GROUPS)))


async def committed_offsets(kafka: KafkaSettings, group: str) -> dict[TopicPartition, int]:
    """A group's committed offsets."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def group_lag(kafka: KafkaSettings, group: str) -> dict[TopicPartition, tuple[int, int]]:
    """(committed, high-water mark) per partition the group has committed on."""
    from aiokafka import AIOKafkaConsumer

    committed = await committed_offsets(kafka, group)
    if not committed:
        return {}
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(list(committed))
    finally:
        await consumer.stop()
    return {tp: (committed[tp], ends[tp]) for tp in sorted(committed)}


async def _lag(groups: list[str]) -> None:
    from rich.table import Table

    kafka = _kafka()
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
    _console().print(table)


# ---------------------------------------------------------------------------- dead letters


def _dlq_topics(topic: str | None) -> list[str]:
    from tpp_contracts.topics import ALL as ALL_TOPICS
    from tpp_plumbing.messaging import deadletter

    kafka = _kafka()
    names = [topic.removesuffix(deadletter.SUFFIX)] if topic else [t.name for t in ALL_TOPICS]
    return [deadletter.dead_letter_topic(kafka.topic(n)) for n in names]


async def _marks(kafka: KafkaSettings, dlq_topic: str) -> dict[int, int]:
    committed = await committed_offsets(kafka, kafka.topic(REDRIVE_GROUP))
    return {tp.partition: off for tp, off in committed.items() if tp.topic == dlq_topic}


@dlq.command("list")
def dlq_list(
    topic: Annotated[str | None, typer.Argument(help="A topic (default: all).")] = None,
) -> None:
    """Parked messages: where they come from, why, how often they were tried."""
    _run(lambda: _dlq_list(topic))


async def _dlq_list(topic: str | None) -> None:
    from rich.table import Table
    from tpp_plumbing.messaging import deadletter

    kafka = _kafka()
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
    _console().print(table)
    _console().print(f"{count} dead letter(s)")


def _ref(ref: str) -> tuple[int, int]:
    partition, _, offset = ref.partition(":")
    if not (partition.isdigit() and offset.isdigit()):
        raise typer.BadParameter(f"{ref!r} is not PARTITION:OFFSET (e.g. 2:17)")
    return int(partition), int(offset)


async def _select(name: str, refs: list[str]) -> list[deadletter.DeadLetter]:
    from tpp_plumbing.messaging import deadletter

    wanted = {_ref(r) for r in refs}
    letters = await deadletter.read_dead_letters(_kafka(), name)
    found = [d for d in letters if (d.partition, d.offset) in wanted]
    missing = wanted - {(d.partition, d.offset) for d in found}
    if missing:
        _fail(f"not in {name}: {', '.join(f'{p}:{o}' for p, o in sorted(missing))}")
    return found


@dlq.command("show")
def dlq_show(
    topic: Annotated[str, typer.Argument(help="The topic (its .dlq twin is read).")],
    ref: Annotated[str, typer.Argument(help="PARTITION:OFFSET in the dead-letter topic.")],
) -> None:
    """One parked message: its headers and its value."""
    from rich.table import Table

    [name] = _dlq_topics(topic)
    [letter] = _run(lambda: _select(name, [ref]))
    table = Table("header", "value")
    for key, value in letter.headers.items():
        table.add_row(key, value)
    _console().print(table)
    _console().print(f"key: {letter.key.decode('utf-8', 'replace') if letter.key else '-'}")
    envelope = letter.envelope()
    if envelope is not None:
        _console().print_json(json.dumps(envelope))
    else:
        size = len(letter.value or b"")
        _console().print(f"value (not JSON, {size} bytes): {letter.value!r:.300}")


@dlq.command("redrive")
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
        _fail("name messages (PARTITION:OFFSET) or pass --pending")
    [name] = _dlq_topics(topic)
    result = _run(lambda: _redrive(name, refs or [], pending))
    for refusal in result.refused:
        message = f"[red]refused {refusal.letter.ref}: {refusal.reason}[/red]"
        _console().print(message, soft_wrap=True)
    _console().print(f"redrove {len(result.sent)} message(s) from {name}")
    if result.refused:
        _console().print(f"[red]refused {len(result.refused)} message(s)[/red]")
        raise typer.Exit(2)


async def _redrive(name: str, refs: list[str], pending: bool) -> deadletter.Redriven:
    from aiokafka import TopicPartition
    from tpp_plumbing.messaging import deadletter

    kafka = _kafka()
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
        await _commit(kafka, kafka.topic(REDRIVE_GROUP), ends)
    return result


async def _commit(kafka: KafkaSettings, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit offsets for a group that has no running members."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


# ---------------------------------------------------------------------------- replay


@app.command()
def replay(
    group: Annotated[str, typer.Argument(help="Consumer group, e.g. reporting.")],
    since: Annotated[
        datetime, typer.Option(help="Replay events from this time on (ISO 8601; UTC if naive).")
    ],
    topic: Annotated[
        list[str] | None, typer.Option(help="Only these topics (default: all it committed on).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the new offsets only.")] = False,
) -> None:
    """Move a consumer group's offsets back to a time; its inbox skips what it applied.

    The group's consumers must be stopped (e.g. TPP_<SERVICE>_CONSUMERS_ENABLED=false on
    every replica); Kafka refuses the commit while members are running.
    """
    when = since if since.tzinfo else since.replace(tzinfo=UTC)
    _run(lambda: _replay(group, when, topic, dry_run))


async def _replay(group: str, when: datetime, topics: list[str] | None, dry_run: bool) -> None:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient
    from rich.table import Table
    from tpp_plumbing.messaging import deadletter

    kafka = _kafka()
    full = kafka.topic(group)
    admin = AIOKafkaAdminClient(**kafka.client_options())
    await admin.start()
    try:
        [described] = await admin.describe_consumer_groups([full])
    finally:
        await admin.close()
    members = described.groups[0][5] if getattr(described, "groups", None) else []
    if members and not dry_run:
        _fail(f"group {group} has {len(members)} running member(s): stop its consumers first")
    committed = await committed_offsets(kafka, full)
    wanted = {kafka.topic(t) for t in topics} if topics else {tp.topic for tp in committed}
    partitions: list[TopicPartition] = []
    for name in sorted(wanted):
        partitions += await deadletter.partitions_of(kafka, name)
    if not partitions:
        _fail(f"nothing to replay for group {group}")
    consumer = AIOKafkaConsumer(**kafka.client_options(), group_id=None)
    await consumer.start()
    try:
        stamp = int(when.timestamp() * 1000)
        found = await consumer.offsets_for_times(dict.fromkeys(partitions, stamp))
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    offsets = {tp: (found[tp].offset if found[tp] is not None else ends[tp]) for tp in partitions}
    table = Table("topic", "partition", "committed", "new offset", "events to replay")
    for tp, offset in sorted(offsets.items()):
        before = committed.get(tp)
        table.add_row(
            tp.topic.removeprefix(kafka.topic_prefix),
            str(tp.partition),
            "-" if before is None else str(before),
            str(offset),
            str(ends[tp] - offset),
        )
    _console().print(table)
    if dry_run:
        _console().print("dry run: nothing committed")
        return
    await _commit(kafka, full, offsets)
    _console().print(f"group {group} will replay from {when.isoformat()} when its consumers start")


# ---------------------------------------------------------------------------- tokens


@app.command()
def token(
    role: Annotated[Role, typer.Option(help="The token's role.")],
    organizer_id: Annotated[
        str | None, typer.Option(help="The organizer's id (required for --role organizer).")
    ] = None,
    subject: Annotated[str | None, typer.Option(help="The `sub` claim (dev-<role>).")] = None,
    ttl: Annotated[
        int | None, typer.Option(help="Lifetime in seconds (TPP_AUTH_DEV_TOKEN_TTL_S).")
    ] = None,
) -> None:
    """Print a development token signed with TPP_AUTH_DEV_SECRET (for local use only)."""
    if role is Role.ORGANIZER and organizer_id is None:
        _fail("--organizer-id is required for an organizer token")
    try:
        value = dev_token(role, organizer_id, subject=subject, ttl_s=ttl)
    except (RuntimeError, ValueError) as error:
        _fail(str(error))
        return
    typer.echo(value)


def main() -> None:
    """Entry point of ``tpp-ops``."""
    app()


if __name__ == "__main__":
    main()
