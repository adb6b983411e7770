"""Throwaway databases that a later run can clean up: the tests' and the benchmarks' scratch
databases, each saying in its comment which process (on which host) made it."""

from __future__ import annotations

import os
import re
import socket

import asyncpg

_THROWAWAY = "throwaway database of process "


async def create_throwaway(conn: asyncpg.Connection, name: str, owner: str) -> None:
    """Create a database that says, in its comment, which process (on which host) made it,
    so that a later run can drop it if that process ended without dropping it."""
    await conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
    note = f"{_THROWAWAY}{os.getpid()} on {socket.gethostname()}".replace("'", "''")
    await conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{note}'")


async def drop_abandoned(conn: asyncpg.Connection) -> list[str]:
    """Drop the throwaway databases (``create_throwaway``) whose process on this host has
    ended: a test or benchmark run that was killed leaves its databases behind, and the
    autovacuum launcher keeps visiting each. Returns their names."""
    rows = await conn.fetch(
        "SELECT datname, shobj_description(oid, 'pg_database') AS note FROM pg_database"
        " WHERE shobj_description(oid, 'pg_database') LIKE $1",
        _THROWAWAY + "%",
    )
    dropped = []
    for row in rows:
        made = re.fullmatch(re.escape(_THROWAWAY) + r"(\d+) on (.+)", row["note"])
        if made is None or made[2] != socket.gethostname() or _alive(int(made[1])):
            continue
        await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')
        dropped.append(row["datname"])
    return dropped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
