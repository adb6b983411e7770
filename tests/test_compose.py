"""docker-compose.yml agrees with the local stack: ports, environment, databases and roles."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("registry", "enrollment", "reporting")
# Variables every service reads besides its own TPP_<SERVICE>_* ones.
SHARED_PREFIXES = ("TPP_KAFKA_", "TPP_AUTH_")
# The Kafka admin's credentials: for the topics job, never for a service.
ADMIN_ONLY = {"TPP_KAFKA_USERNAME", "TPP_KAFKA_PASSWORD"}


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file, without comments and blank lines."""
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


@pytest.fixture(scope="module")
def local_env() -> dict[str, str]:
    return read_env_file(ROOT / "deploy" / "local.env")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def init_sql() -> str:
    return (ROOT / "deploy" / "postgres" / "init.sql").read_text()


def service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    definition = compose["services"][name]
    assert isinstance(definition, dict)
    return definition


def environment(definition: dict[str, Any]) -> dict[str, str]:
    """A service's environment, from either the mapping or the list form."""
    raw = definition.get("environment") or {}
    if isinstance(raw, list):
        pairs = (str(item).partition("=") for item in raw)
        return {key: value for key, _, value in pairs}
    return {key: "" if value is None else str(value) for key, value in raw.items()}


def published_ports(definition: dict[str, Any]) -> dict[int, int | None]:
    """Container port -> host port (None: any free one), from the short
    ("[ip:][host]:container") or long syntax."""
    ports: dict[int, int | None] = {}
    for entry in definition.get("ports", []):
        if isinstance(entry, dict):
            published = entry.get("published")
            ports[int(entry["target"])] = int(published) if published else None
        else:
            *_, host, container = str(entry).split(":")
            ports[int(container.split("/")[0])] = int(host) if host else None
    return ports


def command_option(definition: dict[str, Any], option: str) -> str:
    command = definition["command"]
    assert isinstance(command, list), "commands are exec-form lists"
    return str(command[command.index(option) + 1])


def init_sql_databases(sql: str) -> dict[str, str]:
    """Database -> owner, from the CREATE DATABASE statements of init.sql."""
    return dict(re.findall(r"CREATE DATABASE (\w+) OWNER (\w+)", sql))


def init_sql_passwords(sql: str) -> dict[str, str]:
    """Role -> password, from the ALTER ROLE statements of init.sql."""
    return dict(re.findall(r"ALTER ROLE (\w+) [^;]*PASSWORD '([^']*)'", sql))


def test_platform_services_are_defined(compose: dict[str, Any]) -> None:
    assert {"kafka", "postgres", "topics", "migrate", *SERVICES} <= set(compose["services"])


@pytest.mark.parametrize("name", SERVICES)
def test_service_port_matches_local_env_and_replicas_can_scale(
    compose: dict[str, Any], local_env: dict[str, str], name: str
) -> None:
    """`docker compose up --scale <service>=2` needs a free host port for each replica."""
    definition = service(compose, name)
    port = int(local_env[f"TPP_{name.upper()}_PORT"])
    listens_on = int(command_option(definition, "--port"))

    assert listens_on == port
    assert published_ports(definition) == {listens_on: None}
    assert all(str(entry).startswith("127.0.0.1:") for entry in definition["ports"])
    assert int(environment(definition)[f"TPP_{name.upper()}_PORT"]) == listens_on


@pytest.mark.parametrize("name", SERVICES)
def test_service_is_one_process_served_as_elsewhere(compose: dict[str, Any], name: str) -> None:
    """The project's own supervisor (as deploy/platform.sh), one worker: a container is a
    replica, as a Kubernetes pod is."""
    command = service(compose, name)["command"]

    assert command[:4] == ["python", "-m", "tpp_plumbing.serve", f"tpp_{name}.app:create_app"]
    assert command_option(service(compose, name), "--workers") == "1"
    assert "uvicorn" not in command


@pytest.mark.parametrize("name", SERVICES)
def test_service_healthcheck_is_readiness_on_its_port(compose: dict[str, Any], name: str) -> None:
    """Healthy means serving: /health/ready (lag is /health/lag's matter, not health)."""
    definition = service(compose, name)
    probe = " ".join(definition["healthcheck"]["test"])

    assert f"http://127.0.0.1:{command_option(definition, '--port')}/health/ready" in probe


def test_postgres_is_healthy_only_once_it_answers_over_tcp(compose: dict[str, Any]) -> None:
    """The image's first-start init server listens on the Unix socket only: pg_isready
    without a host passes against it, and the migrate job, over TCP, is refused."""
    probe = service(compose, "postgres")["healthcheck"]["test"]

    assert probe[:2] == ["CMD", "pg_isready"]
    assert probe[probe.index("-h") + 1] == "127.0.0.1"


