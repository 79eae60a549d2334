"""Battle routes: opening a battle, speaking again, streaming the replies, a spoken reply.

``POST /api/battles``, ``POST .../turns``, ``GET .../stream``, ``GET .../audio/{side}``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Literal

import anyio
from fastapi import APIRouter, Query, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, StreamingResponse

from lamarena.arena.battles import (
    audio_extension,
    battle_events,
    check_battle_access,
    check_upload_allowed,
    live_battle_access,
    live_key,
    note_refused_upload,
    open_battle_from_upload,
    start_generation,
    stored_reply_audio,
)
from lamarena.arena.deps import SESSION_COOKIE, ArenaDep, ClientDep, SessionIdDep
from lamarena.arena.pacing import equal_pace
from lamarena.arena.schemas import BattleCreated, TurnCreated
from lamarena.arena.state import Arena
from lamarena.arena.turns import open_turn
from lamarena.errors import InvalidInputError, RateLimited
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
    client: ClientDep,
    session_id: SessionIdDep = None,
) -> BattleCreated:
    """Validate the query, store the battle, and start both replies at once.

    A multipart form: the file part ``audio`` (the spoken query, any common format), and the
    fields ``consent`` ('true' to let the audio be kept) and ``pid`` (an external participant
    id). Nothing is stored when the audio is empty, undecodable, too long, too large or silent
    (422), or the form holds more than one file (400). An address over its limit is refused
    (429) before its upload is read; refused uploads count toward that limit.
    """
    await anyio.to_thread.run_sync(check_upload_allowed, arena, client)
    try:
        data, audio, fields = await read_audio_form(request, arena.options.audio_limits.max_bytes)
    except (InvalidInputError, HTTPException):
        await anyio.to_thread.run_sync(note_refused_upload, arena, client)
        raise
    keep = _parse_consent(fields.get("consent"))
    participant_id = _parse_pid(fields.get("pid"))
    # Decoding and storing take CPU a burst of uploads would share; queued in arrival order
    # (the body is read before, so a slow upload never holds a place) the first to arrive
    # have their replies started first instead of every battle waiting for all of them.
    async with arena.battle_starts:
        opened = await anyio.to_thread.run_sync(
            partial(
                open_battle_from_upload,
                arena,
                data=data,
                client=client,
                cookie_id=session_id,
                extension=audio_extension(audio.filename, audio.content_type),
                consent=keep,
                participant_id=participant_id,
            )
        )
        start_generation(arena, opened)
    response.set_cookie(
        SESSION_COOKIE,
        opened.session_id,
        max_age=int(arena.settings.session_max_age_h * 3600),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    return BattleCreated(battle_id=opened.battle_id)


@router.post("/{battle_id}/turns", status_code=201)
async def add_turn(
    battle_id: str,
    request: Request,
    arena: ArenaDep,
    client: ClientDep,
    session_id: SessionIdDep = None,
) -> TurnCreated:
    """Speak again before voting: the next turn of the battle's conversation.

    A multipart form with the file part ``audio``, checked as a first upload is (429 past the
    address's budget before the body is read; 422 for audio that cannot be a query). Then 404
    for a battle of another session, 409 after the vote, while the latest turn's replies are
    pending, or when this process no longer holds the conversation, and 422 past
    ``--max-turns`` or after a failed reply. Both sides start answering at once, each with its
    own earlier replies.
    """
    await anyio.to_thread.run_sync(check_upload_allowed, arena, client)
    try:
        data, audio, _ = await read_audio_form(request, arena.options.audio_limits.max_bytes)
    except (InvalidInputError, HTTPException):
        await anyio.to_thread.run_sync(note_refused_upload, arena, client)
        raise
    async with arena.battle_starts:
        opened = await anyio.to_thread.run_sync(
            partial(
                open_turn,
                arena,
                battle_id=battle_id,
                session_id=session_id,
                data=data,
                client=client,
                extension=audio_extension(audio.filename, audio.content_type),
            )
        )
        start_generation(arena, opened)
    return TurnCreated(turn=opened.turn)


@router.get("/{battle_id}/stream")
async def stream_battle(
    battle_id: str,
    arena: ArenaDep,
    session_id: SessionIdDep = None,
    turn: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> EventSourceResponse:
    """Server-sent events of one turn's replies as they arrive: delta, done or error, then end.

    The latest turn by default, ``?turn=N`` for any; every event carries its ``turn``. A
    session holds at most ``streams_per_session`` streams open at once in a process (429).
    """
    access = live_battle_access(arena, battle_id, session_id, turn)
    if access is None:  # not generated here (another worker, or already finished): ask the store
        access = await anyio.to_thread.run_sync(
            check_battle_access, arena, battle_id, session_id, turn
        )
    assert session_id is not None  # neither allows a request without one
    _take_stream(arena, session_id)

    async def events() -> AsyncIterator[ServerSentEvent]:
        try:
            source = battle_events(arena, access)
            if access.equal_pace:
                source = equal_pace(source, arena.settings.pace_chars_per_s)
            async for event in source:
                yield ServerSentEvent(data=json.dumps(event.data), event=event.name)
        finally:
            _give_stream(arena, session_id)

    return EventSourceResponse(events())


def _take_stream(arena: Arena, session_id: str) -> None:
    """Count one more open stream of the session, or refuse it past ``streams_per_session``."""
    cap = arena.settings.streams_per_session
    if arena.open_streams[session_id] >= cap:
        raise RateLimited(
            f"at most {cap} reply streams may be open at once; close one and try again",
            retry_after_s=5,
        )
    arena.open_streams[session_id] += 1


def _give_stream(arena: Arena, session_id: str) -> None:
    arena.open_streams[session_id] -= 1
    if arena.open_streams[session_id] <= 0:
        del arena.open_streams[session_id]


@router.get("/{battle_id}/audio/{side}", response_model=None)
async def reply_audio(
    battle_id: str,
    side: Literal["a", "b"],
    arena: ArenaDep,
    session_id: SessionIdDep = None,
    turn: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> StreamingResponse | FileResponse:
    """A side's spoken reply of one turn (the latest by default) as a WAV.

    While this process generates it, the audio streams as it arrives (the WAV's length left
    open, so it plays at once); after that it is the kept file, from any worker. Only the
    battle's own session may fetch it; each counts as one of its open streams (429 past them).
    """
    access = live_battle_access(arena, battle_id, session_id, turn)
    if access is None:
        access = await anyio.to_thread.run_sync(
            check_battle_access, arena, battle_id, session_id, turn
        )
    assert session_id is not None  # neither allows a request without one
    live = arena.live.get(live_key(battle_id, access.turn))
    audio = live.audio(side) if live is not None and live.session_id == session_id else None
    _take_stream(arena, session_id)
    if audio is not None:

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in audio.wav():
                    yield chunk
            finally:
                _give_stream(arena, session_id)

        return StreamingResponse(chunks(), media_type="audio/wav", headers=_NO_STORE)
    try:
        path = await stored_reply_audio(arena, access, side)
    finally:
        _give_stream(arena, session_id)
    return FileResponse(path, media_type="audio/wav", headers=_NO_STORE)


_NO_STORE = {"Cache-Control": "no-store"}
