"""The served arena under abuse from one client: what the server refuses, how fast, at what cost.

A real ``lamarena serve`` process (one worker, SQLite in a temporary folder) with two loopback
OpenAI-compatible models (tests/helpers/fake_openai.py, real uvicorn, in a process of their own,
replies of ``--fast-s`` and ``--slow-s`` as in arena_load.py). Every scenario starts a fresh
server (its own database and port), so no limit a scenario triggers leaks into the next; the
server's settings come from ``LAMARENA_*`` environment variables, reported per scenario.

Scenarios, each with its measured figures and their targets (``{"value", "target_max", "ok"}``):

- ``upload_2gb``: a ``POST /api/battles`` over a raw socket declaring a 2 GB body
  (``content_length``), and the same without a length (``chunked``), the client sending as fast
  as the server takes it until the server answers or closes: time to the answer (< 1 s), the
  status and message, the bytes the client sent before it, the bytes the server had read by then
  (< 20 MB; estimated from the kernel's socket queues in /proc/net/tcp: sent minus the client's
  unacknowledged bytes minus the server's unread bytes, sampled every few milliseconds), and the
  server's resident memory growth;
- ``flac_one_hour``: a FLAC of one hour at 16 kHz mono (a tone, then digital silence: a few
  hundred KB), uploaded as a participant would: time to the refusal (< 1 s), status, message,
  memory growth (< 50 MB); and the same file with the length in its header zeroed (``unknown``
  to the decoder, so only a bounded decode can refuse it);
- ``many_parts``: one multipart request of 400 file parts of 1 MB (with its length, and
  chunked), and 400 parts of 16 KB (under the body limit): status, time (< 1 s), memory growth;
- ``slow_connections``: ``--slow-sockets`` connections that each send a partial request line
  and then one byte a second; how many are still open ``header_timeout_s + 2`` s after they
  started (target 0; the server runs with ``LAMARENA_HEADER_TIMEOUT_S=--header-timeout-s``),
  and whether a normal battle (upload, stream, vote) succeeds meanwhile, with its latency
  against the same battle on the idle server;
- ``no_cookie_flood``: for ``--duration-s``, ``--flood-concurrency`` loops with no cookie (the
  jar is cleared before every request) opening battles with the same audio as fast as the server
  answers: accepted, 429s, whether every 429 carries ``Retry-After``; accepted per minute
  (target: at most the server's ``address_battles_per_minute`` in any minute);
- ``honest``: ``--participants`` people, each a browser of their own (one cookie), all behind
  the same loopback address, for ``--duration-s``: speak a query (3-6 s), upload it, read the
  stream to ``end``, read the replies (2-5 s), vote; about one battle per 10 s each. A refused
  request (429) is retried after its ``Retry-After``. Run twice: with the server's address
  limits at their defaults (``defaults``: 20 people at that pace want ~120 battles a minute from
  one address, over a 60-a-minute default), and as a lab behind one NAT would configure them
  (``lab_behind_nat``: ``LAMARENA_ADDRESS_BATTLES_PER_MINUTE`` and ``..._VOTES_PER_MINUTE`` at
  ``--nat-per-minute``, default participants x 10, the most their sessions may start anyway).

Memory is the resident set of the server process and its children (psutil), sampled every
20 ms, and the kernel's peak (VmHWM of /proc/PID/status, reset through /proc/PID/clear_refs
before each measurement); growth is the larger peak minus the resident set before.

    python benchmarks/arena_abuse.py [--quick] [--duration-s 60] [--slow-sockets 600]

``--quick`` runs the timed scenarios for 10 s (about 1.5 minutes in all; the default takes about
5). Progress goes to stderr; one JSON document to stdout, with ``targets_failed`` listing every
figure off its target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import random
import resource
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

# the loopback models, the question and the log line of the load benchmark beside this one
from arena_load import QUESTION, WINNERS, Models, _log
from helpers.arena_server import ServeProcess, write_models_yaml
from helpers.audio_files import flac_without_length
from helpers.servers import unused_port
from helpers.speech import speak

MB = 1_000_000

REFUSAL_TARGET_S = 1.0
SERVER_READ_TARGET_BYTES = 20 * MB
RSS_TARGET_MB = 50.0
SESSION_BATTLES_PER_MINUTE = 10
"""The arena's own limit per session (ArenaOptions.battles_per_minute)."""
DEFAULT_ADDRESS_BATTLES_PER_MINUTE = 60
"""Settings.address_battles_per_minute's default (the flood's target when the env leaves it)."""

SPEAK_S = (3.0, 6.0)
"""Seconds an honest participant spends speaking a query before each upload (uniform)."""
READ_S = (2.0, 5.0)
"""Seconds an honest participant reads both replies before voting (uniform)."""
PUSH_LIMIT_S = 15.0
"""How long a raw upload keeps sending when the server neither answers nor closes."""


