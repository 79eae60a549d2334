"""The next turn of a conversation: the person speaks again before voting.

``POST /api/battles/{id}/turns`` goes through the checks of a first upload (the address's battle
budget before the body is read, the same audio limits, a refused upload counted) and then
:func:`open_turn`: the battle must be this session's, unvoted, under ``max_turns``, with both
replies of its latest turn done and successful, and this process must still hold the
conversation's earlier queries (:mod:`lamarena.arena.conversations`). Each side then answers the
new query with its **own** earlier replies as history, never the other side's.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from lamarena.arena.battles import (
    OpenedBattle,
    StagedAudio,
    battle_limit,
    has_vote,
    latest_turn,
    note_refused_upload,
    owned_battle,
    stage_audio,
    turn_replies,
)
from lamarena.arena.limits import check_client, check_global_battles, lock_client, record_event
from lamarena.arena.state import Arena
from lamarena.audio import decode_audio
from lamarena.errors import (
    AlreadyVoted,
    ConversationClosed,
    InvalidInputError,
    RepliesPending,
)
from lamarena.store.db import check_database_identity, database_errors
from lamarena.store.repo import add_turn
from lamarena.store.tables import SIDES
from lamarena.store.tables import Session as SessionRow

__all__ = ["open_turn"]


def open_turn(
    arena: Arena,
    *,
    battle_id: str,
    session_id: str | None,
    data: bytes,
    client: str,
    extension: str,
) -> OpenedBattle:
    """Decode the next query of a battle and store its turn (blocking: use a thread).

    Returns:
        The turn to generate: the battle with the new query, its turn number and each side's
        own earlier turns.

    Raises:
        InvalidInputError: the audio cannot be a query (counted as a refused upload), a side
            failed in the latest turn, or the battle is at ``max_turns`` (HTTP 422).
        NotFound: no such battle, or not this session's.
        AlreadyVoted: the battle has its vote: the conversation is over.
        RepliesPending: the latest turn's replies are still being generated.
        ConversationClosed: this process no longer holds the conversation's earlier turns.
        RateLimited: the address, or the whole arena, started too many battles and turns in
            the last minute.
        StorageFull, DatabaseError: nothing was stored.
    """
    try:
        clip = decode_audio(data, limits=arena.options.audio_limits)
    except InvalidInputError:
        note_refused_upload(arena, client)
        raise
    staged: StagedAudio | None = None
    try:
        with (
            database_errors(arena.engine, "storing a turn", "nothing was stored"),
            arena.sessionmaker.begin() as session,
        ):
            check_database_identity(arena.database_identity)
            lock_client(session, client)
            battle = owned_battle(session, battle_id, session_id)
            assert session_id is not None  # owned_battle refuses a request without one
            if has_vote(session, battle_id):
                raise AlreadyVoted(
                    f"battle {battle_id!r} already has its vote; the conversation is over"
                )
            turn = latest_turn(session, battle_id)
            _check_replies(session, battle_id, turn)
            cap = arena.settings.max_turns
            if turn >= cap:
                raise InvalidInputError(
                    f"a battle holds at most {cap} turn{'s' if cap != 1 else ''}; vote on it now"
                )
            conversation = arena.conversations.get(battle_id)
            if conversation is None or conversation.turns != turn:
                raise ConversationClosed(
                    "this conversation can no longer be continued here (the arena restarted or "
                    "holds too many conversations); vote on it, or start a new battle"
                )
            check_client(session, client, battle_limit(arena))
            # a turn asks both models again: it counts towards the arena's ceiling
            check_global_battles(session, arena.settings.global_battles_per_minute)
            owner = session.get(SessionRow, session_id)
            if owner is not None and owner.consent_keep_audio:
                directory = arena.settings.data_dir / "audio"
                staged = stage_audio(directory, clip.sha256, extension, data)
            created_at = datetime.now(UTC)
            add_turn(
                session,
                battle_id,
                turn + 1,
                created_at=created_at,
                query_audio_sha256=clip.sha256,
                kept_audio_path=None if staged is None else str(staged.path),
            )
            record_event(session, client, "battle")
            opened = OpenedBattle(
                battle_id,
                session_id,
                battle.model_a,
                battle.model_b,
                clip,
                created_at,
                battle.equal_pace,
                turn=turn + 1,
                history={side: conversation.history(side) for side in SIDES},
            )
    except BaseException:
        if staged is not None:
            staged.discard()
        raise
    if staged is not None:
        staged.publish()
    return opened


def _check_replies(session: Session, battle_id: str, turn: int) -> None:
    """Both replies of ``turn`` are stored and neither failed.

    Raises:
        RepliesPending: a reply of the turn is missing.
        InvalidInputError: a side failed in that turn.
    """
    replies = turn_replies(session, battle_id, turn)
    if len(replies) < len(SIDES):
        raise RepliesPending(
            "the replies are still being generated; speak again when both are done"
        )
    failed = [side.upper() for side in SIDES if replies[side].error is not None]
    if failed:
        raise InvalidInputError(
            f"model {' and '.join(failed)} failed to answer, so this conversation cannot go on; "
            "start a new battle"
        )
