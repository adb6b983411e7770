"""Pytest fixtures for the whole platform on real Kafka and PostgreSQL (a pytest plugin).

Registered by the root conftest.py; a dev-only kit that knows the three services, kept out of
the production library. This module is its public surface: the fixtures and the hook are
registered from here, the helpers are imported from here.

Where they come from, in order: the TPP_* environment variables when set; testcontainers
when a Docker engine answers; otherwise the local stack (deploy/stack.sh up), whose
settings are in deploy/local.env. Each test run isolates itself: its own databases
(suffix) and its own topics (prefix), created here and dropped at the end.
"""

from tpp_testkit.clients import Service, auth_headers, free_port, service_client, serving
from tpp_testkit.containers import KAFKA_IMAGE, POSTGRES_IMAGE, kafka_container, postgres_container
from tpp_testkit.databases import ThrowawayDatabases, databases, run_alembic
from tpp_testkit.environment import ROOT, SERVICES
from tpp_testkit.in_process import Platform, platform, running_platform
from tpp_testkit.infrastructure import Infrastructure, infrastructure, run_id
from tpp_testkit.stalls import STALL_DUMP_S, TEARDOWN_S, bounded_teardown, pytest_runtest_protocol
from tpp_testkit.topics import kafka, subscriber, subscriber_of, topics_under
from tpp_testkit.waiting import eventually
from tpp_testkit.years import fresh_year

__all__ = [
    "KAFKA_IMAGE",
    "POSTGRES_IMAGE",
    "ROOT",
    "SERVICES",
    "STALL_DUMP_S",
    "TEARDOWN_S",
    "Infrastructure",
    "Platform",
    "Service",
    "ThrowawayDatabases",
    "auth_headers",
    "bounded_teardown",
    "databases",
    "eventually",
    "free_port",
    "fresh_year",
    "infrastructure",
    "kafka",
    "kafka_container",
    "platform",
    "postgres_container",
    "pytest_runtest_protocol",
    "run_alembic",
    "run_id",
    "running_platform",
    "service_client",
    "serving",
    "subscriber",
    "subscriber_of",
    "topics_under",
]
