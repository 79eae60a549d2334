"""Speech battles: ``serve --mode speech``, reply audio events and files, the listening rule.

A real arena over HTTP on 127.0.0.1 with two loopback OpenAI-compatible models that answer with
audio as OpenAI's chat completions stream it (``modalities: [text, audio]``, base64 pcm16 with a
transcript), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import httpx
import numpy as np
import pytest
import soundfile
from sqlalchemy import select

from helpers.fake_openai import FakeOpenAI, sine_pcm16
from lamarena.arena.listening import LISTEN_SLACK_S, HeardReply, earliest_vote_s
from lamarena.errors import ConfigError
from lamarena.models.registry import check_output_mode
from lamarena.store.audio_files import reply_audio_path
from lamarena.store.tables import Battle, Reply
from lamarena.store.votes import load_battle_records

from .conftest import Harness, SseEvent, make_entry, read_events

CHUNK_S = 1.0
"""Seconds of audio each fake sends per delta (three deltas: three seconds a side)."""


def _speaking_fakes() -> dict[str, FakeOpenAI]:
    fakes = {
        "alpha": FakeOpenAI(deltas=("Paris", " is the", " capital."), delta_delay_s=0.05),
        "beta": FakeOpenAI(deltas=("The capital", " is", " Paris!"), first_token_delay_s=0.1),
    }
    for fake in fakes.values():
        fake.speech_pcm = sine_pcm16(CHUNK_S)
    return fakes


def _create(client: httpx.Client, audio: bytes) -> str:
    created = client.post("/api/battles", files={"audio": ("q.wav", audio, "audio/wav")})
    assert created.status_code == 201, created.text
    battle_id: str = created.json()["battle_id"]
    return battle_id


def _by_side(events: list[SseEvent], name: str) -> dict[str, list[SseEvent]]:
    return {side: [e for e in events if e.name == name and e.data["side"] == side] for side in "ab"}


@pytest.fixture
def speech_harness(harness_factory) -> Harness:
    built: Harness = harness_factory(
        fakes=_speaking_fakes(), speaking=True, mode="speech", min_listen_s=2.0
    )
    return built


def test_a_speech_battle_streams_audio_keeps_it_and_gates_the_vote(
    speech_harness: Harness, speech_wav: bytes
) -> None:
    client = speech_harness.client()
    battle_id = _create(client, speech_wav)
    events = read_events(client, battle_id)
    audio = _by_side(events, "audio")
    for side in "ab":
        (event,) = audio[side]
        assert event.data == {
            "side": side,
            "turn": 1,
            "url": f"/api/battles/{battle_id}/audio/{side}?turn=1",
        }
        # the audio event comes before the side is done (it is playable while it arrives)
        done = _by_side(events, "done")[side][0]
        assert events.index(event) < events.index(done)
    deltas = _by_side(events, "delta")
    assert {"".join(e.data["text"] for e in deltas[s]) for s in "ab"} == {
        "Paris is the capital.",
        "The capital is Paris!",
    }

    # too soon: nobody could have heard 2 s of each reply yet
    early = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_a"})
    assert early.status_code == 409, early.text
    assert early.json()["error"] == "listen_first"
    assert "listen to both replies first" in early.json()["message"]

    with speech_harness.engine.connect() as connection:
        battle = connection.execute(select(Battle).where(Battle.id == battle_id)).one()
        replies = {
            row.side: row
            for row in connection.execute(select(Reply).where(Reply.battle_id == battle_id))
        }
    assert battle.mode == "speech"
    for side in "ab":
        reply = replies[side]
        assert reply.audio_s == pytest.approx(3 * CHUNK_S, abs=1e-3)
        assert reply.ttfab_s is not None and 0 < reply.ttfab_s <= reply.total_s
        path = reply_audio_path(speech_harness.data_dir, reply.audio_sha256)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == reply.audio_sha256
        served = client.get(f"/api/battles/{battle_id}/audio/{side}", params={"turn": 1})
        assert served.status_code == 200
        assert served.headers["content-type"] == "audio/wav"
        samples, rate = soundfile.read(io.BytesIO(served.content), dtype="int16")
        assert rate == 24_000 and len(samples) == round(3 * CHUNK_S * 24_000)
        assert np.array_equal(samples, np.frombuffer(sine_pcm16(CHUNK_S) * 3, "<i2"))

    heard = [HeardReply(replies[s].ttfab_s, replies[s].audio_s) for s in "ab"]
    earliest = earliest_vote_s(heard[0], heard[1], 2.0)
    assert earliest >= 4.0  # two seconds of each, one after the other
    started = battle.created_at.replace(tzinfo=UTC)
    wait_s = earliest - LISTEN_SLACK_S - (datetime.now(UTC) - started).total_seconds()
    time.sleep(max(0.0, wait_s) + 0.3)
    vote = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "model_a"})
    assert vote.status_code == 200, vote.text
    reveal = vote.json()
    for side in "ab":
        latency = reveal[f"latency_{side}"]
        assert latency["audio_s"] == pytest.approx(3 * CHUNK_S, abs=1e-3)
        assert latency["ttfab_s"] == replies[side].ttfab_s

    (record,) = load_battle_records(speech_harness.engine)
    assert record.mode == "speech"
    assert record.reply_audio_a_sha256 == replies["a"].audio_sha256
    assert record.latency_b is not None and record.latency_b.audio_s == replies["b"].audio_s


def test_reply_audio_plays_while_it_arrives(harness_factory, speech_wav: bytes) -> None:
    fakes = _speaking_fakes()
    gates = {name: fake.hold_after_first() for name, fake in fakes.items()}
    harness = harness_factory(fakes=fakes, speaking=True, mode="speech", min_listen_s=0)
    client = harness.client()
    battle_id = _create(client, speech_wav)
    got: dict[str, bytes] = {}

    def read_first_bytes() -> None:
        # the side's first second of audio while the model is held after its first delta
        with client.stream("GET", f"/api/battles/{battle_id}/audio/a") as response:
            assert response.status_code == 200
            buffer = b""
            for part in response.iter_bytes():
                buffer += part
                if len(buffer) >= 44 + len(sine_pcm16(CHUNK_S)):
                    break
            got["head"] = buffer

    with client.stream("GET", f"/api/battles/{battle_id}/stream") as response:
        names: list[str] = []
        for line in response.iter_lines():  # until both sides' first audio is here
            if line.startswith("event:"):
                names.append(line.split(":", 1)[1].strip())
            if names.count("audio") == 2:
                break
    assert "done" not in names
    reader = threading.Thread(target=read_first_bytes)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "the audio did not start while the model was held"
    head = got["head"]
    assert head[:4] == b"RIFF" and head[40:44] == b"\xff\xff\xff\xff"  # length left open
    assert head[44 : 44 + 100] == sine_pcm16(CHUNK_S)[:100]
    for gate in gates.values():
        gate.set()
    events = read_events(client, battle_id)
    assert [e.name for e in events].count("done") == 2
    # once done, the kept file is whole, with its true length in the header
    whole = client.get(f"/api/battles/{battle_id}/audio/a")
    samples, _ = soundfile.read(io.BytesIO(whole.content), dtype="int16")
    assert len(samples) == round(3 * CHUNK_S * 24_000)


def test_hidden_transcripts_send_no_text_before_the_vote(
    harness_factory,
    speech_wav: bytes,
) -> None:
    harness = harness_factory(
        fakes=_speaking_fakes(), speaking=True, mode="speech", hide_transcripts=True
    )
    client = harness.client()
    battle_id = _create(client, speech_wav)
    live = read_events(client, battle_id)
    again = read_events(client, battle_id, turn=1)  # from the store
    for events in (live, again):
        assert [e.name for e in events if e.name == "delta"] == []
        assert len([e for e in events if e.name == "audio"]) == 2


def test_audio_of_another_session_or_a_text_reply_is_not_served(
    harness_factory,
    speech_wav: bytes,
) -> None:
    speech = harness_factory(fakes=_speaking_fakes(), speaking=True, mode="speech")
    owner, stranger = speech.client(), speech.client()
    battle_id = _create(owner, speech_wav)
    read_events(owner, battle_id)
    assert stranger.get(f"/api/battles/{battle_id}/audio/a").status_code == 404
    assert owner.get(f"/api/battles/{battle_id}/audio/c").status_code == 422
    assert owner.get(f"/api/battles/{battle_id}/audio/a", params={"turn": 2}).status_code == 404

    text = harness_factory()  # a text arena: its replies have no audio
    client = text.client()
    text_battle = _create(client, speech_wav)
    read_events(client, text_battle)
    refused = client.get(f"/api/battles/{text_battle}/audio/b")
    assert refused.status_code == 404 and "has no audio" in refused.json()["message"]
    # a text battle has no listening rule
    assert client.post(f"/api/battles/{text_battle}/vote", json={"winner": "tie"}).is_success


def test_a_second_spoken_turn_gets_its_own_audio(speech_harness: Harness, speech_wav: bytes):
    client = speech_harness.client()
    battle_id = _create(client, speech_wav)
    read_events(client, battle_id)
    turn = client.post(
        f"/api/battles/{battle_id}/turns", files={"audio": ("again.wav", speech_wav, "audio/wav")}
    )
    assert turn.status_code == 201, turn.text
    events = read_events(client, battle_id)
    urls = sorted(e.data["url"] for e in events if e.name == "audio")
    assert urls == [f"/api/battles/{battle_id}/audio/{s}?turn=2" for s in "ab"]
    for name in ("alpha", "beta"):
        second = speech_harness.fakes[name].chat_requests[1].json
        assert second is not None
        assistant = [m for m in second["messages"] if m["role"] == "assistant"]
        assert len(assistant) == 1  # its own first reply, as text


def test_mixed_configurations_are_refused_naming_the_models(tmp_path) -> None:
    text = make_entry("alpha", "http://127.0.0.1:9/v1")
    spoken = make_entry("beta", "http://127.0.0.1:9/v1", speaks=True)
    with pytest.raises(ConfigError, match=r"--mode speech .* alpha answer\(s\) in text"):
        check_output_mode([text, spoken], "speech")
    with pytest.raises(ConfigError, match=r"--mode text .* beta answer\(s\) with speech"):
        check_output_mode([text, spoken], "text")
    check_output_mode([spoken, make_entry("gamma", "http://x/v1", speaks=True)], "speech")
    check_output_mode([text], "text")


@pytest.mark.parametrize(
    ("a", "b", "min_listen", "expected"),
    [
        (HeardReply(1.0, 10.0), HeardReply(1.0, 10.0), 5.0, 11.0),  # 5 s of each after 1 s
        (HeardReply(1.0, 2.0), HeardReply(1.0, 10.0), 5.0, 8.0),  # all of the short one
        (HeardReply(0.5, 10.0), HeardReply(20.0, 10.0), 5.0, 25.0),  # waits for B's audio
        (HeardReply(20.0, 10.0), HeardReply(0.5, 10.0), 5.0, 25.0),  # either order
        (HeardReply(None, None), HeardReply(1.0, 3.0), 5.0, 4.0),  # unknown: no wait
        (HeardReply(1.0, 10.0), HeardReply(1.0, 10.0), 0.0, 1.0),  # no rule
    ],
)
def test_the_earliest_vote_is_the_quicker_listening_order(a, b, min_listen, expected) -> None:
    assert earliest_vote_s(a, b, min_listen) == pytest.approx(expected)


def test_serve_refuses_a_mixed_configuration_with_one_line(tmp_path) -> None:
    config = tmp_path / "models.yaml"
    config.write_text(
        "models:\n"
        "  - {name: alpha, kind: openai, model: m, base_url: 'http://127.0.0.1:9/v1'}\n"
        "  - {name: beta, kind: openai, model: m, base_url: 'http://127.0.0.1:9/v1',"
        " output: audio}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "lamarena", "serve", "--config", str(config), "--mode", "speech",
         "--db", f"sqlite:///{tmp_path / 'a.db'}", "--port", "0"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: serve --mode speech")
    assert "alpha answer(s) in text" in lines[0]
    assert not (tmp_path / "a.db").exists()  # refused before anything started