def test_migrate_job_retries_until_postgres_answers(compose: dict[str, Any]) -> None:
    migrate = service(compose, "migrate")

    assert float(command_option(migrate, "--wait")) >= 30
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", SERVICES)
def test_service_gets_every_variable_it_reads_locally(
    compose: dict[str, Any], local_env: dict[str, str], name: str
) -> None:
    own = f"TPP_{name.upper()}_"
    used = {key for key in local_env if key.startswith((own, *SHARED_PREFIXES))} - ADMIN_ONLY

    assert used, f"deploy/local.env has no {own}* variables"
    assert used <= set(environment(service(compose, name)))


@pytest.mark.parametrize("name", SERVICES)
def test_service_database_matches_init_sql_and_local_env(
    compose: dict[str, Any], local_env: dict[str, str], init_sql: str, name: str
) -> None:
    key = f"TPP_{name.upper()}_DATABASE_URL"
    in_compose = urlsplit(environment(service(compose, name))[key])
    in_migrate = urlsplit(environment(service(compose, "migrate"))[key])
    local = urlsplit(local_env[key])
    owners = init_sql_databases(init_sql)
    passwords = init_sql_passwords(init_sql)
    postgres_ports = published_ports(service(compose, "postgres"))

    for found in (in_compose, in_migrate, local):
        database = found.path.lstrip("/")
        assert owners[database] == found.username == name
        assert passwords[name] == found.password
    assert in_compose == in_migrate
    assert (in_compose.hostname, in_compose.port) == ("postgres", 5432)
    assert (local.hostname, local.port) == ("127.0.0.1", postgres_ports[5432])


def test_init_sql_has_exactly_the_service_databases(init_sql: str) -> None:
    assert init_sql_databases(init_sql) == {name: name for name in SERVICES}


def test_postgres_runs_init_sql_and_matches_admin_url(
    compose: dict[str, Any], local_env: dict[str, str]
) -> None:
    postgres = service(compose, "postgres")
    admin = urlsplit(local_env["TPP_PG_ADMIN_URL"])

    assert any(
        str(volume).startswith("./deploy/postgres/init.sql:/docker-entrypoint-initdb.d/")
        for volume in postgres["volumes"]
    )
    assert environment(postgres)["POSTGRES_PASSWORD"] == admin.password
    assert admin.username == "postgres"
    assert published_ports(postgres) == {5432: admin.port}


def test_kafka_is_reachable_where_local_env_says(
    compose: dict[str, Any], local_env: dict[str, str]
) -> None:
    kafka = service(compose, "kafka")
    host, _, port = local_env["TPP_KAFKA_BOOTSTRAP"].partition(":")
    kafka_env = environment(kafka)

    assert published_ports(kafka) == {int(port): int(port)}
    assert f"EXTERNAL://{host}:{port}" in kafka_env["KAFKA_ADVERTISED_LISTENERS"]
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_jobs_run_before_the_services(compose: dict[str, Any]) -> None:
    assert "TPP_KAFKA_BOOTSTRAP" in environment(service(compose, "topics"))
    for name in SERVICES:
        depends_on = service(compose, name)["depends_on"]
        for job in ("topics", "migrate"):
            assert depends_on[job]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", SERVICES)
def test_service_runs_as_its_own_kafka_principal_as_locally(
    compose: dict[str, Any], local_env: dict[str, str], name: str
) -> None:
    env = environment(service(compose, name))
    own = f"TPP_{name.upper()}_KAFKA_"

    assert not ADMIN_ONLY & set(env), "a service never gets the Kafka admin's credentials"
    assert env[own + "USERNAME"] == local_env[own + "USERNAME"] == name
    assert env[own + "PASSWORD"] == local_env[own + "PASSWORD"]
    assert env["TPP_KAFKA_SECURITY_PROTOCOL"] == local_env["TPP_KAFKA_SECURITY_PROTOCOL"]


def test_kafka_denies_by_default_and_knows_every_principal(
    compose: dict[str, Any], local_env: dict[str, str]
) -> None:
    kafka_env = environment(service(compose, "kafka"))
    users_job = "\n".join(service(compose, "kafka-users")["command"])
    topics_env = environment(service(compose, "topics"))

    assert kafka_env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert kafka_env["KAFKA_AUTHORIZER_CLASS_NAME"].endswith("StandardAuthorizer")
    assert "PLAINTEXT:" not in kafka_env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].replace(
        "SASL_PLAINTEXT", ""
    ), "no listener without authentication"
    admin = local_env["TPP_KAFKA_USERNAME"]
    assert kafka_env["KAFKA_SUPER_USERS"] == f"User:{admin}"
    assert topics_env["TPP_KAFKA_USERNAME"] == admin
    assert topics_env["TPP_KAFKA_PASSWORD"] == local_env["TPP_KAFKA_PASSWORD"]
    roles = ("REGISTRY", "ENROLLMENT", "REPORTING", "OPS")
    for user, password in [
        (admin, local_env["TPP_KAFKA_PASSWORD"]),
        *(
            (local_env[f"TPP_{r}_KAFKA_USERNAME"], local_env[f"TPP_{r}_KAFKA_PASSWORD"])
            for r in roles
        ),
    ]:
        assert f"{user}:{password}" in users_job
