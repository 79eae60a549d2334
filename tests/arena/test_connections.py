"""Slow clients under real uvicorn: header and body deadlines, and no ids in the access log.

A tiny Starlette app runs under uvicorn on 127.0.0.1 with :func:`server_options` (header
deadline 0.5 s) and :class:`BodyTimeoutMiddleware` (pause 0.5 s, 100 bytes a second); the tests
speak HTTP/1.1 over raw sockets and time when the server closes them. One test runs uvicorn with
two worker processes, as ``lamarena serve --workers 2`` would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import logging.config
import os
import pickle
import selectors
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.config import LOGGING_CONFIG
from uvicorn.importer import import_from_string
from uvicorn.logging import AccessFormatter

from helpers.servers import unused_port
from lamarena.arena.connections import (
    ACCESS_LOGGER,
    BodyTimeoutMiddleware,
    HeaderTimeoutH11Protocol,
    RedactIdsFilter,
    header_timeout_protocol,
    header_timeout_protocol_path,
    install_access_log_filter,
    log_config,
    redact_path,
    server_options,
)

HEADER_TIMEOUT_S = 0.5
BODY_TIMEOUT_S = 0.5
MIN_RATE = 100.0
KEEP_ALIVE_S = 1  # the tests' own: idle between requests for longer than the header deadline
SLACK_S = 0.5
STREAM_S = 0.7  # longer than either deadline
BATTLE_ID = "5f3c0a1e-7b2d-4c9e-8f10-2a3b4c5d6e7f"
ACCESS_FORMAT = '%(client_addr)s - "%(request_line)s" %(status_code)s'


# --- the app and the server ------------------------------------------------------------------


async def _index(_request: Request) -> Response:
    return PlainTextResponse("ok")


async def _echo(request: Request) -> Response:
    return JSONResponse({"n": len(await request.body())})


async def _early(_request: Request) -> Response:
    return PlainTextResponse("answered without reading the body")


async def _ticks() -> AsyncIterator[bytes]:
    for i in range(3):
        await asyncio.sleep(STREAM_S / 3)
        yield f"tick {i}\n".encode()


async def _stream(_request: Request) -> Response:
    return StreamingResponse(_ticks(), media_type="text/plain")


async def _post_stream(request: Request) -> Response:
    await request.body()
    return StreamingResponse(_ticks(), media_type="text/plain")


def _app() -> Starlette:
    return Starlette(
        routes=[
            Route("/", _index),
            Route("/echo", _echo, methods=["POST"]),
            Route("/early", _early, methods=["POST"]),
            Route("/stream", _stream),
            Route("/post-stream", _post_stream, methods=["POST"]),
        ],
        middleware=[
            Middleware(
                BodyTimeoutMiddleware, body_timeout_s=BODY_TIMEOUT_S, min_rate_bytes_s=MIN_RATE
            )
        ],
    )


class Served:
    """uvicorn in a thread on 127.0.0.1 with :func:`server_options` and ``overrides``."""

    def __init__(self, **overrides: Any) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._sock.getsockname()
        self.url = f"http://127.0.0.1:{self.address[1]}"
        install_access_log_filter()
        options = server_options(HEADER_TIMEOUT_S) | {
            "timeout_keep_alive": KEEP_ALIVE_S,
            "log_level": "warning",
            "access_log": False,
            "lifespan": "off",
            "ws": "none",
            "timeout_graceful_shutdown": 1,
            **overrides,
        }
        self._server = uvicorn.Server(uvicorn.Config(_app(), **options))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def connect(self) -> socket.socket:
        return socket.create_connection(self.address, timeout=10)

    def __enter__(self) -> Served:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "no server"
            time.sleep(0.005)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with Served() as server:
        yield server


# --- raw HTTP ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def read_answer(sock: socket.socket) -> Answer:
    """One response with a Content-Length, leaving the connection open."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65_536)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines)
    }
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65_536)
        assert chunk, "closed in the middle of a response"
        body += chunk
    return Answer(int(status_line.split()[1]), headers, body[:length])


