"""Battles record the chance their pair had when drawn (``serve --sampling``).

- ``battles.sampling_probability``: the probability of the battle's unordered pair under the
  arena's design at the time of the draw; NULL for battles stored before, imported without
  one, or drawn by a server that did not record it. Inverse-probability weighting of an
  adaptive design (``--sampling active``) needs it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-20 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("battles") as batch:
        batch.add_column(sa.Column("sampling_probability", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("battles") as batch:
        batch.drop_column("sampling_probability")
