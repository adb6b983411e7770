"""Upgrade each service's database to its Alembic head, all in one Python process.

Equivalent to `uv run alembic -c services/<svc>/alembic.ini upgrade head` per service, but
imports SQLAlchemy and the drivers once: a warm `deploy/stack.sh up` stays about a second.
Each service's env.py reads its own `TPP_<SVC>_DATABASE_URL` (deploy/local.env).

    uv run python deploy/migrate.py [registry enrollment reporting]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("registry", "enrollment", "reporting")


def main(services: list[str]) -> None:
    """Run `upgrade head` for each service that has an alembic.ini; skip the others."""
    for service in services or SERVICES:
        ini = ROOT / "services" / service / "alembic.ini"
        if not ini.is_file():
            print(f"[stack] no {ini.relative_to(ROOT)} yet: skipping {service} migrations")
            continue
        # Imported late: before the first migration exists, alembic need not be installed.
        from alembic.config import main as alembic

        started = time.monotonic()
        alembic(argv=["-c", str(ini), "upgrade", "head"], prog="alembic")
        print(f"[stack] {'migrated ' + service:<34} {time.monotonic() - started:6.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
