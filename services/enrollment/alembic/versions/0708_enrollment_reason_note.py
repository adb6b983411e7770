"""enrollment: a reason is a category; the decider's own words move to ``note``, which events
never carry (they may name the trainee)

Revision ID: 0708_reason_note
Revises: 0707_audit_target
Create Date: 2026-11-29 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0708_reason_note"
down_revision: str | None = "0707_audit_target"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The categories of tpp_contracts.vocab.RejectionReason and WithdrawalReason as of this
# revision (a migration does not follow later edits of the code).
_REJECTIONS = ("not_eligible", "incomplete_application", "not_selected", "country_quota", "other")
_WITHDRAWALS = ("schedule_conflict", "visa_or_travel", "employer_request", "personal", "other")


def upgrade() -> None:
    op.add_column("enrollment", sa.Column("note", sa.Text(), nullable=True))
    # Words typed before categories existed become the note; the reason becomes ``other``.
    for status, codes in (("rejected", _REJECTIONS), ("withdrawn", _WITHDRAWALS)):
        op.execute(
            sa.text(
                "UPDATE enrollment SET note = reason, reason = 'other'"
                " WHERE status = :status AND reason IS NOT NULL AND NOT reason = ANY(:codes)"
            ).bindparams(status=status, codes=list(codes))
        )


def downgrade() -> None:
    op.execute(sa.text("UPDATE enrollment SET reason = note WHERE note IS NOT NULL"))
    op.drop_column("enrollment", "note")
