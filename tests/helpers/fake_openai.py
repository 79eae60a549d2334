"""A small OpenAI-compatible server for adapter tests, scriptable from the test.

It serves ``POST /v1/chat/completions`` (server-sent events: ``data: {chunk}`` lines, then
``data: [DONE]``) and ``POST /v1/audio/transcriptions`` (multipart upload, JSON ``{"text"}``).
Every request is recorded (JSON body, or form fields and the uploaded file) so a test can look
at what the adapter sent. A test scripts failures on the shared :class:`FakeOpenAI` object while
the server runs in another thread:

- ``fail_next(500, times=2)`` answers the next two requests with HTTP 500 (then normally);
- ``stall_s = 5`` waits that long before answering (until the client gives up or the server
  stops), to exercise the client's read timeout;
- ``hold_after_first()`` sends the first delta and then waits for the returned gate, which proves
  the client sees deltas as they arrive rather than when the reply ends;
- ``first_token_delay_s`` / ``delta_delay_s`` add latency (the concurrency benchmark uses them);
- a request with ``"audio"`` in ``modalities`` (or any request, with ``audio_transcript =
  True``) gets a spoken reply in the shape OpenAI streams it (openai SDK 3.63
  ``ChoiceDeltaAudio``): per delta, a chunk ``delta.audio = {"id", "transcript"}`` and a chunk
  ``delta.audio = {"id", "data"}`` (``speech_pcm``: real PCM16 at 24 kHz, base64), then a last
  audio update with only ``expires_at``, then the ``finish_reason`` chunk;
- ``finish_reason = "length"`` ends the reply as one cut by ``max_tokens`` (default ``"stop"``;
  None sends the last chunk with ``"finish_reason": null``, as a server that never says);
- ``truncate_after = N`` ends the body cleanly after its first N events, without the rest (the
  ``finish_reason`` chunk, the usage chunk, ``[DONE]``), as a proxy or a dying server may;
- ``reset_after = N`` kills the response after its first N events: the server closes the
  connection in the middle of the chunked body, as a crashed server does.
- ``extra_choices`` (a list of ``choices`` entries) sends one chunk per entry after the deltas:
  shapes real servers send that carry no text of the first choice (another choice's text with
  ``n`` > 1, ``"content": null``, an empty delta);
- ``error_after = N`` sends, after the first N deltas, the error event OpenAI-compatible
  servers send when generation fails mid-stream (``data: {"error": {"message", "type",
  "code"}}``, the shape the openai SDK's ``AsyncStream`` raises ``APIError`` for) and ends.

The events of a reply, counted by ``truncate_after`` and ``reset_after``: the role chunk, one
chunk per delta, the ``finish_reason`` chunk, the usage chunk (when asked for), ``[DONE]``.

``POST /v1/audio/speech`` (JSON ``{model, input, voice, response_format}``) answers
``speech_pcm`` as raw PCM16 24 kHz for ``response_format: pcm`` or as a WAV file for ``wav``.

Token usage works as OpenAI's: a request with ``stream_options.include_usage`` gets ``"usage":
null`` on every chunk and then, before ``[DONE]``, a chunk with empty ``choices`` and the usage:
``prompt_tokens`` (default 17) and the words of the reply as ``completion_tokens``; ``usage_for``
(the request body -> ``(prompt, completion)``) scripts other counts. ``send_usage = False`` plays
a server that ignores ``stream_options``; ``reject_stream_options = True`` one that answers a
request carrying it with HTTP 400. ``audio_usage = (prompt_audio, completion_audio)`` adds
OpenAI's split by modality: ``prompt_tokens_details.audio_tokens`` and
``completion_tokens_details.audio_tokens`` (part of the totals).

Audio parts (``accept_audio_part``; None, the default, reads any): a strict fake reads only one
shape of audio part and refuses a request whose list content has no audio part of that shape,
as the real servers do:

- ``"input_audio"``: ``{"type": "input_audio", "input_audio": {"data", "format"}}`` (OpenAI; a
  400 ``invalid_request_error`` otherwise);
- ``"audio_url"``: ``{"type": "audio_url", "audio_url": {"url": "data:audio/...;base64,..."}}``
  (vLLM; a 400 otherwise);
- ``"talk-arena"``: ``{"type": "audio", "audio_url": "data:audio/wav;base64,..."}`` (the study's
  audiolm-inference-server, SALT-NLP's and scb-10x's ``handler/huggingface_handler.py``: it
  collects the parts of type ``audio``, takes the first, and fails with a plain-text HTTP 500
  when there is none or its ``audio_url`` is not a string).

The audio each request carried is kept, decoded, in ``RecordedRequest.audio``.
:meth:`FakeOpenAI.talk_arena` makes a fake that also streams as those servers do: no role chunk,
``"usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}`` on every chunk
whether asked or not, the finish reason on a last chunk with empty content, and no ``[DONE]``;
like their Hugging Face handler it ignores the prompt (its reply never depends on it anyway).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import math
import struct
import threading
import time
import wave
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from helpers.servers import ServerThread

__all__ = [
    "AUDIO_PARTS",
    "DEFAULT_DELTAS",
    "DEFAULT_PROMPT_TOKENS",
    "SPEECH_RATE_HZ",
    "STREAM_OPTIONS_REJECTED",
    "Failure",
    "FakeOpenAI",
    "FakeOpenAIServer",
    "RecordedRequest",
    "ScriptedReset",
    "sine_pcm16",
]

DEFAULT_DELTAS = ("The capital", " of France", " is Paris.")
DEFAULT_PROMPT_TOKENS = 17
"""The ``prompt_tokens`` the fake reports unless scripted otherwise."""

SPEECH_RATE_HZ = 24_000
"""The rate of OpenAI's ``pcm16`` / ``pcm`` audio."""


