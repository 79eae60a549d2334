"""``POST /api/battles/{id}/vote`` (record the vote, reveal the models) and spoken reasons."""

from __future__ import annotations

from functools import partial

import anyio
from fastapi import APIRouter, Request

from lamarena.arena.battles import (
    cast_vote,
    check_battle_access,
    check_transcription_allowed,
    reserve_transcription,
    transcribe_feedback,
)
from lamarena.arena.deps import ArenaDep, ClientDep, SessionIdDep
from lamarena.arena.routes.battles import read_audio_form
from lamarena.arena.schemas import FeedbackTranscript, Reveal, VoteIn
from lamarena.audio import decode_audio

__all__ = ["router"]

router = APIRouter(prefix="/api/battles", tags=["votes"])


@router.post("/{battle_id}/vote")
def vote(
    battle_id: str,
    body: VoteIn,
    arena: ArenaDep,
    client: ClientDep,
    session_id: SessionIdDep = None,
) -> Reveal:
    """Judge a battle of this session once both replies are done; 409 on a second vote."""
    return cast_vote(arena, battle_id, session_id, body.winner, body.feedback_text, client)


@router.post("/{battle_id}/feedback-audio")
async def feedback_audio(
    battle_id: str,
    request: Request,
    arena: ArenaDep,
    client: ClientDep,
    session_id: SessionIdDep = None,
) -> FeedbackTranscript:
    """Transcribe a spoken reason for a battle of this session; the vote then carries the text.

    A multipart form with the file part ``audio`` (any common format). Nothing is stored here:
    the text is shown to the voter, who may correct it before voting. Each transcription is a
    model call: a battle gets ``transcriptions_per_battle``, an address
    ``address_transcriptions_per_minute`` (429 past either, before the upload is read).
    """
    await anyio.to_thread.run_sync(check_battle_access, arena, battle_id, session_id)
    await anyio.to_thread.run_sync(check_transcription_allowed, arena, client)
    data, _, _ = await read_audio_form(request, arena.options.audio_limits.max_bytes)
    clip = await anyio.to_thread.run_sync(
        partial(decode_audio, data, limits=arena.options.audio_limits)
    )
    await anyio.to_thread.run_sync(reserve_transcription, arena, battle_id, session_id, client)
    return FeedbackTranscript(text=await transcribe_feedback(arena, clip))
