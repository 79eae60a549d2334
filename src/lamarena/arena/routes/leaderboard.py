"""``GET /api/leaderboard``: the ``leaderboard --json`` document of the stored votes."""

from __future__ import annotations

from fastapi import APIRouter, Response

from lamarena.arena.deps import ArenaDep

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["leaderboard"])


@router.get("/leaderboard")
async def leaderboard(arena: ArenaDep) -> Response:
    """Ratings, intervals and pairwise tests of the counted votes, as last refitted.

    Answers at once with the last document and its age (``n_votes``, ``computed_at``,
    ``age_s``), or ``{"status": "computing"}`` before the first fit ends (see
    :mod:`lamarena.arena.leaderboard`).
    """
    body = await arena.leaderboard.response_body()
    return Response(content=body, media_type="application/json")
