"""The battle API end to end: upload, parallel streaming, vote and reveal, on both databases."""

from __future__ import annotations

import itertools
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from sqlalchemy import select

from lamarena.arena import ArenaOptions
from lamarena.store.tables import Battle, Reply, Vote
from lamarena.store.tables import Session as SessionRow

from .conftest import Harness, read_events, start_arena

SIDE_OF = {"a": "model_a", "b": "model_b"}


def _create(client, audio: bytes, **form: str):
    return client.post(
        "/api/battles", files={"audio": ("question.wav", audio, "audio/wav")}, data=form
    )


def test_battle_streams_both_sides_in_parallel_then_vote_reveals(
    harness: Harness, speech_wav: bytes
) -> None:
    client = harness.client()
    started = time.monotonic()
    created = _create(client, speech_wav, consent="true", pid="prolific-123")
    assert created.status_code == 201, created.text
    battle_id = created.json()["battle_id"]
    cookie = created.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie

    events = read_events(client, battle_id)
    names = [event.name for event in events]
    assert names[-1] == "end"
    assert sorted(event.data["side"] for event in events if event.name == "done") == ["a", "b"]
    # Nothing but the side before the vote: timings would identify the models.
    assert all(set(event.data) == {"side", "turn"} for event in events if event.name == "done")
    assert all(
        set(event.data) == {"side", "turn", "text"} for event in events if event.name == "delta"
    )
    assert all(event.data["turn"] == 1 for event in events)
    deltas = [event for event in events if event.name == "delta"]
    sides = [event.data["side"] for event in deltas]
    switches = sum(1 for before, after in itertools.pairwise(sides) if before != after)
    assert switches >= 3, sides  # interleaved, not one side after the other
    texts = {
        side: "".join(e.data["text"] for e in deltas if e.data["side"] == side) for side in "ab"
    }
    assert sorted(texts.values()) == ["Paris is the capital.", "The capital of France is Paris!"]

    vote = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_a"})
    assert vote.status_code == 200, vote.text
    reveal = vote.json()
    assert {reveal["model_a"], reveal["model_b"]} == {"alpha", "beta"}
    for side in "ab":
        latency = reveal[f"latency_{side}"]
        assert 0 < latency["ttft_s"] < latency["total_s"]
        assert latency["chars"] == len(texts[side])
    # Generated at once: the whole battle takes less than the two replies one after the other.
    assert events[-1].at - started < reveal["latency_a"]["total_s"] + reveal["latency_b"]["total_s"]
    # The revealed names match what each side said.
    said = {"alpha": "Paris is the capital.", "beta": "The capital of France is Paris!"}
    assert texts["a"] == said[reveal["model_a"]]

    with harness.engine.connect() as connection:
        battle = connection.execute(select(Battle).where(Battle.id == battle_id)).one()
        replies = connection.execute(select(Reply).where(Reply.battle_id == battle_id)).all()
        votes = connection.execute(select(Vote).where(Vote.battle_id == battle_id)).all()
        session = connection.execute(
            select(SessionRow).where(SessionRow.id == battle.session_id)
        ).one()
    assert (battle.model_a, battle.model_b) == (reveal["model_a"], reveal["model_b"])
    assert battle.source == "arena"
    assert len(battle.query_audio_sha256) == 64
    assert battle.audio_kept and battle.kept_audio_path is not None
    kept = Path(battle.kept_audio_path)
    assert kept.read_bytes() == speech_wav
    assert kept.name == f"{battle.query_audio_sha256}.wav"
    assert kept.parent == (harness.data_dir / "audio").resolve()
    by_side = {reply.side: reply for reply in replies}
    for side in "ab":
        assert by_side[side].text == texts[side]
        assert by_side[side].chars == len(texts[side])
        assert by_side[side].error is None
        assert 0 < by_side[side].ttft_s < by_side[side].total_s
    assert [vote.winner for vote in votes] == ["model_a"]
    assert session.consent_keep_audio and session.participant_id == "prolific-123"
    assert battle.session_id == client.cookies["lamarena_session"]


def test_generation_starts_before_the_stream_is_opened(harness: Harness, speech_wav: bytes) -> None:
    client = harness.client()
    battle_id = _create(client, speech_wav).json()["battle_id"]
    harness.wait_for_replies(battle_id)  # no stream opened: the replies are generated anyway
    assert all(len(fake.chat_requests) == 1 for fake in harness.fakes.values())
    events = read_events(client, battle_id)
    assert [e.name for e in events].count("done") == 2


