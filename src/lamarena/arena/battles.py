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
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from math import ceil
from pathlib import Path
from time import monotonic

import anyio
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from lamarena.analysis.ranking.pair_design import Pair, PairTally
from lamarena.arena.identification import SELF_IDENTIFIED
from lamarena.arena.kept_files import StagedAudio, stage_audio
from lamarena.arena.limits import (
    Limit,
    arena_battle_count,
    check_battle_budget,
    check_client,
    check_global_battles,
    client_event_count,
    lock_client,
    record_event,
)
from lamarena.arena.listening import LISTEN_SLACK_S, HeardReply, earliest_vote_s
from lamarena.arena.live import Event, LiveBattle
from lamarena.arena.reply_audio import audio_url, keep_reply_audio, reply_audio_path
from lamarena.arena.sampling import draw_pair, pair_key
from lamarena.arena.schemas import LatencyOut, Reveal
from lamarena.arena.state import Arena
from lamarena.audio import AudioClip, decode_audio
from lamarena.errors import (
    AlreadyVoted,
    InvalidInputError,
    LamarenaError,
    ListenFirst,
    NotFound,
    RateLimited,
    RepliesPending,
    Unavailable,
)
from lamarena.models.base import EarlierTurn
from lamarena.models.base import Reply as ModelReply
from lamarena.models.runtime import run_model
from lamarena.models.speech import SpeechAudio
from lamarena.store import Winner
from lamarena.store.db import check_database_identity, database_errors
from lamarena.store.repo import (
    add_reply,
    create_battle,
    create_session,
    flag_battle,
    record_vote,
    session_vote_count,
    set_turn_transcript,
)
from lamarena.store.tables import ID_LENGTH, SIDES, Battle, Reply, Turn, Vote
from lamarena.store.tables import Session as SessionRow

__all__ = [
    "DUPLICATE_AUDIO",
    "LOST_ERROR",
    "MODEL_FAILED_MESSAGE",
    "BattleAccess",
    "OpenedBattle",
    "StagedAudio",
    "battle_events",
    "battle_limit",
    "cast_vote",
    "check_battle_access",
    "check_transcription_allowed",
    "check_upload_allowed",
    "has_vote",
    "latest_turn",
    "live_key",
    "mark_abandoned_battles",
    "note_refused_upload",
    "open_battle",
    "owned_battle",
    "reserve_transcription",
    "stage_audio",
    "start_generation",
    "stored_reply_audio",
    "transcribe_feedback",
    "turn_replies",
    "turn_started",
]

logger = logging.getLogger(__name__)

MODEL_FAILED_MESSAGE = "this model failed to answer; voting is closed for this battle"
"""What a stream says about a failed side (the stored error names the model; this must not)."""

_LOST_MESSAGE = "this reply was lost (the server restarted?); start a new battle"
LOST_ERROR = "lost: the server stopped while this reply was being generated"
"""The stored error of a reply a stopped server left unfinished (marked at the next start)."""
DUPLICATE_AUDIO = "duplicate_audio"
"""The flag of a battle whose audio other sessions sent within :data:`_DUPLICATE_WINDOW`."""
_DUPLICATE_WINDOW = timedelta(hours=1)
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
    created_at: datetime
    equal_pace: bool
    turn: int = 1
    history: Mapping[str, tuple[EarlierTurn, ...]] = field(default_factory=dict)
    """Each side's own earlier turns (empty for the first turn)."""


@dataclass(frozen=True)
class BattleAccess:
    """What a stream needs to know about a battle (one turn of it) it may show."""

    battle_id: str
    created_at: datetime
    equal_pace: bool = False
    turn: int = 1


def live_key(battle_id: str, turn: int) -> str:
    """The key of a turn being generated in :attr:`Arena.live` (turn 1: the battle's id)."""
    return battle_id if turn == 1 else f"{battle_id}#turn{turn}"


def audio_extension(filename: str | None, content_type: str | None) -> str:
    """The file extension a kept query is stored under (``bin`` when unknown)."""
    suffix = Path(filename or "").suffix.lower().lstrip(".")
    if suffix in _AUDIO_EXTENSIONS:
        return suffix
    base_type = (content_type or "").split(";")[0].strip().lower()
    return _CONTENT_TYPES.get(base_type, "bin")