def sine_pcm16(
    seconds: float, *, frequency_hz: float = 220.0, rate_hz: int = SPEECH_RATE_HZ
) -> bytes:
    """A tone as signed 16-bit little-endian mono PCM."""
    n = round(seconds * rate_hz)
    samples = (round(12000 * math.sin(2 * math.pi * frequency_hz * i / rate_hz)) for i in range(n))
    return struct.pack(f"<{n}h", *samples)


STREAM_OPTIONS_REJECTED = "Unrecognized request argument supplied: stream_options"

AudioPartShape = Literal["input_audio", "audio_url", "talk-arena"]
AUDIO_PARTS: tuple[AudioPartShape, ...] = ("input_audio", "audio_url", "talk-arena")
"""The shapes of audio part a strict fake can insist on."""

_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


class ScriptedReset(Exception):
    """Raised inside a streaming reply (``reset_after``): uvicorn then drops the connection."""


@dataclass(frozen=True)
class Failure:
    """One scripted error answer."""

    status: int
    message: str
    retry_after_s: float | None = None
    code: str | None = None


@dataclass
class RecordedRequest:
    """What the server received, in arrival order."""

    path: str
    headers: dict[str, str]
    json: dict[str, Any] | None = None
    form: dict[str, str] = field(default_factory=dict)
    file: bytes | None = None
    file_name: str | None = None
    file_type: str | None = None
    audio: list[bytes] = field(default_factory=list)
    received_at: float = field(default_factory=time.perf_counter)