def read_until_closed(sock: socket.socket, timeout_s: float = 5.0) -> bytes:
    """Everything the server sends until it closes (a reset counts as closed)."""
    sock.settimeout(timeout_s)
    data = b""
    try:
        while chunk := sock.recv(65_536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def post_head(path: str, length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def assert_timeout_answer(answer: Answer) -> None:
    assert answer.status == 408
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["connection"] == "close"
    error = answer.json()
    assert set(error) == {"error", "message"}
    assert error["error"] == "timeout"
    assert "send the request again" in error["message"]


def parse_answer(data: bytes) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines)
    }
    return Answer(int(status_line.split()[1]), headers, body)


# --- request headers ---------------------------------------------------------------------------


def test_half_a_request_line_is_closed_within_the_header_deadline(served: Served) -> None:
    with served.connect() as slow, served.connect() as silent:
        started = time.monotonic()
        slow.sendall(b"GET /ind")
        # Meanwhile another connection is served as usual.
        assert httpx.get(f"{served.url}/", timeout=5).text == "ok"
        data = read_until_closed(slow)
        elapsed = time.monotonic() - started
        assert HEADER_TIMEOUT_S * 0.9 <= elapsed <= HEADER_TIMEOUT_S + SLACK_S
        # Part of a request arrived: the client is told why before the connection closes.
        assert_timeout_answer(parse_answer(data))
        assert "headers did not arrive within 0.5 s" in parse_answer(data).json()["message"]
        # Nothing at all arrived: closed without a word.
        assert read_until_closed(silent) == b""
        assert time.monotonic() - started <= HEADER_TIMEOUT_S + SLACK_S


def test_a_hundred_trickling_connections_are_all_closed(served: Served) -> None:
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 500
    selector = selectors.DefaultSelector()
    opened: dict[socket.socket, float] = {}
    closed: dict[socket.socket, float] = {}
    try:
        for _ in range(100):
            sock = served.connect()
            sock.setblocking(False)
            opened[sock] = time.monotonic()
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + 4 * HEADER_TIMEOUT_S
        sent = 0
        while len(closed) < len(opened) and time.monotonic() < deadline:
            for sock in opened.keys() - closed.keys():  # one more byte each, every 50 ms
                try:
                    sock.send(request[sent : sent + 1])
                except OSError:
                    closed[sock] = time.monotonic()
                    selector.unregister(sock)
            sent += 1
            tick_end = time.monotonic() + 0.05
            while (left := tick_end - time.monotonic()) > 0:
                for key, _ in selector.select(left):
                    sock = key.fileobj  # type: ignore[assignment]
                    try:
                        data = sock.recv(65_536)
                    except OSError:
                        data = b""
                    if not data:
                        closed[sock] = time.monotonic()
                        selector.unregister(sock)
        assert len(closed) == len(opened), f"{len(opened) - len(closed)} connections still open"
        lifetimes = [closed[sock] - opened[sock] for sock in opened]
        assert min(lifetimes) >= HEADER_TIMEOUT_S * 0.9
        assert max(lifetimes) <= 2 * HEADER_TIMEOUT_S
    finally:
        selector.close()
        for sock in opened:
            sock.close()
    assert httpx.get(f"{served.url}/", timeout=5).status_code == 200


def test_keep_alive_connection_idles_under_its_own_timeout(served: Served) -> None:
    """Between requests the keep-alive timeout applies; the next request's headers get 0.5 s."""
    with served.connect() as sock:
        body = os.urandom(1000)
        sock.sendall(post_head("/echo", len(body)) + body)
        assert read_answer(sock).json() == {"n": 1000}
        time.sleep(HEADER_TIMEOUT_S + 0.2)  # idle past the header deadline, within keep-alive
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_answer(sock).body == b"ok"
        # The third request starts but its headers never end: 0.5 s from its first byte.
        time.sleep(0.3)
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 12")
        assert_timeout_answer(parse_answer(read_until_closed(sock)))
        assert HEADER_TIMEOUT_S * 0.9 <= time.monotonic() - started <= HEADER_TIMEOUT_S + SLACK_S
    with served.connect() as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answered = time.monotonic()
        assert read_answer(sock).body == b"ok"
        # Left idle, uvicorn's keep-alive timeout closes it (not the header deadline).
        assert read_until_closed(sock) == b""
        assert KEEP_ALIVE_S * 0.9 <= time.monotonic() - answered <= KEEP_ALIVE_S + SLACK_S