def test_a_battle_replayed_from_the_store_carries_no_timing_before_the_vote(
    harness: Harness, speech_wav: bytes
) -> None:
    from lamarena.arena.battles import _stored_events

    client = harness.client()
    battle_id = _create(client, speech_wav).json()["battle_id"]
    harness.wait_for_replies(battle_id)
    with harness.engine.connect() as connection:
        replies = connection.execute(select(Reply).where(Reply.battle_id == battle_id)).all()
    assert all(reply.ttft_s is not None for reply in replies)  # stored, for the reveal
    for reply in replies:
        done = [event for event in _stored_events(reply) if event.name == "done"]
        assert [event.data for event in done] == [{"side": reply.side, "turn": 1}]


def test_audio_is_not_kept_without_consent(harness: Harness, speech_wav: bytes) -> None:
    client = harness.client()
    battle_id = _create(client, speech_wav, consent="false").json()["battle_id"]
    with harness.engine.connect() as connection:
        battle = connection.execute(select(Battle).where(Battle.id == battle_id)).one()
    assert not battle.audio_kept and battle.kept_audio_path is None
    assert battle.query_audio_sha256 is not None
    assert not (harness.data_dir / "audio").exists() or not any(
        (harness.data_dir / "audio").iterdir()
    )


def test_second_vote_returns_409(harness: Harness, speech_wav: bytes) -> None:
    client = harness.client()
    battle_id = _create(client, speech_wav).json()["battle_id"]
    read_events(client, battle_id)
    assert client.post(f"/api/battles/{battle_id}/vote", json={"winner": "tie"}).status_code == 200
    again = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_b"})
    assert again.status_code == 409
    assert again.json()["error"] == "already_voted"
    assert harness.counts()["votes"] == 1


def test_vote_from_another_session_returns_404(harness: Harness, speech_wav: bytes) -> None:
    owner = harness.client()
    battle_id = _create(owner, speech_wav).json()["battle_id"]
    read_events(owner, battle_id)
    stranger = harness.client()
    assert (
        stranger.post(f"/api/battles/{battle_id}/vote", json={"winner": "tie"}).status_code == 404
    )
    _create(stranger, speech_wav)  # the stranger now has a session of its own
    refused = stranger.post(f"/api/battles/{battle_id}/vote", json={"winner": "tie"})
    assert refused.status_code == 404
    assert refused.json()["error"] == "not_found"
    assert stranger.get(f"/api/battles/{battle_id}/stream").status_code == 404
    assert owner.post("/api/battles/nope/vote", json={"winner": "tie"}).status_code == 404
    assert harness.counts()["votes"] == 0


def test_bad_vote_body_returns_422(harness: Harness, speech_wav: bytes) -> None:
    client = harness.client()
    battle_id = _create(client, speech_wav).json()["battle_id"]
    read_events(client, battle_id)
    for body in ({"winner": "model_c"}, {}, {"winner": "tie", "extra": 1}):
        answer = client.post(f"/api/battles/{battle_id}/vote", json=body)
        assert answer.status_code == 422, body
        assert answer.json()["error"] == "invalid_input"
    assert harness.counts()["votes"] == 0


def test_bad_audio_returns_422_and_stores_nothing(harness: Harness, silent_wav: bytes) -> None:
    client = harness.client()
    before = harness.counts()
    cases = {b"": "empty", b"this is not audio at all" * 10: "decoded", silent_wav: "silent"}
    for audio, words in cases.items():
        answer = _create(client, audio, consent="true")
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"] == "invalid_audio"
        assert words in answer.json()["message"]
        assert "set-cookie" not in answer.headers
    assert client.post("/api/battles", data={"consent": "true"}).status_code == 422
    assert harness.counts() == before
    assert not (harness.data_dir / "audio").exists()


def _battle_with_replies(harness: Harness, client, audio: bytes):
    """Create a battle, read its stream to the end; its id, events, row and replies by side."""
    battle_id = _create(client, audio).json()["battle_id"]
    events = read_events(client, battle_id)
    with harness.engine.connect() as connection:
        battle = connection.execute(select(Battle).where(Battle.id == battle_id)).one()
        replies = {
            row.side: row
            for row in connection.execute(select(Reply).where(Reply.battle_id == battle_id))
        }
    return battle_id, events, battle, replies


def test_failed_model_gets_an_error_event_and_voting_is_refused(
    harness: Harness, speech_wav: bytes
) -> None:
    harness.fakes["beta"].fail_next(400)
    client = harness.client()
    battle_id, events, battle, replies = _battle_with_replies(harness, client, speech_wav)
    failed = "a" if battle.model_a == "beta" else "b"
    errors = [e for e in events if e.name == "error"]
    assert [e.data["side"] for e in errors] == [failed]
    assert "beta" not in errors[0].data["message"]  # the stream never names a model
    assert [e.data["side"] for e in events if e.name == "done"] == ["b" if failed == "a" else "a"]
    assert replies[failed].error is not None and "beta" in replies[failed].error

    refused = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_a"})
    assert refused.status_code == 422
    assert "failed" in refused.json()["message"]
    assert harness.counts()["votes"] == 0


