"""personal data at rest: passport numbers, emails and birth dates encrypted, passports
matched by keyed hash, erasure

Existing rows are encrypted and hashed here, with the keys of the service's settings
(TPP_ENROLLMENT_PERSONAL_DATA_KEYS and TPP_ENROLLMENT_PASSPORT_HASH_KEY must be set when the
trainee table has rows); then the plaintext columns are dropped.

Revision ID: 0501
Revises: 0003
Create Date: 2026-11-28 05:30:00
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from tpp_enrollment.personal import PersonalData

revision: str = "0501"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000
KEYS_ENV = "TPP_ENROLLMENT_PERSONAL_DATA_KEYS"
HASH_ENV = "TPP_ENROLLMENT_PASSPORT_HASH_KEY"


def _personal_data() -> PersonalData:

    missing = [name for name in (KEYS_ENV, HASH_ENV) if not os.environ.get(name)]
    if missing:
        raise RuntimeError(
            f"the trainee table has rows to encrypt: set {' and '.join(missing)}"
            " (deploy/local.env has development keys)"
        )
    return PersonalData.from_config(os.environ[KEYS_ENV], os.environ[HASH_ENV])


def upgrade() -> None:
    for column in ("passport_hash", "passport_number_sealed", "email_sealed", "birth_date_sealed"):
        op.add_column("trainee", sa.Column(column, sa.LargeBinary(), nullable=True))
    op.add_column("trainee", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.alter_column("trainee", "full_name", existing_type=sa.Text(), nullable=True)

    bind = op.get_bind()
    if bind.scalar(sa.text("SELECT EXISTS (SELECT FROM trainee)")):
        personal = _personal_data()
        last = None
        while True:
            rows = bind.execute(
                sa.text(
                    "SELECT id, passport_number, country, email, birth_date FROM trainee"
                    " WHERE CAST(:last AS uuid) IS NULL OR id > CAST(:last AS uuid)"
                    " ORDER BY id LIMIT :n"
                ),
                {"last": last, "n": BATCH},
            ).all()
            if not rows:
                break
            bind.execute(
                sa.text(
                    "UPDATE trainee SET passport_hash = :passport_hash,"
                    " passport_number_sealed = :passport_number_sealed,"
                    " email_sealed = :email_sealed, birth_date_sealed = :birth_date_sealed"
                    " WHERE id = :id"
                ),
                [
                    {"id": r.id}
                    | personal.seal_trainee(
                        r.id, r.passport_number, r.country, r.email, r.birth_date
                    )
                    for r in rows
                ],
            )
            last = rows[-1].id

    op.drop_constraint("uq_trainee_passport_country", "trainee", type_="unique")
    op.drop_column("trainee", "passport_number")
    op.drop_column("trainee", "email")
    op.drop_column("trainee", "birth_date")
    op.create_index("uq_trainee_passport_hash", "trainee", ["passport_hash"], unique=True)


def downgrade() -> None:
    """Back to plaintext columns (the keys must be set); erased trainees get a placeholder
    passport number, since the old schema requires one."""
    op.add_column("trainee", sa.Column("passport_number", sa.Text(), nullable=True))
    op.add_column("trainee", sa.Column("email", sa.Text(), nullable=True))
    op.add_column("trainee", sa.Column("birth_date", sa.Date(), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT id, passport_number_sealed, email_sealed, birth_date_sealed FROM trainee"
            " WHERE passport_number_sealed IS NOT NULL"
        )
    ).all()
    if rows:
        personal = _personal_data()
        bind.execute(
            sa.text(
                "UPDATE trainee SET passport_number = :p, email = :e,"
                " birth_date = CAST(:b AS date) WHERE id = :id"
            ),
            [
                {
                    "id": r.id,
                    "p": personal.open(r.id, "passport_number", r.passport_number_sealed),
                    "e": personal.open(r.id, "email", r.email_sealed),
                    "b": personal.open(r.id, "birth_date", r.birth_date_sealed),
                }
                for r in rows
            ],
        )
    bind.execute(
        sa.text(
            "UPDATE trainee SET passport_number = 'ERASED' || replace(CAST(id AS text), '-', ''),"
            " full_name = coalesce(full_name, '') WHERE passport_number IS NULL"
        )
    )
    op.drop_index("uq_trainee_passport_hash", table_name="trainee")
    op.alter_column("trainee", "passport_number", existing_type=sa.Text(), nullable=False)
    op.alter_column("trainee", "full_name", existing_type=sa.Text(), nullable=False)
    op.create_unique_constraint(
        "uq_trainee_passport_country", "trainee", ["passport_number", "country"]
    )
    for column in ("passport_hash", "passport_number_sealed", "email_sealed", "birth_date_sealed"):
        op.drop_column("trainee", column)
    op.drop_column("trainee", "erased_at")
