"""Create participants, sessions, battles, replies and votes.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "participants",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participants")),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("participant_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("consent_keep_audio", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participants.id"],
            name=op.f("fk_sessions_participant_id_participants"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
    )
    op.create_index(op.f("ix_sessions_participant_id"), "sessions", ["participant_id"])
    op.create_table(
        "battles",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("model_a", sa.String(length=200), nullable=False),
        sa.Column("model_b", sa.String(length=200), nullable=False),
        sa.Column("query_audio_sha256", sa.String(length=128), nullable=True),
        sa.Column("query_transcript", sa.Text(), nullable=True),
        sa.Column("audio_kept", sa.Boolean(), nullable=False),
        sa.Column("kept_audio_path", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.CheckConstraint("model_a <> model_b", name=op.f("ck_battles_distinct_models")),
        sa.CheckConstraint(
            "kept_audio_path IS NULL OR audio_kept",
            name=op.f("ck_battles_audio_path_needs_consent"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_battles_session_id_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_battles")),
    )
    op.create_index("ix_battles_created_at", "battles", ["created_at"])
    op.create_index(op.f("ix_battles_session_id"), "battles", ["session_id"])
    op.create_table(
        "replies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("battle_id", sa.String(length=128), nullable=False),
        sa.Column("side", sa.String(length=1), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("ttft_s", sa.Float(), nullable=True),
        sa.Column("total_s", sa.Float(), nullable=True),
        sa.Column("chars", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint("side IN ('a', 'b')", name=op.f("ck_replies_side")),
        sa.ForeignKeyConstraint(
            ["battle_id"],
            ["battles.id"],
            name=op.f("fk_replies_battle_id_battles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replies")),
        sa.UniqueConstraint("battle_id", "side", name=op.f("uq_replies_battle_id_side")),
    )
    op.create_table(
        "votes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("battle_id", sa.String(length=128), nullable=False),
        sa.Column("winner", sa.String(length=16), nullable=False),
        sa.Column("feedback_text", sa.Text(), nullable=True),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "winner IN ('model_a', 'model_b', 'tie', 'both_bad')", name=op.f("ck_votes_winner")
        ),
        sa.ForeignKeyConstraint(
            ["battle_id"],
            ["battles.id"],
            name=op.f("fk_votes_battle_id_battles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_votes")),
        sa.UniqueConstraint("battle_id", name=op.f("uq_votes_battle_id")),
    )


def downgrade() -> None:
    op.drop_table("votes")
    op.drop_table("replies")
    op.drop_index(op.f("ix_battles_session_id"), table_name="battles")
    op.drop_index("ix_battles_created_at", table_name="battles")
    op.drop_table("battles")
    op.drop_index(op.f("ix_sessions_participant_id"), table_name="sessions")
    op.drop_table("sessions")
    op.drop_table("participants")
