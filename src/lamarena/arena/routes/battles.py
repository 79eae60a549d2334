"""``POST /api/battles`` (upload a query, start both replies) and ``GET .../stream`` (SSE)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated

import anyio
from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from sse_starlette import EventSourceResponse, ServerSentEvent

from lamarena.arena.battles import (
    audio_extension,
    battle_events,
    check_battle_access,
    open_battle,
    start_generation,
)
from lamarena.arena.deps import SESSION_COOKIE, ArenaDep, SessionIdDep
from lamarena.arena.schemas import BattleCreated
from lamarena.audio import decode_audio
from lamarena.errors import InvalidInputError
from lamarena.store.tables import ID_LENGTH

__all__ = ["read_upload", "router"]

router = APIRouter(prefix="/api/battles", tags=["battles"])

_UPLOAD_CHUNK = 1 << 20


def _parse_consent(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off", ""):
        return False
    raise InvalidInputError(f"consent must be 'true' or 'false', not {value[:20]!r}")


def _parse_pid(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    pid = value.strip()
    if len(pid) > ID_LENGTH or not pid.isprintable():
        raise InvalidInputError(f"pid must be at most {ID_LENGTH} printable characters")
    return pid


async def read_upload(upload: UploadFile, max_bytes: int | None) -> bytes:
    """The upload's bytes, reading at most one byte past the limit (decode_audio then says no)."""
    cap = None if max_bytes is None else max_bytes + 1
    parts: list[bytes] = []
    size = 0
    while cap is None or size < cap:
        chunk = await upload.read(_UPLOAD_CHUNK if cap is None else min(_UPLOAD_CHUNK, cap - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


@router.post("", status_code=201)
async def create_battle(
    request: Request,
    response: Response,
    arena: ArenaDep,
    audio: Annotated[UploadFile, File(description="The spoken query, any common format.")],
    consent: Annotated[str | None, Form(description="'true' to let the audio be kept.")] = None,
    pid: Annotated[str | None, Form(description="External participant id.")] = None,
    session_id: SessionIdDep = None,
) -> BattleCreated:
    """Validate the query, store the battle, and start both replies at once.

    Nothing is stored when the audio is empty, undecodable, too long, too large or silent (422).
    """
    keep = _parse_consent(consent)
    participant_id = _parse_pid(pid)
    data = await read_upload(audio, arena.options.audio_limits.max_bytes)
    clip = await anyio.to_thread.run_sync(
        partial(decode_audio, data, limits=arena.options.audio_limits)
    )
    opened = await anyio.to_thread.run_sync(
        partial(
            open_battle,
            arena,
            cookie_id=session_id,
            clip=clip,
            data=data,
            extension=audio_extension(audio.filename, audio.content_type),
            consent=keep,
            participant_id=participant_id,
        )
    )
    start_generation(arena, opened)
    response.set_cookie(
        SESSION_COOKIE,
        opened.session_id,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return BattleCreated(battle_id=opened.battle_id)


@router.get("/{battle_id}/stream")
async def stream_battle(
    battle_id: str, arena: ArenaDep, session_id: SessionIdDep = None
) -> EventSourceResponse:
    """Server-sent events of both replies as they arrive: delta, done or error, then end."""
    access = await anyio.to_thread.run_sync(check_battle_access, arena, battle_id, session_id)

    async def events() -> AsyncIterator[ServerSentEvent]:
        async for event in battle_events(arena, access):
            yield ServerSentEvent(data=json.dumps(event.data), event=event.name)

    return EventSourceResponse(events())
