"""Battle starts: a few at a time in arrival order; live streams allowed without a read.

Uploads are decoded and stored ``battle_starts_at_once`` at a time, in arrival order, and the
stream of a battle this process generates is allowed without reading the store. Under a
burst every upload's decoding and storing would otherwise share the one event loop and GIL, so
every battle's models would be asked late; queued, the first to arrive are answered first
(benchmarks/arena_load.py, ``burst``). The body is read before the queue, so a slow upload
never holds a place. Real arena (uvicorn on 127.0.0.1, loopback models), SQLite and
PostgreSQL.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

import lamarena.arena.routes.battles as battle_routes
from arena.conftest import Harness, read_events


class _Concurrency:
    """Wraps a blocking function; records how many calls ran at once (each takes ``hold_s``)."""

    def __init__(self, function: Callable[..., Any], hold_s: float) -> None:
        self._function = function
        self._hold_s = hold_s
        self._lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self.running += 1
            self.calls += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self._hold_s)
            return self._function(*args, **kwargs)
        finally:
            with self._lock:
                self.running -= 1


def _upload(url: str, audio: bytes) -> int:
    with httpx.Client(base_url=url, timeout=30) as client:
        response = client.post(
            "/api/battles", files={"audio": ("question.wav", audio, "audio/wav")}
        )
        return response.status_code


@pytest.mark.parametrize("at_once", [1, 2])
def test_no_more_uploads_are_stored_at_once_than_the_setting_allows(
    harness_factory: Callable[..., Harness],
    speech_wav: bytes,
    monkeypatch: pytest.MonkeyPatch,
    at_once: int,
) -> None:
    watch = _Concurrency(battle_routes.open_battle_from_upload, hold_s=0.15)
    monkeypatch.setattr(battle_routes, "open_battle_from_upload", watch)
    harness = harness_factory(battle_starts_at_once=at_once)

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(lambda _: _upload(harness.url, speech_wav), range(6)))

    assert statuses == [201] * 6
    assert watch.calls == 6
    assert watch.most == at_once
    assert harness.counts()["battles"] == 6


def test_a_slow_upload_does_not_hold_the_place_of_others(
    harness_factory: Callable[..., Harness], speech_wav: bytes
) -> None:
    harness = harness_factory(battle_starts_at_once=1, body_timeout_s=8)
    boundary = "lamarena-slow-upload"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; '
            'filename="question.wav"\r\nContent-Type: audio/wav\r\n\r\n'
        ).encode()
        + speech_wav
        + f"\r\n--{boundary}--\r\n".encode()
    )
    host, port = harness.url.removeprefix("http://").split(":")
    slow = socket.create_connection((host, int(port)), timeout=10)
    try:
        head = (
            f"POST /api/battles HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        slow.sendall(head + body[: len(body) // 2])  # and then nothing, for now
        time.sleep(0.3)  # the slow upload is in, reading its body

        started = time.monotonic()
        status = _upload(harness.url, speech_wav)
        waited_s = time.monotonic() - started

        slow.sendall(body[len(body) // 2 :])
        answer = slow.recv(4096).decode("latin-1")
    finally:
        slow.close()

    assert status == 201
    assert waited_s < 4.0  # well under the slow body's own deadline (8 s)
    assert answer.startswith("HTTP/1.1 201"), answer[:200]
    assert harness.counts()["battles"] == 2


def test_a_live_battle_streams_to_its_session_only_without_reading_the_store(
    harness_factory: Callable[..., Harness],
    speech_wav: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads = _Concurrency(battle_routes.check_battle_access, hold_s=0)
    monkeypatch.setattr(battle_routes, "check_battle_access", reads)
    harness = harness_factory()
    owner, stranger = harness.client(), harness.client()
    stranger.post("/api/battles", files={"audio": ("q.wav", speech_wav, "audio/wav")})
    created = owner.post("/api/battles", files={"audio": ("q.wav", speech_wav, "audio/wav")})
    battle_id = created.json()["battle_id"]

    refused = stranger.get(f"/api/battles/{battle_id}/stream")  # another session, while live
    events = read_events(owner, battle_id)
    after = read_events(owner, battle_id)  # finished: no longer live, read from the store

    assert refused.status_code == 404
    assert [event.name for event in events].count("done") == 2
    assert [event.name for event in after].count("done") == 2
    assert reads.calls == 2  # the stranger's refusal and the stream after the battle ended
