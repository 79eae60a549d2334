"""``POST /api/battles`` (upload a query, start both replies) and ``GET .../stream`` (SSE)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import partial

import anyio
from fastapi import APIRouter, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.datastructures import UploadFile

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

__all__ = ["MAX_FORM_FIELDS", "read_audio_form", "read_upload", "router"]

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


MAX_FORM_FIELDS = 4
"""Text fields a battle's form may hold (consent, pid, and a little room)."""


async def read_audio_form(
    request: Request, max_bytes: int | None
) -> tuple[bytes, UploadFile, dict[str, str]]:
    """The one audio file part and the text fields of a multipart request.

    One file part and at most :data:`MAX_FORM_FIELDS` fields are parsed (the body's size is
    bounded before this by the arena's body limit); more is a 400 before any more is read.

    Raises:
        InvalidInputError: no file part called ``audio``.
    """
    async with request.form(max_files=1, max_fields=MAX_FORM_FIELDS) as form:
        audio = form.get("audio")
        if not isinstance(audio, UploadFile):
            raise InvalidInputError("send the recording as a file part called 'audio'")
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        return await read_upload(audio, max_bytes), audio, fields


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
    session_id: SessionIdDep = None,
) -> BattleCreated:
    """Validate the query, store the battle, and start both replies at once.

    A multipart form: the file part ``audio`` (the spoken query, any common format), and the
    fields ``consent`` ('true' to let the audio be kept) and ``pid`` (an external participant
    id). Nothing is stored when the audio is empty, undecodable, too long, too large or silent
    (422), or the form holds more than one file (400).
    """
    data, audio, fields = await read_audio_form(request, arena.options.audio_limits.max_bytes)
    keep = _parse_consent(fields.get("consent"))
    participant_id = _parse_pid(fields.get("pid"))
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
