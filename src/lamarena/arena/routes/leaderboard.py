"""``GET /api/leaderboard``: the ``leaderboard --json`` document of the stored votes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from lamarena.arena.deps import ArenaDep
from lamarena.arena.leaderboard import current_leaderboard

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["leaderboard"])


@router.get("/leaderboard")
def leaderboard(arena: ArenaDep) -> dict[str, Any]:
    """Ratings, intervals and pairwise tests of every voted battle (cached per vote count)."""
    return current_leaderboard(arena)
