"""The fault-injection suite's own stack: PostgreSQL, Kafka and the three services.

Nothing here touches the shared stack of ``deploy/local.env``: the suite derives an env file
with other ports from it (credentials and anything else stay as they are), runs
``deploy/stack.sh`` on it with its own data folder (``.chaos/stack``), and serves each
service as ``deploy/platform.sh`` does (``tpp_plumbing.serve``: two uvicorn workers, each
with its HTTP server, outbox relay and consumers), so that ``kill -9`` of a service's process
group takes down its supervisor and both workers at once.

The cluster form (``cluster=True``, in ``.chaos-cluster/``) runs three Kafka nodes
(``TPP_KAFKA_BROKERS=3``: replication 3, ``min.insync.replicas`` 2) and ``replicas``
independent instances of every service, each its own process group on its own port, named and
numbered as deploy/platform.sh does (replica r > 0 is ``<service>-<r>`` on the service's port
+ 10 r), as separate pods would be; ``static_membership`` gives each replica's consumers its
name as their static group member name (TPP_STATIC_MEMBERSHIP=1 of platform.sh).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tpp_ops.settings import REPLICA_PORT_STEP
from tpp_plumbing.settings import KafkaSettings

from tests.chaos.env_file import SLOT, derive_env, parse_env
from tests.chaos.processes import alive, kill_group, port_open, wait_closed

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("registry", "enrollment", "reporting")
#: Workers per service, as deploy/platform.sh serves them by default.
WORKERS = 2
#: Kafka nodes of the cluster form.
CLUSTER_NODES = 3
PG_BIN = Path("/usr/lib/postgresql/15/bin")

#: Settings the suite gives its services: faster lag readings and recovery, no tracing
#: export, and a small message limit so that an "oversized" poison fits in a Kafka record.
MAX_MESSAGE_BYTES = 262_144
SERVICE_TUNING = {
    "MONITOR_INTERVAL_S": "1",
    "CONSUMER_BACKOFF_MAX_S": "5",
    "CONSUMER_MAX_MESSAGE_BYTES": str(MAX_MESSAGE_BYTES),
    "LOG_LEVEL": "WARNING",
}


def log(message: str) -> None:
    """One progress line (flushed: CI shows it as it happens)."""
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Service:
    """One service process (one replica: its supervisor and workers, a process group)."""

    name: str  # "enrollment" for the first replica, "enrollment-1" for the second...
    port: int
    app: str = ""  # the service it serves ("enrollment")
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0
    restarts: int = 0

    def __post_init__(self) -> None:
        self.app = self.app or self.name

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class ChaosStack:
    """The suite's PostgreSQL, Kafka and services, under ``ROOT/.chaos``."""

    cluster: bool = False
    replicas: int = 1
    workers: int = WORKERS
    static_membership: bool = False
    home: Path = field(default_factory=Path)
    env: dict[str, str] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.home == Path():
            folder = ".chaos-cluster" if self.cluster else ".chaos"
            self.home = ROOT / (f"{folder}-{SLOT}" if SLOT else folder)
        self.home.mkdir(parents=True, exist_ok=True)
        self.env_file = self.home / "local.env"
        self.stack_dir = self.home / "stack"
        self.logs = self.home / "logs"
        self.logs.mkdir(exist_ok=True)
        self.nodes = CLUSTER_NODES if self.cluster else 1
        local = (ROOT / "deploy" / "local.env").read_text()
        self.env_file.write_text(derive_env(local, nodes=self.nodes))
        self.env = parse_env(self.env_file.read_text())
        for app in SERVICES:
            first = int(self.env[f"TPP_{app.upper()}_PORT"])
            for replica in range(self.replicas):
                name = app if replica == 0 else f"{app}-{replica}"
                port = first + REPLICA_PORT_STEP * replica
                self.services[name] = Service(name, port, app)

    def replicas_of(self, app: str) -> list[Service]:
        """Every replica of one service, the first first."""
        return [s for s in self.services.values() if s.app == app]

    # ------------------------------------------------------------------ environment

    @property
    def bootstrap(self) -> str:
        return self.env["TPP_KAFKA_BOOTSTRAP"]

    @property
    def kafka(self) -> KafkaSettings:
        """This stack's Kafka as its admin (TPP_KAFKA_* of the env file)."""
        return KafkaSettings.from_env(self.env)

    def database_url(self, service: str) -> str:
        """The plain libpq URL of a service's database."""
        url = self.env[f"TPP_{service.upper()}_DATABASE_URL"]
        return url.replace("postgresql+asyncpg://", "postgresql://", 1)

    def process_env(self) -> dict[str, str]:
        """This process's environment plus the stack's env file and the services' tuning."""
        env = dict(os.environ)
        env.update(self.env)
        env.update({"TPP_STACK_ENV": str(self.env_file), "TPP_STACK_DIR": str(self.stack_dir)})
        env["OTEL_SDK_DISABLED"] = "true"
        # The suite's load comes from one operator token, faster than any person.
        env.setdefault("TPP_HTTP_RATE_LIMIT_COMMANDS", "")
        env.setdefault("TPP_HTTP_RATE_LIMIT_IMPORTS", "")
        for name in SERVICES:
            for key, value in SERVICE_TUNING.items():
                env.setdefault(f"TPP_{name.upper()}_{key}", value)
        return env

    def apply_to_this_process(self) -> None:
        """Make plumbing helpers (KafkaSettings, ops) in this process talk to this stack."""
        os.environ.update(self.env)

    # ------------------------------------------------------------------ infrastructure

    def stack_sh(self, *command: str) -> None:
        """``deploy/stack.sh <command>`` on this stack's env file and data folder.

        Its output goes to logs/stack.log; when it fails, the end of that log is printed too,
        so that a CI run (which keeps no files) shows why."""
        stack_log = self.logs / "stack.log"
        with stack_log.open("ab") as out:
            start = out.tell()
            try:
                subprocess.run(  # noqa: S603 - our own script
                    [str(ROOT / "deploy" / "stack.sh"), *command],
                    env=self.process_env(),
                    check=True,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            except subprocess.CalledProcessError:
                with stack_log.open("rb") as written:
                    written.seek(start)
                    tail = written.read().decode(errors="replace").splitlines()[-40:]
                log(f"stack.sh {' '.join(command)} failed; the end of {stack_log}:")
                for line in tail:
                    print(f"    {line}", file=sys.stderr, flush=True)
                raise

    def up(self, *, fresh: bool = True) -> None:
        """Start PostgreSQL and Kafka (wiped first when ``fresh``), topics, migrations."""
        if fresh:
            log("resetting the chaos stack (its own data folder)")
            self.stack_sh("reset")
        log(f"starting the chaos stack: Kafka {self.bootstrap}, PostgreSQL port {self.pg_port}")
        self.stack_sh("up")

    def down(self) -> None:
        """Stop the services, Kafka and PostgreSQL of this stack."""
        for service in self.services.values():
            self.stop(service.name)
        self.stack_sh("down")

    @property
    def pg_port(self) -> int:
        return int(self.env["TPP_PG_ADMIN_URL"].rsplit(":", 1)[1].split("/", 1)[0])

    def kafka_pid(self, node: int = 1) -> int:
        """A broker's pid (the file stack.sh writes; a cluster's node N in kafka/node-N/)."""
        folder = self.stack_dir / "kafka"
        if self.nodes > 1:
            folder = folder / f"node-{node}"
        return int((folder / "kafka.pid").read_text().strip())

    def kill_node(self, node: int) -> None:
        """``kill -9`` one node of the cluster (broker and controller) and wait for its end."""
        pid = self.kafka_pid(node)
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.1)

    def start_missing_nodes(self) -> None:
        """``deploy/stack.sh up kafka``: starts the nodes not running (then topics, ACLs).

        stack.sh gives a node 90 s to open its port; on this loaded machine a node that
        rejoins the cluster took 79 s once, and the admin requests after its start (topics,
        ACLs) can meet a broker still loading its logs. The node it started keeps running
        when it gives up, so ``up kafka`` is asked again (twice at most): it finds the node
        running and redoes only the idempotent steps."""
        for attempt in range(1, 4):
            try:
                self.stack_sh("up", "kafka")
                return
            except subprocess.CalledProcessError:
                if attempt == 3:
                    raise
                log(f"stack.sh up kafka failed (try {attempt} of 3); trying again")
                time.sleep(2)

    def restart_broker(self, *, hard: bool) -> None:
        """Kill the broker (SIGKILL when ``hard``, else SIGTERM) and start it again."""
        pid = self.kafka_pid()
        os.kill(pid, signal.SIGKILL if hard else signal.SIGTERM)
        deadline = time.monotonic() + 60
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
            while alive(pid):
                time.sleep(0.1)
        self.start_missing_nodes()

    def restart_postgres(self) -> None:
        """``pg_ctl restart -m immediate`` as the cluster's owner (like stack.sh runs it)."""
        data = self.stack_dir / "pg" / "data"
        pg_log = self.stack_dir / "pg" / "log" / "postgres.log"
        command = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(pg_log)]
        command += ["-m", "immediate", "-w", "-t", "60", "-s", "restart"]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(  # noqa: S603 - pg_ctl of our own cluster
            command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    # ------------------------------------------------------------------ services

    def start(self, name: str) -> None:
        """Start one service replica (the app factory under ``tpp_plumbing.serve``, as
        deploy/platform.sh does; two workers unless told otherwise)."""
        service = self.services[name]
        self._stop_leftover(name)
        if port_open(service.port):
            raise RuntimeError(f"port {service.port} for {name} is taken by another process")
        env = self.process_env()
        env[f"TPP_{service.app.upper()}_PORT"] = str(service.port)
        if self.static_membership:
            env[f"TPP_{service.app.upper()}_CONSUMER_INSTANCE_ID"] = name
        out = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
        service.process = subprocess.Popen(  # noqa: S603 - the server of this checkout
            [
                sys.executable,
                "-m",
                "tpp_plumbing.serve",
                f"tpp_{service.app}.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(service.port),
                "--workers",
                str(self.workers),
                "--no-access-log",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        out.close()
        (self.home / f"{name}.pid").write_text(str(service.process.pid))

    def _stop_leftover(self, name: str) -> None:
        """Kill a service this suite left running before (a run stopped with --keep or killed)."""
        pid_file = self.home / f"{name}.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text())
        pid_file.unlink()
        current = self.services[name].process
        if current is not None and current.pid == pid:
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        app = self.services[name].app
        if f"tpp_{app}.app:create_app".encode() in cmdline and b"tpp_plumbing.serve" in cmdline:
            kill_group(pid)
            while alive(pid):
                time.sleep(0.1)
            wait_closed(self.services[name].port)

    def kill(self, name: str) -> None:
        """``kill -9`` one service: its supervisor and both workers (their process group), HTTP
        servers, relays and consumers together. (Killing the supervisor alone would stop the
        workers gracefully: they get SIGTERM when it dies.)"""
        service = self.services[name]
        assert service.process is not None
        kill_group(service.process.pid)
        service.process.wait()
        wait_closed(service.port)
        service.kills += 1

    def stop(self, name: str) -> None:
        """SIGTERM one service (its supervisor passes it on to the workers) and wait; SIGKILL
        to the whole group after 30 s."""
        service = self.services[name]
        process = service.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            kill_group(process.pid)
            process.wait()
        wait_closed(service.port)
        service.restarts += 1

    def wait_ready(self, name: str, timeout_s: float = 90.0) -> float:
        """Wait for ``/health/ready``; returns the seconds it took."""
        service = self.services[name]
        started = time.monotonic()
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if service.process is not None and service.process.poll() is not None:
                raise RuntimeError(f"{name} exited; see {self.logs / (name + '.log')}")
            try:
                if httpx.get(f"{service.url}/health/ready", timeout=3).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{name} not ready after {timeout_s:.0f} s")