class _Refused(Exception):
    """A request a strict fake does not read: answered with ``status`` and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _data_url(value: object) -> bytes:
    """The bytes of a ``data:...;base64,...`` URL (or bare base64, as the study's servers read)."""
    if not isinstance(value, str):
        raise _Refused(500, "'dict' object has no attribute 'startswith'")
    encoded = value.split(";base64,")[-1]
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _Refused(400, "the audio is not base64") from None


def _read_audio(body: dict[str, Any], shape: AudioPartShape | None) -> list[bytes]:
    """The audio of every part of ``shape`` (any shape when None), as a strict server reads it.

    Raises:
        _Refused: a list content without an audio part of ``shape`` (400 for OpenAI and vLLM,
            500 for the study's servers, whose handler indexes the first audio part).
    """
    found: list[bytes] = []
    listed = False
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        listed = True
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                continue
            if kind == "input_audio" and shape in (None, "input_audio"):
                found.append(_data_url(part["input_audio"]["data"]))
            elif kind == "audio_url" and shape in (None, "audio_url"):
                found.append(_data_url(part["audio_url"]["url"]))
            elif kind == "audio" and shape in (None, "talk-arena"):
                found.append(_data_url(part.get("audio_url")))
            elif shape in (None, "talk-arena"):
                continue  # the study's servers skip every part not of type "audio"
            else:
                raise _Refused(400, f"Invalid content part type: '{kind}'")
    if listed and not found and shape is not None:
        if shape == "talk-arena":
            raise _Refused(500, "list index out of range")
        raise _Refused(400, f"no {shape} part in the request")
    return found


def _parse_multipart(content_type: str, body: bytes) -> EmailMessage:
    """A multipart/form-data body as an email message (no python-multipart needed)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    return BytesParser(policy=HTTP).parsebytes(head + body)


class FakeOpenAI:
    """The script and the record of an OpenAI-compatible fake; ``app`` is its ASGI app."""

    def __init__(
        self,
        *,
        deltas: tuple[str, ...] = DEFAULT_DELTAS,
        transcript: str = "What is the capital of France?",
        first_token_delay_s: float = 0.0,
        delta_delay_s: float = 0.0,
    ) -> None:
        self.deltas = deltas
        self.transcript = transcript
        self.first_token_delay_s = first_token_delay_s
        self.delta_delay_s = delta_delay_s
        self.audio_transcript = False
        self.speech_pcm = sine_pcm16(0.25)
        self.audio_expires_at = 1_900_000_000
        self.prompt_tokens = DEFAULT_PROMPT_TOKENS
        self.usage_for: Callable[[dict[str, Any]], tuple[int, int]] | None = None
        self.send_usage = True
        self.audio_usage: tuple[int, int] | None = None
        self.accept_audio_part: AudioPartShape | None = None
        self.talk_arena_stream = False
        self.reject_stream_options = False
        self.finish_reason: str | None = "stop"
        self.truncate_after: int | None = None
        self.reset_after: int | None = None
        self.extra_choices: list[dict[str, Any]] = []
        self.error_after: int | None = None
        self.stall_s = 0.0
        self.gate_timeout_s = 5.0
        self.gate_timed_out: bool | None = None
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._gate: threading.Event | None = None
        self._failures: deque[Failure] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.app = self._build_app()

    @classmethod
    def talk_arena(cls, **options: Any) -> FakeOpenAI:
        """A fake of the study's audiolm-inference-server (see the module docstring)."""
        fake = cls(**options)
        fake.accept_audio_part = "talk-arena"
        fake.talk_arena_stream = True
        return fake

    # -- scripting -------------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        message: str | None = None,
        *,
        times: int = 1,
        retry_after_s: float | None = None,
        code: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests with HTTP ``status`` and an OpenAI error body.

        ``code`` overrides the error's ``code`` field (e.g. ``insufficient_quota`` on a 429).
        """
        text = message or f"scripted failure {status}"
        with self._lock:
            self._failures.extend(Failure(status, text, retry_after_s, code) for _ in range(times))

    def hold_after_first(self) -> threading.Event:
        """Make the next streams wait after their first delta until the returned event is set."""
        self._gate = threading.Event()
        self.gate_timed_out = None
        return self._gate

    def serve(self) -> FakeOpenAIServer:
        """A server for this fake (use it as a context manager)."""
        return FakeOpenAIServer(self)

    # -- what was received -----------------------------------------------------------------

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The chat completion requests received so far."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def speech_requests(self) -> list[RecordedRequest]:
        """The ``/audio/speech`` requests received so far."""
        return [r for r in self.requests if r.path.endswith("/audio/speech")]

    @property
    def transcription_requests(self) -> list[RecordedRequest]:
        """The transcription requests received so far."""
        return [r for r in self.requests if r.path.endswith("/audio/transcriptions")]

    # -- the app ---------------------------------------------------------------------------

    def _next_failure(self) -> Failure | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    async def _stall(self, request: Request) -> None:
        deadline = time.monotonic() + self.stall_s
        while time.monotonic() < deadline and not self._stopping.is_set():
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.02)

    @staticmethod
    def _error_response(failure: Failure) -> Response:
        kind, code = _ERROR_TYPES.get(failure.status, ("server_error", None))
        if failure.code is not None:
            code = failure.code
        headers = {}
        if failure.retry_after_s is not None:
            headers["retry-after"] = f"{failure.retry_after_s:g}"
        body = {"error": {"message": failure.message, "type": kind, "param": None, "code": code}}
        return JSONResponse(body, status_code=failure.status, headers=headers)

    def _chunk(
        self,
        model: str,
        delta: dict[str, Any],
        finish: str | None = None,
        *,
        usage_field: bool = False,
    ) -> bytes:
        chunk: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage_field:
            chunk["usage"] = None  # as OpenAI sends it on every chunk but the last
        return f"data: {json.dumps(chunk)}\n\n".encode()

    def _usage_chunk(self, model: str, prompt_tokens: int, completion_tokens: int) -> bytes:
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if self.audio_usage is not None:
            prompt_audio, completion_audio = self.audio_usage
            usage["prompt_tokens_details"] = {"audio_tokens": prompt_audio, "cached_tokens": 0}
            usage["completion_tokens_details"] = {
                "audio_tokens": completion_audio,
                "reasoning_tokens": 0,
            }
        chunk = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [],
            "usage": usage,
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    async def _talk_arena_events(self, model: str) -> AsyncIterator[bytes]:
        """The stream of audiolm-inference-server's ``generate_stream`` (zero usage, no [DONE])."""
        zero = {"prompt_tokens": 0, "total_tokens": 0, "completion_tokens": 0}

        def chunk(content: str, finish: str | None, *, last: bool = False) -> bytes:
            choice: dict[str, Any] = {"index": 0, "delta": {"content": content}}
            if not last:
                choice.update(logprobs=None, finish_reason=finish)
            elif finish is not None:  # the last chunk is dumped with exclude_none
                choice["finish_reason"] = finish
            payload = {
                "id": "fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [choice],
                "usage": zero,
            }
            return f"data: {json.dumps(payload)}\n\n".encode()

        for index, text in enumerate(self.deltas):
            if index and self.delta_delay_s:
                await asyncio.sleep(self.delta_delay_s)
            yield chunk(text, None)
        yield chunk("", self.finish_reason)  # the generator's last text repeats: delta ""
        yield chunk("", self.finish_reason, last=True)

    def _usage(self, body: dict[str, Any]) -> tuple[int, int] | None:
        """The (prompt, completion) tokens to report for ``body``, or None for no usage chunk."""
        options = body.get("stream_options") or {}
        if not (self.send_usage and options.get("include_usage")):
            return None
        if self.usage_for is not None:
            return self.usage_for(body)
        return self.prompt_tokens, len("".join(self.deltas).split())

    def _text_deltas(self, text: str, spoken: bool) -> list[dict[str, Any]]:
        if not spoken:
            return [{"content": text}]
        pcm = base64.b64encode(self.speech_pcm).decode()
        return [
            {"audio": {"id": "audio_fake", "transcript": text}},
            {"audio": {"id": "audio_fake", "data": pcm}},
        ]

    async def _wait_gate(self, gate: threading.Event) -> None:
        deadline = time.monotonic() + self.gate_timeout_s
        while not gate.is_set():
            if time.monotonic() > deadline or self._stopping.is_set():
                self.gate_timed_out = True
                return
            await asyncio.sleep(0.002)
        self.gate_timed_out = False

    async def _chat_stream(
        self, model: str, usage: tuple[int, int] | None, usage_field: bool, spoken: bool
    ) -> AsyncIterator[bytes]:
        truncate_after, reset_after = self.truncate_after, self.reset_after
        sent = 0
        try:
            async for event in self._chat_events(model, usage, usage_field, spoken):
                if truncate_after is not None and sent >= truncate_after:
                    return
                if reset_after is not None and sent >= reset_after:
                    raise ScriptedReset(f"connection dropped after {sent} events")
                yield event
                sent += 1
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _chat_events(
        self, model: str, usage: tuple[int, int] | None, usage_field: bool, spoken: bool
    ) -> AsyncIterator[bytes]:
        if self.talk_arena_stream:
            async for event in self._talk_arena_events(model):
                yield event
            return
        gate = self._gate
        yield self._chunk(model, {"role": "assistant", "content": ""}, usage_field=usage_field)
        if self.first_token_delay_s:
            await asyncio.sleep(self.first_token_delay_s)
        for index, text in enumerate(self.deltas):
            if index and self.delta_delay_s:
                await asyncio.sleep(self.delta_delay_s)
            if self.error_after is not None and index >= self.error_after:
                error = {"message": "the engine ran out of memory", "type": "server_error"}
                yield f"data: {json.dumps({'error': {**error, 'code': 500}})}\n\n".encode()
                return
            for delta in self._text_deltas(text, spoken):
                yield self._chunk(model, delta, usage_field=usage_field)
            if index == 0 and gate is not None:
                await self._wait_gate(gate)
        for choice in self.extra_choices:
            chunk = json.loads(self._chunk(model, {}).decode().removeprefix("data: "))
            chunk["choices"] = [choice]
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        if spoken:  # the last audio update carries only its expiry
            expiry = {"audio": {"expires_at": self.audio_expires_at}}
            yield self._chunk(model, expiry, usage_field=usage_field)
        yield self._chunk(model, {}, finish=self.finish_reason, usage_field=usage_field)
        if usage is not None:
            yield self._usage_chunk(model, *usage)
        yield b"data: [DONE]\n\n"

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            body = await request.json()
            recorded = RecordedRequest(request.url.path, dict(request.headers), json=body)
            self._record(recorded)
            try:
                recorded.audio = _read_audio(body, self.accept_audio_part)
            except _Refused as refused:
                if refused.status == 500:  # an unhandled exception in FastAPI: plain text
                    return Response("Internal Server Error", status_code=500)
                return self._error_response(Failure(refused.status, refused.message))
            failure = self._next_failure()
            if failure is None and self.reject_stream_options and "stream_options" in body:
                failure = Failure(400, STREAM_OPTIONS_REJECTED)
            if failure is not None:
                return self._error_response(failure)
            if self.stall_s:
                await self._stall(request)
            usage = None if self.talk_arena_stream else self._usage(body)
            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            spoken = self.audio_transcript or "audio" in (body.get("modalities") or [])
            return StreamingResponse(
                self._chat_stream(str(body.get("model", "")), usage, usage is not None, spoken),
                media_type="text/event-stream",
            )

        @app.post("/v1/audio/speech")
        async def speech(request: Request) -> Response:
            body = await request.json()
            self._record(RecordedRequest(request.url.path, dict(request.headers), json=body))
            failure = self._next_failure()
            if failure is not None:
                return self._error_response(failure)
            if body.get("response_format") == "wav":
                buffer = io.BytesIO()
                with wave.open(buffer, "wb") as writer:
                    writer.setnchannels(1)
                    writer.setsampwidth(2)
                    writer.setframerate(SPEECH_RATE_HZ)
                    writer.writeframes(self.speech_pcm)
                return Response(buffer.getvalue(), media_type="audio/wav")
            return Response(self.speech_pcm, media_type="audio/pcm")

        @app.post("/v1/audio/transcriptions")
        async def transcriptions(request: Request) -> Response:
            message = _parse_multipart(request.headers["content-type"], await request.body())
            recorded = RecordedRequest(request.url.path, dict(request.headers))
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                assert isinstance(payload, bytes)
                if part.get_filename() is not None:
                    recorded.file = payload
                    recorded.file_name = part.get_filename()
                    recorded.file_type = part.get_content_type()
                else:
                    recorded.form[str(name)] = payload.decode()
            self._record(recorded)
            failure = self._next_failure()
            if failure is not None:
                return self._error_response(failure)
            if self.stall_s:
                await self._stall(request)
            return JSONResponse({"text": self.transcript})

        return app


class FakeOpenAIServer(ServerThread):
    """A ServerThread that also releases the fake's stalls and gates when it stops."""

    def __init__(self, fake: FakeOpenAI) -> None:
        super().__init__(fake.app)
        self._fake = fake

    @property
    def base_url(self) -> str:
        """The OpenAI base URL of this server (``.../v1``)."""
        return f"{self.url}/v1"

    def stop(self) -> None:
        self._fake._stopping.set()
        super().stop()
