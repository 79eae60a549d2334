"""`lamarena serve` as a user starts it, on the embedded defaults.

A real process on SQLite and the built-in offline models, and one whole battle over HTTP.
"""

from __future__ import annotations

import time

import httpx
from sqlalchemy import create_engine, select

from arena.conftest import read_events
from lamarena.store.tables import Battle


def test_serve_runs_a_battle_on_the_offline_defaults(
    offline_served: str, offline_database: str, speech_wav: bytes
) -> None:
    with httpx.Client(base_url=offline_served, timeout=30) as client:
        created = client.post("/api/battles", files={"audio": ("q.wav", speech_wav, "audio/wav")})
        assert created.status_code == 201, created.text
        battle_id = created.json()["battle_id"]
        client.timeout = httpx.Timeout(180)
        events = read_events(client, battle_id)
        done = {event.data["side"] for event in events if event.name == "done"}
        assert done == {"a", "b"}, [e for e in events if e.name == "error"]
        text = {"a": "", "b": ""}
        for event in events:
            if event.name == "delta":
                text[event.data["side"]] += event.data["text"]
        assert text["a"].strip() and text["b"].strip()
        reveal = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "tie"})
        assert reveal.status_code == 200, reveal.text
        assert {reveal.json()["model_a"], reveal.json()["model_b"]} == {
            "offline-whisper-smollm2",
            "offline-whisper-smollm2-concise",
        }
        # the process fitted as it started (no votes then) and refits within its refresh time
        deadline = time.monotonic() + 30
        board = client.get("/api/leaderboard").json()
        while board["n_battles"] != 1 and time.monotonic() < deadline:
            time.sleep(0.5)
            board = client.get("/api/leaderboard").json()
        assert board["n_battles"] == 1 and board["status"] == "ready"
        # The offline pipelines' own Whisper transcribed the query, and it was kept.
        engine = create_engine(offline_database)
        try:
            deadline = time.monotonic() + 30  # stored once both replies are done
            transcript = None
            while transcript is None and time.monotonic() < deadline:
                with engine.connect() as connection:
                    transcript = connection.scalar(select(Battle.query_transcript))
                time.sleep(0.1)
        finally:
            engine.dispose()
        assert transcript is not None and "capital" in transcript.lower()
        # A spoken reason goes through the same Whisper.
        said = client.post(
            f"/api/battles/{battle_id}/feedback-audio",
            files={"audio": ("why.wav", speech_wav, "audio/wav")},
        )
        assert said.status_code == 200, said.text
        assert "capital" in said.json()["text"].lower()
