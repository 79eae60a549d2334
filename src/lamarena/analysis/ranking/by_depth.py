"""Leaderboards kept apart by conversation depth: votes after 1, 2, or 3 or more turns.

A model that answers one question well may lose the thread over several; a vote after a
conversation judges something else than a vote after one reply. ``leaderboard --by turns``
therefore fits each depth on its own votes, side by side, rather than pooling them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lamarena.analysis.battles import validate_battles
from lamarena.analysis.ranking.leaderboard import build_leaderboard
from lamarena.errors import InsufficientData

__all__ = ["DEPTHS", "depth_of", "leaderboards_by_depth"]

DEPTHS = ("1", "2", "3+")
"""The depth groups: one turn, two turns, three or more."""


def depth_of(n_turns: pd.Series) -> pd.Series:
    """Each battle's depth group (a battle without ``n_turns`` had one turn)."""
    turns = pd.to_numeric(n_turns, errors="coerce").fillna(1).astype(int)
    return pd.Series(
        np.where(turns >= 3, "3+", turns.astype(str)), index=n_turns.index, dtype=object
    )


def leaderboards_by_depth(battles: pd.DataFrame, **options: Any) -> dict[str, Any]:
    """One leaderboard document per conversation depth.

    Args:
        battles: the battles, with ``n_turns`` (missing means one turn).
        **options: :func:`~lamarena.analysis.ranking.leaderboard.build_leaderboard`'s options,
            used for every group.

    Returns:
        ``{"by": "turns", "groups": [{"group", "n_battles", "leaderboard", "note"}]}`` for
        :data:`DEPTHS` in order: ``leaderboard`` is the group's ``leaderboard --json``
        document, None (with the reason in ``note``) for a group the votes cannot rank.
    """
    clean = validate_battles(battles)  # same index as ``battles``
    turns = battles["n_turns"] if "n_turns" in battles else pd.Series(1, index=battles.index)
    depths = depth_of(turns)
    groups: list[dict[str, Any]] = []
    for depth in DEPTHS:
        subset = clean[depths.to_numpy() == depth]
        document: dict[str, Any] | None = None
        note: str | None = None
        if subset.empty:
            note = "no battles"
        else:
            try:
                document = build_leaderboard(subset.reset_index(drop=True), **options).to_dict()
            except InsufficientData as exc:
                note = str(exc)
        groups.append(
            {"group": depth, "n_battles": len(subset), "leaderboard": document, "note": note}
        )
    return {"by": "turns", "groups": groups}
