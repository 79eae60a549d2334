"""Conversations: a battle may have several turns before its vote.

- ``turns``: turns 2, 3, ... of a battle, each with its own query (hash, transcript, kept audio
  with consent). The battle row stays the first turn, so every battle stored before is a
  one-turn conversation with no data moved.
- ``replies.turn``: which turn a reply answers; every stored reply answers turn 1 (the server
  default fills it). A battle has one reply per side and turn, no longer one per side.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-21 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "turns",
        sa.Column("battle_id", sa.String(length=128), nullable=False),
        sa.Column("turn", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("query_audio_sha256", sa.String(length=128), nullable=True),
        sa.Column("query_transcript", sa.Text(), nullable=True),
        sa.Column("audio_kept", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("kept_audio_path", sa.Text(), nullable=True),
        sa.CheckConstraint("turn >= 2", name=op.f("ck_turns_later_turn")),
        sa.CheckConstraint(
            "kept_audio_path IS NULL OR audio_kept", name=op.f("ck_turns_audio_path_needs_consent")
        ),
        sa.ForeignKeyConstraint(
            ["battle_id"],
            ["battles.id"],
            name=op.f("fk_turns_battle_id_battles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("battle_id", "turn", name=op.f("pk_turns")),
    )
    with op.batch_alter_table("replies") as batch:
        batch.add_column(sa.Column("turn", sa.Integer(), server_default="1", nullable=False))
        batch.drop_constraint(op.f("uq_replies_battle_id_side"), type_="unique")
        batch.create_unique_constraint(
            op.f("uq_replies_battle_id_turn_side"), ["battle_id", "turn", "side"]
        )
        batch.create_check_constraint(op.f("ck_replies_turn"), "turn >= 1")


def downgrade() -> None:
    op.execute("DELETE FROM replies WHERE turn > 1")
    with op.batch_alter_table("replies") as batch:
        batch.drop_constraint(op.f("ck_replies_turn"), type_="check")
        batch.drop_constraint(op.f("uq_replies_battle_id_turn_side"), type_="unique")
        batch.create_unique_constraint(op.f("uq_replies_battle_id_side"), ["battle_id", "side"])
        batch.drop_column("turn")
    op.drop_table("turns")
