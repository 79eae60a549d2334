"""Uploads refused before the work is done: sizes from the headers, bodies cut at the limit.

One file part per request, too (issue 11: a 2 GB body was spooled whole before the 422).
"""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from sqlalchemy import func, select

from helpers.arena_server import read_response
from lamarena.store.tables import Battle

from .conftest import Harness

LIMIT = 10 * 1024 * 1024  # the arena's default audio limit


def _battles(harness: Harness) -> int:
    with harness.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(Battle)).scalar_one())


def _connect(harness: Harness) -> socket.socket:
    parts = urlsplit(harness.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def test_a_body_declared_over_the_limit_is_refused_before_it_is_read(harness: Harness) -> None:
    sock = _connect(harness)
    started = time.perf_counter()
    sock.sendall(
        b"POST /api/battles HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\n"
        b"Content-Length: 2000000000\r\n\r\n--x\r\n"
    )  # two gigabytes announced, a few bytes sent
    response = read_response(sock, timeout_s=10)
    assert time.perf_counter() - started < 2
    assert response.status == 413
    assert response.json()["error"] == "too_large"
    assert "10 MB" in response.json()["message"]
    assert _battles(harness) == 0


def test_a_chunked_body_is_cut_once_past_the_limit(harness: Harness) -> None:
    sock = _connect(harness)
    sock.sendall(
        b"POST /api/battles HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    head = (
        b'--x\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n'
        b"Content-Type: audio/wav\r\n\r\n"
    )
    sock.sendall(f"{len(head):x}\r\n".encode() + head + b"\r\n")
    block = b"x" * (1 << 20)
    sent = 0
    try:
        for _ in range(40):  # up to 40 MB unless the server answers first
            sock.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n")
            sent += len(block)
    except OSError:
        pass  # the server answered and closed: no more is read
    response = read_response(sock, timeout_s=10)
    assert response.status == 413
    assert response.json()["error"] == "too_large"
    assert sent < 30 * (1 << 20)  # refused near the limit, not after the whole body
    assert _battles(harness) == 0


def test_one_file_part_per_request(harness: Harness, speech_wav: bytes) -> None:
    client = harness.client()
    files = [
        ("audio", ("a.wav", speech_wav, "audio/wav")),
        ("audio", ("b.wav", speech_wav, "audio/wav")),
    ]
    response = client.post("/api/battles", files=files)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "bad_request" and "files" in body["message"].lower()
    assert _battles(harness) == 0


def test_a_form_of_many_fields_is_refused(harness: Harness, speech_wav: bytes) -> None:
    client = harness.client()
    fields = {f"field{index}": "x" for index in range(50)}
    response = client.post(
        "/api/battles", files={"audio": ("a.wav", speech_wav, "audio/wav")}, data=fields
    )
    assert response.status_code == 400
    assert "fields" in response.json()["message"].lower()
    assert _battles(harness) == 0


def test_a_form_without_its_audio_part_says_what_is_missing(harness: Harness) -> None:
    response = harness.client().post("/api/battles", data={"consent": "true"})
    assert response.status_code == 422
    assert response.json() == {
        "error": "invalid_input",
        "message": "send the recording as a file part called 'audio'",
    }
    assert _battles(harness) == 0


def test_an_honest_upload_with_its_fields_still_works(harness: Harness, speech_wav: bytes) -> None:
    client = harness.client()
    response = client.post(
        "/api/battles",
        files={"audio": ("question.wav", speech_wav, "audio/wav")},
        data={"consent": "true", "pid": "P-9"},
    )
    assert response.status_code == 201, response.text
    with harness.engine.connect() as connection:
        battle = connection.execute(select(Battle)).one()
    assert battle.audio_kept
