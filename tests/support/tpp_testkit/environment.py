"""Where the repository is, the services it holds, and the development settings tests use."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SERVICES = ("registry", "enrollment", "reporting")


def local_env() -> dict[str, str]:
    """The settings of deploy/local.env (the local stack and its development secrets)."""
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
for _key, _value in local_env().items():
    if _key.startswith(_DEV_KEYS):
        os.environ.setdefault(_key, _value)

# Tests send their commands with one token, faster than any person: no per-principal rate
# limits, unless a test asks for them (tests/integration/test_input_limits.py does).
os.environ.setdefault("TPP_HTTP_RATE_LIMIT_COMMANDS", "")
os.environ.setdefault("TPP_HTTP_RATE_LIMIT_IMPORTS", "")
