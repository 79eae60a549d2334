"""The leaderboard of the stored votes, computed once per vote count (blocking: use a thread)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from lamarena.analysis.ranking.leaderboard import build_leaderboard
from lamarena.arena.state import Arena
from lamarena.store.db import database_errors
from lamarena.store.repo import battles_frame
from lamarena.store.tables import Vote

__all__ = ["current_leaderboard"]


def current_leaderboard(arena: Arena) -> dict[str, Any]:
    """The ``leaderboard --json`` document of the stored votes.

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
        if frame.empty:
            document: dict[str, Any] = {
                "n_battles": 0,
                "models": [],
                "pairwise": [],
                "head_to_head": [],
            }
        else:
            document = build_leaderboard(
                frame,
                n_resamples=arena.options.leaderboard_resamples,
                seed=arena.settings.seed,
                min_battles=arena.settings.min_battles,
            ).to_dict()
        arena.leaderboard_cache = (n_votes, document)
        return document
