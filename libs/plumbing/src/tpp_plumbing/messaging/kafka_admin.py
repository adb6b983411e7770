"""Kafka admin requests aiokafka's admin client lacks, sent with its protocol classes.

aiokafka's admin client has only the legacy AlterConfigs, which replaces every dynamic config
of a topic (an operator's own settings would be lost): ``set_topic_configs`` sends the
incremental request (KIP-339, IncrementalAlterConfigs v0). ``set_scram_users`` adds or removes
SCRAM users (KIP-554, AlterUserScramCredentials v0). ``send`` is how these and the ACL
requests (``tpp_plumbing.messaging.acl``) reach the broker.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResourceType
from aiokafka.errors import for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Array,
    Boolean,
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    String,
    TaggedFields,
)

from tpp_plumbing.settings import KafkaSettings


class _IncrementalAlterConfigsResponseV0(Response):  # type: ignore[misc]  # aiokafka has no type hints
    API_KEY = 44
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "responses",
            Array(
                ("error_code", Int16),
                ("error_message", String("utf-8")),
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
            ),
        ),
    )


class _IncrementalAlterConfigsRequestV0(RequestStruct):  # type: ignore[misc]  # aiokafka has no type hints
    API_KEY = 44
    API_VERSION = 0
    RESPONSE_TYPE = _IncrementalAlterConfigsResponseV0
    SCHEMA = Schema(
        (
            "resources",
            Array(
                ("resource_type", Int8),
                ("resource_name", String("utf-8")),
                (
                    "configs",
                    Array(
                        ("name", String("utf-8")),
                        ("config_operation", Int8),
                        ("value", String("utf-8")),
                    ),
                ),
            ),
        ),
        ("validate_only", Boolean),
    )


class _IncrementalAlterConfigsRequest(Request[_IncrementalAlterConfigsRequestV0]):  # type: ignore[misc]  # aiokafka has no type hints
    API_KEY = 44
    _SET = 0

    def __init__(self, configs: dict[str, dict[str, str]]) -> None:
        self._resources = [
            (int(ConfigResourceType.TOPIC), topic, [(k, self._SET, v) for k, v in values.items()])
            for topic, values in configs.items()
        ]

    def build(
        self, request_struct_class: type[_IncrementalAlterConfigsRequestV0]
    ) -> _IncrementalAlterConfigsRequestV0:
        return request_struct_class(self._resources, False)


async def send(admin: AIOKafkaAdminClient, request: Any) -> Any:
    """Send ``request`` through the admin client's own request path (version negotiation,
    SASL), which it has no public method for."""
    # A private attribute, pinned by uv.lock and covered by the tests.
    client = admin._client
    return await client.send(client.get_random_node(), request)


async def set_topic_configs(admin: AIOKafkaAdminClient, configs: dict[str, dict[str, str]]) -> None:
    """Set the given configs of each topic, leaving its other configs as they are."""
    response = await send(admin, _IncrementalAlterConfigsRequest(configs))
    failed = [
        f"{name}: {for_code(code).__name__} {message or ''}".strip()
        for code, message, _, name in response.responses
        if code
    ]
    if failed:
        raise RuntimeError(f"cannot alter topic configs: {'; '.join(failed)}")


class _AlterUserScramCredentialsResponse(Response):  # type: ignore[misc]  # aiokafka untyped here
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _AlterUserScramCredentialsStruct(RequestStruct):  # type: ignore[misc]  # as above
    # KIP-554, AlterUserScramCredentials v0: flexible encoding (compact fields, tagged fields).
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = _AlterUserScramCredentialsResponse
    SCHEMA = Schema(
        (
            "deletions",
            CompactArray(
                ("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields)
            ),
        ),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _AlterUserScramCredentials(Request[_AlterUserScramCredentialsStruct]):  # type: ignore[misc]  # as above
    API_KEY = 51

    def __init__(self, deletions: list[Any], upsertions: list[Any]) -> None:
        self._deletions = deletions
        self._upsertions = upsertions

    def build(
        self, request_struct_class: type[_AlterUserScramCredentialsStruct]
    ) -> _AlterUserScramCredentialsStruct:
        return request_struct_class(self._deletions, self._upsertions, {})


_SCRAM_SHA_512 = 2  # org.apache.kafka.clients.admin.ScramMechanism
_SCRAM_ITERATIONS = 4096


async def set_scram_users(
    kafka: KafkaSettings, users: Mapping[str, str], *, delete: bool = False
) -> None:
    """Create (or set the password of) SCRAM-SHA-512 users on a running broker; with
    ``delete``, remove them (the passwords are then ignored). ``kafka`` is an admin.

    What ``kafka-configs --alter --entity-type users --add-config SCRAM-SHA-512=[...]`` does,
    without a JVM: for test runs and tools that add a principal to a broker already up.
    """
    deletions: list[tuple[Any, ...]] = []
    upsertions: list[tuple[Any, ...]] = []
    for name, password in users.items():
        if delete:
            deletions.append((name, _SCRAM_SHA_512, {}))
            continue
        salt = secrets.token_bytes(32)
        salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _SCRAM_ITERATIONS)
        upsertions.append((name, _SCRAM_SHA_512, _SCRAM_ITERATIONS, salt, salted, {}))
    admin = AIOKafkaAdminClient(**kafka.client_options(), request_timeout_ms=10_000)
    await admin.start()
    try:
        response = await send(admin, _AlterUserScramCredentials(deletions, upsertions))
    finally:
        await admin.close()
    failed = [(code, message) for _user, code, message, _tags in response.results if code]
    if failed:
        raise RuntimeError(f"AlterScram failed: {failed[:3]} ({len(failed)} error(s))")
