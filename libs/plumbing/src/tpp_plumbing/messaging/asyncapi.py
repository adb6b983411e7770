"""AsyncAPI 3.0 documents of the platform's topics, built from the contracts: the bytes on the
wire (CloudEvents structured envelope, headers, keys, partitions, dead letters).

One document per service (what it sends and receives, from its ``Declaration``) and one for
outside subscribers; a service serves its own at ``/asyncapi.json``, and the committed copies
under ``docs/asyncapi/`` are written and checked by ``tpp_ops.asyncapi``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import tpp_contracts
from tpp_contracts import CONTENT_TYPE, TOPIC_EVENTS, Envelope, Event
from tpp_contracts.schemas import schema_of
from tpp_contracts.topics import ALL as ALL_TOPICS
from tpp_contracts.topics import Topic

from tpp_plumbing.messaging import acl
from tpp_plumbing.messaging.deadletter import DEAD_LETTER_HEADERS, SUFFIX
from tpp_plumbing.messaging.declaration import Declaration
from tpp_plumbing.messaging.topics import TopicSettings, TopicSpec, plan
from tpp_plumbing.settings import KafkaSettings

_BINDING = "0.5.0"  # the AsyncAPI Kafka bindings version used throughout
#: W3C trace context (``tpp_plumbing.observability.telemetry``): present when the writer's
#: request was traced.
TRACE_HEADERS: dict[str, Any] = {
    "traceparent": {
        "type": "string",
        "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        "description": "W3C Trace Context: the publish span, parent of what the event causes.",
    },
    "tracestate": {"type": "string", "description": "W3C Trace Context vendor state."},
}
#: The headers of every record the outbox relay sends.
EVENT_HEADERS: dict[str, Any] = {
    "type": "object",
    "required": ["content-type"],
    "properties": {
        "content-type": {
            "const": CONTENT_TYPE,
            "description": "CloudEvents structured mode: the value is the whole event.",
        },
        **TRACE_HEADERS,
    },
}


def _inline(schema: Any, defs: Mapping[str, Any]) -> Any:
    # The schemas' local `#/$defs/...` pointers would resolve against the AsyncAPI document's
    # root once embedded: each is replaced by what it names (the models are not recursive).
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k not in ("$defs", "$schema")}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def _embedded(schema: dict[str, Any]) -> dict[str, Any]:
    inlined: dict[str, Any] = _inline(schema, schema.get("$defs", {}))
    return inlined


def event_payload(model: type[Event]) -> dict[str, Any]:
    """The JSON Schema of a record's value carrying ``model``: its CloudEvents envelope."""
    envelope = _embedded(schema_of(Envelope, "envelope"))
    envelope.pop("$id")
    properties = dict(envelope["properties"])
    properties["type"] = {"const": model.type, "description": "The CloudEvents type."}
    properties["dataschema"] = {"const": model.dataschema, "description": "`data`'s schema."}
    properties["schemaversion"] = {"const": model.schema_version}
    properties["data"] = _embedded(schema_of(model, model.type))
    required = [*envelope["required"], "subject", "dataschema", "datacontenttype"]
    return {
        **envelope,
        "title": f"{model.__name__} in its CloudEvents envelope",
        "properties": properties,
        "required": list(dict.fromkeys(required)),
    }


def _message(model: type[Event]) -> dict[str, Any]:
    doc = (model.__doc__ or "").strip().splitlines()
    key = model.topic.key
    return {
        "name": model.type,
        "title": model.__name__,
        "summary": doc[0] if doc else model.__name__,
        "contentType": CONTENT_TYPE,
        "headers": EVENT_HEADERS,
        "payload": event_payload(model),
        "correlationId": {
            "description": "Events caused by one command share it (the first event's id).",
            "location": "$message.payload#/correlationid",
        },
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "description": (
                        f"UTF-8 `data.{key}`: a {key.removesuffix('_id')}'s events stay on one"
                        " partition, in order (Kafka's default murmur2 partitioner)."
                    ),
                },
                "bindingVersion": _BINDING,
            }
        },
    }


DEAD_LETTER = {
    "name": "dead-letter",
    "title": "Dead letter",
    "summary": "A record its consumer could not apply, parked as it was.",
    "description": (
        "The original record exactly as consumed (key, value and headers, whatever they were)"
        " plus the `dlq-*` headers: where it came from and why (`dlq-error`: field names and"
        " error kinds or an exception type, never values). Operators redrive it with `tpp-ops"
        " dlq`; it is not for subscribers."
    ),
    "headers": {
        "type": "object",
        "required": list(DEAD_LETTER_HEADERS),
        "properties": {name: {"type": "string"} for name in DEAD_LETTER_HEADERS},
    },
    "payload": {"description": "The original value, unchanged (possibly not JSON at all)."},
}


def _servers(kafka: KafkaSettings, environment: str) -> tuple[dict[str, Any], dict[str, Any]]:
    protocol = "kafka-secure" if kafka.uses_tls else "kafka"
    schemes: dict[str, Any] = {}
    if kafka.uses_sasl:
        kind = {"PLAIN": "plain", "SCRAM-SHA-256": "scramSha256", "SCRAM-SHA-512": "scramSha512"}
        schemes["kafka"] = {
            "type": kind[kafka.sasl_mechanism],
            "description": (
                f"SASL {kafka.sasl_mechanism} over {kafka.security_protocol}: each service, and"
                " each outside subscriber, has its own principal (docs/subscribing.md)."
            ),
        }
    elif kafka.uses_tls:
        schemes["kafka"] = {"type": "X509", "description": "TLS client certificate."}
    security = [{"$ref": "#/components/securitySchemes/kafka"}] if schemes else []
    hosts = [h.strip() for h in kafka.bootstrap.split(",") if h.strip()]
    servers = {
        f"{environment}-{i}" if len(hosts) > 1 else environment: {
            "host": host,
            "protocol": protocol,
            "description": f"{environment} bootstrap server ({kafka.security_protocol}).",
            "security": security,
        }
        for i, host in enumerate(hosts, 1)
    }
    return servers, schemes


