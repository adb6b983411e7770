"""Upgrade each service's database to its Alembic head, all in one Python process.

Equivalent to `uv run alembic -c services/<svc>/alembic.ini upgrade head` per service, but
imports SQLAlchemy and the drivers once: a warm `deploy/stack.sh up` stays about a second.
Each service's env.py reads its own `TPP_<SVC>_DATABASE_URL` (deploy/local.env).

    uv run python deploy/migrate.py [--wait SECONDS] [registry enrollment reporting]

`--wait` first waits, up to that long, until each database accepts a connection (refused
connections and "the database system is starting up" are retried): a container start
(docker-compose.yml) can reach PostgreSQL between its first-start init server, which
listens on the socket only, and the real one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("registry", "enrollment", "reporting")


async def wait_for_database(url: str, seconds: float) -> None:
    """Return once ``url`` (a SQLAlchemy URL) accepts a connection; raise the last error
    after ``seconds``."""
    import asyncpg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    deadline = time.monotonic() + seconds
    delay = 0.2
    while True:
        try:
            connection = await asyncpg.connect(dsn, timeout=5)
        except (OSError, asyncpg.CannotConnectNowError) as error:
            if time.monotonic() + delay > deadline:
                message = f"PostgreSQL did not answer in {seconds:g} s: {error}"
                raise TimeoutError(message) from error
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        else:
            await connection.close()
            return


def main(services: list[str], wait_s: float = 0.0) -> None:
    """Run `upgrade head` for each service that has an alembic.ini; skip the others."""
    for service in services or SERVICES:
        ini = ROOT / "services" / service / "alembic.ini"
        if not ini.is_file():
            print(f"[stack] no {ini.relative_to(ROOT)} yet: skipping {service} migrations")
            continue
        if wait_s > 0:
            url = os.environ[f"TPP_{service.upper()}_DATABASE_URL"]
            asyncio.run(wait_for_database(url, wait_s))
        # Imported late: before the first migration exists, alembic need not be installed.
        from alembic.config import main as alembic

        started = time.monotonic()
        alembic(argv=["-c", str(ini), "upgrade", "head"], prog="alembic")
        print(f"[stack] {'migrated ' + service:<34} {time.monotonic() - started:6.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("services", nargs="*", help=f"default: {' '.join(SERVICES)}")
    args = parser.parse_args()
    main(args.services, args.wait)
