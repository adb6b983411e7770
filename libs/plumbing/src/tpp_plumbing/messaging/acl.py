"""Kafka ACLs: who may write and read which topics and groups, built from declarations.

The broker denies what no ACL allows (``allow.everyone.if.no.acl.found=false``). Each service
has its own principal (its ``Declaration``): it writes only its own topics (``<service>.*``),
reads only the topics it consumes, commits offsets only in its own group and parks poison only
on the dead-letter twins of what it consumes. The operators' tool (role ``ops``) reads
everything and may write everything (redrive); the admin (topics, ACLs) is a super user and
needs no ACL. Outside subscribers (role ``subscriber``, docs/subscribing.md) read the event
topics and commit offsets in groups named ``<their user name>.*``; they write nothing and see
no dead letters.

Every binding is scoped to a topic prefix: the local stack uses none, a test run or a
benchmark grants its own prefix at start and revokes it at the end. The platform's layout
(its services' declarations) and its command line are in ``tpp_ops.acl``. aiokafka has no ACL
API yet: the requests are built with its protocol classes (CreateAcls / DeleteAcls /
DescribeAcls v1) and sent by ``tpp_plumbing.messaging.kafka_admin.send``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest
from tpp_contracts.topics import ALL as ALL_TOPICS

from tpp_plumbing.messaging.deadletter import SUFFIX
from tpp_plumbing.messaging.declaration import Declaration
from tpp_plumbing.messaging.kafka_admin import send
from tpp_plumbing.settings import KafkaSettings

#: The roles besides the services': the operators' tool and outside subscribers.
OPS, SUBSCRIBER = "ops", "subscriber"


class Resource(IntEnum):
    """Kafka's resource types (org.apache.kafka.common.resource.ResourceType)."""

    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class Pattern(IntEnum):
    """Kafka's pattern types (org.apache.kafka.common.resource.PatternType)."""

    ANY = 1
    MATCH = 2
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    """Kafka's ACL operations (org.apache.kafka.common.acl.AclOperation)."""

    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8


_RESOURCES = {int(r) for r in Resource}
_OPERATIONS = {int(o) for o in Operation}
ALLOW = 3  # AclPermissionType.ALLOW
ANY_PERMISSION = 1  # AclPermissionType.ANY


@dataclass(frozen=True, slots=True, order=True)
class Binding:
    """One ALLOW rule: ``principal`` may do ``operation`` on the resources matching."""

    resource: Resource
    name: str
    pattern: Pattern
    principal: str
    operation: Operation

    def __str__(self) -> str:
        return (
            f"{self.principal} {self.operation.name} {self.resource.name}"
            f" {self.pattern.name}:{self.name}"
        )

    def fields(self) -> tuple[int, str, int, str, str, int, int]:
        """The request fields: resource, name, pattern, principal, host, operation, ALLOW."""
        return (self.resource, self.name, self.pattern, self.principal, "*", self.operation, ALLOW)


def subscriber_group_prefix(name: str, prefix: str = "") -> str:
    """The consumer groups a subscriber principal ``name`` may use: ``<prefix><name>.*``."""
    return f"{prefix}{name}."


