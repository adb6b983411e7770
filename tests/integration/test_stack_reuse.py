"""deploy/stack.sh from a checkout that did not start the running stack (another TPP_STACK_DIR):
it finds the stack by its ports and uses it, never stops it, and refuses a port held by a
process that is not this env's PostgreSQL or Kafka before changing anything.

These run the script against the stack the tests use, read-only: the stack directory given
to the script is an empty temporary one, so nothing of the running stack is under it.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from tpp_testkit import Infrastructure

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STACK_SH = ROOT / "deploy" / "stack.sh"
PSQL = Path("/usr/lib/postgresql/15/bin/psql")


def env_file(path: Path, infrastructure: Infrastructure, **overrides: str) -> Path:
    """deploy/local.env with the endpoints and credentials these tests run against."""
    env: dict[str, str] = {}
    for line in (ROOT / "deploy" / "local.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    env["TPP_KAFKA_BOOTSTRAP"] = infrastructure.bootstrap
    env["TPP_PG_ADMIN_URL"] = infrastructure.admin_url
    kafka = infrastructure.kafka
    if kafka.username and kafka.password is not None:
        env["TPP_KAFKA_USERNAME"] = kafka.username
        env["TPP_KAFKA_PASSWORD"] = kafka.password.get_secret_value()
    env |= overrides
    path.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in env.items()))
    return path


def stack_sh(command: str, env: Path, stack_dir: Path) -> subprocess.CompletedProcess[str]:
    """``deploy/stack.sh <command>`` with this env file and stack directory."""
    return subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [str(STACK_SH), command],
        # Without the test run's own TPP_* variables: the script reads only the env file.
        env={k: v for k, v in os.environ.items() if not k.startswith("TPP_")}
        | {"TPP_STACK_ENV": str(env), "TPP_STACK_DIR": str(stack_dir)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def local_stack(infrastructure: Infrastructure) -> Infrastructure:
    """The stack the tests use, when it is a local one deploy/stack.sh could have started."""
    hosts = {
        infrastructure.bootstrap.rsplit(":", 1)[0],
        urlsplit(infrastructure.admin_url).hostname,
    }
    if hosts != {"127.0.0.1"} or not PSQL.exists():
        pytest.skip(f"not a local stack on 127.0.0.1 with {PSQL}: nothing to find by its ports")
    return infrastructure


def answers(infrastructure: Infrastructure) -> bool:
    """Both services of the stack still accept connections."""
    port = int(infrastructure.bootstrap.rsplit(":", 1)[1])
    pg_port = urlsplit(infrastructure.admin_url).port
    for p in (port, pg_port):
        with socket.socket() as s:
            s.settimeout(5)
            if s.connect_ex(("127.0.0.1", int(p or 0))) != 0:
                return False
    return True


def test_a_stack_started_elsewhere_is_found_by_its_ports_used_and_never_stopped(
    local_stack: Infrastructure, tmp_path: Path
) -> None:
    env = env_file(tmp_path / "local.env", local_stack)
    stack_dir = tmp_path / "stack"  # this checkout's stack: nothing ever ran here

    status = stack_sh("status", env, stack_dir)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "PostgreSQL on 127.0.0.1:" in status.stdout
    assert status.stdout.count("runs from another stack") == 2, status.stdout

    up = stack_sh("up", env, stack_dir)
    assert up.returncode == 0, up.stdout + up.stderr
    assert up.stdout.count("using it as it is") == 2, up.stdout
    assert not stack_dir.exists()  # no second cluster initialized, no broker formatted

    down = stack_sh("down", env, stack_dir)
    assert down.returncode == 0, down.stdout + down.stderr
    assert down.stdout.count("left running") == 2, down.stdout
    assert answers(local_stack)


@pytest.fixture
def not_postgres() -> Iterator[int]:
    """A port held by something that is not PostgreSQL: it closes every connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join()
        server.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_port_held_by_something_else_stops_up_before_it_changes_anything(
    local_stack: Infrastructure, tmp_path: Path, not_postgres: int
) -> None:
    env = env_file(
        tmp_path / "local.env",
        local_stack,
        TPP_PG_ADMIN_URL=f"postgresql://postgres:postgres@127.0.0.1:{not_postgres}/postgres",
        TPP_KAFKA_BOOTSTRAP=f"127.0.0.1:{free_port()}",
    )
    stack_dir = tmp_path / "stack"

    status = stack_sh("status", env, stack_dir)
    assert status.returncode == 3
    assert f"port {not_postgres} is taken by a process that does not accept" in status.stdout

    up = stack_sh("up", env, stack_dir)
    assert up.returncode == 1
    assert f"port {not_postgres} is taken by a process that does not accept" in up.stderr
    assert not (stack_dir / "pg").exists()  # refused before initializing a cluster