def test_unread_body_after_an_early_answer_is_bounded(served: Served) -> None:
    """A response before the body was read: the rest of the body gets the header deadline."""
    with served.connect() as sock:
        sock.sendall(post_head("/early", 100_000) + b"x" * 10)
        assert read_answer(sock).status == 200
        answered = time.monotonic()
        sock.setblocking(False)
        closed_at = None
        while closed_at is None and time.monotonic() - answered < 3:
            try:
                sock.send(b"x")  # a byte every 50 ms: uvicorn alone would wait for ever
                time.sleep(0.05)
                if sock.recv(65_536) == b"":
                    closed_at = time.monotonic()
            except BlockingIOError:
                continue
            except OSError:
                closed_at = time.monotonic()
        assert closed_at is not None
        assert closed_at - answered <= HEADER_TIMEOUT_S + SLACK_S


def test_unfinished_headers_past_16_kib_are_refused(served: Served) -> None:
    """h11 answers 400 once an incomplete header block passes the limit.

    A complete block read at once passes whatever its size: the limit bounds what a client can
    leave the server holding, not the size of headers.
    """
    with served.connect() as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 17_000)
        assert parse_answer(read_until_closed(sock)).status == 400
        assert time.monotonic() - started < HEADER_TIMEOUT_S  # refused, not timed out


def test_protocol_classes_are_shared_and_pickle_by_name() -> None:
    protocol = header_timeout_protocol(0.5)
    assert issubclass(protocol, HeaderTimeoutH11Protocol)
    assert protocol.header_timeout_s == 0.5
    assert header_timeout_protocol(0.5) is protocol
    assert header_timeout_protocol(2).header_timeout_s == 2
    assert pickle.loads(pickle.dumps(protocol)) is protocol
    assert import_from_string(header_timeout_protocol_path(0.5)) is protocol
    assert header_timeout_protocol_path(0.5) == "lamarena.arena.connections:_by_timeout.ms500"
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="header_timeout_s"):
            header_timeout_protocol(bad)
        with pytest.raises(ValueError, match="header_timeout_s"):
            server_options(bad)


# --- request bodies ----------------------------------------------------------------------------


def test_stalled_body_gets_a_408_in_the_arena_shape(served: Served) -> None:
    with served.connect() as sock:
        started = time.monotonic()
        sock.sendall(post_head("/echo", 1000) + b"x" * 10)
        answer = read_answer(sock)
        elapsed = time.monotonic() - started
        assert_timeout_answer(answer)
        assert "paused for more than 0.5 s" in answer.json()["message"]
        assert BODY_TIMEOUT_S * 0.9 <= elapsed <= BODY_TIMEOUT_S + SLACK_S
        assert read_until_closed(sock) == b""


def test_trickled_body_is_cut_at_the_minimum_rate(served: Served) -> None:
    """A byte every 50 ms never pauses 0.5 s, but averages 20 bytes a second, not 100."""
    with served.connect() as sock:
        started = time.monotonic()
        sock.sendall(post_head("/echo", 1000))
        sock.setblocking(False)
        data = b""
        closed_at = None
        while closed_at is None and time.monotonic() - started < 3:
            try:
                sock.send(b"x")
                time.sleep(0.05)
                chunk = sock.recv(65_536)
                data += chunk
                if not chunk:
                    closed_at = time.monotonic()
            except BlockingIOError:
                continue
            except OSError:  # the server closed as a byte was on its way: reset
                closed_at = time.monotonic()
        assert closed_at is not None
        # 0.5 s allowance + 1 s per 100 bytes, at 20 bytes a second: cut after ~0.63 s.
        assert closed_at - started <= 0.63 + SLACK_S
        if data:
            assert_timeout_answer(parse_answer(data))