def _session_for(
    session: Session,
    cookie_id: str | None,
    *,
    consent: bool | None,
    participant_id: str | None,
    max_age: timedelta,
) -> SessionRow:
    """The session a new battle belongs to: the cookie's, or a new one.

    A ``pid`` other than the session's own starts a new session (and cookie): a second
    participant on the same browser never takes over the first one's battles or completion
    count, and consent is the new participant's own. A session older than ``max_age`` is not
    continued either: a cookie stays valid for a bounded time.
    """
    row = session.get(SessionRow, cookie_id) if cookie_id and len(cookie_id) <= ID_LENGTH else None
    if row is not None and participant_id is not None and row.participant_id != participant_id:
        row = None
    if row is not None and datetime.now(UTC) - row.created_at > max_age:
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


def _pair_tallies(session: Session) -> dict[Pair, PairTally]:
    """Counted votes per unordered pair, with the first (sorted) model's score: one read."""
    score = {"model_a": 1.0, "model_b": 0.0}
    tallies: dict[Pair, PairTally] = {}
    rows = session.execute(
        select(Battle.model_a, Battle.model_b, Vote.winner, func.count(Battle.id))
        .join(Vote, Vote.battle_id == Battle.id)
        .where(Battle.counted)
        .group_by(Battle.model_a, Battle.model_b, Vote.winner)
    )
    for model_a, model_b, winner, count in rows:
        key = pair_key(model_a, model_b)
        a_score = score.get(winner, 0.5)
        first_score = a_score if key[0] == model_a else 1.0 - a_score
        seen = tallies.get(key, PairTally(0.0, 0.0))
        tallies[key] = PairTally(seen.battles + count, seen.first_score + first_score * count)
    return tallies


def battle_limit(arena: Arena) -> Limit:
    """Battles and refused uploads one address may send a minute."""
    return Limit(
        ("battle", "refused"),
        arena.settings.address_battles_per_minute,
        "battles or refused uploads",
    )


def refusal_limit(arena: Arena) -> Limit:
    """Refused uploads one address may send a minute before any upload of it is read."""
    return Limit(("refused",), arena.settings.address_refusals_per_minute, "refused uploads")


def check_upload_allowed(arena: Arena, client: str) -> None:
    """Refuse an upload before reading it when its address used up its battles (blocking).

    Raises:
        RateLimited: the address or the arena is at its limit.
    """
    with (
        database_errors(arena.engine, "checking the limits", "try again"),
        arena.read_sessionmaker() as session,
    ):
        check_battle_budget(
            session,
            client,
            battle_limit(arena),
            arena.settings.global_battles_per_minute,
            refusals=refusal_limit(arena),
        )


def note_refused_upload(arena: Arena, client: str) -> None:
    """Count a refused upload toward its address's battle budget (blocking; best effort)."""
    try:
        with (
            database_errors(arena.engine, "counting a refused upload", "it was not counted"),
            arena.sessionmaker.begin() as session,
        ):
            record_event(session, client, "refused")
    except LamarenaError as exc:
        logger.warning("a refused upload was not counted: %s", exc)


@dataclass(frozen=True)
class _BattleUsage:
    """What a new battle is checked against, counted over the last minute (one read)."""

    client_events: int
    arena_battles: int
    session_battles: int
    duplicate_audio: bool


def _battle_usage(
    session: Session, client: str | None, limit: Limit, session_id: str, sha256: str
) -> _BattleUsage:
    """What a new battle is checked against, in one statement.

    The client's battles and refused uploads, the arena's and the session's battles of the
    last minute, and whether another session sent the same audio within the hour: what
    :func:`check_client`, :func:`check_global_battles`, :func:`_check_rate` and a duplicate
    query would ask one by one (a round trip each on PostgreSQL). tests/arena/test_limits.py
    checks it against them.
    """
    now = datetime.now(UTC)
    since = now - timedelta(minutes=1)
    session_battles = (
        select(func.count(Battle.id))
        .where(Battle.session_id == session_id, Battle.created_at >= since)
        .scalar_subquery()
    )
    duplicate = (
        select(Battle.id)
        .where(
            Battle.query_audio_sha256 == sha256,
            Battle.created_at >= now - _DUPLICATE_WINDOW,
            Battle.session_id != session_id,
        )
        .exists()
    )
    row = session.execute(
        select(
            client_event_count(client, limit.kinds, since),
            arena_battle_count(since),
            session_battles,
            duplicate,
        )
    ).one()
    return _BattleUsage(
        client_events=int(row[0] or 0) if client is not None else 0,
        arena_battles=int(row[1] or 0),
        session_battles=int(row[2] or 0),
        duplicate_audio=bool(row[3]),
    )


