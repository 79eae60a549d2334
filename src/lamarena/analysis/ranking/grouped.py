"""Leaderboards kept apart: one per reply mode, or one per conversation depth, side by side.

Votes that judge different things are not pooled into one rating:

- **mode** (``leaderboard --by mode``): a vote between two text replies (text-out) and a vote
  between two spoken replies (speech-out) rate different abilities, so each mode is fitted on its
  own votes (groups ``text``, ``speech``; see :mod:`lamarena.analysis.ranking.modes`);
- **turns** (``leaderboard --by turns``): a model that answers one question well may lose the
  thread over several, so votes after 1, 2, or 3 or more turns are fitted apart (groups ``1``,
  ``2``, ``3+``).

Every group is an ordinary leaderboard of its subset: exactly what ranking that subset alone
gives. Grouping by depth does not pool modes either: battles of both modes are refused
(:func:`~lamarena.analysis.ranking.modes.require_one_mode`); choose one mode first.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from lamarena.analysis.encoded import EncodedBattles, encode_frame
from lamarena.analysis.ranking.leaderboard import build_leaderboard
from lamarena.analysis.ranking.modes import MODES, encoded_one_mode
from lamarena.errors import InsufficientData, InvalidInputError

__all__ = [
    "DEPTHS",
    "GROUPINGS",
    "Grouping",
    "depth_labels",
    "depth_of",
    "grouped_leaderboards",
    "leaderboards_by_depth",
    "leaderboards_by_mode",
]

Grouping = Literal["mode", "turns"]
GROUPINGS: tuple[Grouping, ...] = ("mode", "turns")
"""What ``leaderboard --by`` can keep apart."""

DEPTHS = ("1", "2", "3+")
"""The depth groups: one turn, two turns, three or more."""


def depth_of(n_turns: pd.Series) -> pd.Series:
    """Each battle's depth group (a battle without ``n_turns`` had one turn)."""
    turns = pd.to_numeric(n_turns, errors="coerce").fillna(1).astype(int)
    return pd.Series(
        np.where(turns >= 3, "3+", turns.astype(str)), index=n_turns.index, dtype=object
    )


def grouped_leaderboards(
    battles: pd.DataFrame | EncodedBattles, by: str, **options: Any
) -> dict[str, Any]:
    """One leaderboard document per group of battles.

    Args:
        battles: the battles; ``mode`` (missing: text) and ``n_turns`` (missing: one turn) are
            optional.
        by: ``mode`` (groups :data:`~lamarena.analysis.ranking.modes.MODES`) or ``turns``
            (groups :data:`DEPTHS`; the battles must all be of one mode).
        **options: :func:`~lamarena.analysis.ranking.leaderboard.build_leaderboard`'s options,
            used for every group.

    Returns:
        ``{"by", "groups": [{"group", "n_battles", "leaderboard", "note"}]}``, every group in
        order, with or without battles: ``leaderboard`` is the group's ``leaderboard --json``
        document, None (with the reason in ``note``) for a group the votes cannot rank.

    Raises:
        InvalidInputError: an unknown ``by``, malformed battles or options, battles of both modes
            grouped by turns, or a style control a group's battles lack values for.
    """
    encoded = battles if isinstance(battles, EncodedBattles) else encode_frame(battles)
    labels: NDArray[np.object_]
    names: tuple[str, ...]
    if by == "mode":
        labels, names = np.array(MODES, dtype=object)[encoded.mode], MODES
    elif by == "turns":
        encoded_one_mode(encoded)
        labels, names = depth_labels(encoded.n_turns), DEPTHS
    else:
        raise InvalidInputError(f"group by {' or '.join(GROUPINGS)}, got {by!r}")
    groups: list[dict[str, Any]] = []
    for name in names:
        subset = encoded.take(labels == name)
        document: dict[str, Any] | None = None
        note: str | None = None
        if subset.n_battles == 0:
            note = "no battles"
        else:
            try:
                document = build_leaderboard(subset, **options).to_dict()
            except InsufficientData as exc:
                note = str(exc)
        groups.append(
            {"group": name, "n_battles": subset.n_battles, "leaderboard": document, "note": note}
        )
    return {"by": by, "groups": groups}


def depth_labels(n_turns: NDArray[np.int64]) -> NDArray[np.object_]:
    """Each battle's depth group (:data:`DEPTHS`) from its number of turns."""
    labels: NDArray[np.object_] = np.where(
        n_turns >= 3, "3+", np.where(n_turns == 2, "2", "1")
    ).astype(object)
    return labels


def leaderboards_by_depth(battles: pd.DataFrame | EncodedBattles, **options: Any) -> dict[str, Any]:
    """One leaderboard per conversation depth: ``grouped_leaderboards(battles, "turns")``."""
    return grouped_leaderboards(battles, "turns", **options)


def leaderboards_by_mode(battles: pd.DataFrame | EncodedBattles, **options: Any) -> dict[str, Any]:
    """One leaderboard per reply mode: ``grouped_leaderboards(battles, "mode")``."""
    return grouped_leaderboards(battles, "mode", **options)