def test_quick_bodies_and_streams_are_untouched(served: Served) -> None:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        body = os.urandom(200_000)
        assert client.post("/echo", content=body).json() == {"n": len(body)}
        assert client.post("/echo", content=b"").json() == {"n": 0}
        chunks = iter([body[:100_000], body[100_000:]])
        assert client.post("/echo", content=chunks).json() == {"n": len(body)}  # chunked

        started = time.monotonic()
        assert client.get("/stream").text == "tick 0\ntick 1\ntick 2\n"
        # After the body, the streamed answer may outlast the body deadline.
        assert client.post("/post-stream", content=b"x" * 10).text == "tick 0\ntick 1\ntick 2\n"
        assert time.monotonic() - started >= 2 * STREAM_S


# --- the access log ----------------------------------------------------------------------------


def test_filter_redacts_ids_from_access_records(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.connections.access")
    logger.addFilter(RedactIdsFilter())
    access = '%s - "%s %s HTTP/%s" %d'
    with caplog.at_level(logging.INFO, logger=logger.name):
        logger.info(access, "127.0.0.1:5000", "GET", "/?pid=abc123&x=1", "1.1", 200)
        logger.info(access, "127.0.0.1:5000", "POST", f"/api/battles/{BATTLE_ID}/vote", "1.1", 200)
        logger.info(
            access, "1.2.3.4:1", "GET", "/arena?PROLIFIC_PID=abc123&STUDY_ID=s1", "1.1", 200
        )
        logger.info("another %s record", "abc123")
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == '127.0.0.1:5000 - "GET /?pid=...&x=... HTTP/1.1" 200'
    assert lines[1] == '127.0.0.1:5000 - "POST /api/battles/{id}/vote HTTP/1.1" 200'
    assert lines[2] == '1.2.3.4:1 - "GET /arena?PROLIFIC_PID=...&STUDY_ID=... HTTP/1.1" 200'
    assert lines[3] == "another abc123 record"  # not an access record: untouched
    assert all("abc123" not in line and BATTLE_ID not in line for line in lines[:3])


@pytest.mark.parametrize(
    ("path", "redacted"),
    [
        ("/", "/"),
        ("/leaderboard", "/leaderboard"),
        ("/vendor/plotly.min.js", "/vendor/plotly.min.js"),
        ("/api/battles", "/api/battles"),
        (f"/api/battles/{BATTLE_ID}/stream", "/api/battles/{id}/stream"),
        ("/api/battles/not-a-uuid/vote", "/api/battles/{id}/vote"),
        (f"/api%2Fbattles/{BATTLE_ID}", "/api/battles/{id}"),
        (f"/other/{BATTLE_ID}", "/other/{id}"),
        ("/?pid=abc123", "/?pid=..."),
        ("/?abc123", "/?..."),
        ("/?a%20b=abc123&=abc123&x", "/?...=...&...=...&..."),
        ('/x/%0Ainjected "line"', "/x/%0Ainjected%20%22line%22"),
    ],
)
def test_redact_path(path: str, redacted: str) -> None:
    assert redact_path(path) == redacted


def test_install_access_log_filter_is_idempotent() -> None:
    logger = logging.getLogger(ACCESS_LOGGER)
    install_access_log_filter()
    install_access_log_filter()
    assert sum(isinstance(f, RedactIdsFilter) for f in logger.filters) == 1


def test_access_log_of_a_real_server_has_no_ids() -> None:
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(AccessFormatter(ACCESS_FORMAT, use_colors=False))
    # uvicorn's own logging configuration (replacing the access logger's handlers) keeps the
    # filter that Served installed before it.
    with Served(access_log=True, log_level="info") as server:
        logger = logging.getLogger(ACCESS_LOGGER)
        logger.addHandler(handler)
        try:
            with httpx.Client(base_url=server.url, timeout=5) as client:
                assert client.get("/", params={"pid": "abc123", "x": "1"}).status_code == 200
                assert client.post(f"/api/battles/{BATTLE_ID}/vote").status_code == 404
        finally:
            logger.removeHandler(handler)
    assert len(lines) == 2, lines
    assert '"GET /?pid=...&x=... HTTP/1.1" 200' in lines[0]
    assert '"POST /api/battles/{id}/vote HTTP/1.1" 404' in lines[1]
    assert not any("abc123" in line or BATTLE_ID in line for line in lines)


def test_log_config_redacts_through_dict_config(capsys: pytest.CaptureFixture[str]) -> None:
    config = log_config()
    assert config is not log_config()
    assert config["loggers"][ACCESS_LOGGER]["filters"] == ["redact_ids"]
    try:
        logging.config.dictConfig(config)  # what uvicorn.run(log_config=...) does
        logging.getLogger(ACCESS_LOGGER).info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/?pid=abc123", "1.1", 200
        )
        assert '"GET /?pid=... HTTP/1.1" 200' in capsys.readouterr().out
        logging.config.dictConfig(log_config())
    finally:
        logging.config.dictConfig(LOGGING_CONFIG)  # no handlers left on capsys's streams
    assert (
        sum(isinstance(f, RedactIdsFilter) for f in logging.getLogger(ACCESS_LOGGER).filters) == 1
    )


