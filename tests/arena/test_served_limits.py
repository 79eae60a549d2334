"""Limits per address under ``lamarena serve`` itself: proxy headers, and two workers sharing them.

The address of a request is the connection's unless ``--forwarded-allow-ips`` trusts the proxy
(uvicorn trusts 127.0.0.1 by default, so without this a loopback script could name a new address
per request). With ``--workers 2`` the counts live in the database: two processes, one budget.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from helpers.arena_server import ServeProcess, client_port, read_response, write_models_yaml
from helpers.databases import DatabaseFactory
from helpers.fake_openai import FakeOpenAI
from helpers.servers import unused_port

DELTAS = ("Paris", " is the", " capital.")


def _serve(
    databases: DatabaseFactory, tmp_path: Path, *, workers: int = 1, **env: str
) -> Iterator[ServeProcess]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    fakes = [FakeOpenAI(deltas=DELTAS, first_token_delay_s=0.01) for _ in range(2)]
    with ExitStack() as stack:
        urls = {f"m{n}": stack.enter_context(fake.serve()).base_url for n, fake in enumerate(fakes)}
        server = stack.enter_context(
            ServeProcess(
                config=write_models_yaml(tmp_path / "models.yaml", urls),
                database_url=databases.url(),
                port=unused_port(),
                workdir=tmp_path,
                workers=workers,
                env=env,
            )
        )
        server.wait_healthy()
        yield server


def _upload(
    server: ServeProcess, audio: bytes, forwarded_for: str | None = None
) -> tuple[int, int | None]:
    """The status of an upload with no cookie on a new connection, and the pid that took it."""
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    with httpx.Client(base_url=server.url, timeout=15) as client:
        answer = client.post(
            "/api/battles", files={"audio": ("q.wav", audio, "audio/wav")}, headers=headers
        )
        return answer.status_code, server.pid_serving(client_port(answer))


def _upload_on(server: ServeProcess, pid: int, audio: bytes) -> int:
    """Upload over a connection that worker ``pid`` accepted; the answer's status."""
    request = httpx.Request(
        "POST", f"{server.url}/api/battles", files={"audio": ("q.wav", audio, "audio/wav")}
    )
    body = request.read()
    head = [
        "POST /api/battles HTTP/1.0",
        "Host: 127.0.0.1",
        f"Content-Type: {request.headers['content-type']}",
        f"Content-Length: {len(body)}",
    ]
    sock = server.connect_to(pid)
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    return read_response(sock).status


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
def test_forwarded_for_is_ignored_unless_the_proxy_is_trusted(
    databases: DatabaseFactory, tmp_path: Path, speech_wav: bytes
) -> None:
    limit = {"LAMARENA_ADDRESS_BATTLES_PER_MINUTE": "2"}
    for server in _serve(databases, tmp_path / "direct", **limit):
        statuses = [_upload(server, speech_wav, f"203.0.113.{n}")[0] for n in range(3)]
        assert statuses == [201, 201, 429]  # invented addresses change nothing

    trusted = {**limit, "LAMARENA_FORWARDED_ALLOW_IPS": "127.0.0.1"}
    for server in _serve(databases, tmp_path / "proxied", **trusted):
        statuses = [_upload(server, speech_wav, f"203.0.113.{n}")[0] for n in range(3)]
        assert statuses == [201, 201, 201]  # three clients behind the proxy
        again = [_upload(server, speech_wav, "203.0.113.0")[0] for _ in range(2)]
        assert again == [201, 429]  # the first client's own limit


@pytest.mark.parametrize(
    "databases", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_two_workers_share_one_budget_per_address(
    databases: DatabaseFactory, tmp_path: Path, speech_wav: bytes
) -> None:
    limit = {"LAMARENA_ADDRESS_BATTLES_PER_MINUTE": "4"}
    for server in _serve(databases, tmp_path, workers=2, **limit):
        workers = server.serving_pids()
        assert len(workers) == 2
        order = sorted(workers) * 5  # each upload on a connection the chosen worker accepted
        statuses = [_upload_on(server, pid, speech_wav) for pid in order]
        assert statuses == [201] * 4 + [429] * 6, statuses


@pytest.mark.parametrize("databases", ["sqlite"], indirect=True)
def test_serve_cuts_slow_headers_and_keeps_ids_out_of_its_log(
    databases: DatabaseFactory, tmp_path: Path, speech_wav: bytes
) -> None:
    for server in _serve(databases, tmp_path, LAMARENA_HEADER_TIMEOUT_S="0.5"):
        slow = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        slow.sendall(b"GET /healthz HT")  # half a request line, then nothing
        started = time.monotonic()
        while slow.recv(4096):
            pass  # the server's 408, then end of stream
        assert time.monotonic() - started < 3
        slow.close()

        page = httpx.get(f"{server.url}/arena", params={"pid": "secret-pid-123"}, timeout=10)
        assert page.status_code == 200
        status, _ = _upload(server, speech_wav)
        assert status == 201
        time.sleep(0.3)  # the access log line is written after the answer
        log = server.log_tail(1_000_000)
        assert '"GET /arena?' in log  # the request is logged ...
        assert "secret-pid-123" not in log  # ... without the participant id
