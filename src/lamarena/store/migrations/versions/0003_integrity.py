"""Arena integrity: per-battle participant, flags and client; client events; a store salt.

- ``battles``: ``participant_id`` (stored at creation, so a later ``pid`` cannot re-attribute
  it), ``client_hash`` (a salted hash of the client address, never the address), ``counted``
  and ``flags`` (``self_identified``, ``duplicate_audio``), ``equal_pace`` (replies shown at one
  pace), ``feedback_transcriptions`` (spoken reasons transcribed for it), ``server_run`` (the
  ``serve`` run that generates it: a later run marks what an earlier one left generating lost).
- ``votes``: ``client_hash`` and ``seconds_after_replies`` (voter signals).
- ``client_events``: what each client address did when (battles, votes, transcriptions,
  refused uploads), so limits per address hold across worker processes.
- ``store_secrets``: the salt of client and session hashes, made here once per database.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 00:00:00+00:00
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("battles") as batch:
        batch.add_column(sa.Column("participant_id", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("client_hash", sa.String(length=64), nullable=True))
        batch.add_column(
            sa.Column("counted", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("flags", sa.String(length=200), nullable=True))
        batch.add_column(
            sa.Column("equal_pace", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("feedback_transcriptions", sa.Integer(), nullable=False, server_default="0")
        )
    with op.batch_alter_table("battles") as batch:
        batch.add_column(sa.Column("server_run", sa.String(length=64), nullable=True))
    op.create_index("ix_battles_query_audio_sha256", "battles", ["query_audio_sha256"])
    op.create_index("ix_battles_client_hash", "battles", ["client_hash"])
    # Battles stored before this revision take their session's participant.
    op.execute(
        "UPDATE battles SET participant_id = (SELECT sessions.participant_id FROM sessions "
        "WHERE sessions.id = battles.session_id) WHERE session_id IS NOT NULL"
    )
    with op.batch_alter_table("votes") as batch:
        batch.add_column(sa.Column("client_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("seconds_after_replies", sa.Float(), nullable=True))
    op.create_table(
        "client_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_events")),
    )
    op.create_index(
        "ix_client_events_client_kind_time", "client_events", ["client_hash", "kind", "created_at"]
    )
    op.create_index("ix_client_events_kind_time", "client_events", ["kind", "created_at"])
    secrets_table = op.create_table(
        "store_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_store_secrets")),
    )
    op.bulk_insert(secrets_table, [{"name": "hash_salt", "value": secrets.token_hex(32)}])


def downgrade() -> None:
    op.drop_table("store_secrets")
    op.drop_index("ix_client_events_kind_time", table_name="client_events")
    op.drop_index("ix_client_events_client_kind_time", table_name="client_events")
    op.drop_table("client_events")
    with op.batch_alter_table("votes") as batch:
        batch.drop_column("seconds_after_replies")
        batch.drop_column("client_hash")
    op.drop_index("ix_battles_client_hash", table_name="battles")
    op.drop_index("ix_battles_query_audio_sha256", table_name="battles")
    with op.batch_alter_table("battles") as batch:
        for column in (
            "server_run",
            "feedback_transcriptions",
            "equal_pace",
            "flags",
            "counted",
            "client_hash",
            "participant_id",
        ):
            batch.drop_column(column)
