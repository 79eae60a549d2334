"""Recounting the vote counts from the votes, and checking the stored ones against it.

:func:`check_counts` (``lamarena votes check-counts``) compares the tables kept by
:mod:`lamarena.store.vote_counts` (``pair_counts``, ``cluster_pair_counts``) with
:func:`recount`, the same aggregates recomputed from the votes, and can rewrite them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, delete, select, text
from sqlalchemy.orm import Session

from lamarena.store.db import database_errors, make_sessionmaker, reader
from lamarena.store.vote_counts import (
    _CHUNK,
    _CLUSTERS,
    _PAIRS,
    CLUSTER_COLUMNS,
    CLUSTER_KEY,
    PAIR_COLUMNS,
    PAIR_KEY,
    Cells,
    _Cell,
    _fold,
    _grouped_votes,
)
from lamarena.store.vote_counts_read import _frame

__all__ = ["CountsCheck", "VoteCounts", "check_counts", "recount"]

logger = logging.getLogger(__name__)

_TABLE_NAMES = {False: "pair_counts", True: "cluster_pair_counts"}
_REL_TOLERANCE = 1e-9  # float sums added in another order differ in their last digits
_ABS_TOLERANCE = 1e-9


def _recount_cells(session: Session | Connection) -> tuple[Cells, Cells]:
    return _fold(session.execute(_grouped_votes()))


@dataclass(frozen=True)
class VoteCounts:
    """Both tables' rows as :func:`recount` computes them from the votes.

    Attributes:
        pairs: as :func:`~lamarena.store.vote_counts_read.read_pair_counts` returns them.
        clusters: as :func:`~lamarena.store.vote_counts_read.read_cluster_pair_counts`
            returns them.
    """

    pairs: pd.DataFrame
    clusters: pd.DataFrame


def _cells_frame(cells: Cells, names: Sequence[str], *, weighted: bool) -> pd.DataFrame:
    keys = CLUSTER_KEY if weighted else PAIR_KEY
    value_names = names[len(keys) :]
    rows = []
    for key in sorted(cells):
        values = cells[key].values(weighted=weighted)
        rows.append((*key, *(values[name] for name in value_names)))
    return _frame(rows, names)


def recount(session: Session | Connection) -> VoteCounts:
    """Recompute both tables from the votes: one grouped ``SELECT`` over the counted votes.

    Args:
        session: a session or connection (read in its transaction).

    Returns:
        The rows the tables should hold, ordered by their keys.
    """
    pairs, clusters = _recount_cells(session)
    return VoteCounts(
        pairs=_cells_frame(pairs, PAIR_COLUMNS, weighted=False),
        clusters=_cells_frame(clusters, CLUSTER_COLUMNS, weighted=True),
    )


# -- checking -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CountsCheck:
    """What :func:`check_counts` found.

    Attributes:
        rows_checked: rows compared, over both tables (stored or recounted).
        drift: one entry per row that differs: ``table``, ``key`` (its key columns),
            ``stored`` and ``recounted`` (its value columns; None where there is no row).
        repaired: whether the tables were rewritten from the recount.
    """

    rows_checked: int
    drift: list[dict[str, Any]]
    repaired: bool

    def to_dict(self) -> dict[str, Any]:
        """The ``votes check-counts --json`` document."""
        return {
            "rows_checked": self.rows_checked,
            "drift": self.drift,
            "repaired": self.repaired,
        }


def _stored_cells(session: Session, *, weighted: bool) -> Cells:
    table = _CLUSTERS if weighted else _PAIRS
    keys = CLUSTER_KEY if weighted else PAIR_KEY
    cells: Cells = {}
    for row in session.execute(select(table)):
        cells[tuple(getattr(row, name) for name in keys)] = _Cell.from_row(row, weighted=weighted)
    return cells


def _close(stored: float | None, recounted: float | None) -> bool:
    if stored is None or recounted is None:
        return stored is None and recounted is None
    return math.isclose(stored, recounted, rel_tol=_REL_TOLERANCE, abs_tol=_ABS_TOLERANCE)


def _same(stored: _Cell, recounted: _Cell) -> bool:
    return (
        stored.counts == recounted.counts
        and stored.missing == recounted.missing
        and all(_close(a, b) for a, b in zip(stored.ipw, recounted.ipw, strict=True))
        and _close(stored.low, recounted.low)
        and _close(stored.high, recounted.high)
    )


def _drift(stored: Cells, recounted: Cells, *, weighted: bool) -> tuple[int, list[dict[str, Any]]]:
    keys = CLUSTER_KEY if weighted else PAIR_KEY
    everything = set(stored) | set(recounted)
    found = []
    for key in sorted(everything):
        mine, theirs = stored.get(key, _Cell()), recounted.get(key, _Cell())
        if _same(mine, theirs):
            continue
        found.append(
            {
                "table": _TABLE_NAMES[weighted],
                "key": dict(zip(keys, key, strict=True)),
                "stored": None if key not in stored else mine.values(weighted=weighted),
                "recounted": None if key not in recounted else theirs.values(weighted=weighted),
            }
        )
    return len(everything), found


def _rewrite(session: Session, pairs: Cells, clusters: Cells) -> None:
    """Replace both tables' rows by ``pairs`` and ``clusters``."""
    for table, cells, weighted in ((_PAIRS, pairs, False), (_CLUSTERS, clusters, True)):
        session.execute(delete(table))
        keys = CLUSTER_KEY if weighted else PAIR_KEY
        rows = [
            dict(zip(keys, key, strict=True)) | cells[key].values(weighted=weighted)
            for key in sorted(cells)
            if not cells[key].is_empty()
        ]
        for start in range(0, len(rows), _CHUNK):
            session.execute(table.insert(), rows[start : start + _CHUNK])