def open_battle(
    arena: Arena,
    *,
    cookie_id: str | None,
    clip: AudioClip,
    data: bytes,
    extension: str,
    consent: bool | None,
    participant_id: str | None,
    client: str | None = None,
) -> OpenedBattle:
    """Store a new battle for a validated query, in one transaction (blocking: use a thread).

    A kept query (with consent) is written to a temporary file before the commit and moved into
    place after it, so a failed commit leaves no file and no row refers to a missing file.

    Args:
        arena: the running arena.
        cookie_id: the session id the client sent, if any (unknown ids start a new session).
        clip: the decoded, validated query.
        data: the uploaded bytes (kept only with consent).
        extension: the extension of a kept file.
        consent: whether the audio may be kept; None keeps the session's earlier answer.
        participant_id: the external participant id, if given.
        client: the salted hash of the client address (limits per address), if known.

    Returns:
        The battle, its session and its two models.

    Raises:
        RateLimited: the session, the address or the arena started too many battles in the
            last minute.
        StorageFull: the disk is full; nothing was stored.
        DatabaseError: the database failed (or its file was removed); nothing was stored.
    """
    names = list(arena.models)
    settings = arena.settings
    staged: StagedAudio | None = None
    try:
        with (
            database_errors(arena.engine, "storing a battle", "nothing was stored"),
            arena.sessionmaker.begin() as session,
        ):
            check_database_identity(arena.database_identity)
            if client is not None:
                lock_client(session, client)
            row = _session_for(
                session,
                cookie_id,
                consent=consent,
                participant_id=participant_id,
                max_age=timedelta(hours=settings.session_max_age_h),
            )
            limit = battle_limit(arena)
            usage = _battle_usage(session, client, limit, row.id, clip.sha256)
            # Only a refusal reads again, to say how long to wait.
            if client is not None and usage.client_events >= limit.per_minute:
                check_client(session, client, limit)
            if usage.arena_battles >= settings.global_battles_per_minute:
                check_global_battles(session, settings.global_battles_per_minute)
            if usage.session_battles >= arena.options.battles_per_minute:
                _check_rate(arena, session, row.id)
            flags = [DUPLICATE_AUDIO] if usage.duplicate_audio else []
            counts = _pair_counts(session) if arena.options.sampling == "balanced" else None
            design = None
            if arena.active_design is not None:
                design = arena.active_design.probabilities(partial(_pair_tallies, session))
            with arena.rng_lock:
                drawn = draw_pair(
                    names,
                    arena.rng,
                    strategy=arena.options.sampling,
                    pair_counts=counts,
                    design=design,
                )
            model_a, model_b = drawn.model_a, drawn.model_b
            if row.consent_keep_audio:
                directory = settings.data_dir / "audio"
                staged = stage_audio(directory, clip.sha256, extension, data)
            created_at = datetime.now(UTC)
            battle_id = create_battle(
                session,
                created_at=created_at,
                model_a=model_a,
                model_b=model_b,
                session_id=row.id,
                query_audio_sha256=clip.sha256,
                kept_audio_path=None if staged is None else str(staged.path),
                participant_id=row.participant_id,
                client_hash=client,
                flags=flags,
                equal_pace=settings.equal_pace,
                server_run=arena.server_run or None,
                sampling_probability=drawn.probability,
                mode=settings.mode,
            )
            if client is not None:
                record_event(session, client, "battle")
            session_id = row.id
    except BaseException:
        if staged is not None:
            staged.discard()
        raise
    if staged is not None:
        staged.publish()
    logger.info("battle %s opened%s", battle_id, f" ({', '.join(flags)})" if flags else "")
    return OpenedBattle(
        battle_id, session_id, model_a, model_b, clip, created_at, settings.equal_pace
    )


