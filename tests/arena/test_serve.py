"""`lamarena serve` as a user starts it, on the embedded defaults.

A real process on SQLite and the built-in offline models, and one whole battle over HTTP.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from arena.conftest import read_events
from helpers.servers import unused_port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    port = unused_port()
    env = {
        **os.environ,
        "LAMARENA_CACHE_DIR": str(tmp_path / "cache"),
        "LAMARENA_DATA_DIR": str(tmp_path / "data"),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lamarena",
            "serve",
            "--port",
            str(port),
            "--db",
            f"sqlite:///{tmp_path / 'arena.db'}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"serve exited: {process.stderr.read() if process.stderr else ''}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("serve did not answer /healthz within 60 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr:
            process.stderr.close()


def test_serve_runs_a_battle_on_the_offline_defaults(served: str, speech_wav: bytes) -> None:
    with httpx.Client(base_url=served, timeout=30) as client:
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
        board = client.get("/api/leaderboard").json()
        assert board["n_battles"] == 1
