"""The battle service: open a battle, generate both replies at once, stream them, take the vote.

Every database step runs in one transaction of its own (``sessionmaker.begin()``) in a worker
thread, never on the event loop. Bad input is rejected before anything is written. Generation
starts as soon as the battle is stored, in an asyncio task of the app, and each side's reply is
committed the moment it finishes; a stream follows the in-process :class:`LiveBattle` when this
process is generating the battle, and reads the stored replies otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from math import ceil
from pathlib import Path
from time import monotonic

import anyio
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lamarena.arena.live import Event, LiveBattle
from lamarena.arena.sampling import pair_key, pick_pair
from lamarena.arena.schemas import LatencyOut, Reveal
from lamarena.arena.state import Arena
from lamarena.audio import AudioClip
from lamarena.errors import (
    AlreadyVoted,
    InvalidInputError,
    LamarenaError,
    NotFound,
    RateLimited,
    RepliesPending,
    Unavailable,
)
from lamarena.models.base import Reply as ModelReply
from lamarena.models.runtime import run_model
from lamarena.store import Winner
from lamarena.store.db import database_errors
from lamarena.store.repo import (
    add_reply,
    create_battle,
    create_session,
    record_vote,
    session_vote_count,
    set_query_transcript,
)
from lamarena.store.tables import ID_LENGTH, SIDES, Battle, Reply, Vote
from lamarena.store.tables import Session as SessionRow

__all__ = [
    "MODEL_FAILED_MESSAGE",
    "BattleAccess",
    "OpenedBattle",
    "battle_events",
    "cast_vote",
    "check_battle_access",
    "open_battle",
    "start_generation",
    "transcribe_feedback",
]

logger = logging.getLogger(__name__)

MODEL_FAILED_MESSAGE = "this model failed to answer; voting is closed for this battle"
"""What a stream says about a failed side (the stored error names the model; this must not)."""

_LOST_MESSAGE = "this reply was lost (the server restarted?); start a new battle"
_NOT_SAVED_MESSAGE = "this reply could not be saved; start a new battle"
_AUDIO_EXTENSIONS = frozenset({"wav", "flac", "ogg", "oga", "mp3", "webm", "m4a", "mp4", "opus"})
_CONTENT_TYPES = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/flac": "flac",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/webm": "webm",
    "video/webm": "webm",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
}


@dataclass(frozen=True)
class OpenedBattle:
    """A stored battle whose replies are about to be generated."""

    battle_id: str
    session_id: str
    model_a: str
    model_b: str
    clip: AudioClip


@dataclass(frozen=True)
class BattleAccess:
    """What a stream needs to know about a battle it may show."""

    battle_id: str
    created_at: datetime


def audio_extension(filename: str | None, content_type: str | None) -> str:
    """The file extension a kept query is stored under (``bin`` when unknown)."""
    suffix = Path(filename or "").suffix.lower().lstrip(".")
    if suffix in _AUDIO_EXTENSIONS:
        return suffix
    base_type = (content_type or "").split(";")[0].strip().lower()
    return _CONTENT_TYPES.get(base_type, "bin")


def _keep_audio(directory: Path, sha256: str, extension: str, data: bytes) -> Path:
    """Write the query under its digest (once; atomically) and return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = (directory / f"{sha256}.{extension}").resolve()
    if not path.exists():
        fd, temporary = tempfile.mkstemp(dir=directory, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return path


def _session_for(
    session: Session, cookie_id: str | None, *, consent: bool | None, participant_id: str | None
) -> SessionRow:
    """The session a new battle belongs to: the cookie's, or a new one.

    A ``pid`` other than the session's own starts a new session (and cookie): a second
    participant on the same browser never takes over the first one's battles or completion
    count, and consent is the new participant's own.
    """
    row = session.get(SessionRow, cookie_id) if cookie_id and len(cookie_id) <= ID_LENGTH else None
    if row is not None and participant_id is not None and row.participant_id != participant_id:
        row = None
    if row is None:
        # A new id is made here, never taken from the client, so no one can pick a session id.
        new_id = create_session(
            session,
            session_id=secrets.token_urlsafe(32),
            participant_id=participant_id,
            consent_keep_audio=bool(consent),
        )
        created = session.get(SessionRow, new_id)
        if created is None:  # pragma: no cover - just flushed
            raise NotFound(f"session {new_id!r} does not exist")
        return created
    if consent is not None:
        row.consent_keep_audio = consent
    session.flush()
    return row


def _check_rate(arena: Arena, session: Session, session_id: str) -> None:
    limit = arena.options.battles_per_minute
    now = datetime.now(UTC)
    since = now - timedelta(minutes=1)
    recent, oldest = session.execute(
        select(func.count(Battle.id), func.min(Battle.created_at)).where(
            Battle.session_id == session_id, Battle.created_at >= since
        )
    ).one()
    if (recent or 0) >= limit:
        # the window frees a place when its oldest battle leaves it
        wait_s = 60 if oldest is None else (oldest - since).total_seconds()
        raise RateLimited(
            f"at most {limit} battles a minute; wait {ceil(wait_s)} s and try again",
            retry_after_s=ceil(wait_s),
        )


def _pair_counts(session: Session) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    rows = session.execute(
        select(Battle.model_a, Battle.model_b, func.count(Battle.id)).group_by(
            Battle.model_a, Battle.model_b
        )
    )
    for model_a, model_b, count in rows:
        key = pair_key(model_a, model_b)
        counts[key] = counts.get(key, 0) + count
    return counts


def open_battle(
    arena: Arena,
    *,
    cookie_id: str | None,
    clip: AudioClip,
    data: bytes,
    extension: str,
    consent: bool | None,
    participant_id: str | None,
) -> OpenedBattle:
    """Store a new battle for a validated query, in one transaction (blocking: use a thread).

    Args:
        arena: the running arena.
        cookie_id: the session id the client sent, if any (unknown ids start a new session).
        clip: the decoded, validated query.
        data: the uploaded bytes (kept only with consent).
        extension: the extension of a kept file.
        consent: whether the audio may be kept; None keeps the session's earlier answer.
        participant_id: the external participant id, if given.

    Returns:
        The battle, its session and its two models.

    Raises:
        RateLimited: the session started too many battles in the last minute.
        DatabaseError: the database failed; nothing was stored.
    """
    names = list(arena.models)
    with (
        database_errors(arena.engine, "storing a battle", "nothing was stored"),
        arena.sessionmaker.begin() as session,
    ):
        row = _session_for(session, cookie_id, consent=consent, participant_id=participant_id)
        _check_rate(arena, session, row.id)
        counts = _pair_counts(session) if arena.options.sampling == "balanced" else None
        with arena.rng_lock:
            model_a, model_b = pick_pair(
                names, arena.rng, strategy=arena.options.sampling, pair_counts=counts
            )
        kept: str | None = None
        if row.consent_keep_audio:
            directory = arena.settings.data_dir / "audio"
            kept = str(_keep_audio(directory, clip.sha256, extension, data))
        battle_id = create_battle(
            session,
            model_a=model_a,
            model_b=model_b,
            session_id=row.id,
            query_audio_sha256=clip.sha256,
            kept_audio_path=kept,
        )
        session_id = row.id
    logger.info("battle %s opened", battle_id)
    return OpenedBattle(battle_id, session_id, model_a, model_b, clip)


def start_generation(arena: Arena, battle: OpenedBattle) -> LiveBattle:
    """Start generating both replies now, in a task of the app; return what streams follow."""
    live = arena.live.start(battle.battle_id)
    task = asyncio.create_task(_generate(arena, battle, live), name=f"battle-{battle.battle_id}")
    arena.tasks.add(task)
    task.add_done_callback(arena.tasks.discard)
    return live


def _save_reply(arena: Arena, battle_id: str, side: str, reply: ModelReply) -> None:
    with (
        database_errors(arena.engine, f"storing reply {side}", "the reply was not stored"),
        arena.sessionmaker.begin() as session,
    ):
        add_reply(
            session,
            battle_id,
            side,
            text=reply.text,
            ttft_s=reply.ttft_s,
            total_s=reply.total_s,
            chars=reply.chars,
            error=reply.error,
        )


async def _generate_side(
    arena: Arena, battle: OpenedBattle, side: str, name: str, live: LiveBattle
) -> ModelReply:
    model = arena.models[name]

    async def forward(text: str) -> None:
        await live.publish(Event("delta", {"side": side, "text": text}))

    reply = await run_model(
        model.adapter,
        battle.clip,
        model.entry.system_prompt,
        timeouts=arena.timeouts,
        on_delta=forward,
        semaphore=model.semaphore,
    )
    try:
        await anyio.to_thread.run_sync(partial(_save_reply, arena, battle.battle_id, side, reply))
    except LamarenaError as exc:
        logger.error("battle %s side %s: %s", battle.battle_id, side, exc)
        await live.publish(Event("error", {"side": side, "message": _NOT_SAVED_MESSAGE}))
        return reply
    if reply.ok:
        # Only the side: timings would tell the models apart before the vote (the reveal has them).
        await live.publish(Event("done", {"side": side}))
    else:
        await live.publish(Event("error", {"side": side, "message": MODEL_FAILED_MESSAGE}))
    return reply


def _save_transcript(arena: Arena, battle_id: str, transcript: str) -> None:
    with (
        database_errors(arena.engine, "storing a transcript", "the transcript was not stored"),
        arena.sessionmaker.begin() as session,
    ):
        set_query_transcript(session, battle_id, transcript)


async def _store_transcript(arena: Arena, battle: OpenedBattle, replies: list[ModelReply]) -> None:
    """Keep what the query said: a pipeline side's transcript, else the arena's recogniser's.

    Runs after both replies are done, so transcription never slows them down; a failure is
    logged and leaves the transcript empty.
    """
    transcript = next((reply.transcript for reply in replies if reply.transcript), None)
    try:
        if transcript is None and arena.transcriber is not None:
            transcript = (await arena.transcriber.transcribe(battle.clip)).strip()
        if transcript:
            await anyio.to_thread.run_sync(
                partial(_save_transcript, arena, battle.battle_id, transcript)
            )
    except LamarenaError as exc:
        logger.warning("battle %s: no query transcript: %s", battle.battle_id, exc)
    except Exception:  # best effort: a recogniser's own bug must not look like a failed battle
        logger.exception("battle %s: transcribing the query failed", battle.battle_id)


async def _generate(arena: Arena, battle: OpenedBattle, live: LiveBattle) -> None:
    try:
        async with asyncio.TaskGroup() as group:
            side_a = group.create_task(_generate_side(arena, battle, "a", battle.model_a, live))
            side_b = group.create_task(_generate_side(arena, battle, "b", battle.model_b, live))
    finally:
        await live.finish()
        arena.live.discard(battle.battle_id)
    await _store_transcript(arena, battle, [side_a.result(), side_b.result()])


async def transcribe_feedback(arena: Arena, clip: AudioClip) -> str:
    """The text of a spoken reason, by the arena's speech recogniser.

    Raises:
        Unavailable: this arena has no speech recogniser.
        ModelError: the recogniser failed.
        InvalidInputError: nothing intelligible was said.
    """
    if arena.transcriber is None:
        raise Unavailable(
            "spoken reasons are not available here (no speech recogniser is configured); "
            "type your reason instead"
        )
    text = (await arena.transcriber.transcribe(clip)).strip()
    if not text:
        raise InvalidInputError("no words were recognised in the recording; try again or type")
    return text


def check_battle_access(arena: Arena, battle_id: str, session_id: str | None) -> BattleAccess:
    """The battle if it belongs to ``session_id`` (blocking: use a thread).

    Raises:
        NotFound: no such battle, or not this session's.
    """
    with (
        database_errors(arena.engine, "reading a battle", "try again"),
        arena.read_sessionmaker() as session,
    ):
        battle = session.get(Battle, battle_id)
        if battle is None or session_id is None or battle.session_id != session_id:
            raise NotFound(f"battle {battle_id!r} does not exist")
        return BattleAccess(battle.id, battle.created_at)


def _stored_replies(arena: Arena, battle_id: str) -> dict[str, Reply]:
    with (
        database_errors(arena.engine, "reading replies", "try again"),
        arena.read_sessionmaker() as session,
    ):
        rows = session.scalars(select(Reply).where(Reply.battle_id == battle_id))
        return {row.side: row for row in rows}


def _stored_events(reply: Reply) -> list[Event]:
    if reply.error is not None:
        return [Event("error", {"side": reply.side, "message": MODEL_FAILED_MESSAGE})]
    return [
        Event("delta", {"side": reply.side, "text": reply.text or ""}),
        Event("done", {"side": reply.side}),
    ]


async def battle_events(arena: Arena, access: BattleAccess) -> AsyncIterator[Event]:
    """The events of a battle: live if this process generates it, else from the store.

    A battle generated elsewhere is polled until both replies are stored, or until they count
    as lost (the total model time limit plus a grace period after the battle started).
    """
    live = arena.live.get(access.battle_id)
    if live is not None:
        async for event in live.follow():
            yield event
        return
    limit_s = _loss_deadline_s(arena)
    deadline = monotonic() + max(
        0.0, limit_s - (datetime.now(UTC) - access.created_at).total_seconds()
    )
    sent: set[str] = set()
    while True:
        replies = await anyio.to_thread.run_sync(_stored_replies, arena, access.battle_id)
        for side in SIDES:
            if side not in sent and side in replies:
                sent.add(side)
                for event in _stored_events(replies[side]):
                    yield event
        if len(sent) == len(SIDES):
            break
        if monotonic() >= deadline:
            for side in SIDES:
                if side not in sent:
                    yield Event("error", {"side": side, "message": _LOST_MESSAGE})
            break
        await asyncio.sleep(arena.options.reply_poll_s)
    yield Event("end", {})


def _loss_deadline_s(arena: Arena) -> float:
    """Seconds after a battle starts at which a reply still missing counts as lost."""
    return arena.settings.model_total_timeout_s + arena.options.lost_reply_grace_s


def _is_lost(arena: Arena, created_at: datetime) -> bool:
    # The store reads timestamps back UTC-aware on both databases (tests/store/test_repo.py).
    return (datetime.now(UTC) - created_at).total_seconds() > _loss_deadline_s(arena)


def _latency(reply: Reply) -> LatencyOut:
    return LatencyOut(ttft_s=reply.ttft_s, total_s=reply.total_s, chars=reply.chars)


def cast_vote(
    arena: Arena,
    battle_id: str,
    session_id: str | None,
    winner: Winner,
    feedback_text: str | None,
) -> Reveal:
    """Record the vote of a battle and reveal its models (blocking: use a thread).

    Raises:
        NotFound: no such battle, or not this session's.
        AlreadyVoted: the battle has its vote.
        RepliesPending: a reply is still being generated.
        InvalidInputError: a side failed, so the battle cannot be judged.
    """
    with (
        database_errors(arena.engine, "storing the vote", "the vote was not stored"),
        arena.sessionmaker.begin() as session,
    ):
        battle = session.get(Battle, battle_id)
        if battle is None or session_id is None or battle.session_id != session_id:
            raise NotFound(f"battle {battle_id!r} does not exist")
        if session.scalar(select(Vote.id).where(Vote.battle_id == battle_id)) is not None:
            raise AlreadyVoted(f"battle {battle_id!r} already has a vote")
        replies = {
            row.side: row
            for row in session.scalars(select(Reply).where(Reply.battle_id == battle_id))
        }
        if len(replies) < len(SIDES):
            if _is_lost(arena, battle.created_at):
                raise InvalidInputError(_LOST_MESSAGE)
            raise RepliesPending("the replies are still being generated; vote when both are done")
        failed = [side.upper() for side in SIDES if replies[side].error is not None]
        if failed:
            raise InvalidInputError(
                f"model {' and '.join(failed)} failed to answer, so this battle cannot be "
                "judged; start a new battle"
            )
        record_vote(session, battle_id, winner, feedback_text=feedback_text, session_id=session_id)
        votes_cast = session_vote_count(session, session_id)
        needed = arena.settings.completion_votes
        code = arena.settings.completion_code
        return Reveal(
            model_a=battle.model_a,
            model_b=battle.model_b,
            latency_a=_latency(replies["a"]),
            latency_b=_latency(replies["b"]),
            votes_cast=votes_cast,
            completion_code=code if code and votes_cast >= needed else None,
        )