def open_battle_from_upload(
    arena: Arena,
    *,
    data: bytes,
    client: str,
    cookie_id: str | None,
    extension: str,
    consent: bool | None,
    participant_id: str | None,
) -> OpenedBattle:
    """Decode an uploaded query and store its battle (blocking: one trip to a worker thread).

    An upload that cannot be a query (empty, undecodable, too long, silent) counts toward its
    address's battle budget, and nothing else is stored.

    Raises:
        InvalidInputError: the audio cannot be a query.
        RateLimited, StorageFull, DatabaseError: as :func:`open_battle`.
    """
    try:
        clip = decode_audio(data, limits=arena.options.audio_limits)
    except InvalidInputError:
        note_refused_upload(arena, client)
        raise
    return open_battle(
        arena,
        cookie_id=cookie_id,
        clip=clip,
        data=data,
        extension=extension,
        consent=consent,
        participant_id=participant_id,
        client=client,
    )


def start_generation(arena: Arena, battle: OpenedBattle) -> LiveBattle:
    """Start generating both replies now, in a task of the app; return what streams follow."""
    live = arena.live.start(
        live_key(battle.battle_id, battle.turn),
        session_id=battle.session_id,
        created_at=battle.created_at,
        equal_pace=battle.equal_pace,
        turn=battle.turn,
    )
    task = asyncio.create_task(
        _generate(arena, battle, live), name=f"battle-{battle.battle_id}-turn{battle.turn}"
    )
    arena.tasks.add(task)
    task.add_done_callback(arena.tasks.discard)
    return live


def _save_reply(arena: Arena, battle_id: str, side: str, reply: ModelReply, turn: int = 1) -> None:
    """Store a side's reply; one that names a model flags the battle in the same commit.

    Both replies are stored before a vote is accepted, so the vote sees the flag. A spoken
    reply's audio is written (content-addressed) before its row, so no row names a missing file.
    """
    named = arena.identification.names(reply.text) if reply.ok and reply.text else None
    audio_sha256: str | None = None
    if reply.audio and reply.audio_sample_rate_hz:
        audio_sha256, _ = keep_reply_audio(
            arena.settings.data_dir, reply.audio, reply.audio_sample_rate_hz
        )
    with (
        database_errors(arena.engine, f"storing reply {side}", "the reply was not stored"),
        arena.sessionmaker.begin() as session,
    ):
        if named is not None:
            flag_battle(session, battle_id, SELF_IDENTIFIED)
            logger.info(
                "battle %s: reply %s names %r; its vote will not count", battle_id, side, named
            )
        add_reply(
            session,
            battle_id,
            side,
            text=reply.text,
            ttft_s=reply.ttft_s,
            total_s=reply.total_s,
            chars=reply.chars,
            error=reply.error,
            turn=turn,
            ttfab_s=reply.ttfab_s,
            audio_s=reply.audio_s,
            audio_sha256=audio_sha256,
            notice=reply.notice,  # stored, never streamed: it names the model
        )


async def _generate_side(
    arena: Arena,
    battle: OpenedBattle,
    side: str,
    name: str,
    live: LiveBattle,
    saved: dict[str, ModelReply],
) -> ModelReply:
    model = arena.models[name]
    turn = battle.turn
    # a spoken reply's text is shown after playback, or never (--hide-transcripts)
    send_text = not (arena.settings.mode == "speech" and arena.settings.hide_transcripts)

    async def forward(text: str) -> None:
        if send_text:
            await live.publish(Event("delta", {"side": side, "turn": turn, "text": text}))

    async def forward_audio(chunk: SpeechAudio) -> None:
        audio = live.audio(side)
        if audio is None:  # the first chunk: the page may fetch the side's audio from now on
            audio = live.start_audio(side, chunk.sample_rate_hz)
            await audio.append(chunk.pcm16)
            url = audio_url(battle.battle_id, side, turn)
            await live.publish(Event("audio", {"side": side, "turn": turn, "url": url}))
        else:
            await audio.append(chunk.pcm16)

    try:
        reply = await run_model(
            model.adapter,
            battle.clip,
            model.entry.system_prompt,
            timeouts=arena.timeouts,
            on_delta=forward,
            on_audio=forward_audio,
            semaphore=model.semaphore,
            history=battle.history.get(side, ()),
        )
    finally:
        audio = live.audio(side)
        if audio is not None:
            await audio.finish()
    try:
        await anyio.to_thread.run_sync(
            partial(_save_reply, arena, battle.battle_id, side, reply, turn)
        )
    except LamarenaError as exc:
        logger.error("battle %s side %s: %s", battle.battle_id, side, exc)
        await live.publish(
            Event("error", {"side": side, "turn": turn, "message": _NOT_SAVED_MESSAGE})
        )
        return reply
    saved[side] = reply
    if len(saved) == len(SIDES):
        # Before the last ``done``: once a person sees both, they may speak again at once.
        _remember_turn(arena, battle, saved)
    if reply.ok:
        # Only the side: timings would tell the models apart before the vote (the reveal has them).
        await live.publish(Event("done", {"side": side, "turn": turn}))
    else:
        await live.publish(
            Event("error", {"side": side, "turn": turn, "message": MODEL_FAILED_MESSAGE})
        )
    return reply


