"""CloudEvents 1.0 envelope (structured mode) and the registry of event types."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError
from pydantic_core import to_json
from uuid_utils.compat import uuid7

from tpp_contracts.topics import Topic

CONTENT_TYPE = "application/cloudevents+json"
#: Where the JSON Schemas are named: ``<SCHEMA_BASE><event type>.json`` is each event's ``$id``
#: and its envelope's ``dataschema``; the file of that name ships in ``tpp_contracts.schemas``.
SCHEMA_BASE = "https://schemas.tpp.example/contracts/"


def schema_id(name: str) -> str:
    """The ``$id`` of a committed schema (an event type, or ``envelope``)."""
    return f"{SCHEMA_BASE}{name}.json"


#: Every concrete event model, by its CloudEvents ``type``.
EVENT_TYPES: dict[str, type[Event]] = {}


def _event_metadata(schema: dict[str, Any], model: type[Any]) -> None:
    # Where an event type travels, in its JSON Schema: for AsyncAPI docs and the compat check.
    event_type = model.__dict__.get("type")
    if isinstance(event_type, str):
        schema["x-event-type"] = event_type
        schema["x-topic"] = model.topic.name
        schema["x-key"] = model.topic.key
        schema["x-schema-version"] = model.schema_version


class Event(BaseModel):
    """Base of every event payload (the envelope's ``data``).

    A concrete event sets the class variables ``type`` (the CloudEvents type, versioned) and
    ``topic``; it registers itself in ``EVENT_TYPES``. Unknown fields are ignored so that a
    consumer keeps working when a producer adds an optional field.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", json_schema_extra=_event_metadata)

    type: ClassVar[str]
    topic: ClassVar[Topic]
    schema_version: ClassVar[int] = 1
    #: The ``$id`` of this event type's JSON Schema (the envelope's ``dataschema``).
    dataschema: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        event_type = cls.__dict__.get("type")
        if isinstance(event_type, str):
            if event_type in EVENT_TYPES:
                raise TypeError(f"event type {event_type!r} is defined twice")
            EVENT_TYPES[event_type] = cls
            cls.dataschema = schema_id(event_type)

    def key(self) -> str:
        """The Kafka key: the id of the aggregate named by the topic (keeps its events in order)."""
        return str(getattr(self, self.topic.key))

    def subject(self) -> str:
        """The CloudEvents subject: the aggregate the event is about."""
        return self.key()


class Envelope(BaseModel):
    """A CloudEvents 1.0 event with the platform's extension attributes."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID
    source: str
    type: str
    time: AwareDatetime
    subject: str | None = None
    datacontenttype: Literal["application/json"] = "application/json"
    #: The ``$id`` of the data's JSON Schema (``tpp_contracts.schemas.load`` reads it).
    dataschema: str | None = None
    schemaversion: int = 1
    correlationid: uuid.UUID
    causationid: uuid.UUID | None = None
    data: dict[str, Any]


class PoisonMessageError(ValueError):
    """A message that can never be applied: not JSON, not an envelope, or invalid data."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded message: its envelope, and its event when the type is known (else None)."""

    envelope: Envelope
    event: Event | None


def new_id() -> uuid.UUID:
    """A new id for an event or a record: a UUIDv7 (RFC 9562), whose first 48 bits are the
    time in milliseconds.

    Ids made later sort after, so a table keyed by them (an outbox, an inbox, a service's
    trainees and enrollments) takes new ids at the end of its index instead of on a random
    page, which makes every insert cheaper (figures in bench/RESULTS.md). Made without a
    system call (``uuid.uuid4`` reads ``os.urandom``, and gives up the GIL there).
    """
    return uuid7()


def new_event_id() -> uuid.UUID:
    """A new event id (``new_id``)."""
    return new_id()


def wrap(
    event: Event,
    *,
    source: str,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
    time: datetime | None = None,
) -> Envelope:
    """Put an event in its envelope; a new event id and correlation id unless given."""
    new_id = event_id or new_event_id()
    return Envelope(
        id=new_id,
        source=source,
        type=event.type,
        time=time or datetime.now(UTC),
        subject=event.subject(),
        dataschema=event.dataschema,
        schemaversion=event.schema_version,
        correlationid=correlation_id or new_id,
        causationid=causation_id,
        data=event.model_dump(mode="json"),
    )


def encode(envelope: Envelope) -> bytes:
    """The structured-mode JSON of an envelope."""
    return envelope.model_dump_json(exclude_none=True).encode()


def encode_event(
    event: Event,
    *,
    source: str,
    event_id: uuid.UUID,
    correlation_id: uuid.UUID,
    time: datetime,
    causation_id: uuid.UUID | None = None,
) -> bytes:
    """``encode(wrap(event, ...))`` byte for byte, without building the envelope model."""
    encoder = EventEncoder(
        source=source, time=time, correlation_id=correlation_id, causation_id=causation_id
    )
    return encoder(event, event_id)


class EventEncoder:
    """Encodes events that share a source, time, correlation and causation (a command's) as
    ``encode(wrap(event, ...))`` does, byte for byte, without building envelope models.

    For writers of many events (the outbox): the shared attributes are serialized once and
    the event's data once, by its own model (rather than dumped to a dict and serialized
    again), which more than halves the cost of an event (bench/RESULTS.md).
    """

    def __init__(
        self,
        *,
        source: str,
        time: datetime,
        correlation_id: uuid.UUID,
        causation_id: uuid.UUID | None = None,
    ) -> None:
        self._source = b'","source":' + to_json(source) + b',"type":'
        self._time = b',"time":' + to_json(time) + b',"subject":'
        correlation = b',"correlationid":' + to_json(correlation_id)
        if causation_id is not None:
            correlation += b',"causationid":' + to_json(causation_id)
        self._tail = correlation + b',"data":'
        self._types: dict[type[Event], tuple[bytes, bytes]] = {}

    def __call__(self, event: Event, event_id: uuid.UUID) -> bytes:
        """The structured-mode JSON of ``event`` in its envelope, with id ``event_id``."""
        kind = type(event)
        attributes = self._types.get(kind)
        if attributes is None:
            version = (
                b',"datacontenttype":"application/json","dataschema":'
                + to_json(kind.dataschema)
                + b',"schemaversion":'
            )
            attributes = to_json(kind.type), version + to_json(kind.schema_version)
            self._types[kind] = attributes
        return b"".join(
            (
                b'{"specversion":"1.0","id":"',
                str(event_id).encode(),
                self._source,
                attributes[0],
                self._time,
                to_json(event.subject()),
                attributes[1],
                self._tail,
                to_json(event),
                b"}",
            )
        )


def decode(raw: bytes | None) -> Decoded:
    """Parse a message value. Unknown types decode with ``event=None``; bad input raises.

    Raises:
        PoisonMessageError: the value is not JSON, not a CloudEvents envelope, or its data
            does not satisfy the schema of its (known) type.
    """
    if raw is None:
        raise PoisonMessageError("empty message value")
    try:
        envelope = Envelope.model_validate_json(raw)
    except ValidationError as error:
        kind = "not JSON" if _is_json_error(error) else "not a CloudEvents envelope"
        raise PoisonMessageError(f"{kind}: {_summary(error)}") from None
    model = EVENT_TYPES.get(envelope.type)
    if model is None:
        return Decoded(envelope, None)
    try:
        event = model.model_validate(envelope.data)
    except ValidationError as error:
        raise PoisonMessageError(f"invalid {envelope.type}: {_summary(error)}") from None
    return Decoded(envelope, event)


def _is_json_error(error: ValidationError) -> bool:
    return any(item["type"] == "json_invalid" for item in error.errors())


def _summary(error: ValidationError) -> str:
    # Field locations and error kinds only: input values may hold anything and are left out.
    parts = [
        f"{'.'.join(str(p) for p in item['loc']) or '<root>'}: {item['type']}"
        for item in error.errors()[:5]
    ]
    return "; ".join(parts)
