"""Key management of trainees' personal data: new keys, status, rotation.

    python -m tpp_enrollment.keys new-key       a random key (for the ring or the hash secret)
    python -m tpp_enrollment.keys status        sealed values per key id
    python -m tpp_enrollment.keys rotate        re-encrypt every value under the newest key
                                                and hash every passport with the current secret

Settings come from the ``TPP_ENROLLMENT_*`` environment (``deploy/local.env`` locally).
Rotation: put the new key first in ``TPP_ENROLLMENT_PERSONAL_DATA_KEYS`` (keep the old ones),
restart the service (new values are sealed with the new key, old ones still open), run
``rotate`` (batches of rows, each in its own transaction, rows locked while rewritten; safe
while the service runs), check ``status`` shows only the new key, then drop the old keys.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from tpp_plumbing.db.engine import create_engine

from tpp_enrollment.config import Settings
from tpp_enrollment.personal import SEALED_FIELDS, PersonalData, new_key

app = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True)

_BATCH = text(
    "SELECT id, country, passport_hash, passport_number_sealed, email_sealed,"
    " birth_date_sealed FROM trainee"
    " WHERE passport_number_sealed IS NOT NULL AND id > :after"
    " ORDER BY id LIMIT :n FOR UPDATE"
)
_UPDATE = text(
    "UPDATE trainee SET passport_hash = :passport_hash,"
    " passport_number_sealed = :passport_number_sealed, email_sealed = :email_sealed,"
    " birth_date_sealed = :birth_date_sealed WHERE id = :id"
)
_BY_KEY = " UNION ALL ".join(
    f"SELECT '{column}' AS field,"
    f" convert_from(substring({column}_sealed FROM 3 FOR get_byte({column}_sealed, 1)), 'UTF8')"
    f" AS key_id FROM trainee WHERE {column}_sealed IS NOT NULL"
    for column in SEALED_FIELDS
)
_STATUS = text(
    f"SELECT field, key_id, count(*) AS n FROM ({_BY_KEY}) s GROUP BY 1, 2 ORDER BY 1, 2"
)


@dataclass
class Rotation:
    """What a rotation did."""

    rows: int = 0
    resealed: int = 0
    rehashed: int = 0


async def rotate(engine: AsyncEngine, personal: PersonalData, batch: int = 1000) -> Rotation:
    """Seal every personal value under the newest key and hash every passport again."""
    done = Rotation()
    after = uuid.UUID(int=0)
    while True:
        async with engine.begin() as conn:
            rows = (await conn.execute(_BATCH, {"after": after, "n": batch})).mappings().all()
            if not rows:
                return done
            changes: list[dict[str, Any]] = []
            for row in rows:
                new = _rotated(personal, row)
                if new is not None:
                    changes.append(new)
                    done.resealed += any(
                        new[f"{c}_sealed"] != row[f"{c}_sealed"] for c in SEALED_FIELDS
                    )
                    done.rehashed += new["passport_hash"] != row["passport_hash"]
            if changes:
                await conn.execute(_UPDATE, changes)
            done.rows += len(rows)
            after = rows[-1]["id"]


def _rotated(personal: PersonalData, row: Any) -> dict[str, Any] | None:
    """The row's new sealed values and hash; None when nothing changes."""
    trainee_id = row["id"]
    sealed = {
        f"{c}_sealed": personal.reseal(trainee_id, c, row[f"{c}_sealed"]) for c in SEALED_FIELDS
    }
    passport = personal.open(trainee_id, "passport_number", sealed["passport_number_sealed"])
    assert passport is not None
    passport_hash = personal.passport_hash(passport, row["country"])
    new = {"id": trainee_id, "passport_hash": passport_hash} | sealed
    unchanged = passport_hash == row["passport_hash"] and all(sealed[k] == row[k] for k in sealed)
    return None if unchanged else new


async def key_status(engine: AsyncEngine) -> list[tuple[str, str, int]]:
    """How many values of each field are sealed under each key id."""
    async with engine.connect() as conn:
        rows = await conn.execute(_STATUS)
        return [(r.field, r.key_id, int(r.n)) for r in rows]


def _engine() -> tuple[AsyncEngine, Settings]:
    settings = Settings()
    return create_engine(settings.database_url, pool_size=1), settings


@app.command("new-key")
def new_key_command() -> None:
    """Print a new random 256-bit key (base64url)."""
    typer.echo(new_key())


@app.command()
def status() -> None:
    """Sealed values per field and key id; the current key is the first of the ring."""

    async def run() -> None:
        engine, settings = _engine()
        try:
            current = settings.personal_data().keys.current
            typer.echo(f"current key: {current}")
            for field, key_id, n in await key_status(engine):
                mark = "" if key_id == current else "   (old key: run rotate)"
                typer.echo(f"{field:<16} {key_id:<32} {n:>10}{mark}")
        finally:
            await engine.dispose()

    asyncio.run(run())


@app.command("rotate")
def rotate_command(
    batch: Annotated[int, typer.Option(min=1, help="Rows per transaction.")] = 1000,
) -> None:
    """Re-encrypt every trainee's personal data under the newest key; hash passports again."""

    async def run() -> Rotation:
        engine, settings = _engine()
        try:
            return await rotate(engine, settings.personal_data(), batch)
        finally:
            await engine.dispose()

    done = asyncio.run(run())
    typer.echo(
        f"{done.rows} trainees read, {done.resealed} re-encrypted, {done.rehashed} re-hashed"
    )


if __name__ == "__main__":
    app()
