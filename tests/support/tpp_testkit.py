"""Pytest fixtures for the whole platform on real Kafka and PostgreSQL (a pytest plugin).

Registered by the root conftest.py; a dev-only kit that knows the three services, kept out of
the production library.

Where they come from, in order: the TPP_* environment variables when set; testcontainers
when a Docker engine answers; otherwise the local stack (deploy/stack.sh up), whose
settings are in deploy/local.env. Each test run isolates itself: its own databases
(suffix) and its own topics (prefix), created here and dropped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import subprocess
import sys
import threading
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from tpp_ops import acl as platform_acl
from tpp_plumbing.db.throwaway import create_throwaway, drop_abandoned
from tpp_plumbing.messaging import acl, kafka_admin, topic_reconcile, topics
from tpp_plumbing.settings import HttpSettings, KafkaSettings
from tpp_plumbing.web.auth import Role, dev_headers

if TYPE_CHECKING:
    from testcontainers.community.postgres import PostgresContainer
    from testcontainers.core.container import DockerContainer

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("registry", "enrollment", "reporting")
T = TypeVar("T")


def _local_env() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (ROOT / "deploy" / "local.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key] = value
    return values


# Services and dev_token() verify and sign with the local development secret unless the
# environment names another (deploy/test.sh sources deploy/local.env; a bare pytest does not);
# likewise the enrollment service's development keys of personal data (apps and migrations).
_DEV_KEYS = ("TPP_AUTH_", "TPP_ENROLLMENT_PERSONAL_DATA_KEYS", "TPP_ENROLLMENT_PASSPORT_HASH_KEY")
for _key, _value in _local_env().items():
    if _key.startswith(_DEV_KEYS):
        os.environ.setdefault(_key, _value)

# Tests send their commands with one token, faster than any person: no per-principal rate
# limits, unless a test asks for them (tests/integration/test_input_limits.py does).
os.environ.setdefault("TPP_HTTP_RATE_LIMIT_COMMANDS", "")
os.environ.setdefault("TPP_HTTP_RATE_LIMIT_IMPORTS", "")


#: A test still running after this many seconds has every thread's stack and every asyncio
#: task's stack printed (captured with the test's output, shown when the global timeout of
#: pyproject.toml fails it), so that a hang in CI says where it waits.
STALL_DUMP_S = float(os.environ.get("TPP_TEST_STALL_DUMP_S", "240"))


#: How long one step of a session fixture's teardown may take (services stop in 20 s).
TEARDOWN_S = 60.0


async def bounded_teardown(step: Awaitable[Any], what: str, seconds: float = TEARDOWN_S) -> None:
    """Await a teardown step for at most ``seconds``; past that, print where everything waits
    and go on: the tests have run, and a stuck close must not hang the run (the stacks say
    what to fix)."""
    try:
        await asyncio.wait_for(step, seconds)
    except TimeoutError:
        _dump_stall(f"teardown: {what}", seconds)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None]:
    timer = threading.Timer(STALL_DUMP_S, _dump_stall, args=(item.nodeid,))
    timer.daemon = True
    timer.start()
    try:
        return (yield)
    finally:
        timer.cancel()


def _dump_stall(nodeid: str, after_s: float = STALL_DUMP_S) -> None:
    """Every thread's stack and every pending asyncio task's stack (diagnostics only)."""
    out = sys.stderr
    print(f"\n=== {nodeid} still running after {after_s:g} s ===", file=out)
    names = {t.ident: t.name for t in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        print(f"--- thread {names.get(ident, ident)}", file=out)
        print("".join(traceback.format_stack(frame)), file=out)
    loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop)]
    # A loop running a thread's frames (pytest-asyncio's runner) may not be among the objects
    # the collector tracks: find it through the frames' ``self``.
    for frame in sys._current_frames().values():
        while frame is not None:
            owner = frame.f_locals.get("self")
            if isinstance(owner, asyncio.AbstractEventLoop) and owner not in loops:
                loops.append(owner)
            frame = frame.f_back  # type: ignore[assignment]
    for loop in loops:
        if loop.is_closed():
            continue
        for _ in range(3):  # the loop's task set may change while it is read
            try:
                tasks = list(asyncio.all_tasks(loop))
                break
            except RuntimeError:
                tasks = []
        print(f"--- {len(tasks)} asyncio tasks of {loop!r}", file=out)
        for task in tasks:
            with contextlib.suppress(Exception):
                task.print_stack(file=out)
    out.flush()


def auth_headers(role: Role | str, organizer_id: uuid.UUID | str | None = None) -> dict[str, str]:
    """``Authorization: Bearer`` with a development token of ``role`` (and organizer)."""
    return dev_headers(role, organizer_id)


def _docker_available() -> bool:
    if not (os.environ.get("DOCKER_HOST") or Path("/var/run/docker.sock").exists()):
        return False
    try:
        import docker

        client = docker.from_env(timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except Exception:
        return False
    return True


KAFKA_IMAGE = "apache/kafka:4.1.1"
POSTGRES_IMAGE = "postgres:15"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        port: int = probe.getsockname()[1]
        return port


def kafka_container(host: str, host_port: int) -> DockerContainer:
    """apache/kafka, one KRaft node, PLAINTEXT without ACLs, published on ``host_port``.

    testcontainers' KafkaContainer drives the Confluent image's scripts (its ``with_kraft``
    refuses apache/kafka's version tag); this one is the image's own configuration. The
    advertised address must be known before the start, hence a host port chosen here."""
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    return (
        DockerContainer(KAFKA_IMAGE)
        .with_envs(
            CLUSTER_ID="IvKuiTz5QnSSnUlvpOqXJw",
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
            KAFKA_LISTENERS="PLAINTEXT://:9092,CONTROLLER://:9093",
            KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://{host}:{host_port}",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_INTER_BROKER_LISTENER_NAME="PLAINTEXT",
            # Topics come from the contracts (the fixtures create them), never from a typo.
            KAFKA_AUTO_CREATE_TOPICS_ENABLE="false",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR="1",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
        )
        .with_bind_ports(9092, host_port)
        .waiting_for(LogMessageWaitStrategy("Kafka Server started").with_startup_timeout(120))
    )


def postgres_container() -> PostgresContainer:
    """postgres as the local stack runs it (connections for every service's pool); ready
    once psql answers over TCP."""
    from testcontainers.community.postgres import PostgresContainer

    container = PostgresContainer(POSTGRES_IMAGE, driver=None)
    return container.with_command("postgres -c max_connections=300")


@dataclass(frozen=True)
class Infrastructure:
    """Where Kafka and PostgreSQL are, and how to reach each service's database."""

    bootstrap: str
    admin_url: str  # libpq URL of a superuser
    service_urls: dict[str, str]  # SQLAlchemy URLs of each service's own database
    #: Kafka as its admin (a super user where the broker enforces ACLs), without a prefix.
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    #: Each role's own Kafka user and password (``tpp_ops.acl.ROLES``); empty when Kafka is open.
    principals: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def acls(self) -> bool:
        """The broker authenticates clients and enforces the platform's ACLs."""
        return bool(self.principals)

    def as_role(self, role: str, kafka: KafkaSettings | None = None) -> KafkaSettings:
        """``kafka`` (default: the admin's) as a role's own principal, where Kafka has them."""
        base = kafka or self.kafka
        if role not in self.principals:
            return base
        return base.as_principal(*self.principals[role])

    def kafka_env(self, kafka: KafkaSettings | None = None) -> dict[str, str]:
        """``TPP_KAFKA_*`` variables for a subprocess (admin principal) plus each role's."""
        k = kafka or self.kafka
        env = {
            "TPP_KAFKA_BOOTSTRAP": k.bootstrap,
            "TPP_KAFKA_TOPIC_PREFIX": k.topic_prefix,
            "TPP_KAFKA_SECURITY_PROTOCOL": k.security_protocol,
            "TPP_KAFKA_SASL_MECHANISM": k.sasl_mechanism,
        }
        if k.username and k.password is not None:
            env |= {
                "TPP_KAFKA_USERNAME": k.username,
                "TPP_KAFKA_PASSWORD": k.password.get_secret_value(),
            }
        for role, (user, password) in self.principals.items():
            env[f"TPP_{role.upper()}_KAFKA_USERNAME"] = user
            env[f"TPP_{role.upper()}_KAFKA_PASSWORD"] = password
        return env

    async def grant(self, prefix: str) -> None:
        """Let each role use the topics and groups under ``prefix`` as on the stack."""
        if self.acls:
            names = {role: user for role, (user, _) in self.principals.items()}
            await acl.grant(self.kafka, platform_acl.layout(prefix, names))

    async def revoke(self, prefix: str) -> None:
        """Remove what :meth:`grant` created for ``prefix``."""
        if self.acls:
            names = {role: user for role, (user, _) in self.principals.items()}
            await acl.revoke(self.kafka, platform_acl.layout(prefix, names))


def _kafka_from(source: dict[str, str]) -> tuple[KafkaSettings, dict[str, tuple[str, str]]]:
    """The admin's Kafka settings and the roles' principals, from ``TPP_*`` variables."""
    kafka = KafkaSettings.from_env(source)
    principals: dict[str, tuple[str, str]] = {}
    if kafka.uses_sasl:
        for role in platform_acl.ROLES:
            user = source.get(f"TPP_{role.upper()}_KAFKA_USERNAME")
            password = source.get(f"TPP_{role.upper()}_KAFKA_PASSWORD")
            if user and password:
                principals[role] = (user, password)
    return kafka, principals


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[Infrastructure]:
    """Real Kafka and PostgreSQL (environment, testcontainers, or the local stack)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("TPP_")}
    if "TPP_KAFKA_BOOTSTRAP" in env and "TPP_PG_ADMIN_URL" in env:
        source = env
    elif _docker_available():
        from testcontainers.core.docker_client import DockerClient

        host = DockerClient().host()
        with (
            kafka_container(host, _free_port()) as container,
            postgres_container() as pg,
        ):
            admin = make_url(pg.get_connection_url(driver=None))
            urls = {
                s: admin.set(drivername="postgresql+asyncpg").render_as_string(False)
                for s in SERVICES
            }
            bootstrap = container.env["KAFKA_ADVERTISED_LISTENERS"].removeprefix("PLAINTEXT://")
            yield Infrastructure(
                bootstrap,
                admin.render_as_string(False),
                urls,
                kafka=KafkaSettings(bootstrap=bootstrap),
            )
            return
    else:
        source = _local_env()
    kafka, principals = _kafka_from(source)
    print(
        f"\nintegration infrastructure: Kafka {kafka.bootstrap} ({kafka.security_protocol},"
        f" {'services as their own principals' if principals else 'no ACLs'})"
    )
    yield Infrastructure(
        bootstrap=kafka.bootstrap,
        admin_url=source["TPP_PG_ADMIN_URL"],
        service_urls={s: source[f"TPP_{s.upper()}_DATABASE_URL"] for s in SERVICES},
        kafka=kafka,
        principals=principals,
    )


@pytest.fixture(scope="session")
def run_id() -> str:
    """A short id naming this run's databases and topics."""
    return f"t{uuid.uuid4().hex[:10]}"


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


@dataclass
class ThrowawayDatabases:
    """Creates throwaway, migrated databases owned by a service's role."""

    infra: Infrastructure
    run_id: str
    created: list[str]

    async def create(self, service: str, label: str = "") -> str:
        """A new database migrated to head for ``service``; returns its SQLAlchemy URL.

        The first one drops what killed runs left (``drop_abandoned``)."""
        name = f"{service}_{self.run_id}{label}"
        owner = make_url(self.infra.service_urls[service]).username
        assert owner is not None
        conn = await asyncpg.connect(self.infra.admin_url)
        try:
            if not self.created:
                dropped = await drop_abandoned(conn)
                if dropped:
                    print(f"\ndropped {len(dropped)} databases of ended runs: {', '.join(dropped)}")
            await create_throwaway(conn, name, owner)
        finally:
            await conn.close()
        self.created.append(name)
        url = _with_database(self.infra.service_urls[service], name)
        await asyncio.to_thread(_migrate, service, url)
        return url

    async def drop_all(self) -> None:
        """Drop every database this run created."""
        conn = await asyncpg.connect(self.infra.admin_url)
        try:
            for name in self.created:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def run_alembic(service: str, url: str, *command: str) -> None:
    """Run ``alembic <command>`` on ``service``'s migrations against the database at ``url``."""
    env = os.environ | {f"TPP_{service.upper()}_DATABASE_URL": url}
    subprocess.run(  # noqa: S603 - fixed command, our own config file
        [
            sys.executable,
            "-m",
            "alembic",
            "-c",
            str(ROOT / "services" / service / "alembic.ini"),
            *command,
        ],
        check=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=300,
    )


def _migrate(service: str, url: str) -> None:
    run_alembic(service, url, "upgrade", "head")


@pytest.fixture(scope="session")
async def databases(
    infrastructure: Infrastructure, run_id: str
) -> AsyncIterator[ThrowawayDatabases]:
    """This run's throwaway databases, dropped at the end."""
    dbs = ThrowawayDatabases(infrastructure, run_id, [])
    yield dbs
    await bounded_teardown(dbs.drop_all(), "dropping the run's databases")


@contextlib.asynccontextmanager
async def topics_under(infrastructure: Infrastructure, prefix: str) -> AsyncIterator[KafkaSettings]:
    """Kafka settings (admin) for ``prefix``: every platform topic (and its ``.dlq`` twin)
    exists and each role's principal may use them as on the stack; all deleted at the end."""
    settings = infrastructure.kafka.with_prefix(prefix)
    admin = AIOKafkaAdminClient(**settings.client_options())
    await admin.start()
    # Each topic and its dead-letter twin, laid out as deploy/stack.sh lays them out.
    specs = topics.plan(topics.TopicSettings(), settings.topic_prefix)
    names = [spec.name for spec in specs]
    try:
        await topic_reconcile.reconcile(admin, specs)
        await infrastructure.grant(settings.topic_prefix)
        yield settings
    finally:
        await bounded_teardown(infrastructure.revoke(settings.topic_prefix), "revoking ACLs")
        await bounded_teardown(admin.delete_topics(names), "deleting the run's topics")
        await bounded_teardown(admin.close(), "the Kafka admin client")


@pytest.fixture(scope="session")
async def kafka(infrastructure: Infrastructure, run_id: str) -> AsyncIterator[KafkaSettings]:
    """Kafka settings (admin) with this run's topic prefix; the topics (and ``.dlq`` twins)
    exist and each role's principal may use them as on the stack (see
    ``tpp_ops.acl``)."""
    async with topics_under(infrastructure, f"{run_id}.") as settings:
        yield settings


@pytest.fixture
async def subscriber(
    infrastructure: Infrastructure, kafka: KafkaSettings
) -> AsyncIterator[KafkaSettings]:
    """``kafka`` as a new outside subscriber (see :func:`subscriber_of`)."""
    async with subscriber_of(infrastructure, kafka) as settings:
        yield settings


@contextlib.asynccontextmanager
async def subscriber_of(
    infrastructure: Infrastructure, kafka: KafkaSettings
) -> AsyncIterator[KafkaSettings]:
    """``kafka`` as a new outside subscriber (``acl`` role ``subscriber``: reads the event
    topics, commits in groups ``<user>.*``, writes nothing), created on the running broker
    and removed at the end. Its user name is ``kafka.username``; an open broker has none."""
    if not infrastructure.acls:
        yield kafka
        return
    user, password = f"subscriber-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    bindings = platform_acl.layout(kafka.topic_prefix, {"subscriber": user})
    await kafka_admin.set_scram_users(infrastructure.kafka, {user: password})
    await acl.grant(infrastructure.kafka, bindings)
    try:
        yield kafka.as_principal(user, password)
    finally:
        await bounded_teardown(acl.revoke(infrastructure.kafka, bindings), "subscriber ACLs")
        await bounded_teardown(
            kafka_admin.set_scram_users(infrastructure.kafka, {user: ""}, delete=True),
            "subscriber user",
        )


@dataclass
class Service:
    """A service running in this process: its app, HTTP client (as an operator) and runtime."""

    app: FastAPI
    http: httpx.AsyncClient
    _clients: dict[tuple[str, str | None], httpx.AsyncClient] = field(default_factory=dict)

    @property
    def runtime(self) -> Any:
        return self.app.state.runtime

    def as_role(
        self, role: Role | str | None, organizer_id: uuid.UUID | str | None = None
    ) -> httpx.AsyncClient:
        """A client of this service sending a token of ``role`` (None: no token at all)."""
        key = (str(role) if role is not None else "", str(organizer_id) if organizer_id else None)
        client = self._clients.get(key)
        if client is None:
            headers = auth_headers(role, organizer_id) if role is not None else {}
            client = service_client(self.app, headers=headers, base_url=str(self.http.base_url))
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        """Close every client of this service."""
        for client in (self.http, *self._clients.values()):
            await client.aclose()


def service_client(
    app: FastAPI,
    *,
    role: Role | str | None = Role.OPERATOR,
    headers: dict[str, str] | None = None,
    base_url: str = "http://service",
    **kwargs: Any,
) -> httpx.AsyncClient:
    """An in-process client of ``app`` carrying a development token of ``role``."""
    if headers is None:
        headers = auth_headers(role) if role is not None else {}
    transport = httpx.ASGITransport(app=app, **kwargs)
    return httpx.AsyncClient(transport=transport, base_url=base_url, headers=headers)


def free_port() -> int:
    """A loopback TCP port nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def serving(app: Any, http: HttpSettings | None = None) -> AsyncIterator[str]:
    """An (already started) app over a real loopback socket, under uvicorn with the edge's
    protocol as ``tpp_plumbing.serve`` runs it (``http``: its limits); yields the base URL."""
    import uvicorn
    from tpp_plumbing.web.edge import protocol_class

    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        log_level="warning",
        access_log=False,
        http=protocol_class(http or HttpSettings()),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not server.started:
        if task.done() or loop.time() > deadline:
            raise RuntimeError("uvicorn did not start")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


class _CommonSettings(TypedDict):
    """Settings every in-process service of the test platform shares."""

    relay_poll_interval_s: float
    consumer_max_message_bytes: int


@dataclass
class Platform:
    """The three services, started against this run's databases and topics."""

    registry: Service
    enrollment: Service
    reporting: Service
    kafka: KafkaSettings
    urls: dict[str, str]


@contextlib.asynccontextmanager
async def running_platform(
    infrastructure: Infrastructure,
    databases: ThrowawayDatabases,
    kafka: KafkaSettings,
    label: str = "",
) -> AsyncIterator[Platform]:
    """The three services in process, on new databases (named with ``label``) and ``kafka``;
    each service runs as its own Kafka principal where the broker has them."""
    from tpp_enrollment.app import create_app as enrollment_app
    from tpp_enrollment.config import Settings as EnrollmentSettings
    from tpp_registry.app import create_app as registry_app
    from tpp_registry.config import Settings as RegistrySettings
    from tpp_reporting.app import create_app as reporting_app
    from tpp_reporting.config import Settings as ReportingSettings

    urls = {s: await databases.create(s, label) for s in SERVICES}
    # Messages over 256 KiB are poison here, so that a test can produce an oversized one.
    common: _CommonSettings = {
        "relay_poll_interval_s": 0.5,
        "consumer_max_message_bytes": 256 * 1024,
    }

    def own(role: str) -> dict[str, Any]:
        if role not in infrastructure.principals:
            return {"kafka": kafka}
        user, password = infrastructure.principals[role]
        return {"kafka": kafka, "kafka_username": user, "kafka_password": password}

    apps = {
        "registry": registry_app(
            RegistrySettings(database_url=urls["registry"], **own("registry"), **common)
        ),
        "enrollment": enrollment_app(
            EnrollmentSettings(database_url=urls["enrollment"], **own("enrollment"), **common)
        ),
        "reporting": reporting_app(
            ReportingSettings(database_url=urls["reporting"], **own("reporting"), **common)
        ),
    }
    services: dict[str, Service] = {}
    for name, app in apps.items():
        await app.state.runtime.start()
        services[name] = Service(app, service_client(app, base_url=f"http://{name}"))
    try:
        yield Platform(kafka=kafka, urls=urls, **services)
    finally:
        for name, service in services.items():
            await bounded_teardown(service.aclose(), f"{name}'s HTTP client")
            await bounded_teardown(service.app.state.runtime.stop(), f"{name}'s runtime")


@pytest.fixture(scope="session")
async def platform(
    infrastructure: Infrastructure, databases: ThrowawayDatabases, kafka: KafkaSettings
) -> AsyncIterator[Platform]:
    """The whole platform, in process, on real Kafka and PostgreSQL; each service runs as its
    own Kafka principal where the broker has them (``Platform.kafka`` is the admin's)."""
    async with running_platform(infrastructure, databases, kafka) as running:
        yield running


async def _eventually(
    check: Callable[[], Awaitable[T | None]], *, within: float = 20.0, what: str = "condition"
) -> T:
    """Poll ``check`` until it returns a truthy value or the deadline passes (then fail)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    last: T | None = None
    while loop.time() < deadline:
        try:  # a check that itself hangs fails at the deadline too
            last = await asyncio.wait_for(check(), max(deadline - loop.time(), 0.1))
        except TimeoutError:
            pytest.fail(f"{what}: a check was still waiting after {within}s")
        if last:
            return last
        await asyncio.sleep(0.1)
    pytest.fail(f"{what} not reached within {within}s (last: {last!r})")


@pytest.fixture
def eventually() -> Callable[..., Awaitable[Any]]:
    """``await eventually(check, within=..., what=...)``: poll until truthy, else fail."""
    return _eventually


#: Fixed years some tests use for sessions whose figures they do not check (2031, 2032):
#: never handed out, so no report a test checks counts them.
_FIXED_YEARS = frozenset({2031, 2032})
_taken_years: set[int] = set(_FIXED_YEARS)


def fresh_year(*, neighbours: bool = True) -> int:
    """A program year no other test of this run uses (the year's figures are the test's).

    With ``neighbours`` (tests that check reports, which compare a year with the one before)
    the years either side are reserved too, drawn first from 2001-2069; without (tests that
    only need their own rows, e.g. the registry's) the year alone, drawn first from 2070-2098,
    so that the two kinds do not fragment each other's years. Year 2100 is left to the
    operations tests, which use it as a fixed year. Fails, never loops, when none is left.
    """
    first, then = (range(2001, 2070), range(2070, 2099))
    if not neighbours:
        first, then = then, first
    for band in (first, then):
        free = [year for year in band if not (_span(year) if neighbours else {year}) & _taken_years]
        if free:
            year = free[0]  # first fit: packs the years (every run has its own databases)
            _taken_years.update(_span(year) if neighbours else {year})
            return year
    raise RuntimeError(f"no program year left for another test ({len(_taken_years)} taken)")


def _span(year: int) -> set[int]:
    return {year - 1, year, year + 1}
