"""reporting projections: evaluations, follow-ups, organizers, plans, erasures, state, commitments

Revision ID: 0101
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0101"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("session_fact", sa.Column("title", sa.Text(), server_default="", nullable=False))
    op.alter_column("enrollment_fact", "trainee_id", existing_type=sa.UUID(), nullable=True)
    op.create_table(
        "evaluation_fact",
        sa.Column("evaluation_id", sa.UUID(), nullable=False),
        sa.Column("enrollment_id", sa.UUID(), nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("evaluation_id", name=op.f("pk_evaluation_fact")),
    )
    op.create_index(op.f("ix_evaluation_fact_session_id"), "evaluation_fact", ["session_id"])
    op.create_table(
        "follow_up_fact",
        sa.Column("follow_up_id", sa.UUID(), nullable=False),
        sa.Column("enrollment_id", sa.UUID(), nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("followed_up_on", sa.Date(), nullable=False),
        sa.Column("channel", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("follow_up_id", name=op.f("pk_follow_up_fact")),
    )
    op.create_index(op.f("ix_follow_up_fact_enrollment_id"), "follow_up_fact", ["enrollment_id"])
    op.create_index(op.f("ix_follow_up_fact_session_id"), "follow_up_fact", ["session_id"])
    op.create_table(
        "organizer_dim",
        sa.Column("organizer_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("country", sa.Text(), nullable=False),
        sa.Column("province", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("organizer_id", name=op.f("pk_organizer_dim")),
    )
    op.create_table(
        "plan_fact",
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("planned_sessions", sa.Integer(), nullable=False),
        sa.Column("planned_overseas_sessions", sa.Integer(), nullable=True),
        sa.Column("budget", sa.Numeric(), nullable=True),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_plan_fact")),
    )
    op.create_table(
        "trainee_erased",
        sa.Column("trainee_id", sa.UUID(), nullable=False),
        sa.PrimaryKeyConstraint("trainee_id", name=op.f("pk_trainee_erased")),
    )
    op.create_table(
        "projection_state",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("events_applied", sa.BigInteger(), nullable=False),
        sa.Column("last_event_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projection_state")),
    )
    op.execute("INSERT INTO projection_state (id, version, events_applied) VALUES (1, 0, 0)")
    op.create_table(
        "consumer_position",
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition", name=op.f("pk_consumer_position")),
    )
    op.create_table(
        "commitment",
        sa.Column("commitment_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("target", sa.BigInteger(), nullable=False),
        sa.Column("start_year", sa.Integer(), nullable=False),
        sa.Column("end_year", sa.Integer(), nullable=False),
        sa.Column("field", sa.Text(), nullable=True),
        sa.Column("region", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("commitment_id", name=op.f("pk_commitment")),
    )


def downgrade() -> None:
    op.drop_table("commitment")
    op.drop_table("consumer_position")
    op.drop_table("projection_state")
    op.drop_table("trainee_erased")
    op.drop_table("plan_fact")
    op.drop_table("organizer_dim")
    op.drop_index(op.f("ix_follow_up_fact_session_id"), table_name="follow_up_fact")
    op.drop_index(op.f("ix_follow_up_fact_enrollment_id"), table_name="follow_up_fact")
    op.drop_table("follow_up_fact")
    op.drop_index(op.f("ix_evaluation_fact_session_id"), table_name="evaluation_fact")
    op.drop_table("evaluation_fact")
    op.alter_column("enrollment_fact", "trainee_id", existing_type=sa.UUID(), nullable=False)
    op.drop_column("session_fact", "title")