def _save_transcript(arena: Arena, battle_id: str, turn: int, transcript: str) -> None:
    with (
        database_errors(arena.engine, "storing a transcript", "the transcript was not stored"),
        arena.sessionmaker.begin() as session,
    ):
        set_turn_transcript(session, battle_id, turn, transcript)


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
                partial(_save_transcript, arena, battle.battle_id, battle.turn, transcript)
            )
    except LamarenaError as exc:
        logger.warning("battle %s: no query transcript: %s", battle.battle_id, exc)
    except Exception:  # best effort: a recogniser's own bug must not look like a failed battle
        logger.exception("battle %s: transcribing the query failed", battle.battle_id)


def _remember_turn(arena: Arena, battle: OpenedBattle, replies: dict[str, ModelReply]) -> None:
    """Hold a finished turn for the conversation's next one (both sides stored and answered)."""
    if all(reply.ok for reply in replies.values()) and arena.settings.max_turns > battle.turn:
        arena.conversations.record(
            battle.battle_id,
            battle.clip,
            {side: reply.text for side, reply in replies.items()},
            {side: reply.transcript for side, reply in replies.items()},
        )


async def _generate(arena: Arena, battle: OpenedBattle, live: LiveBattle) -> None:
    saved: dict[str, ModelReply] = {}
    try:
        async with asyncio.TaskGroup() as group:
            side_a = group.create_task(
                _generate_side(arena, battle, "a", battle.model_a, live, saved)
            )
            side_b = group.create_task(
                _generate_side(arena, battle, "b", battle.model_b, live, saved)
            )
    finally:
        await live.finish()
        arena.live.discard(live_key(battle.battle_id, battle.turn))
    await _store_transcript(arena, battle, [side_a.result(), side_b.result()])


def transcription_limit(arena: Arena) -> Limit:
    """Spoken reasons one address may have transcribed a minute."""
    return Limit(
        ("transcription",), arena.settings.address_transcriptions_per_minute, "spoken reasons"
    )


def check_transcription_allowed(arena: Arena, client: str) -> None:
    """Refuse a spoken reason before reading it when its address used up its budget.

    Raises:
        RateLimited: the address is at its limit.
    """
    with (
        database_errors(arena.engine, "checking the limits", "try again"),
        arena.read_sessionmaker() as session,
    ):
        check_client(session, client, transcription_limit(arena))


def reserve_transcription(
    arena: Arena, battle_id: str, session_id: str | None, client: str
) -> None:
    """Count one transcription of a spoken reason for the battle and its address (blocking).

    Each one is a model call that costs money: a battle gets at most
    ``transcriptions_per_battle``, an address ``address_transcriptions_per_minute``.

    Raises:
        NotFound: no such battle, or not this session's.
        RateLimited: the battle or the address used up its transcriptions.
    """
    cap = arena.settings.transcriptions_per_battle
    with (
        database_errors(arena.engine, "counting a transcription", "try again"),
        arena.sessionmaker.begin() as session,
    ):
        battle = owned_battle(session, battle_id, session_id)
        if battle.feedback_transcriptions >= cap:
            raise RateLimited(
                f"at most {cap} spoken reasons can be transcribed for one battle; "
                "type your reason instead",
                retry_after_s=3600,
            )
        check_client(session, client, transcription_limit(arena))
        battle.feedback_transcriptions += 1
        record_event(session, client, "transcription")


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


def live_battle_access(
    arena: Arena, battle_id: str, session_id: str | None, turn: int | None = None
) -> BattleAccess | None:
    """The access to a turn this process is generating for ``session_id``, without a read.

    ``turn`` None means the latest: the turn after the conversation's finished ones, if it is
    being generated here. None when the process is not generating it (or not for that
    session): then ask :func:`check_battle_access`, which reads the store.
    """
    if turn is None:
        conversation = arena.conversations.get(battle_id)
        turn = 1 + (conversation.turns if conversation is not None else 0)
    live = arena.live.get(live_key(battle_id, turn))
    if live is None or session_id is None or live.session_id != session_id:
        return None
    return BattleAccess(battle_id, live.created_at, live.equal_pace, turn)


