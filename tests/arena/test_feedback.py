"""Study features of the arena: query transcripts, spoken reasons, the completion code.

Run on SQLite and on PostgreSQL, against a loopback speech recogniser.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
from sqlalchemy import select

from lamarena.store.tables import Battle, Vote
from lamarena.store.tables import Session as SessionRow

from .conftest import Harness, read_events


def _battle(harness: Harness, client: httpx.Client, audio: bytes) -> str:
    created = client.post(
        "/api/battles", files={"audio": ("question.wav", audio, "audio/wav")}, data={}
    )
    assert created.status_code == 201, created.text
    battle_id: str = created.json()["battle_id"]
    assert read_events(client, battle_id)[-1].name == "end"
    return battle_id


def _stored_transcript(harness: Harness, battle_id: str, timeout_s: float = 10) -> str | None:
    deadline = time.monotonic() + timeout_s
    while True:
        with harness.engine.connect() as connection:
            transcript = connection.scalar(
                select(Battle.query_transcript).where(Battle.id == battle_id)
            )
        if transcript is not None or time.monotonic() > deadline:
            return transcript
        time.sleep(0.05)


def _say(client: httpx.Client, battle_id: str, audio: bytes) -> httpx.Response:
    return client.post(
        f"/api/battles/{battle_id}/feedback-audio",
        files={"audio": ("reason.wav", audio, "audio/wav")},
    )


def test_the_query_transcript_is_stored_after_the_replies(
    harness_factory: Any, speech_wav: bytes
) -> None:
    harness: Harness = harness_factory(asr=True)
    assert harness.asr is not None
    battle_id = _battle(harness, harness.client(), speech_wav)
    assert _stored_transcript(harness, battle_id) == "What is the capital of France?"
    uploads = harness.asr.transcription_requests
    assert len(uploads) == 1  # once per battle


def test_without_a_recogniser_no_transcript_and_spoken_reasons_are_refused(
    harness: Harness, speech_wav: bytes
) -> None:
    client = harness.client()
    battle_id = _battle(harness, client, speech_wav)
    said = _say(client, battle_id, speech_wav)
    assert said.status_code == 503
    assert said.json()["error"] == "unavailable"
    assert "type your reason" in said.json()["message"]
    assert _stored_transcript(harness, battle_id, timeout_s=0.5) is None


def test_a_spoken_reason_becomes_the_votes_text(harness_factory: Any, speech_wav: bytes) -> None:
    harness: Harness = harness_factory(asr=True)
    assert harness.asr is not None
    client = harness.client()
    battle_id = _battle(harness, client, speech_wav)
    _stored_transcript(harness, battle_id)
    harness.asr.transcript = "  The first one was shorter and right.  "
    said = _say(client, battle_id, speech_wav)
    assert said.status_code == 200, said.text
    assert said.json() == {"text": "The first one was shorter and right."}
    with harness.engine.connect() as connection:  # nothing stored until the vote
        assert connection.scalar(select(Vote.id).where(Vote.battle_id == battle_id)) is None

    vote = client.post(
        f"/api/battles/{battle_id}/vote",
        json={"winner": "model_b", "feedback_text": said.json()["text"]},
    )
    assert vote.status_code == 200, vote.text
    with harness.engine.connect() as connection:
        stored = connection.execute(select(Vote).where(Vote.battle_id == battle_id)).one()
    assert stored.feedback_text == "The first one was shorter and right."
    assert stored.winner == "model_b"


def test_spoken_reason_errors(harness_factory: Any, speech_wav: bytes, silent_wav: bytes) -> None:
    harness: Harness = harness_factory(asr=True)
    assert harness.asr is not None
    owner = harness.client()
    battle_id = _battle(harness, owner, speech_wav)
    _stored_transcript(harness, battle_id)
    before = len(harness.asr.transcription_requests)

    stranger = harness.client()
    assert _say(stranger, battle_id, speech_wav).status_code == 404
    assert _say(owner, "no-such-battle", speech_wav).status_code == 404
    silent = _say(owner, battle_id, silent_wav)
    assert silent.status_code == 422 and silent.json()["error"] == "invalid_audio"
    garbage = _say(owner, battle_id, b"not audio at all")
    assert garbage.status_code == 422
    assert len(harness.asr.transcription_requests) == before  # none reached the recogniser

    harness.asr.transcript = "   "
    nothing = _say(owner, battle_id, speech_wav)
    assert nothing.status_code == 422
    assert "no words were recognised" in nothing.json()["message"]

    harness.asr.fail_next(500, times=10)
    failed = _say(owner, battle_id, speech_wav)
    assert failed.status_code == 503
    assert "127.0.0.1" not in failed.text and "500" not in failed.json()["message"]


def test_the_completion_code_comes_with_the_configured_vote(
    harness_factory: Any, speech_wav: bytes
) -> None:
    harness: Harness = harness_factory(completion_votes=2, completion_code="C0DE-42")
    client = harness.client()
    reveals = []
    for _ in range(3):
        battle_id = _battle(harness, client, speech_wav)
        vote = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "tie"})
        assert vote.status_code == 200, vote.text
        reveals.append(vote.json())
    assert [r["votes_cast"] for r in reveals] == [1, 2, 3]
    assert [r["completion_code"] for r in reveals] == [None, "C0DE-42", "C0DE-42"]

    # Another participant starts from zero.
    other = harness.client()
    battle_id = _battle(harness, other, speech_wav)
    first = other.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_a"}).json()
    assert first["votes_cast"] == 1 and first["completion_code"] is None


def test_no_completion_code_unless_configured(harness: Harness, speech_wav: bytes) -> None:
    client = harness.client()
    battle_id = _battle(harness, client, speech_wav)
    reveal = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "both_bad"}).json()
    assert reveal["votes_cast"] == 1 and reveal["completion_code"] is None


def test_a_second_pid_on_the_same_browser_starts_its_own_session(
    harness_factory, speech_wav: bytes
) -> None:
    harness: Harness = harness_factory(completion_votes=2, completion_code="C0DE-42")
    client = harness.client()

    def battle(pid: str) -> tuple[str, dict]:
        created = client.post(
            "/api/battles",
            files={"audio": ("q.wav", speech_wav, "audio/wav")},
            data={"pid": pid, "consent": "true"},
        )
        assert created.status_code == 201, created.text
        battle_id = created.json()["battle_id"]
        harness.wait_for_replies(battle_id)
        reveal = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "tie"}).json()
        return battle_id, reveal

    first_id, first = battle("P1")
    first_cookie = client.cookies["lamarena_session"]
    second_id, second = battle("P2")
    assert client.cookies["lamarena_session"] != first_cookie  # a new session, a new cookie
    # P2's vote does not count toward P1's completion code, and P1's battle stays P1's
    assert [first["votes_cast"], second["votes_cast"]] == [1, 1]
    assert second["completion_code"] is None
    with harness.engine.connect() as connection:
        owners = dict(
            connection.execute(
                select(Battle.id, SessionRow.participant_id)
                .join(SessionRow, Battle.session_id == SessionRow.id)
                .where(Battle.id.in_([first_id, second_id]))
            ).all()
        )
    assert owners == {first_id: "P1", second_id: "P2"}
    _, third = battle("P1")  # P1 again on this browser: again a session of P1's own
    assert third["votes_cast"] == 1