def _compare(session: Session, *, repair: bool) -> CountsCheck:
    pairs, clusters = _recount_cells(session)
    checked_pairs, pair_drift = _drift(
        _stored_cells(session, weighted=False), pairs, weighted=False
    )
    checked_clusters, cluster_drift = _drift(
        _stored_cells(session, weighted=True), clusters, weighted=True
    )
    drift = pair_drift + cluster_drift
    if repair and drift:
        _rewrite(session, pairs, clusters)
    return CountsCheck(
        rows_checked=checked_pairs + checked_clusters, drift=drift, repaired=repair and bool(drift)
    )


def check_counts(engine: Engine, *, repair: bool = False) -> CountsCheck:
    """Compare the stored counts with a recount from the votes (and with ``repair`` fix them).

    Both are read in one snapshot of the database (``REPEATABLE READ`` on PostgreSQL, one read
    transaction on SQLite), so votes arriving meanwhile are in both or in neither. With
    ``repair`` the comparison and the rewrite run in one write transaction that first locks
    both tables against writers (``LOCK TABLE ... IN EXCLUSIVE MODE`` on PostgreSQL; SQLite's
    write lock): a vote arriving meanwhile waits and then adds to the rewritten rows.

    Args:
        engine: the store's engine (migrated).
        repair: rewrite both tables from the recount when any row differs.

    Returns:
        The rows compared, those that differ, and whether they were rewritten.

    Raises:
        DatabaseError: the database cannot be reached or refused the read or the rewrite;
            nothing was changed.
    """
    postgres = engine.dialect.name == "postgresql"
    with database_errors(engine, "checking the vote counts", "nothing was changed"):
        if repair:
            with make_sessionmaker(engine).begin() as session:
                if postgres:
                    session.execute(
                        text("LOCK TABLE pair_counts, cluster_pair_counts IN EXCLUSIVE MODE")
                    )
                result = _compare(session, repair=True)
        else:
            snapshot = (
                engine.execution_options(isolation_level="REPEATABLE READ")
                if postgres
                else reader(engine)
            )
            with make_sessionmaker(snapshot).begin() as session:
                result = _compare(session, repair=False)
    logger.info(
        "checked %d vote count rows: %d differ%s",
        result.rows_checked,
        len(result.drift),
        ", rewritten" if result.repaired else "",
    )
    return result