def check_battle_access(
    arena: Arena, battle_id: str, session_id: str | None, turn: int | None = None
) -> BattleAccess:
    """The battle's turn ``turn`` (None: its latest) if it belongs to ``session_id`` (blocking).

    Raises:
        NotFound: no such battle, not this session's, or no such turn.
    """
    with (
        database_errors(arena.engine, "reading a battle", "try again"),
        arena.read_sessionmaker() as session,
    ):
        battle = owned_battle(session, battle_id, session_id)
        latest = latest_turn(session, battle_id)
        wanted = latest if turn is None else turn
        if not 1 <= wanted <= latest:
            raise NotFound(f"battle {battle_id!r} has no turn {wanted} (it has {latest})")
        started = turn_started(session, battle, wanted)
        return BattleAccess(battle.id, started, battle.equal_pace, wanted)


def latest_turn(session: Session, battle_id: str) -> int:
    """The number of the battle's latest turn (1 when the person spoke once)."""
    later = session.scalar(select(func.max(Turn.turn)).where(Turn.battle_id == battle_id))
    return int(later) if later is not None else 1


def owned_battle(session: Session, battle_id: str, session_id: str | None) -> Battle:
    """The battle if it belongs to ``session_id``.

    Raises:
        NotFound: no such battle, or another session's (the same answer: nothing leaks).
    """
    battle = session.get(Battle, battle_id)
    if battle is None or session_id is None or battle.session_id != session_id:
        raise NotFound(f"battle {battle_id!r} does not exist")
    return battle


def has_vote(session: Session, battle_id: str) -> bool:
    """Whether the battle has its vote."""
    return session.scalar(select(Vote.id).where(Vote.battle_id == battle_id)) is not None


def turn_started(session: Session, battle: Battle, turn: int) -> datetime:
    """When turn ``turn`` of the battle began (turn 1: the battle itself)."""
    if turn == 1:
        return battle.created_at
    row = session.get(Turn, (battle.id, turn))
    if row is None:
        raise NotFound(f"battle {battle.id!r} has no turn {turn}")
    return row.created_at


def turn_replies(session: Session, battle_id: str, turn: int) -> dict[str, Reply]:
    """The stored replies of one turn, by side."""
    rows = session.scalars(select(Reply).where(Reply.battle_id == battle_id, Reply.turn == turn))
    return {row.side: row for row in rows}


def _stored_replies(arena: Arena, battle_id: str, turn: int = 1) -> dict[str, Reply]:
    with (
        database_errors(arena.engine, "reading replies", "try again"),
        arena.read_sessionmaker() as session,
    ):
        return turn_replies(session, battle_id, turn)


def _stored_events(reply: Reply, hide_transcripts: bool = False) -> list[Event]:
    side, turn = reply.side, reply.turn
    if reply.error == LOST_ERROR:
        return [Event("error", {"side": side, "turn": turn, "message": _LOST_MESSAGE})]
    if reply.error is not None:
        return [Event("error", {"side": side, "turn": turn, "message": MODEL_FAILED_MESSAGE})]
    events: list[Event] = []
    if reply.audio_sha256 is not None:
        url = audio_url(reply.battle_id, side, turn)
        events.append(Event("audio", {"side": side, "turn": turn, "url": url}))
    spoken = reply.audio_sha256 is not None
    if not (spoken and hide_transcripts):
        events.append(Event("delta", {"side": side, "turn": turn, "text": reply.text or ""}))
    events.append(Event("done", {"side": side, "turn": turn}))
    return events


async def battle_events(arena: Arena, access: BattleAccess) -> AsyncIterator[Event]:
    """The events of a battle: live if this process generates it, else from the store.

    A battle generated elsewhere is polled until both replies are stored, or until they count
    as lost (the total model time limit plus a grace period after the battle started).
    """
    live = arena.live.get(live_key(access.battle_id, access.turn))
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
        replies = await anyio.to_thread.run_sync(
            _stored_replies, arena, access.battle_id, access.turn
        )
        for side in SIDES:
            if side not in sent and side in replies:
                sent.add(side)
                for event in _stored_events(replies[side], arena.settings.hide_transcripts):
                    yield event
        if len(sent) == len(SIDES):
            break
        if monotonic() >= deadline:
            for side in SIDES:
                if side not in sent:
                    yield Event(
                        "error", {"side": side, "turn": access.turn, "message": _LOST_MESSAGE}
                    )
            break
        await asyncio.sleep(arena.options.reply_poll_s)
    yield Event("end", {"turn": access.turn})


