"""Spoken replies: a battle's mode and each reply's audio.

- ``battles.mode``: ``text`` or ``speech`` (``serve --mode``); every battle stored before was a
  text battle (the server default fills it). Ratings of the two modes are kept apart.
- ``replies.ttfab_s``, ``replies.audio_s``, ``replies.audio_sha256``: a spoken reply's time to
  its first audio byte, its duration, and the sha256 of its WAV (kept content-addressed under
  the data folder); NULL for a text reply.
- ``replies.notice``: what a model was not given as asked (a clip cut to its ``max_audio_s``).
- ``ix_turns_created_at``: the arena's battles-a-minute ceiling counts later turns too.

Only columns are added, so SQLite alters the tables in place. Its ``battles`` table does not get
the ``mode`` check: adding a constraint makes SQLite rebuild the table, and dropping the old
``battles`` would cascade into every reply and vote (``foreign_keys`` is on). The store and the
record model refuse any other mode before it reaches a database; PostgreSQL also checks it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-22 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "battles", sa.Column("mode", sa.String(length=8), server_default="text", nullable=False)
    )
    if op.get_bind().dialect.name != "sqlite":
        op.create_check_constraint(op.f("ck_battles_mode"), "battles", "mode IN ('text', 'speech')")
    op.add_column("replies", sa.Column("ttfab_s", sa.Float(), nullable=True))
    op.add_column("replies", sa.Column("audio_s", sa.Float(), nullable=True))
    op.add_column("replies", sa.Column("audio_sha256", sa.String(length=128), nullable=True))
    op.add_column("replies", sa.Column("notice", sa.Text(), nullable=True))
    op.create_index("ix_turns_created_at", "turns", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_turns_created_at", table_name="turns")
    # plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): no table is rebuilt, nothing cascades
    for column in ("notice", "audio_sha256", "audio_s", "ttfab_s"):
        op.drop_column("replies", column)
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_battles_mode"), "battles", type_="check")
    op.drop_column("battles", "mode")
