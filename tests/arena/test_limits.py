"""The check before an upload is read (one statement) agrees with the two checks it stands for.

``check_battle_budget`` counts the client's battles and refused uploads and the arena's battles
of the last minute in one read; ``check_client`` and ``check_global_battles`` (which the
battle's own transaction runs again) are the independent computation. SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from lamarena.arena.battles import _battle_usage
from lamarena.arena.limits import (
    Limit,
    check_battle_budget,
    check_client,
    check_global_battles,
    record_event,
)
from lamarena.errors import RateLimited
from lamarena.store.db import make_sessionmaker
from lamarena.store.repo import create_battle, create_session
from lamarena.store.tables import ClientEvent

CLIENT = "a" * 64
OTHER = "b" * 64
BATTLES = Limit(("battle", "refused"), 3, "battles or refused uploads")


def _fill(engine: Engine) -> None:
    """Rows in and out of the last minute.

    In it: 3 events of CLIENT (2 counted, 1 a vote), 2 of OTHER, 2 arena battles and 1 import;
    older: 5 events of CLIENT and 3 battles (not counted).
    """
    now = datetime.now(UTC)
    with make_sessionmaker(engine).begin() as session:
        record_event(session, CLIENT, "battle")
        record_event(session, CLIENT, "refused")
        record_event(session, CLIENT, "vote")
        record_event(session, OTHER, "battle")
        record_event(session, OTHER, "battle")
        for _ in range(5):
            session.add(
                ClientEvent(client_hash=CLIENT, kind="battle", created_at=now - timedelta(hours=1))
            )
        for _ in range(2):
            create_battle(session, model_a="x", model_b="y")
        for _ in range(3):
            create_battle(session, model_a="x", model_b="y", created_at=now - timedelta(hours=1))
        create_battle(session, model_a="x", model_b="y", source="import")


def _refusal(check: object) -> str | None:
    try:
        check()  # type: ignore[operator]
    except RateLimited as exc:
        assert exc.retry_after_s is not None and 1 <= exc.retry_after_s <= 60
        return exc.message
    return None


@pytest.mark.parametrize("client", [CLIENT, OTHER])
@pytest.mark.parametrize("per_client", [1, 2, 3])
@pytest.mark.parametrize("per_arena", [1, 2, 3, 100])
@pytest.mark.parametrize("refusals_allowed", [1, 2, None])
def test_the_combined_check_refuses_exactly_when_the_separate_ones_do(
    engine: Engine, client: str, per_client: int, per_arena: int, refusals_allowed: int | None
) -> None:
    _fill(engine)
    limit = Limit(BATTLES.kinds, per_client, BATTLES.what)
    refusals = None if refusals_allowed is None else Limit(("refused",), refusals_allowed, "r")
    with make_sessionmaker(engine)() as session:
        combined = _refusal(
            lambda: check_battle_budget(session, client, limit, per_arena, refusals=refusals)
        )
        separate = (
            (refusals and _refusal(lambda: check_client(session, client, refusals)))
            or _refusal(lambda: check_client(session, client, limit))
            or _refusal(lambda: check_global_battles(session, per_arena))
        )

    assert combined == separate
    # CLIENT has 2 counted events (1 refused), OTHER 2 (none refused); the arena started 2
    # battles (the import is not one)
    refused = 1 if client == CLIENT else 0
    over_refusals = refusals_allowed is not None and refused >= refusals_allowed
    assert (combined is not None) == (per_client <= 2 or per_arena <= 2 or over_refusals)


@pytest.mark.parametrize("client", [CLIENT, OTHER, None])
@pytest.mark.parametrize("session_id", ["s1", "s2", "new"])
@pytest.mark.parametrize("sha256", ["same", "other"])
def test_a_new_battle_s_usage_is_what_the_separate_queries_count(
    engine: Engine, client: str | None, session_id: str, sha256: str
) -> None:
    _fill(engine)
    now = datetime.now(UTC)
    with make_sessionmaker(engine).begin() as session:
        for owner in ("s1", "s2"):
            create_session(session, session_id=owner)
        create_battle(session, model_a="x", model_b="y", session_id="s1", query_audio_sha256="same")
        create_battle(session, model_a="x", model_b="y", session_id="s1")
        create_battle(
            session,
            model_a="x",
            model_b="y",
            session_id="s2",
            query_audio_sha256="same",
            created_at=now - timedelta(hours=2),  # outside the duplicate window
        )

    with make_sessionmaker(engine)() as session:
        usage = _battle_usage(session, client, BATTLES, session_id, sha256)
        since = now - timedelta(minutes=1)
        expected_client = (
            0
            if client is None
            else session.scalar(
                text(
                    "SELECT count(*) FROM client_events WHERE client_hash = :c "
                    "AND kind IN ('battle', 'refused') AND created_at >= :t"
                ),
                {"c": client, "t": since},
            )
        )
        expected_arena = session.scalar(
            text("SELECT count(*) FROM battles WHERE source = 'arena' AND created_at >= :t"),
            {"t": since},
        )
        expected_session = session.scalar(
            text("SELECT count(*) FROM battles WHERE session_id = :s AND created_at >= :t"),
            {"s": session_id, "t": since},
        )

    assert usage.client_events == expected_client
    assert usage.arena_battles == expected_arena == 4
    assert usage.session_battles == expected_session == {"s1": 2, "s2": 0, "new": 0}[session_id]
    # "same" within the hour was sent by s1 only: a duplicate for any other session
    assert usage.duplicate_audio == (sha256 == "same" and session_id != "s1")