def test_vote_before_replies_finish_returns_409(harness: Harness, speech_wav: bytes) -> None:
    client = harness.client()
    battle_id = _create(client, speech_wav).json()["battle_id"]
    early = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "tie"})
    assert early.status_code == 409
    assert early.json()["error"] == "replies_pending"
    read_events(client, battle_id)
    assert client.post(f"/api/battles/{battle_id}/vote", json={"winner": "tie"}).status_code == 200


def test_rate_limit_returns_429(harness_factory, speech_wav: bytes) -> None:
    harness = harness_factory(options=ArenaOptions(seed=0, battles_per_minute=2))
    client = harness.client()
    assert [_create(client, speech_wav).status_code for _ in range(3)] == [201, 201, 429]
    limited = _create(client, speech_wav)
    assert limited.json()["error"] == "rate_limited"
    # every 429 says when to come back: when the oldest battle leaves the minute's window
    wait_s = int(limited.headers["retry-after"])
    assert 55 <= wait_s <= 60
    assert f"wait {wait_s} s" in limited.json()["message"]
    assert harness.counts()["battles"] == 2
    assert _create(harness.client(), speech_wav).status_code == 201  # another session


def test_stream_after_restart_serves_stored_replies(harness: Harness, speech_wav: bytes) -> None:
    client = harness.client()
    battle_id = _create(client, speech_wav).json()["battle_id"]
    harness.wait_for_replies(battle_id)
    with ExitStack() as stack:
        second = start_arena(stack, harness)  # another process: nothing of the battle in memory
        client.base_url = second.url
        events = read_events(client, battle_id)
        names = [event.name for event in events]
        assert names.count("delta") == 2 and names.count("done") == 2 and names[-1] == "end"
        vote = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "both_bad"})
        assert vote.status_code == 200


def test_healthz(harness: Harness) -> None:
    answer = harness.client().get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


def test_leaderboard_after_votes(harness_factory: Any, speech_wav: bytes) -> None:
    # refitted on the request (refresh 0): this reads the votes it has just cast; the background
    # refresher's staleness is tests/arena/test_leaderboard_refresh.py's
    harness: Harness = harness_factory(leaderboard_refresh_s=0)
    client = harness.client()
    empty = client.get("/api/leaderboard")
    assert empty.status_code == 200
    assert empty.json()["n_battles"] == 0
    for winner in ("model_a", "model_b", "tie"):
        battle_id = _create(client, speech_wav).json()["battle_id"]
        read_events(client, battle_id)
        assert (
            client.post(f"/api/battles/{battle_id}/vote", json={"winner": winner}).status_code
            == 200
        )
    document = client.get("/api/leaderboard").json()
    assert document["n_battles"] == 3
    assert {row["model"] for row in document["models"]} == {"alpha", "beta"}
    assert all(row["battles"] == 3 for row in document["models"])


def test_a_vote_on_a_battle_whose_replies_never_came_says_so(
    harness: Harness, speech_wav: bytes
) -> None:
    from datetime import UTC, datetime, timedelta

    from lamarena.arena.deps import SESSION_COOKIE
    from lamarena.store.db import make_sessionmaker
    from lamarena.store.repo import create_battle

    client = harness.client()
    created = _create(client, speech_wav)
    assert created.status_code == 201
    session_id = client.cookies[SESSION_COOKIE]
    # Battles of this session whose generation died with a server (no replies stored).
    with make_sessionmaker(harness.engine).begin() as session:
        old, recent = (
            create_battle(
                session,
                model_a="alpha",
                model_b="beta",
                query_audio_sha256="d" * 64,
                session_id=session_id,
                created_at=datetime.now(UTC) - age,
            )
            for age in (timedelta(hours=1), timedelta(seconds=1))
        )
    lost = client.post(f"/api/battles/{old}/vote", json={"winner": "tie"})
    assert lost.status_code == 422
    assert "lost" in lost.json()["message"] and "new battle" in lost.json()["message"]
    pending = client.post(f"/api/battles/{recent}/vote", json={"winner": "tie"})
    assert pending.status_code == 409 and pending.json()["error"] == "replies_pending"
    assert harness.counts()["votes"] == 0


def test_a_reply_that_broke_off_is_a_failed_side_and_cannot_be_voted_on(
    harness: Harness, speech_wav: bytes
) -> None:
    harness.fakes["beta"].truncate_after = 2  # the role chunk and one delta, then nothing
    client = harness.client()
    battle_id, events, battle, replies = _battle_with_replies(harness, client, speech_wav)
    broken = "a" if battle.model_a == "beta" else "b"
    assert [e.data["side"] for e in events if e.name == "error"] == [broken]
    assert "broke off" in (replies[broken].error or "")
    assert replies[broken].text == "The capital"  # what arrived is kept, marked failed
    refused = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_a"})
    assert refused.status_code == 422
    assert harness.counts()["votes"] == 0
