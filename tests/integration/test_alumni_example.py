"""The example subscriber (examples/alumni) as a partner would run it: installed from the
built tpp-contracts wheel into its own environment, passing its own tests on the real Kafka and
PostgreSQL as the read-only subscriber principal."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from tpp_plumbing.db.throwaway import create_throwaway
from tpp_plumbing.settings import KafkaSettings
from tpp_testkit import ROOT, Infrastructure, subscriber_of, topics_under

pytestmark = pytest.mark.integration
EXAMPLE = ROOT / "examples" / "alumni"


def _run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - uv and the example's own python, arguments of ours
        [str(a) for a in args], capture_output=True, text=True, timeout=600, env=env, check=False
    )


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"{done.args}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


async def test_the_alumni_example_installs_from_the_wheel_and_passes_its_tests(
    infrastructure: Infrastructure, run_id: str, tmp_path: Path
) -> None:
    # Topics of its own: the run's topics hold what other tests published (completions in
    # Kenya and Nigeria among them), which a roster read from the beginning would count.
    async with (
        topics_under(infrastructure, f"{run_id}.alumni-{uuid.uuid4().hex[:6]}.") as topics,
        subscriber_of(infrastructure, topics) as subscriber,
    ):
        await _install_and_run(infrastructure, subscriber, run_id, tmp_path)


async def _install_and_run(
    infrastructure: Infrastructure, subscriber: KafkaSettings, run_id: str, tmp_path: Path
) -> None:
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    _ok(
        await asyncio.to_thread(
            _run, "uv", "build", "--package", "tpp-contracts", "--wheel", "-o", dist
        )
    )
    [wheel] = dist.glob("tpp_contracts-*.whl")
    _ok(await asyncio.to_thread(_run, "uv", "venv", "-q", "--python", sys.executable, venv))
    install = ("uv", "pip", "install", "-q", "--python", venv, "--no-sources", wheel)
    example = ("-e", EXAMPLE, "--group", f"{EXAMPLE / 'pyproject.toml'}:dev")
    _ok(await asyncio.to_thread(_run, *install, *example))

    database = f"alumni_{run_id}"
    admin = await asyncpg.connect(infrastructure.admin_url)
    try:
        owner = make_url(infrastructure.admin_url).username or "postgres"
        await create_throwaway(admin, database, owner)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TPP_", "ALUMNI_"))}
        env |= {
            "ALUMNI_KAFKA_BOOTSTRAP": subscriber.bootstrap,
            "ALUMNI_KAFKA_SECURITY_PROTOCOL": subscriber.security_protocol,
            "ALUMNI_TOPIC_PREFIX": subscriber.topic_prefix,
            "ALUMNI_GROUP_ID": f"{subscriber.topic_prefix}{subscriber.username}.alumni",
            "ALUMNI_DATABASE_URL": make_url(infrastructure.admin_url)
            .set(database=database)
            .render_as_string(hide_password=False),
            "ALUMNI_TEST_PRODUCER_USERNAME": infrastructure.kafka.username or "",
            "ALUMNI_TEST_PRODUCER_PASSWORD": (
                infrastructure.kafka.password.get_secret_value()
                if infrastructure.kafka.password
                else ""
            ),
        }
        if subscriber.username and subscriber.password:
            env["ALUMNI_KAFKA_USERNAME"] = subscriber.username
            env["ALUMNI_KAFKA_PASSWORD"] = subscriber.password.get_secret_value()
        python = venv / "bin" / "python"
        tests = ("-m", "pytest", EXAMPLE / "tests", "-q", "-p", "no:cacheprovider", "-rs")
        out = _ok(await asyncio.to_thread(_run, python, *tests, env=env))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
    assert "skipped" not in out, out
    assert "3 passed" in out, out
