"""Counts kept as votes arrive: ``pair_counts`` and ``cluster_pair_counts``.

- ``pair_counts``: per mode, number of turns and unordered pair of models (``model_first`` before
  ``model_second`` in Python's string order), the counted votes for the first, for the second,
  the ties and the both-bad votes.
- ``cluster_pair_counts``: the same per cluster (``p:`` participant, else ``s:`` session, else
  ``b:`` battle), with each outcome's sum of ``1 / sampling_probability``, the battles without a
  probability, and the smallest and largest probability.

Both are filled here from the votes already stored (counted battles only): one grouped read,
folded into unordered pairs in Python (a database's collation need not order names as Python
does), then inserted. From here on the store keeps them in each vote's own transaction. Only
tables are added: no existing SQLite table is rebuilt.

Revision ID: 0007
Revises: 0006
Create Date: 2027-01-10 00:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OUTCOMES = ("first_wins", "second_wins", "ties", "both_bad")
_CHUNK = 1_000

# The tables as this revision reads them (frozen here: later models may differ).
_battles = sa.table(
    "battles",
    sa.column("id", sa.String),
    sa.column("session_id", sa.String),
    sa.column("participant_id", sa.String),
    sa.column("model_a", sa.String),
    sa.column("model_b", sa.String),
    sa.column("counted", sa.Boolean),
    sa.column("sampling_probability", sa.Float),
    sa.column("mode", sa.String),
)
_votes = sa.table("votes", sa.column("battle_id", sa.String), sa.column("winner", sa.String))
_turns = sa.table("turns", sa.column("battle_id", sa.String), sa.column("turn", sa.Integer))


def _count_columns(*, weighted: bool) -> list[sa.Column[Any]]:
    columns: list[sa.Column[Any]] = [
        sa.Column(name, sa.Integer(), server_default="0", nullable=False) for name in _OUTCOMES
    ]
    if weighted:
        columns += [
            sa.Column(f"{name}_ipw", sa.Float(), server_default="0", nullable=False)
            for name in _OUTCOMES
        ]
        columns += [
            sa.Column("missing_probability", sa.Integer(), server_default="0", nullable=False),
            sa.Column("min_probability", sa.Float(), nullable=True),
            sa.Column("max_probability", sa.Float(), nullable=True),
        ]
    return columns


def _create_tables() -> tuple[sa.Table, sa.Table]:
    pairs = op.create_table(
        "pair_counts",
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("n_turns", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("model_first", sa.String(length=200), nullable=False),
        sa.Column("model_second", sa.String(length=200), nullable=False),
        *_count_columns(weighted=False),
        sa.PrimaryKeyConstraint(
            "mode", "n_turns", "model_first", "model_second", name=op.f("pk_pair_counts")
        ),
    )
    clusters = op.create_table(
        "cluster_pair_counts",
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("n_turns", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("cluster", sa.String(length=130), nullable=False),
        sa.Column("model_first", sa.String(length=200), nullable=False),
        sa.Column("model_second", sa.String(length=200), nullable=False),
        *_count_columns(weighted=True),
        sa.PrimaryKeyConstraint(
            "mode",
            "n_turns",
            "cluster",
            "model_first",
            "model_second",
            name=op.f("pk_cluster_pair_counts"),
        ),
    )
    return pairs, clusters


def _grouped_votes() -> sa.Select[Any]:
    """The counted votes grouped by mode, turns, cluster, ordered pair and winner."""
    later = (
        sa.select(_turns.c.battle_id, sa.func.count().label("later"))
        .group_by(_turns.c.battle_id)
        .subquery("later")
    )
    participant = sa.type_coerce(sa.func.nullif(_battles.c.participant_id, ""), sa.String)
    session = sa.type_coerce(sa.func.nullif(_battles.c.session_id, ""), sa.String)
    cluster = sa.case(
        (participant.is_not(None), sa.literal_column("'p:'", sa.String) + participant),
        (session.is_not(None), sa.literal_column("'s:'", sa.String) + session),
        else_=sa.literal_column("'b:'", sa.String) + _battles.c.id,
    )
    voted = (
        sa.select(
            _battles.c.mode,
            (1 + sa.func.coalesce(later.c.later, 0)).label("n_turns"),
            cluster.label("cluster"),
            _battles.c.model_a,
            _battles.c.model_b,
            _votes.c.winner,
            _battles.c.sampling_probability.label("p"),
        )
        .select_from(_votes)
        .join(_battles, _battles.c.id == _votes.c.battle_id)
        .outerjoin(later, later.c.battle_id == _battles.c.id)
        .where(_battles.c.counted)
        .subquery("voted")
    )
    keys = [voted.c[name] for name in ("mode", "n_turns", "cluster", "model_a", "model_b")]
    return sa.select(
        *keys,
        voted.c.winner,
        sa.func.count().label("votes"),
        sa.func.sum(1.0 / voted.c.p).label("ipw"),
        sa.func.count(voted.c.p).label("known"),
        sa.func.min(voted.c.p).label("low"),
        sa.func.max(voted.c.p).label("high"),
    ).group_by(*keys, voted.c.winner)


def _outcome(winner: str, swapped: bool) -> str:
    if winner == "tie":
        return "ties"
    if winner == "both_bad":
        return "both_bad"
    return "first_wins" if (winner == "model_a") != swapped else "second_wins"


def _fold(rows: Sequence[Any]) -> tuple[dict[tuple[Any, ...], dict[str, Any]], ...]:
    """Fold the grouped votes into rows of both tables, keyed by their primary keys."""
    pairs: dict[tuple[Any, ...], dict[str, Any]] = {}
    clusters: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        swapped = not row.model_a < row.model_b
        first, second = (row.model_b, row.model_a) if swapped else (row.model_a, row.model_b)
        outcome = _outcome(row.winner, swapped)
        pair = pairs.setdefault(
            (row.mode, row.n_turns, first, second),
            {
                "mode": row.mode,
                "n_turns": row.n_turns,
                "model_first": first,
                "model_second": second,
                **dict.fromkeys(_OUTCOMES, 0),
            },
        )
        pair[outcome] += row.votes
        key = (row.mode, row.n_turns, row.cluster, first, second)
        cell = clusters.get(key)
        if cell is None:
            cell = {
                "mode": row.mode,
                "n_turns": row.n_turns,
                "cluster": row.cluster,
                "model_first": first,
                "model_second": second,
                **dict.fromkeys(_OUTCOMES, 0),
                **{f"{name}_ipw": 0.0 for name in _OUTCOMES},
                "missing_probability": 0,
                "min_probability": None,
                "max_probability": None,
            }
            clusters[key] = cell
        cell[outcome] += row.votes
        cell[f"{outcome}_ipw"] += row.ipw or 0.0
        cell["missing_probability"] += row.votes - row.known
        if row.low is not None:
            low, high = cell["min_probability"], cell["max_probability"]
            cell["min_probability"] = row.low if low is None else min(low, row.low)
            cell["max_probability"] = row.high if high is None else max(high, row.high)
    return pairs, clusters


def upgrade() -> None:
    pair_table, cluster_table = _create_tables()
    connection = op.get_bind()
    pairs, clusters = _fold(connection.execute(_grouped_votes()).all())
    for table, rows in ((pair_table, pairs), (cluster_table, clusters)):
        ordered = [rows[key] for key in sorted(rows)]
        for start in range(0, len(ordered), _CHUNK):
            connection.execute(table.insert(), ordered[start : start + _CHUNK])


def downgrade() -> None:
    op.drop_table("cluster_pair_counts")
    op.drop_table("pair_counts")
