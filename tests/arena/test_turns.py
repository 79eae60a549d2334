"""Multi-turn battles: ``POST /api/battles/{id}/turns``, per-turn streams, the vote after turn N.

Real arena over HTTP on 127.0.0.1 with two loopback OpenAI-compatible models (alpha, beta) that
record every request, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from lamarena.arena.battles import LOST_ERROR
from lamarena.arena.deps import SESSION_COOKIE
from lamarena.store.db import make_sessionmaker
from lamarena.store.repo import add_reply, add_turn, create_battle, create_session
from lamarena.store.tables import Battle, Reply, Turn
from lamarena.store.votes import load_battle_records

from .conftest import Harness, SseEvent, read_events, start_arena

ALPHA = "Paris is the capital."
BETA = "The capital of France is Paris!"


def _create(client: httpx.Client, audio: bytes) -> str:
    created = client.post(
        "/api/battles", files={"audio": ("question.wav", audio, "audio/wav")}, data={}
    )
    assert created.status_code == 201, created.text
    battle_id: str = created.json()["battle_id"]
    return battle_id


def _turn(client: httpx.Client, battle_id: str, audio: bytes) -> httpx.Response:
    return client.post(
        f"/api/battles/{battle_id}/turns", files={"audio": ("again.wav", audio, "audio/wav")}
    )


def _texts(events: list[SseEvent]) -> dict[str, str]:
    return {
        side: "".join(
            e.data["text"] for e in events if e.name == "delta" and e.data["side"] == side
        )
        for side in "ab"
    }


def _messages(request: Any) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = request.json["messages"]
    return messages


def test_a_second_turn_is_answered_by_each_side_with_its_own_first_reply(
    harness: Harness, speech_wav: bytes
) -> None:
    client = harness.client()
    battle_id = _create(client, speech_wav)
    first = _texts(read_events(client, battle_id))
    assert sorted(first.values()) == sorted([ALPHA, BETA])

    second = _turn(client, battle_id, speech_wav)
    assert second.status_code == 201, second.text
    assert second.json() == {"turn": 2}
    events = read_events(client, battle_id)  # the latest turn by default
    assert events and all(event.data["turn"] == 2 for event in events)
    assert [e.name for e in events].count("done") == 2

    for name, own, other in (("alpha", ALPHA, BETA), ("beta", BETA, ALPHA)):
        requests = harness.fakes[name].chat_requests
        assert len(requests) == 2
        one, two = _messages(requests[0]), _messages(requests[1])
        assert two[: len(one)] == one  # turn 1's request, as sent, opens turn 2's
        assistant = [m for m in two if m["role"] == "assistant"]
        assert assistant == [{"role": "assistant", "content": own}]
        assert other not in str(two)  # never the other side's reply
        users = [m for m in two if m["role"] == "user"]
        assert len(users) == 2 and two[-1]["role"] == "user"

    # any turn can be streamed again, from the store, with its own number
    again = read_events(client, battle_id, turn=1)
    assert {event.data["turn"] for event in again} == {1}
    assert _texts(again) == first

    vote = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_b"})
    assert vote.status_code == 200, vote.text
    assert vote.json()["turns"] == 2
    with harness.engine.connect() as connection:
        turns = connection.execute(select(Turn).where(Turn.battle_id == battle_id)).all()
        replies = connection.execute(select(Reply.turn, Reply.side, Reply.text)).all()
    assert [(row.turn, len(row.query_audio_sha256)) for row in turns] == [(2, 64)]
    assert sorted((turn, side) for turn, side, _ in replies) == [
        (1, "a"),
        (1, "b"),
        (2, "a"),
        (2, "b"),
    ]
    (record,) = [r for r in load_battle_records(harness.engine) if r.battle_id == battle_id]
    assert record.n_turns == 2
    assert [t.reply_a for t in record.turns] == [first["a"], first["a"]]


def test_turn_refusals_pending_voted_other_session_and_past_max_turns(
    harness_factory: Any, speech_wav: bytes, silent_wav: bytes
) -> None:
    harness: Harness = harness_factory(max_turns=2)
    client = harness.client()
    battle_id = _create(client, speech_wav)

    pending = _turn(client, battle_id, speech_wav)  # the first replies take ~0.6 s
    assert pending.status_code == 409, pending.text
    assert "still being generated" in pending.text
    read_events(client, battle_id)

    stranger = _turn(harness.client(), battle_id, speech_wav)
    assert stranger.status_code == 404
    silent = _turn(client, battle_id, silent_wav)
    assert silent.status_code == 422

    assert _turn(client, battle_id, speech_wav).status_code == 201
    read_events(client, battle_id)
    past = _turn(client, battle_id, speech_wav)
    assert past.status_code == 422
    assert "at most 2 turns" in past.text
    no_turn = client.get(f"/api/battles/{battle_id}/stream", params={"turn": 3})
    assert no_turn.status_code == 404

    assert client.post(f"/api/battles/{battle_id}/vote", json={"winner": "tie"}).status_code == 200
    voted = _turn(client, battle_id, speech_wav)
    assert voted.status_code == 409
    assert "conversation is over" in voted.text
    with harness.engine.connect() as connection:
        assert len(connection.execute(select(Turn)).all()) == 1  # nothing stored by a refusal
        battle = connection.execute(select(Battle)).one()
    assert battle.id == battle_id


def test_a_conversation_this_process_no_longer_holds_can_be_voted_not_continued(
    harness: Harness, speech_wav: bytes
) -> None:
    client = harness.client()
    battle_id = _create(client, speech_wav)
    read_events(client, battle_id)
    assert harness.app is not None
    harness.app.state.arena.conversations.forget(battle_id)
    closed = _turn(client, battle_id, speech_wav)
    assert closed.status_code == 409
    assert "can no longer be continued" in closed.text
    vote = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_a"})
    assert vote.status_code == 200 and vote.json()["turns"] == 1


def test_a_second_turn_an_earlier_run_left_generating_is_lost_at_start(
    harness_factory: Any,
) -> None:
    harness: Harness = harness_factory(server_run_id="this-run")
    with make_sessionmaker(harness.engine).begin() as session:
        session_id = create_session(session)
        battle_id = create_battle(
            session, model_a="alpha", model_b="beta", session_id=session_id, server_run="old"
        )
        for side in "ab":
            add_reply(session, battle_id, side, text=f"first {side}", total_s=1.0)
        add_turn(session, battle_id, 2, created_at=datetime.now(UTC))
        add_reply(session, battle_id, "a", text="second a", turn=2)  # b never came back
    with contextlib.ExitStack() as stack:  # another worker starts on the same database
        start_arena(stack, harness)
    with make_sessionmaker(harness.engine)() as session:
        stored = {
            (row.turn, row.side): (row.text, row.error)
            for row in session.scalars(select(Reply).where(Reply.battle_id == battle_id))
        }
    assert stored == {
        (1, "a"): ("first a", None),
        (1, "b"): ("first b", None),
        (2, "a"): ("second a", None),
        (2, "b"): (None, LOST_ERROR),
    }
    with httpx.Client(
        base_url=harness.url, cookies={SESSION_COOKIE: session_id}, timeout=10
    ) as client:
        events = read_events(client, battle_id)
        assert {event.data.get("turn") for event in events} == {2}
        assert any(e.name == "error" and "lost" in e.data["message"] for e in events)
        vote = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "tie"})
        assert vote.status_code == 422 and "lost" in vote.json()["message"]


def test_speaking_again_the_moment_both_replies_are_done_is_accepted(
    harness: Harness, speech_wav: bytes
) -> None:
    # The page enables "Speak again" on the second ``done``, before ``end``: the turn must be
    # held by then.
    client = harness.client()
    battle_id = _create(client, speech_wav)
    done: set[str] = set()
    with client.stream("GET", f"/api/battles/{battle_id}/stream", timeout=30) as response:
        name = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and name == "done":
                done.add(json.loads(line.split(":", 1)[1])["side"])
                if done == {"a", "b"}:
                    again = _turn(client, battle_id, speech_wav)
                    break
    assert again.status_code == 201, again.text
    assert again.json() == {"turn": 2}


def test_later_turns_count_towards_the_arena_ceiling(harness_factory: Any, speech_wav: bytes):
    harness = harness_factory(global_battles_per_minute=3)
    talker, newcomer = harness.client(), harness.client()
    battle_id = _create(talker, speech_wav)
    read_events(talker, battle_id)
    assert _turn(talker, battle_id, speech_wav).status_code == 201  # 2 of 3
    read_events(talker, battle_id)
    assert _turn(talker, battle_id, speech_wav).status_code == 201  # 3 of 3: turns ask models
    read_events(talker, battle_id)

    refused_turn = _turn(talker, battle_id, speech_wav)
    refused_battle = newcomer.post(
        "/api/battles", files={"audio": ("question.wav", speech_wav, "audio/wav")}
    )

    for refused in (refused_turn, refused_battle):
        assert refused.status_code == 429, refused.text
        assert "the arena is at its limit of 3" in refused.json()["message"]
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    with harness.engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Turn)) == 2
        assert connection.scalar(select(func.count()).select_from(Battle)) == 1


@pytest.mark.parametrize(  # SQLite serialises writers: only PostgreSQL lets the two interleave
    "databases", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_two_workers_starting_together_mark_each_lost_side_once(
    harness_factory: Any, monkeypatch: Any
) -> None:
    # Two workers of one run start at once: both read the battle's replies before either marks
    # them. Stand in for the other worker by marking side A between the read and the write.
    harness: Harness = harness_factory(server_run_id="this-run")
    with make_sessionmaker(harness.engine).begin() as session:
        session_id = create_session(session)
        battle_id = create_battle(
            session, model_a="alpha", model_b="beta", session_id=session_id, server_run="old"
        )
    import lamarena.arena.battles as battles_module

    read = battles_module.turn_replies

    def stale_read(session: Any, battle: str, turn: int) -> dict[str, Reply]:
        seen = read(session, battle, turn)
        with make_sessionmaker(harness.engine).begin() as other:  # the other worker's commit
            add_reply(other, battle, "a", error=LOST_ERROR, turn=turn)
        return seen

    monkeypatch.setattr(battles_module, "turn_replies", stale_read)
    with contextlib.ExitStack() as stack:  # this worker still starts
        start_arena(stack, harness)
    with make_sessionmaker(harness.engine)() as session:
        sides = sorted(
            (row.side, row.error)
            for row in session.scalars(select(Reply).where(Reply.battle_id == battle_id))
        )
    assert sides == [("a", LOST_ERROR), ("b", LOST_ERROR)]
