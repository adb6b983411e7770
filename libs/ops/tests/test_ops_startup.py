"""``tpp-ops token`` starts without the platform's heavy clients (it took seconds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HEAVY = ("aiokafka", "asyncpg", "httpx", "fastapi", "sqlalchemy", "rich")


def test_issuing_a_development_token_imports_no_kafka_database_or_web_client() -> None:
    script = (
        "import json, sys\n"
        "from typer.testing import CliRunner\n"
        "from tpp_ops import cli as ops\n"
        "result = CliRunner().invoke(ops.app, ['token', '--role', 'viewer'])\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & set(sys.argv[1:]))\n"
        "print(json.dumps([result.exit_code, result.output.strip(), loaded]))\n"
    )
    env = os.environ | {"TPP_AUTH_DEV_SECRET": "x" * 32}
    done = subprocess.run(  # noqa: S603  # our own interpreter and a fixed script
        [sys.executable, "-c", script, *HEAVY],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    exit_code, token, loaded = json.loads(done.stdout.splitlines()[-1])
    assert (exit_code, token.count(".")) == (0, 2)  # a JWT
    assert loaded == []