async def stored_reply_audio(arena: Arena, access: BattleAccess, side: str) -> Path:
    """The kept WAV of a side's spoken reply, once stored (polled like :func:`battle_events`).

    Raises:
        NotFound: the reply has no audio (a text reply, or it failed), it was lost, or its file
            is no longer kept.
    """
    limit_s = _loss_deadline_s(arena)
    deadline = monotonic() + max(
        0.0, limit_s - (datetime.now(UTC) - access.created_at).total_seconds()
    )
    while True:
        replies = await anyio.to_thread.run_sync(
            _stored_replies, arena, access.battle_id, access.turn
        )
        reply = replies.get(side)
        if reply is not None:
            break
        if monotonic() >= deadline:
            raise NotFound(f"reply {side.upper()} of turn {access.turn} was lost")
        await asyncio.sleep(arena.options.reply_poll_s)
    if reply.audio_sha256 is None:
        raise NotFound(f"reply {side.upper()} of turn {access.turn} has no audio")
    path = reply_audio_path(arena.settings.data_dir, reply.audio_sha256)
    if not path.is_file():
        raise NotFound(f"the audio of reply {side.upper()} is no longer kept")
    return path


def _loss_deadline_s(arena: Arena) -> float:
    """Seconds after a battle starts at which a reply still missing counts as lost."""
    return arena.settings.model_total_timeout_s + arena.options.lost_reply_grace_s


def _is_lost(arena: Arena, created_at: datetime) -> bool:
    # The store reads timestamps back UTC-aware on both databases (tests/store/test_repo.py).
    return (datetime.now(UTC) - created_at).total_seconds() > _loss_deadline_s(arena)


def _latency(reply: Reply) -> LatencyOut:
    return LatencyOut(
        ttft_s=reply.ttft_s,
        total_s=reply.total_s,
        chars=reply.chars,
        ttfab_s=reply.ttfab_s,
        audio_s=reply.audio_s,
    )


def _seconds_after_replies(started: datetime, replies: dict[str, Reply]) -> float | None:
    """Seconds from the end of the slower reply of the last turn to now (None without it)."""
    totals = [reply.total_s for reply in replies.values()]
    if any(total is None for total in totals):
        return None
    ended = started + timedelta(seconds=max(t for t in totals if t is not None))
    return max(0.0, (datetime.now(UTC) - ended).total_seconds())


def _check_listened(arena: Arena, started: datetime, replies: dict[str, Reply]) -> None:
    """Refuse a vote sooner than hearing both spoken replies allows (see :mod:`.listening`)."""
    min_listen_s = arena.settings.min_listen_s
    heard = [HeardReply(replies[side].ttfab_s, replies[side].audio_s) for side in SIDES]
    earliest = earliest_vote_s(heard[0], heard[1], min_listen_s)
    wait_s = earliest - LISTEN_SLACK_S - (datetime.now(UTC) - started).total_seconds()
    if wait_s > 0:
        raise ListenFirst(
            f"listen to both replies first (at least {min_listen_s:g} s of each, or all of a "
            f"shorter one); you can vote in {ceil(wait_s)} s"
        )


