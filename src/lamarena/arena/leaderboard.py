"""The leaderboard of the stored votes, computed once per vote count (blocking: use a thread).

Votes on text replies (text-out) and on spoken replies (speech-out) are never pooled. The page's
main leaderboard ranks the votes of one mode: the text-out ones when there are both (``mode``
names it, ``battles_by_mode`` counts each mode); ``by_mode`` then ranks each mode on its own votes,
and ``by_turns`` ranks the main leaderboard's votes per conversation depth. Each grouped document
(see :mod:`lamarena.analysis.ranking.grouped`) is computed only when more than one of its groups
has battles, else it is None, so an arena of one mode and one-turn votes fits one leaderboard.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from sqlalchemy import func, select

from lamarena.analysis.ranking.grouped import (
    DEPTHS,
    depth_of,
    leaderboards_by_depth,
    leaderboards_by_mode,
)
from lamarena.analysis.ranking.leaderboard import build_leaderboard
from lamarena.analysis.ranking.modes import MODES, mode_counts, select_mode
from lamarena.arena.state import Arena
from lamarena.store.db import database_errors
from lamarena.store.repo import battles_frame
from lamarena.store.tables import Vote

__all__ = ["current_leaderboard", "leaderboard_document"]


def _empty(note: str | None = None) -> dict[str, Any]:
    """The document of no ranked battles."""
    document: dict[str, Any] = {"n_battles": 0, "models": [], "pairwise": [], "head_to_head": []}
    if note is not None:
        document["note"] = note
    return document


def leaderboard_document(
    frame: pd.DataFrame, *, n_resamples: int, seed: int | None, min_battles: int
) -> dict[str, Any]:
    """The ``/api/leaderboard`` document of a battles frame.

    Args:
        frame: the counted battles (``repo.battles_frame``); ``mode`` and ``n_turns`` optional.
        n_resamples: bootstrap rounds of every leaderboard.
        seed: bootstrap seed.
        min_battles: fewer battles than this make a model provisional.

    Returns:
        The ``leaderboard --json`` document of the main mode's votes plus ``mode``,
        ``battles_by_mode`` (``{"text", "speech"}`` counts), ``by_mode`` and ``by_turns`` (the
        ``leaderboard --by mode|turns --json`` documents, or None).
    """
    options: dict[str, Any] = {
        "n_resamples": n_resamples,
        "seed": seed,
        "min_battles": min_battles,
    }
    counts = mode_counts(frame)
    present = [mode for mode in MODES if counts[mode]]
    mode = present[0] if present else "text"
    by_mode: dict[str, Any] | None = None
    if frame.empty:
        document = _empty()
    elif len(present) > 1:
        by_mode = leaderboards_by_mode(frame, **options)
        group = next(group for group in by_mode["groups"] if group["group"] == mode)
        document = dict(group["leaderboard"] or _empty(group["note"]))
    else:
        document = build_leaderboard(frame, **options).to_dict()
    main = select_mode(frame, mode)
    by_turns: dict[str, Any] | None = None
    if not main.empty and "n_turns" in main:
        depths = depth_of(main["n_turns"])
        if sum(1 for depth in DEPTHS if (depths == depth).any()) > 1:
            by_turns = leaderboards_by_depth(main, **options)
    document["mode"] = mode
    document["battles_by_mode"] = counts
    document["by_mode"] = by_mode
    document["by_turns"] = by_turns
    return document


def current_leaderboard(arena: Arena) -> dict[str, Any]:
    """The :func:`leaderboard_document` of the stored votes.

    The document is cached by the number of votes, so a page that polls does not refit the
    ratings; a new vote (here or in another worker) changes the count and refreshes it.

    Raises:
        DatabaseError: the votes cannot be read.
    """
    with arena.leaderboard_lock:
        with (
            database_errors(arena.engine, "reading the votes", "try again"),
            arena.read_sessionmaker() as session,
        ):
            n_votes = session.scalar(select(func.count(Vote.id))) or 0
            cached = arena.leaderboard_cache
            if cached is not None and cached[0] == n_votes:
                return cached[1]
            frame = battles_frame(session)
        document = leaderboard_document(
            frame,
            n_resamples=arena.options.leaderboard_resamples,
            seed=arena.settings.seed,
            min_battles=arena.settings.min_battles,
        )
        arena.leaderboard_cache = (n_votes, document)
        return document
