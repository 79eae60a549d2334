"""A real ``lamarena serve`` process, and what a participant does with it over HTTP.

:class:`ServeProcess` starts ``python -m lamarena serve`` as a user would (a ``models.yaml``, a
database URL, a port, ``--workers``), in a process group of its own so that a crash can be
simulated with ``SIGKILL`` on the server *and* every worker it spawned. Its log (uvicorn's access
log included) goes to a file, never to a pipe nobody reads (a full pipe would block the server).

:meth:`ServeProcess.pid_serving` says which process of the group holds the server end of a TCP
connection (read from the kernel's socket table with psutil): with several workers, that is how a
test tells which worker answered a request, since the app itself reports nothing about it.

The participant functions (:func:`create_battle`, :func:`read_stream`, :func:`vote`) speak the
arena HTTP API of DESIGN.md with httpx; one :class:`httpx.Client` is one browser (one cookie jar,
so one arena session).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import psutil
import yaml

__all__ = [
    "RawResponse",
    "ServeProcess",
    "SseEvent",
    "client_port",
    "create_battle",
    "parse_sse",
    "read_response",
    "read_stream",
    "send_request",
    "send_vote_unanswered",
    "vote",
    "write_models_yaml",
]

_STOP_TIMEOUT_S = 15.0
_SESSION_COOKIE = "lamarena_session"  # DESIGN.md: the arena session cookie


def write_models_yaml(
    path: Path, models: Mapping[str, str], *, timeout_s: float = 10.0, output: str = "text"
) -> Path:
    """Write a models.yaml of OpenAI-compatible models (name -> base URL ``.../v1``) to ``path``.

    ``output: audio`` makes them answer with speech (``serve --mode speech``).
    """
    document = {
        "models": [
            {
                "name": name,
                "kind": "openai",
                "model": "fake-model",
                "base_url": base_url,
                "system_prompt": "Answer in one sentence.",
                "timeout_s": timeout_s,
                "max_retries": 0,
                **({"output": output} if output != "text" else {}),
            }
            for name, base_url in models.items()
        ]
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


class ServeProcess:
    """``lamarena serve`` in its own process group; a context manager that always cleans up.

    Args:
        config: the models.yaml to serve; None serves the built-in offline models.
        database_url: the SQLAlchemy URL of the arena's database.
        port: the port to listen on (127.0.0.1); restarting on the same port is allowed.
        workdir: the working directory; the log file ``serve-<n>.log`` goes there too.
        workers: ``--workers``.
        env: extra environment variables (``LAMARENA_*`` settings).
    """

    def __init__(
        self,
        *,
        config: Path | None,
        database_url: str,
        port: int,
        workdir: Path,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.database_url = database_url
        self.port = port
        self.workdir = workdir
        self.workers = workers
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self._starts = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the server (a new process group); see :meth:`wait_healthy`."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the server is already running")
        self._starts += 1
        self.log_path = self.workdir / f"serve-{self._starts}.log"
        env = {
            **os.environ,
            "LAMARENA_DATA_DIR": str(self.workdir / "data"),
            "LAMARENA_CACHE_DIR": str(self.workdir / "cache"),
            **self.env,
        }
        command = [
            sys.executable,
            "-m",
            "lamarena",
            "serve",
            *(["--config", str(self.config)] if self.config is not None else []),
            "--db",
            self.database_url,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self, chars: int = 3_000) -> str:
        """The end of the current log (for failure messages)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_healthy(self, timeout_s: float = 60.0) -> float:
        """Wait until ``GET /healthz`` answers 200 (and, with workers, all of them run).

        Returns:
            Seconds waited.

        Raises:
            RuntimeError: the process exited or did not become healthy in time.
        """
        started = time.monotonic()
        deadline = started + timeout_s
        while True:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"serve exited early; its log:\n{self.log_tail()}")
            try:
                healthy = httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
                if healthy and (self.workers == 1 or self._workers_started() >= self.workers):
                    return time.monotonic() - started
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"serve not healthy within {timeout_s} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def _workers_started(self) -> int:
        # uvicorn logs "Application startup complete." once per worker, after its lifespan ran.
        return self.log_tail(1_000_000).count("Application startup complete.")

    def serving_pids(self) -> set[int]:
        """The pids of the processes running the app, as uvicorn logged them at start."""
        return {
            int(pid)
            for pid in re.findall(r"Started server process \[(\d+)\]", self.log_tail(1_000_000))
        }

    def group(self) -> list[psutil.Process]:
        """The server process and every process it started (workers, helpers)."""
        if self.process is None:
            return []
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def pid_serving(self, port: int) -> int | None:
        """The pid of the process holding the server end of the connection from ``port``."""
        for process in self.group():
            try:
                connections = process.net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            for connection in connections:
                if (
                    connection.raddr
                    and connection.raddr.port == port
                    and connection.laddr.port == self.port
                ):
                    return int(process.pid)
        return None

    def connect_to(self, pid: int, *, attempts: int = 200) -> socket.socket:
        """A TCP connection that the serving process ``pid`` accepted (the kernel chooses).

        Connects again and again, keeping the first connection that ``pid`` accepted and
        closing the others, as an unlucky browser would find its way to one worker.

        Raises:
            RuntimeError: ``pid`` took none of ``attempts`` connections.
        """
        for _ in range(attempts):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            local_port = int(sock.getsockname()[1])
            deadline = time.monotonic() + 5
            owner = self.pid_serving(local_port)
            while owner is None and time.monotonic() < deadline:
                time.sleep(0.002)
                owner = self.pid_serving(local_port)
            if owner == pid:
                return sock
            sock.close()
        raise RuntimeError(f"process {pid} accepted none of {attempts} connections")

    def kill9(self) -> list[int]:
        """Crash the server: SIGKILL its whole process group at once; return the pids killed."""
        if self.process is None:
            return []
        members = self.group()
        pids = [member.pid for member in members]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        for member in members:  # anything that left the group still dies
            with contextlib.suppress(psutil.NoSuchProcess):
                member.send_signal(signal.SIGKILL)
        self.process.wait(_STOP_TIMEOUT_S)
        _, alive = psutil.wait_procs(members, timeout=_STOP_TIMEOUT_S)
        if alive:
            raise RuntimeError(f"processes survived SIGKILL: {[p.pid for p in alive]}")
        return pids

    def stop(self) -> None:
        """Stop the server politely (SIGTERM to the group), then by force."""
        if self.process is None:
            return
        members = self.group()
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(_STOP_TIMEOUT_S)
        _, alive = psutil.wait_procs(members, timeout=1 if members else 0)
        if alive or self.process.poll() is None:
            self.kill9()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event with the monotonic time it arrived."""

    name: str
    data: dict[str, Any]
    at: float


def client_port(response: httpx.Response) -> int:
    """The local (client-side) TCP port of the connection that carried ``response``."""
    stream = response.extensions["network_stream"]
    address = stream.get_extra_info("client_addr")
    return int(address[1])


def create_battle(client: httpx.Client, audio: bytes) -> httpx.Response:
    """``POST /api/battles`` with ``audio`` as a WAV upload."""
    return client.post("/api/battles", files={"audio": ("question.wav", audio, "audio/wav")})


def read_stream(
    client: httpx.Client, battle_id: str, *, timeout_s: float = 30.0, on_open: Any = None
) -> list[SseEvent]:
    """Every event of a battle's stream, up to ``end`` (which is included).

    ``on_open`` is called with the response as soon as its headers arrive (the connection is
    open then), for example to see which worker serves it.
    """
    events: list[SseEvent] = []
    name: str | None = None
    data = ""
    url = f"/api/battles/{battle_id}/stream"
    with client.stream("GET", url, timeout=timeout_s) as response:
        if response.status_code != 200:
            response.read()
            raise AssertionError(f"stream of {battle_id}: {response.status_code} {response.text}")
        if on_open is not None:
            on_open(response)
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data += line.split(":", 1)[1].strip()
            elif not line and name is not None:
                events.append(SseEvent(name, json.loads(data) if data else {}, time.monotonic()))
                if name == "end":
                    break
                name, data = None, ""
    return events


def vote(client: httpx.Client, battle_id: str, winner: str) -> httpx.Response:
    """``POST /api/battles/{id}/vote``."""
    return client.post(f"/api/battles/{battle_id}/vote", json={"winner": winner})


@dataclass(frozen=True)
class RawResponse:
    """An HTTP/1.0 answer read from a raw socket."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