def cast_vote(
    arena: Arena,
    battle_id: str,
    session_id: str | None,
    winner: Winner,
    feedback_text: str | None,
    client: str | None = None,
) -> Reveal:
    """Record the vote of a battle and reveal its models (blocking: use a thread).

    Raises:
        NotFound: no such battle, or not this session's.
        AlreadyVoted: the battle has its vote.
        RepliesPending: a reply is still being generated.
        ListenFirst: a speech battle's vote sooner than hearing both replies allows.
        InvalidInputError: a side failed, so the battle cannot be judged.
        RateLimited: the address cast too many votes in the last minute.
        DatabaseError: the vote could not be stored (or the database file is gone).
    """
    with (
        database_errors(arena.engine, "storing the vote", "the vote was not stored"),
        arena.sessionmaker.begin() as session,
    ):
        check_database_identity(arena.database_identity)
        battle = owned_battle(session, battle_id, session_id)
        assert session_id is not None  # owned_battle refuses a request without one
        if has_vote(session, battle_id):
            raise AlreadyVoted(f"battle {battle_id!r} already has a vote")
        turns = latest_turn(session, battle_id)
        started = turn_started(session, battle, turns)
        replies = turn_replies(session, battle_id, turns)
        if len(replies) < len(SIDES):
            if _is_lost(arena, started):
                raise InvalidInputError(_LOST_MESSAGE)
            raise RepliesPending("the replies are still being generated; vote when both are done")
        if any(reply.error == LOST_ERROR for reply in replies.values()):
            raise InvalidInputError(_LOST_MESSAGE)
        failed = [side.upper() for side in SIDES if replies[side].error is not None]
        if failed:
            raise InvalidInputError(
                f"model {' and '.join(failed)} failed to answer, so this battle cannot be "
                "judged; start a new battle"
            )
        if battle.mode == "speech":
            _check_listened(arena, started, replies)
        if client is not None:
            limit = Limit(("vote",), arena.settings.address_votes_per_minute, "votes")
            check_client(session, client, limit)
            record_event(session, client, "vote")
        record_vote(
            session,
            battle_id,
            winner,
            feedback_text=feedback_text,
            session_id=session_id,
            client_hash=client,
            seconds_after_replies=_seconds_after_replies(started, replies),
        )
        votes_cast = session_vote_count(session, session_id)
        flags = sorted(filter(None, (battle.flags or "").split(",")))
        needed = arena.settings.completion_votes
        code = arena.settings.completion_code
        arena.conversations.forget(battle_id)  # voted: the conversation is over
        return Reveal(
            model_a=battle.model_a,
            model_b=battle.model_b,
            latency_a=_latency(replies["a"]),
            latency_b=_latency(replies["b"]),
            votes_cast=votes_cast,
            completion_code=code if code and votes_cast >= needed else None,
            counted=battle.counted,
            flag=flags[0] if flags else None,
            flags=flags,
            equal_pace=battle.equal_pace,
            turns=turns,
        )


def mark_abandoned_battles(arena: Arena) -> int:
    """Mark lost the replies an earlier ``serve`` run left generating (blocking; at start).

    A battle of another run (or of none) with a side still missing gets that side stored as
    failed with :data:`LOST_ERROR`, so its streams end at once with "lost" instead of waiting
    for the loss deadline, and its vote is refused. The workers of one run share its
    ``server_run`` and never mark each other's battles; when they start together, each marks
    a side at most once (the one that finds it marked already moves on).

    Returns:
        How many replies were marked lost.
    """
    # complete: both sides answered every turn (the battle row's and each later one's)
    replies = select(Reply.battle_id, func.count(Reply.id).label("n")).group_by(Reply.battle_id)
    later = select(Turn.battle_id, func.count().label("n")).group_by(Turn.battle_id)
    reply_counts, turn_counts = replies.subquery(), later.subquery()
    complete = (
        select(Battle.id)
        .join(reply_counts, reply_counts.c.battle_id == Battle.id)
        .outerjoin(turn_counts, turn_counts.c.battle_id == Battle.id)
        .where(reply_counts.c.n >= len(SIDES) * (1 + func.coalesce(turn_counts.c.n, 0)))
    )
    marked = 0
    with (
        database_errors(arena.engine, "marking lost replies", "they stay unmarked"),
        arena.sessionmaker.begin() as session,
    ):
        rows = session.execute(
            select(Battle.id)
            .outerjoin(Vote, Vote.battle_id == Battle.id)
            .where(
                Battle.source == "arena",
                Vote.id.is_(None),
                Battle.id.not_in(complete),
                or_(Battle.server_run.is_(None), Battle.server_run != arena.server_run),
            )
        ).all()
        for (battle_id,) in rows:
            turn = latest_turn(session, battle_id)
            present = set(turn_replies(session, battle_id, turn))
            for side in SIDES:
                if side not in present:
                    try:
                        add_reply(session, battle_id, side, error=LOST_ERROR, turn=turn)
                    except InvalidInputError:
                        # Another worker of this run, starting at the same moment, marked it
                        # first (the unique index refused the second row; its savepoint keeps
                        # this transaction usable): nothing is left to mark.
                        continue
                    marked += 1
    if marked:
        logger.warning(
            "marked %d replies lost: an earlier run stopped while generating them", marked
        )
    return marked
