"""Kafka admin requests aiokafka's admin client lacks, sent with its protocol classes.

aiokafka's admin client has only the legacy AlterConfigs, which replaces every dynamic config
of a topic (an operator's own settings would be lost); its protocol classes carry the
incremental request (KIP-339, IncrementalAlterConfigs v0), as they carry the ACL requests
(``tpp_plumbing.messaging.acl``).
"""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResourceType
from aiokafka.errors import for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int8, Int16, Int32, Schema, String


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


async def set_topic_configs(admin: AIOKafkaAdminClient, configs: dict[str, dict[str, str]]) -> None:
    """Set the given configs of each topic, leaving its other configs as they are."""
    # A private attribute, as in tpp_plumbing.messaging.acl: pinned by uv.lock, covered by the
    # tests.
    client = admin._client
    response = await client.send(client.get_random_node(), _IncrementalAlterConfigsRequest(configs))
    failed = [
        f"{name}: {for_code(code).__name__} {message or ''}".strip()
        for code, message, _, name in response.responses
        if code
    ]
    if failed:
        raise RuntimeError(f"cannot alter topic configs: {'; '.join(failed)}")