def send_request(
    sock: socket.socket,
    method: str,
    path: str,
    *,
    session: str | None = None,
    json_body: Any = None,
) -> None:
    """Send one HTTP/1.0 request (the server closes the connection after its answer)."""
    body = b"" if json_body is None else json.dumps(json_body).encode()
    lines = [f"{method} {path} HTTP/1.0", "Host: 127.0.0.1"]
    if session is not None:
        lines.append(f"Cookie: {_SESSION_COOKIE}={session}")
    if json_body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def read_response(sock: socket.socket, *, timeout_s: float = 30.0) -> RawResponse:
    """Read an HTTP/1.0 answer to the end (the server closes the connection) and close."""
    sock.settimeout(timeout_s)
    parts: list[bytes] = []
    try:
        while chunk := sock.recv(65_536):
            parts.append(chunk)
    finally:
        sock.close()
    head, _, body = b"".join(parts).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), headers, body)


def parse_sse(body: bytes) -> list[SseEvent]:
    """The events of a whole server-sent-events body (arrival times are all now)."""
    events: list[SseEvent] = []
    now = time.monotonic()
    for block in body.decode().replace("\r\n", "\n").split("\n\n"):
        name: str | None = None
        data = ""
        for line in block.split("\n"):
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data += line.split(":", 1)[1].strip()
        if name is not None:
            events.append(SseEvent(name, json.loads(data) if data else {}, now))
    return events


def send_vote_unanswered(port: int, battle_id: str, session: str, winner: str) -> socket.socket:
    """Put a whole vote request on the wire and return without reading the answer.

    The caller closes the returned socket. Crashing the server now leaves the client not knowing
    whether the vote was stored, as a browser would be after a crash.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    send_request(
        sock,
        "POST",
        f"/api/battles/{battle_id}/vote",
        session=session,
        json_body={"winner": winner},
    )
    return sock
