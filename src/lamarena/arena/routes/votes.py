"""``POST /api/battles/{id}/vote`` (record the vote, reveal the models) and spoken reasons."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import anyio
from fastapi import APIRouter, File, UploadFile

from lamarena.arena.battles import cast_vote, check_battle_access, transcribe_feedback
from lamarena.arena.deps import ArenaDep, SessionIdDep
from lamarena.arena.routes.battles import read_upload
from lamarena.arena.schemas import FeedbackTranscript, Reveal, VoteIn
from lamarena.audio import decode_audio

__all__ = ["router"]

router = APIRouter(prefix="/api/battles", tags=["votes"])


@router.post("/{battle_id}/vote")
def vote(battle_id: str, body: VoteIn, arena: ArenaDep, session_id: SessionIdDep = None) -> Reveal:
    """Judge a battle of this session once both replies are done; 409 on a second vote."""
    return cast_vote(arena, battle_id, session_id, body.winner, body.feedback_text)


@router.post("/{battle_id}/feedback-audio")
async def feedback_audio(
    battle_id: str,
    arena: ArenaDep,
    audio: Annotated[UploadFile, File(description="The spoken reason, any common format.")],
    session_id: SessionIdDep = None,
) -> FeedbackTranscript:
    """Transcribe a spoken reason for a battle of this session; the vote then carries the text.

    Nothing is stored here: the text is shown to the voter, who may correct it before voting.
    """
    await anyio.to_thread.run_sync(check_battle_access, arena, battle_id, session_id)
    data = await read_upload(audio, arena.options.audio_limits.max_bytes)
    clip = await anyio.to_thread.run_sync(
        partial(decode_audio, data, limits=arena.options.audio_limits)
    )
    return FeedbackTranscript(text=await transcribe_feedback(arena, clip))
