"""``POST /api/battles/{id}/vote``: record the vote and reveal the models."""

from __future__ import annotations

from fastapi import APIRouter

from lamarena.arena.battles import cast_vote
from lamarena.arena.deps import ArenaDep, SessionIdDep
from lamarena.arena.schemas import Reveal, VoteIn

__all__ = ["router"]

router = APIRouter(prefix="/api/battles", tags=["votes"])


@router.post("/{battle_id}/vote")
def vote(battle_id: str, body: VoteIn, arena: ArenaDep, session_id: SessionIdDep = None) -> Reveal:
    """Judge a battle of this session once both replies are done; 409 on a second vote."""
    return cast_vote(arena, battle_id, session_id, body.winner, body.feedback_text)