def test_server_options() -> None:
    assert server_options(10) == {
        "http": "lamarena.arena.connections:_by_timeout.ms10000",
        "timeout_keep_alive": 5,
        "h11_max_incomplete_event_size": 16 * 1024,
    }


# --- several workers ---------------------------------------------------------------------------

_WORKER_APP = """
from lamarena.arena.connections import install_access_log_filter


def create_app():  # as create_app_from_environment would: in each worker process
    install_access_log_filter()
    return app


async def app(scope, receive, send):
    assert scope["type"] == "http"
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""

_RUN_WORKERS = """
import json
import sys

import uvicorn

# server_options(0.5), computed by the test: importing the arena here would only slow the start.
uvicorn.run(
    "worker_app:create_app", factory=True, host="127.0.0.1", port=int(sys.argv[1]), workers=2,
    lifespan="off", ws="none", log_level="info", **json.loads(sys.argv[2]),
)
"""


def test_two_workers_get_the_deadline_and_the_redaction(tmp_path: Path) -> None:
    """``uvicorn.run(..., workers=2, **server_options(...))``: each worker process has both."""
    (tmp_path / "worker_app.py").write_text(textwrap.dedent(_WORKER_APP))
    port = unused_port()
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"PYTHONPATH": path}
    process = subprocess.Popen(
        [sys.executable, "-c", _RUN_WORKERS, str(port), json.dumps(server_options(0.5))],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"{url}/?pid=abc123&x=1", timeout=30)
                break
            except httpx.ConnectError:
                assert process.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.05)
        assert response.text == "ok"
        assert httpx.post(f"{url}/api/battles/{BATTLE_ID}/vote", timeout=5).text == "ok"
        # Slow connections: whichever worker takes one closes it within the deadline.
        slow = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(6)]
        started = time.monotonic()
        for sock in slow:
            sock.sendall(b"GET /?pid=abc")
        for sock in slow:
            with sock:
                assert_timeout_answer(parse_answer(read_until_closed(sock)))
        assert time.monotonic() - started <= 0.5 + SLACK_S
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    log = out.decode()
    # No worker was taken for hung (and replaced) while it started.
    assert "died" not in err.decode(), err.decode()[-2000:]
    assert '"GET /?pid=...&x=... HTTP/1.1" 200' in log, (log, err.decode()[-2000:])
    assert '"POST /api/battles/{id}/vote HTTP/1.1" 200' in log
    assert "abc123" not in log and BATTLE_ID not in log