def _target(value: float | None, target_max: float, digits: int = 4) -> dict[str, Any]:
    """A measured figure, its target (at most ``target_max``) and whether it meets it."""
    shown = None if value is None else round(float(value), digits) if digits else round(value)
    return {
        "value": shown,
        "target_max": target_max,
        "ok": value is not None and value < target_max,
    }


def _expect(value: Any, wanted: Any) -> dict[str, Any]:
    return {"value": value, "target": wanted, "ok": value == wanted}


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "p50": round(float(np.percentile(values, 50)), 4),
        "p95": round(float(np.percentile(values, 95)), 4),
        "max": round(max(values), 4),
    }


# -- the server and its memory ------------------------------------------------------------------


def _status_kib(pid: int, field_name: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Memory:
    """Resident memory of the server's processes: sampled, and the kernel's peak since a reset."""

    def __init__(self, serve: ServeProcess) -> None:
        self._serve = serve
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak = 0
        self._processes: list[psutil.Process] = []
        self.before_mb = 0.0

    def _pids(self) -> list[int]:
        return [process.pid for process in self._processes]

    def rss_bytes(self) -> int:
        total = 0
        for process in self._processes:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self.rss_bytes())
            self._stop.wait(0.02)

    def start(self) -> None:
        """Reset the kernel's peaks, read the resident set, and start sampling."""
        self._processes = self._serve.group()
        for pid in self._pids():
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = self.rss_bytes()
        self.before_mb = before / 2**20
        self._peak = before
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        """Stop sampling; the resident set before, at its peak and now, and the growth."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        after = self.rss_bytes() / 2**20
        sampled_peak = self._peak / 2**20
        hwm = [_status_kib(pid, "VmHWM") for pid in self._pids()]
        kernel_peak = sum(value for value in hwm if value is not None) / 1024 if hwm else 0.0
        peak = max(sampled_peak, kernel_peak)
        return {
            "rss_before_mb": round(self.before_mb, 1),
            "rss_peak_mb": round(peak, 1),
            "rss_peak_sampled_mb": round(sampled_peak, 1),
            "rss_after_mb": round(after, 1),
            "growth_mb": round(peak - self.before_mb, 1),
        }


@dataclass
class Lab:
    """What every scenario shares."""

    args: argparse.Namespace
    workdir: Path
    config: Path
    audio: bytes
    starts: list[float] = field(default_factory=list)

    @contextlib.contextmanager
    def server(self, name: str, env: Mapping[str, str] | None = None) -> Iterator[ServeProcess]:
        """A fresh ``lamarena serve`` (its own database and port) for one scenario."""
        folder = self.workdir / name
        folder.mkdir()
        with ServeProcess(
            config=self.config,
            database_url=f"sqlite:///{folder / 'arena.db'}",
            port=unused_port(),
            workdir=folder,
            env=dict(env or {}),
        ) as serve:
            self.starts.append(serve.wait_healthy())
            yield serve


# -- raw uploads --------------------------------------------------------------------------------


def _tcp_queues(client_port: int, server_port: int) -> tuple[int | None, int | None]:
    """(the client's unacknowledged bytes, the server's unread bytes) of one loopback connection.

    From /proc/net/tcp: ``tx_queue`` of the client's socket and ``rx_queue`` of the server's.
    """
    client_tx = server_rx = None
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            tx_queue, rx_queue = (int(part, 16) for part in fields[4].split(":"))
            if local_port == client_port and remote_port == server_port:
                client_tx = tx_queue
            elif local_port == server_port and remote_port == client_port:
                server_rx = rx_queue
    return client_tx, server_rx


def _parse_answer(raw: bytes) -> dict[str, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    if len(parts) < 2 or not parts[1].isdigit():
        return {"status": None, "raw": raw[:200].decode("latin-1")}
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    answer: dict[str, Any] = {"status": int(parts[1])}
    try:
        answer["message"] = json.loads(body).get("message")
    except (ValueError, AttributeError):
        answer["body"] = body[:200].decode("latin-1")
    for name in ("retry-after", "connection"):
        if name in headers:
            answer[name] = headers[name]
    return answer


def _push(
    port: int, head: bytes, body: Iterator[bytes], limit_s: float = PUSH_LIMIT_S
) -> dict[str, Any]:
    """Send ``head`` and then ``body`` as fast as the server takes it, until it answers or closes.

    Returns the time to the answer (or to the connection's end), what the answer said, the body
    bytes sent before it, and an estimate of the body bytes the server had read by then.
    """
    sock = socket.create_connection(("127.0.0.1", port))
    sock.settimeout(0.2)
    client_port = sock.getsockname()[1]
    answered = threading.Event()
    received = bytearray()
    state: dict[str, Any] = {"first_byte": None, "closed": None, "error": None}

    def receive() -> None:
        while True:
            try:
                chunk = sock.recv(65_536)
            except TimeoutError:
                if state["closed"] is not None:
                    return
                continue
            except OSError as exc:
                state["error"] = type(exc).__name__
                break
            if not chunk:
                break
            if state["first_byte"] is None:
                state["first_byte"] = time.perf_counter()
            received.extend(chunk)
            answered.set()
        state["closed"] = time.perf_counter()
        answered.set()

    reader = threading.Thread(target=receive, daemon=True)
    started = time.perf_counter()
    sock.sendall(head)
    reader.start()
    sent = 0
    read_estimate = 0
    sampled_at = 0.0
    send_error = None
    for piece in body:
        if answered.is_set() or time.perf_counter() - started > limit_s:
            break
        view = memoryview(piece)
        while view and not answered.is_set():
            try:
                count = sock.send(view)
            except TimeoutError:
                count = 0
            except OSError as exc:
                send_error = type(exc).__name__
                break
            sent += count
            view = view[count:]
            now = time.perf_counter()
            if now - sampled_at > 0.002:
                sampled_at = now
                client_tx, server_rx = _tcp_queues(client_port, port)
                if client_tx is not None and server_rx is not None:
                    read_estimate = max(read_estimate, sent + len(head) - client_tx - server_rx)
        if send_error is not None:
            break
    stopped = time.perf_counter()
    sent_before_answer = sent
    answered.wait(3.0)
    # The answer is there (or the connection ended): read the rest of it, briefly.
    deadline = time.perf_counter() + 1.0
    while state["closed"] is None and time.perf_counter() < deadline:
        time.sleep(0.01)
    ended = state["first_byte"] or state["closed"]
    with contextlib.suppress(OSError):
        sock.close()
    state["closed"] = state["closed"] or time.perf_counter()
    reader.join(1.0)
    result: dict[str, Any] = {
        "answered": state["first_byte"] is not None,
        "connection_ended_by_server": state["first_byte"] is None and ended is not None,
        "time_to_refusal_s": None if ended is None else round(ended - started, 4),
        "client_sent_body_bytes_before_answer": sent_before_answer,
        "server_read_body_bytes_estimate": max(0, read_estimate - len(head)),
        "client_stopped_sending_after_s": round(stopped - started, 4),
        "client_send_error": send_error,
        "client_recv_error": state["error"],
    }
    if received:
        result |= _parse_answer(bytes(received))
    return result


def _repeat(piece: bytes, total: int) -> Iterator[bytes]:
    remaining = total
    while remaining > 0:
        chunk = piece if remaining >= len(piece) else piece[:remaining]
        remaining -= len(chunk)
        yield chunk


def _chunked(pieces: Iterator[bytes]) -> Iterator[bytes]:
    for piece in pieces:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def _request_head(port: int, boundary: str, length: int | None) -> bytes:
    lines = [
        "POST /api/battles HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "User-Agent: arena-abuse",
        f"Content-Type: multipart/form-data; boundary={boundary}",
    ]
    lines.append("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _file_part_head(boundary: str, index: int) -> bytes:
    return (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="audio"; filename="q{index}.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()


def _judge_push(result: dict[str, Any], memory: dict[str, Any]) -> dict[str, Any]:
    status = result.get("status")
    refused = status is not None and 400 <= status < 500
    result["memory"] = memory
    result["targets"] = {
        "refused_with_4xx": _expect(refused, True),
        "time_to_refusal_s": _target(result["time_to_refusal_s"], REFUSAL_TARGET_S),
        "server_read_body_bytes": _target(
            result["server_read_body_bytes_estimate"], SERVER_READ_TARGET_BYTES, 0
        ),
        "rss_growth_mb": _target(memory["growth_mb"], RSS_TARGET_MB, 1),
    }
    return result


def scenario_upload_2gb(lab: Lab) -> dict[str, Any]:
    """A 2 GB upload, declared and chunked."""
    declared = 2 * 1024**3
    boundary = "abuse2gb"
    piece = bytes(256 * 1024)
    results: dict[str, Any] = {"declared_bytes": declared}
    with lab.server("upload_2gb") as serve:
        memory = Memory(serve)
        for variant in ("content_length", "chunked"):
            preamble = _file_part_head(boundary, 0)
            body = _repeat(piece, declared - len(preamble))

            def parts(first: bytes = preamble, rest: Iterator[bytes] = body) -> Iterator[bytes]:
                yield first
                yield from rest

            if variant == "content_length":
                head, stream = _request_head(serve.port, boundary, declared), parts()
            else:
                head, stream = _request_head(serve.port, boundary, None), _chunked(parts())
            memory.start()
            result = _push(serve.port, head, stream)
            time.sleep(0.3)
            results[variant] = _judge_push(result, memory.stop())
            _log(
                f"  upload_2gb/{variant}: {result.get('status')} after "
                f"{result['time_to_refusal_s']} s, sent "
                f"{result['client_sent_body_bytes_before_answer']:,} B, server read "
                f"~{result['server_read_body_bytes_estimate']:,} B"
            )
    return results


def scenario_many_parts(lab: Lab, parts: int) -> dict[str, Any]:
    """One multipart request of many file parts."""
    boundary = "abuseparts"
    results: dict[str, Any] = {"parts": parts}
    variants = (
        ("1mb_parts_content_length", MB, True),
        ("1mb_parts_chunked", MB, False),
        ("16kb_parts_under_body_limit", 16_000, True),
    )
    with lab.server("many_parts") as serve:
        memory = Memory(serve)
        for variant, part_bytes, with_length in variants:
            payload = bytes(part_bytes)
            closing = f"--{boundary}--\r\n".encode()
            heads = [_file_part_head(boundary, index) for index in range(parts)]
            length = sum(len(h) + part_bytes + 2 for h in heads) + len(closing)

            def body(
                heads: list[bytes] = heads, payload: bytes = payload, closing: bytes = closing
            ) -> Iterator[bytes]:
                for part_head in heads:
                    yield part_head + payload + b"\r\n"
                yield closing

            head = _request_head(serve.port, boundary, length if with_length else None)
            stream = body() if with_length else _chunked(body())
            memory.start()
            result = _push(serve.port, head, stream)
            time.sleep(0.3)
            result["body_bytes"] = length
            results[variant] = _judge_push(result, memory.stop())
            _log(
                f"  many_parts/{variant}: {result.get('status')} after "
                f"{result['time_to_refusal_s']} s ({result.get('message')})"
            )
    return results


# -- one hour of FLAC ---------------------------------------------------------------------------


def _flac_hour(path: Path, seconds: int = 3600, tone_s: int = 5) -> bytes:
    """``seconds`` of 16 kHz mono FLAC: a 440 Hz tone for ``tone_s`` s, then digital silence."""
    rate = 16_000
    with soundfile.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as out:
        t = np.arange(tone_s * rate, dtype=np.float32) / rate
        out.write((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
        silence = np.zeros(60 * rate, dtype=np.float32)
        left = (seconds - tone_s) * rate
        while left > 0:
            block = silence[: min(left, silence.shape[0])]
            out.write(block)
            left -= block.shape[0]
    return path.read_bytes()


def scenario_flac_one_hour(lab: Lab) -> dict[str, Any]:
    """An hour of audio in a small file: refused, fast, without decoding it all."""
    flac = _flac_hour(lab.workdir / "hour.flac")
    info = soundfile.info(io.BytesIO(flac))
    results: dict[str, Any] = {
        "file_bytes": len(flac),
        "duration_s": round(info.duration, 1),
        "sample_rate_hz": info.samplerate,
    }
    with lab.server("flac_one_hour") as serve:
        memory = Memory(serve)
        for variant, data in (
            ("header_says_one_hour", flac),
            ("header_length_unknown", flac_without_length(flac)),
        ):
            memory.start()
            with httpx.Client(base_url=serve.url, timeout=60, trust_env=False) as client:
                started = time.perf_counter()
                response = client.post(
                    "/api/battles", files={"audio": ("hour.flac", data, "audio/flac")}
                )
                elapsed = time.perf_counter() - started
            time.sleep(0.3)
            mem = memory.stop()
            try:
                message = response.json().get("message")
            except ValueError:
                message = response.text[:200]
            refused = 400 <= response.status_code < 500
            results[variant] = {
                "status": response.status_code,
                "message": message,
                "time_to_refusal_s": round(elapsed, 4),
                "memory": mem,
                "targets": {
                    "refused_with_4xx": _expect(refused, True),
                    "time_to_refusal_s": _target(elapsed, REFUSAL_TARGET_S),
                    "rss_growth_mb": _target(mem["growth_mb"], RSS_TARGET_MB, 1),
                },
            }
            _log(
                f"  flac_one_hour/{variant}: {response.status_code} after {elapsed:.3f} s, "
                f"RSS +{mem['growth_mb']} MB ({message})"
            )
    return results


# -- a battle as a participant ------------------------------------------------------------------


def _battle_sync(url: str, audio: bytes) -> dict[str, Any]:
    """One whole battle (upload, stream to end, vote) from a new browser; its times."""
    row: dict[str, Any] = {}
    started = time.perf_counter()
    try:
        with httpx.Client(base_url=url, timeout=30, trust_env=False) as client:
            created = client.post(
                "/api/battles", files={"audio": ("question.wav", audio, "audio/wav")}
            )
            row["upload_s"] = round(time.perf_counter() - started, 4)
            row["create_status"] = created.status_code
            if created.status_code != 201:
                row["error"] = created.text[:200]
                return row
            battle_id = created.json()["battle_id"]
            events = []
            with client.stream("GET", f"/api/battles/{battle_id}/stream") as response:
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        events.append(line.split(":", 1)[1].strip())
                        if events[-1] == "end":
                            break
            row["stream_s"] = round(time.perf_counter() - started, 4)
            voted = client.post(f"/api/battles/{battle_id}/vote", json={"winner": "tie"})
            row["vote_status"] = voted.status_code
            row["ok"] = events.count("done") == 2 and voted.status_code == 200
    except httpx.HTTPError as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
    row["total_s"] = round(time.perf_counter() - started, 4)
    row.setdefault("ok", False)
    return row


# -- slow connections ---------------------------------------------------------------------------


def _raise_fd_limit(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def scenario_slow_connections(lab: Lab) -> dict[str, Any]:
    """Many connections that never finish their request line."""
    count = lab.args.slow_sockets
    header_timeout = lab.args.header_timeout_s
    env = {"LAMARENA_HEADER_TIMEOUT_S": f"{header_timeout:g}"}
    check_at = header_timeout + 2.0
    with lab.server("slow_connections", env) as serve:
        memory = Memory(serve)
        baseline = _battle_sync(serve.url, lab.audio)
        memory.start()
        fds_before = sum(p.num_fds() for p in serve.group())
        sockets: dict[int, socket.socket] = {}
        closed_at: dict[int, float] = {}
        answers: Counter[str] = Counter()
        connect_errors: Counter[str] = Counter()
        poller = select.poll()
        started = time.perf_counter()
        for _ in range(count):
            try:
                sock = socket.create_connection(("127.0.0.1", serve.port), timeout=5)
                sock.setblocking(False)
                sock.send(b"GET /healthz?slow=")
            except OSError as exc:
                connect_errors[type(exc).__name__] += 1
                continue
            sockets[sock.fileno()] = sock
            poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        opened_in = time.perf_counter() - started
        _log(f"  slow_connections: {len(sockets)} open in {opened_in:.2f} s; trickling")

        def close(fd: int, why: str, *, by_server: bool = True) -> None:
            sock = sockets.pop(fd)
            poller.unregister(fd)
            if by_server:
                closed_at[fd] = time.perf_counter() - started
            answers[why] += 1
            sock.close()

        normal: dict[str, Any] = {}
        normal_thread = threading.Thread(
            target=lambda: normal.update(_battle_sync(serve.url, lab.audio)), daemon=True
        )
        open_over_time: list[tuple[float, int]] = []
        at_check: int | None = None
        fds_at_check = None
        next_byte = started + 1.0
        deadline = started + check_at + 30.0  # the normal battle may still be running
        while time.perf_counter() < deadline:
            for fd, _event in poller.poll(50):
                try:
                    data = sockets[fd].recv(4096)
                except OSError as exc:
                    close(fd, f"error {type(exc).__name__}")
                    continue
                if not data:
                    close(fd, "closed without an answer")
                else:
                    status = data.split(b"\r\n", 1)[0].decode("latin-1")
                    close(fd, f"answered {status}")
            now = time.perf_counter()
            if now >= next_byte:
                next_byte += 1.0
                for fd in list(sockets):
                    try:
                        sockets[fd].send(b"a")
                    except BlockingIOError:
                        pass
                    except OSError as exc:
                        close(fd, f"send error {type(exc).__name__}")
                open_over_time.append((round(now - started, 1), len(sockets)))
            if normal_thread.ident is None and now - started >= header_timeout - 1:
                normal_thread.start()  # while the slow connections are (still) open
            if at_check is None and now - started >= check_at:
                at_check = len(sockets)
                with contextlib.suppress(psutil.Error):
                    fds_at_check = sum(p.num_fds() for p in serve.group())
            if at_check is not None and normal_thread.ident and not normal_thread.is_alive():
                break
        normal_thread.join(30)
        mem = memory.stop()
        still_open = len(sockets)
        for fd in list(sockets):
            close(fd, "closed by the client at the end", by_server=False)
    closing_times = sorted(t for t in closed_at.values())
    result = {
        "server_env": env,
        "sockets": count,
        "connect_errors": dict(connect_errors),
        "opened_in_s": round(opened_in, 3),
        "checked_at_s": check_at,
        "open_at_check": at_check,
        "open_at_end": still_open,
        "ended_by_server": {k: v for k, v in answers.items() if "by the client" not in k},
        "closed_by_server_at_s": {
            "first": round(closing_times[0], 2),
            "median": round(statistics.median(closing_times), 2),
            "last": round(closing_times[-1], 2),
        }
        if closing_times
        else None,
        "open_over_time": open_over_time,
        "server_fds_before": fds_before,
        "server_fds_at_check": fds_at_check,
        "normal_battle_idle_server": baseline,
        "normal_battle_meanwhile": normal,
        "memory": mem,
        "targets": {
            "open_after_header_timeout_plus_2s": _target(at_check, 1, 0),
            "normal_battle_succeeds": _expect(bool(normal.get("ok")), True),
        },
    }
    _log(
        f"  slow_connections: {at_check} open at {check_at:g} s; normal battle ok="
        f"{normal.get('ok')} in {normal.get('total_s')} s (idle: {baseline.get('total_s')} s)"
    )
    return result


# -- flood without a cookie ---------------------------------------------------------------------


async def _flood(url: str, audio: bytes, duration_s: float, concurrency: int) -> dict[str, Any]:
    statuses: Counter[int] = Counter()
    retry_after: list[str | None] = []
    latencies: list[float] = []
    accepted_at: list[float] = []
    messages: dict[int, str] = {}
    errors: Counter[str] = Counter()
    started = time.perf_counter()
    deadline = started + duration_s

    async def loop() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30, trust_env=False) as client:
            while time.perf_counter() < deadline:
                client.cookies.clear()  # no cookie: every request a new session
                sent = time.perf_counter()
                try:
                    response = await client.post(
                        "/api/battles", files={"audio": ("q.wav", audio, "audio/wav")}
                    )
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    await asyncio.sleep(0.05)
                    continue
                latencies.append(time.perf_counter() - sent)
                statuses[response.status_code] += 1
                if response.status_code == 201:
                    accepted_at.append(time.perf_counter() - started)
                else:
                    if response.status_code not in messages:
                        try:
                            messages[response.status_code] = response.json().get("message")
                        except ValueError:
                            messages[response.status_code] = response.text[:200]
                    if response.status_code == 429:
                        retry_after.append(response.headers.get("retry-after"))

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return {
        "wall_s": round(wall, 2),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "accepted": statuses.get(201, 0),
        "refused_429": statuses.get(429, 0),
        "transport_errors": dict(errors),
        "messages": {str(k): v for k, v in messages.items()},
        "retry_after_values": sorted({v for v in retry_after if v is not None}, key=str)[:10],
        "all_429_carry_retry_after": all(v is not None for v in retry_after)
        if retry_after
        else None,
        "request_s": _spread(latencies),
        "accepted_per_s_by_10s": [
            sum(1 for t in accepted_at if lo <= t < lo + 10) / 10
            for lo in range(0, max(1, int(np.ceil(wall))), 10)
        ],
    }


def scenario_no_cookie_flood(lab: Lab) -> dict[str, Any]:
    """One address, no cookie, as many battles as the server takes."""
    duration = lab.args.duration_s
    limit = _settings().get("address_battles_per_minute") or DEFAULT_ADDRESS_BATTLES_PER_MINUTE
    with lab.server("no_cookie_flood") as serve:
        memory = Memory(serve)
        memory.start()
        result = asyncio.run(_flood(serve.url, lab.audio, duration, lab.args.flood_concurrency))
        result["memory"] = memory.stop()
    per_minute = result["accepted"] * 60 / duration
    # A limit per minute allows `limit` in any 60 s window: a shorter run may reach it in full.
    allowed = limit * int(np.ceil(duration / 60))
    result |= {
        "duration_s": duration,
        "concurrency": lab.args.flood_concurrency,
        "accepted_per_minute": round(per_minute, 1),
        "targets": {
            "accepted_in_run": _target(result["accepted"], allowed + 1, 0)
            | {"note": f"at most {limit} (address_battles_per_minute) in any minute"},
            "all_429_carry_retry_after": _expect(result["all_429_carry_retry_after"], True)
            if result["refused_429"]
            else {"value": None, "target": True, "ok": None, "note": "no 429 to look at"},
        },
    }
    _log(
        f"  no_cookie_flood: {result['accepted']} accepted ({per_minute:.0f}/min), "
        f"{result['refused_429']} x 429, statuses {result['statuses']}"
    )
    return result


# -- honest participants ------------------------------------------------------------------------


@dataclass
class Person:
    """What one honest participant did."""

    started: int = 0
    completed: int = 0
    create_429: int = 0
    vote_429: int = 0
    other_errors: list[str] = field(default_factory=list)
    create_s: list[float] = field(default_factory=list)
    both_done_s: list[float] = field(default_factory=list)
    retry_after_missing: int = 0


async def _wait_retry(response: httpx.Response, person: Person, deadline: float) -> None:
    value = response.headers.get("retry-after")
    if value is None:
        person.retry_after_missing += 1
    wait = float(value) if value and value.replace(".", "", 1).isdigit() else 10.0
    await asyncio.sleep(max(0.0, min(wait, deadline - time.perf_counter())))


async def _honest_person(
    url: str, audio: bytes, deadline: float, rng: random.Random, index: int
) -> Person:
    person = Person()
    async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:
        await asyncio.sleep(rng.uniform(0, SPEAK_S[1]))  # people arrive at different moments
        while time.perf_counter() < deadline:
            await asyncio.sleep(rng.uniform(*SPEAK_S))
            if time.perf_counter() >= deadline:
                break
            sent = time.perf_counter()
            created = await client.post(
                "/api/battles", files={"audio": ("question.wav", audio, "audio/wav")}
            )
            if created.status_code == 429:
                person.create_429 += 1
                await _wait_retry(created, person, deadline)
                continue
            if created.status_code != 201:
                person.other_errors.append(f"create {created.status_code}: {created.text[:120]}")
                continue
            person.started += 1
            person.create_s.append(time.perf_counter() - sent)
            battle_id = created.json()["battle_id"]
            done = 0
            async with client.stream("GET", f"/api/battles/{battle_id}/stream") as response:
                if response.status_code != 200:
                    await response.aread()
                    person.other_errors.append(
                        f"stream {response.status_code}: {response.text[:120]}"
                    )
                    continue
                async for line in response.aiter_lines():
                    if line.startswith("event:"):
                        name = line.split(":", 1)[1].strip()
                        done += name == "done"
                        if name == "end":
                            break
            person.both_done_s.append(time.perf_counter() - sent)
            if done != 2:
                person.other_errors.append(f"stream: {done} done")
                continue
            await asyncio.sleep(rng.uniform(*READ_S))
            while True:  # a refused vote is cast again after its Retry-After
                voted = await client.post(
                    f"/api/battles/{battle_id}/vote",
                    json={"winner": WINNERS[(index + person.started) % len(WINNERS)]},
                )
                if voted.status_code == 429 and time.perf_counter() < deadline:
                    person.vote_429 += 1
                    await _wait_retry(voted, person, deadline)
                    continue
                break
            if voted.status_code == 200:
                person.completed += 1
            else:
                person.other_errors.append(f"vote {voted.status_code}: {voted.text[:120]}")
    return person


async def _honest(url: str, audio: bytes, participants: int, duration_s: float) -> list[Person]:
    deadline = time.perf_counter() + duration_s
    rng = random.Random(0)
    return list(
        await asyncio.gather(
            *(
                _honest_person(url, audio, deadline, random.Random(rng.random()), index)
                for index in range(participants)
            )
        )
    )


def scenario_honest(lab: Lab) -> dict[str, Any]:
    """Honest participants behind one address, with default and with lab-sized address limits."""
    args = lab.args
    nat_limit = args.nat_per_minute or args.participants * SESSION_BATTLES_PER_MINUTE
    configs = {
        "defaults": {},
        "lab_behind_nat": {
            "LAMARENA_ADDRESS_BATTLES_PER_MINUTE": str(nat_limit),
            "LAMARENA_ADDRESS_VOTES_PER_MINUTE": str(nat_limit),
        },
    }
    cycle_s = sum(SPEAK_S) / 2 + sum(READ_S) / 2 + max(args.fast_s, args.slow_s)
    results: dict[str, Any] = {
        "participants": args.participants,
        "duration_s": args.duration_s,
        "pace": {
            "speak_s": SPEAK_S,
            "read_before_vote_s": READ_S,
            "expected_battles_per_minute_per_person": round(60 / cycle_s, 1),
            "expected_battles_per_minute_all": round(args.participants * 60 / cycle_s),
        },
    }
    for name, env in configs.items():
        with lab.server(f"honest_{name}", env) as serve:
            memory = Memory(serve)
            memory.start()
            people = asyncio.run(_honest(serve.url, lab.audio, args.participants, args.duration_s))
            mem = memory.stop()
        completed = [p.completed for p in people]
        refusals = sum(p.create_429 + p.vote_429 for p in people)
        errors = [e for p in people for e in p.other_errors]
        results[name] = {
            "server_env": env,
            "battles_started": sum(p.started for p in people),
            "battles_voted": sum(completed),
            "voted_per_minute": round(sum(completed) * 60 / args.duration_s, 1),
            "create_refused_429": sum(p.create_429 for p in people),
            "vote_refused_429": sum(p.vote_429 for p in people),
            "people_refused_at_least_once": sum(1 for p in people if p.create_429 + p.vote_429),
            "429_without_retry_after": sum(p.retry_after_missing for p in people),
            "other_errors": len(errors),
            "error_examples": errors[:3],
            "voted_per_person": {
                "min": min(completed),
                "median": statistics.median(completed),
                "max": max(completed),
            },
            "create_s": _spread([t for p in people for t in p.create_s]),
            "upload_to_both_done_s": _spread([t for p in people for t in p.both_done_s]),
            "memory": mem,
            "targets": {"refusals_429": _target(refusals, 1, 0)},
        }
        expected = results["pace"]["expected_battles_per_minute_all"]
        if name == "defaults" and expected > DEFAULT_ADDRESS_BATTLES_PER_MINUTE:
            # Not a target: more people at this pace than the default allows from one address.
            per_person = results["pace"]["expected_battles_per_minute_per_person"]
            results[name]["targets"] = {}
            results[name]["refusals_429_informational"] = {
                "value": refusals,
                "note": (
                    f"{args.participants} people at this pace want ~{expected} battles a minute "
                    f"from one address, over the default {DEFAULT_ADDRESS_BATTLES_PER_MINUTE}: "
                    f"about {int(DEFAULT_ADDRESS_BATTLES_PER_MINUTE // per_person)} fit under it; "
                    "a larger lab behind one NAT sets the limit (lab_behind_nat)"
                ),
            }
        _log(
            f"  honest/{name}: voted {sum(completed)} ({results[name]['voted_per_minute']}/min), "
            f"429s {refusals}, other errors {len(errors)}"
        )
    return results


# -- main ---------------------------------------------------------------------------------------


def _failed_targets(document: Any, path: str = "") -> list[str]:
    failed = []
    if isinstance(document, dict):
        if "ok" in document and ("target_max" in document or "target" in document):
            return [path] if document["ok"] is False else []
        for key, value in document.items():
            failed += _failed_targets(value, f"{path}.{key}" if path else key)
    return failed


LIMIT_SETTINGS = (
    "address_battles_per_minute",
    "address_votes_per_minute",
    "address_refusals_per_minute",
    "global_battles_per_minute",
    "streams_per_session",
    "header_timeout_s",
    "body_timeout_s",
)
"""The settings that decide these scenarios (those the code under test has)."""


def _settings() -> dict[str, Any]:
    """The limit settings a server started from this environment gets (before per-scenario env)."""
    from lamarena.settings import load_settings

    settings = load_settings()
    return {name: getattr(settings, name) for name in LIMIT_SETTINGS if hasattr(settings, name)}


def _code_under_test() -> dict[str, Any]:
    import lamarena

    root = Path(__file__).resolve().parents[1]
    info: dict[str, Any] = {"lamarena_package": str(Path(lamarena.__file__).parent)}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        info["git_head"] = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        info["src_has_uncommitted_changes"] = bool(dirty.strip())
    return info


SCENARIOS = (
    "upload_2gb",
    "flac_one_hour",
    "many_parts",
    "slow_connections",
    "no_cookie_flood",
    "honest",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="timed scenarios run 10 s")
    parser.add_argument("--duration-s", type=float, default=None, help="flood and honest runs")
    parser.add_argument("--slow-sockets", type=int, default=600)
    parser.add_argument("--header-timeout-s", type=float, default=2.0)
    parser.add_argument("--flood-concurrency", type=int, default=4)
    parser.add_argument("--participants", type=int, default=20)
    parser.add_argument(
        "--nat-per-minute", type=int, default=None, help="lab_behind_nat address limits"
    )
    parser.add_argument("--parts", type=int, default=400)
    parser.add_argument("--fast-s", type=float, default=0.5)
    parser.add_argument("--slow-s", type=float, default=0.8)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    args = parser.parse_args()
    if args.duration_s is None:
        args.duration_s = 10.0 if args.quick else 60.0
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        raise SystemExit(f"unknown scenarios {unknown}; choose from {list(SCENARIOS)}")
    fd_limit = _raise_fd_limit(2 * args.slow_sockets + 256)

    latencies = {"fast": args.fast_s, "slow": args.slow_s}
    document: dict[str, Any] = {
        "benchmark": "arena_abuse",
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "open_files_limit": fd_limit,
        },
        "code": _code_under_test(),
        "config": {
            "quick": args.quick,
            "duration_s": args.duration_s,
            "model_latency_s": latencies,
            "server": "lamarena serve, 1 worker, SQLite, a fresh server per scenario",
            "server_settings_from_environment": _settings(),
        },
    }
    began = time.perf_counter()
    starts: list[float] = []
    with tempfile.TemporaryDirectory(prefix="arena-abuse-") as tmp:
        workdir = Path(tmp)
        audio = speak(QUESTION, workdir / "question.wav").read_bytes()
        document["config"]["audio_bytes"] = len(audio)
        models = Models(latencies)
        try:
            lab = Lab(
                args=args,
                workdir=workdir,
                config=write_models_yaml(workdir / "models.yaml", models.urls, timeout_s=60),
                audio=audio,
                starts=starts,
            )
            runners = {
                "upload_2gb": lambda: scenario_upload_2gb(lab),
                "flac_one_hour": lambda: scenario_flac_one_hour(lab),
                "many_parts": lambda: scenario_many_parts(lab, args.parts),
                "slow_connections": lambda: scenario_slow_connections(lab),
                "no_cookie_flood": lambda: scenario_no_cookie_flood(lab),
                "honest": lambda: scenario_honest(lab),
            }
            for name in chosen:
                _log(f"{name}:")
                scenario_started = time.perf_counter()
                try:
                    document[name] = runners[name]()
                except Exception as exc:  # one broken scenario must not hide the others
                    _log(f"  {name} failed: {type(exc).__name__}: {exc}")
                    document[name] = {"error": f"{type(exc).__name__}: {exc}"}
                document[name]["scenario_wall_s"] = round(time.perf_counter() - scenario_started, 1)
        finally:
            models.stop()
    document["server_start_s"] = _spread(starts)
    document["wall_s"] = round(time.perf_counter() - began, 1)
    document["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    failed = _failed_targets({name: document.get(name) for name in chosen})
    failed += [f"{name} (error)" for name in chosen if "error" in document.get(name, {})]
    document["targets_failed"] = failed
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