def layout(
    declarations: Sequence[Declaration], prefix: str, names: Mapping[str, str]
) -> list[Binding]:
    """Every binding the services ``declarations`` describe, the operators' tool and outside
    subscribers need under a topic prefix (``""`` for the stack's own).

    ``names`` maps roles (each service's principal, ``ops``, ``subscriber``) to user names; a
    role left out gets no binding.
    """
    users = {role: f"User:{name}" for role, name in names.items()}
    out: list[Binding] = []

    def allow(role: str, resource: Resource, name: str, pattern: Pattern, *ops: Operation) -> None:
        if role in users:
            out.extend(Binding(resource, name, pattern, users[role], op) for op in ops)

    read, write, describe = Operation.READ, Operation.WRITE, Operation.DESCRIBE
    topic, group = Resource.TOPIC, Resource.GROUP
    for declared in declarations:
        role, service = declared.principal, declared.service
        if declared.publishes:
            # Its own topics, present and future: registry.*; (an idempotent producer needs no
            # cluster-level IDEMPOTENT_WRITE since Kafka 3.0: WRITE on a topic implies it).
            allow(role, topic, f"{prefix}{service}.", Pattern.PREFIXED, write, describe)
        for consumed in declared.consumes:
            name = consumed.name
            allow(role, topic, f"{prefix}{name}", Pattern.LITERAL, read, describe)
            allow(role, topic, f"{prefix}{name}{SUFFIX}", Pattern.LITERAL, write, describe)
        if declared.consumes:
            # Its consumer group(s): `<prefix><group>` and any `<prefix><group>...`.
            allow(role, group, f"{prefix}{declared.group}", Pattern.PREFIXED, read, describe)
    # Outside subscribers: read the event topics (each by name: not their dead letters, not a
    # future topic before it is published here) and use their own groups; no WRITE anywhere.
    if SUBSCRIBER in names:
        for t in ALL_TOPICS:
            allow(SUBSCRIBER, topic, f"{prefix}{t.name}", Pattern.LITERAL, read, describe)
        own_groups = subscriber_group_prefix(names[SUBSCRIBER], prefix)
        allow(SUBSCRIBER, group, own_groups, Pattern.PREFIXED, read, describe)
    # Operators: read every topic and group, redrive (write) into any topic, move offsets.
    if prefix:
        allow(OPS, topic, prefix, Pattern.PREFIXED, read, write, describe)
        allow(OPS, group, prefix, Pattern.PREFIXED, read, describe, Operation.DELETE)
    else:
        allow(OPS, topic, "*", Pattern.LITERAL, read, write, describe)
        allow(OPS, group, "*", Pattern.LITERAL, read, describe, Operation.DELETE)
    return out


def _check(errors: Sequence[tuple[int, str | None]], what: str) -> None:
    failed = [(code, message) for code, message in errors if code]
    if failed:
        raise RuntimeError(f"{what} failed: {failed[:3]} ({len(failed)} error(s))")


async def grant(kafka: KafkaSettings, bindings: Sequence[Binding]) -> None:
    """Create ``bindings`` (creating an existing one changes nothing); ``kafka`` is an admin."""
    admin = AIOKafkaAdminClient(**kafka.client_options(), request_timeout_ms=10_000)
    await admin.start()
    try:
        responses = await asyncio.gather(
            *(send(admin, CreateAclsRequest(*b.fields())) for b in bindings)
        )
    finally:
        await admin.close()
    _check([tuple(r) for resp in responses for r in resp.creation_responses], "CreateAcls")


async def revoke(kafka: KafkaSettings, bindings: Sequence[Binding]) -> int:
    """Delete exactly ``bindings``; returns how many ACLs the broker removed."""
    admin = AIOKafkaAdminClient(**kafka.client_options(), request_timeout_ms=10_000)
    await admin.start()
    try:
        responses = await asyncio.gather(
            *(send(admin, DeleteAclsRequest(*b.fields())) for b in bindings)
        )
    finally:
        await admin.close()
    results = [r for resp in responses for r in resp.filter_responses]
    _check([(r[0], r[1]) for r in results], "DeleteAcls")
    return sum(len(r[2]) for r in results)


async def existing(kafka: KafkaSettings) -> list[Binding]:
    """Every ALLOW binding the cluster has (as an admin sees them)."""
    admin = AIOKafkaAdminClient(**kafka.client_options(), request_timeout_ms=10_000)
    await admin.start()
    try:
        response = await send(
            admin,
            DescribeAclsRequest(
                Resource.ANY, None, Pattern.ANY, None, None, Operation.ANY, ANY_PERMISSION
            ),
        )
    finally:
        await admin.close()
    _check([(response.error_code, response.error_message)], "DescribeAcls")
    return sorted(
        Binding(Resource(rtype), name, Pattern(ptype), principal, Operation(op))
        for rtype, name, ptype, acls in response.resources
        for principal, _host, op, permission in acls
        if permission == ALLOW and rtype in _RESOURCES and op in _OPERATIONS
    )