def _kafka_binding(spec: TopicSpec) -> dict[str, Any]:
    return {
        "kafka": {
            "topic": spec.name,
            "partitions": spec.partitions,
            "replicas": spec.replication_factor,
            "bindingVersion": _BINDING,
        }
    }


def _channel(topic: Topic, spec: TopicSpec) -> dict[str, Any]:
    models = TOPIC_EVENTS[topic.name]
    return {
        "address": spec.name,
        "title": topic.name,
        "description": (
            f"Keyed by `{topic.key}`; {spec.partitions} partitions. Delivery is at least once:"
            " deduplicate by the envelope's `id`; order holds per key only."
        ),
        "messages": {m.__name__: {"$ref": f"#/components/messages/{m.__name__}"} for m in models},
        "bindings": _kafka_binding(spec),
    }


def document(
    declaration: Declaration,
    kafka: KafkaSettings,
    *,
    environment: str = "local",
    layout: TopicSettings | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the service ``declaration`` describes on ``kafka``'s
    cluster, topic prefix included; partitions and replicas as ``layout`` says (default: the
    contracts' layout, without ``TPP_TOPIC_*``)."""
    return _document(declaration, kafka, environment=environment, layout=layout)


def subscriber_document(
    kafka: KafkaSettings,
    *,
    environment: str = "local",
    subscriber_group: str | None = None,
    layout: TopicSettings | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of outside subscribers (role ``subscriber``): every event
    topic, read in their own groups (``subscriber_group``, default from ``kafka``'s user)."""
    return _document(
        None, kafka, environment=environment, subscriber_group=subscriber_group, layout=layout
    )


def _document(
    declaration: Declaration | None,
    kafka: KafkaSettings,
    *,
    environment: str,
    subscriber_group: str | None = None,
    layout: TopicSettings | None = None,
) -> dict[str, Any]:
    specs = {
        spec.name: spec
        for spec in plan(layout or TopicSettings.model_construct(), kafka.topic_prefix)
    }
    name = declaration.service if declaration is not None else acl.SUBSCRIBER
    sent = {t.name for t in declaration.publishes} if declaration is not None else set()
    read = {t.name for t in declaration.consumes} if declaration is not None else set()
    publishes = [t for t in ALL_TOPICS if t.name in sent]
    consumes = [t for t in ALL_TOPICS if t.name in read]
    if declaration is None:
        consumes = list(ALL_TOPICS)
        group = subscriber_group or acl.subscriber_group_prefix(
            kafka.username if kafka.username and kafka.uses_sasl else acl.SUBSCRIBER,
            kafka.topic_prefix,
        )
        group_doc: dict[str, Any] = {
            "type": "string",
            "pattern": f"^{group.replace('.', '[.]')}.+$",
            "description": "Your own consumer groups: the only ones your principal may use.",
        }
    else:
        group_doc = {"type": "string", "const": kafka.topic(declaration.group)}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic in publishes + [t for t in consumes if t not in publishes]:
        channels[topic.name] = _channel(topic, specs[kafka.topic(topic.name)])
        refs = [
            {"$ref": f"#/channels/{topic.name}/messages/{m.__name__}"}
            for m in TOPIC_EVENTS[topic.name]
        ]
        if topic in publishes:
            operations[f"send-{topic.name}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{topic.name}"},
                "summary": f"The outbox relay publishes {name}'s events (idempotent, acks=all).",
                "messages": refs,
            }
        if topic in consumes:
            operations[f"receive-{topic.name}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{topic.name}"},
                "summary": "Event types not listed here must be skipped, not failed on.",
                "messages": refs,
                "bindings": {"kafka": {"groupId": group_doc, "bindingVersion": _BINDING}},
            }
    if declaration is not None:
        for topic in consumes:
            dlq = topic.name + SUFFIX
            channels[dlq] = {
                "address": kafka.topic(dlq),
                "title": dlq,
                "description": f"Dead letters of {topic.name} ({name}'s and others' consumers).",
                "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
                "bindings": _kafka_binding(specs[kafka.topic(dlq)]),
            }
            operations[f"send-{dlq}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{dlq}"},
                "summary": f"{name} parks what it cannot apply, with the reason.",
                "messages": [{"$ref": f"#/channels/{dlq}/messages/DeadLetter"}],
            }
    used = {m for t in publishes + consumes for m in TOPIC_EVENTS[t.name]}
    messages = {m.__name__: _message(m) for m in sorted(used, key=lambda m: m.__name__)}
    if declaration is not None and consumes:
        messages["DeadLetter"] = DEAD_LETTER
    servers, schemes = _servers(kafka, environment)
    who = "outside subscribers" if declaration is None else f"the {name} service"
    doc: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": {
            "title": f"Training Program Platform: events for {who}",
            "version": tpp_contracts.__version__,
            "description": (
                f"The Kafka topics {who} sends and receives, as on the wire: each record's"
                " value is a CloudEvents 1.0 event in structured mode (`content-type:"
                f" {CONTENT_TYPE}`) whose `data` is the event; its `dataschema` names the"
                " JSON Schema shipped in the tpp-contracts package. Personal data is never in"
                " an event. Guide: docs/subscribing.md."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": servers,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }
    if schemes:
        doc["components"]["securitySchemes"] = schemes
    return doc


def render(doc: Mapping[str, Any]) -> str:
    """The text of a committed document."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
