"""A small Gemini API server for adapter tests, scriptable from the test.

It serves ``POST /{version}/models/{model}:streamGenerateContent?alt=sse``, the call behind
google-genai's ``generate_content_stream``: server-sent events whose ``data:`` is a
``GenerateContentResponse`` (``candidates[0].content.parts[].text``), the last one with
``finishReason: STOP``. Errors use Google's shape, ``{"error": {"code", "message", "status"}}``.
Every request body is recorded, and so is the peak number of replies in flight. The script
works as in :mod:`helpers.fake_openai`: ``fail_next``, ``stall_s``, ``hold_after_first``,
``first_token_delay_s``, ``delta_delay_s``, ``truncate_after`` and ``reset_after`` (counting one
event per delta: ``truncate_after = 2`` ends the body cleanly after two deltas and no
``finishReason``, ``reset_after = 2`` drops the connection there), plus ``finish_reason`` (of the
last chunk: default ``STOP``, ``MAX_TOKENS`` for a reply cut short, None for none at all) and
``block_reason`` (a blocked prompt).

Every chunk carries ``usageMetadata`` as Gemini's do, counts so far: ``promptTokenCount``
(``prompt_tokens``, default 12), ``candidatesTokenCount`` (the words of the reply so far),
``thoughtsTokenCount`` when ``thoughts_tokens`` is set, and their ``totalTokenCount``;
``send_usage = False`` leaves it out. ``prompt_details`` and ``candidates_details`` (lists of
``{"modality": "AUDIO", "tokenCount": 800}``) add Gemini's per-modality breakdowns,
``promptTokensDetails`` and ``candidatesTokensDetails``.

With ``deltas = ()`` the reply is one chunk whose candidate has no content, only the
``finishReason`` (as Gemini streams a reply its filters blocked, or one whose ``max_tokens`` was
spent thinking).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from helpers.servers import ServerThread

__all__ = [
    "DEFAULT_DELTAS",
    "DEFAULT_PROMPT_TOKENS",
    "FakeGemini",
    "FakeGeminiServer",
    "GeminiFailure",
    "GeminiRequest",
    "ScriptedReset",
]

DEFAULT_DELTAS = ("Paris is", " the capital", " of France.")
DEFAULT_PROMPT_TOKENS = 12

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class ScriptedReset(Exception):
    """Raised inside a streaming reply (``reset_after``): uvicorn then drops the connection."""


@dataclass(frozen=True)
class GeminiFailure:
    """One scripted error answer; ``reason`` goes in ``details`` (e.g. ``API_KEY_INVALID``)."""

    status: int
    message: str
    reason: str | None = None


@dataclass
class GeminiRequest:
    """One request as received."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: dict[str, Any]
    model: str
    received_at: float = field(default_factory=time.perf_counter)


class FakeGemini:
    """The script and the record of a Gemini fake; ``app`` is its ASGI app."""

    def __init__(
        self,
        *,
        deltas: tuple[str, ...] = DEFAULT_DELTAS,
        first_token_delay_s: float = 0.0,
        delta_delay_s: float = 0.0,
    ) -> None:
        self.deltas = deltas
        self.first_token_delay_s = first_token_delay_s
        self.delta_delay_s = delta_delay_s
        self.block_reason: str | None = None
        self.finish_reason: str | None = "STOP"
        self.truncate_after: int | None = None
        self.reset_after: int | None = None
        self.prompt_tokens = DEFAULT_PROMPT_TOKENS
        self.thoughts_tokens: int | None = None
        self.prompt_details: list[dict[str, Any]] | None = None
        self.candidates_details: list[dict[str, Any]] | None = None
        self.send_usage = True
        self.stall_s = 0.0
        self.gate_timeout_s = 5.0
        self.gate_timed_out: bool | None = None
        self.requests: list[GeminiRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._gate: threading.Event | None = None
        self._failures: deque[GeminiFailure] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.app = self._build_app()

    def fail_next(
        self, status: int, message: str | None = None, *, times: int = 1, reason: str | None = None
    ) -> None:
        """Answer the next ``times`` requests with HTTP ``status`` and a Google error body."""
        text = message or f"scripted failure {status}"
        with self._lock:
            self._failures.extend(GeminiFailure(status, text, reason) for _ in range(times))

    def hold_after_first(self) -> threading.Event:
        """Make the next streams wait after their first delta until the returned event is set."""
        self._gate = threading.Event()
        self.gate_timed_out = None
        return self._gate

    def serve(self) -> FakeGeminiServer:
        """A server for this fake (use it as a context manager)."""
        return FakeGeminiServer(self)

    def _next_failure(self) -> GeminiFailure | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    @staticmethod
    def _error_response(failure: GeminiFailure) -> Response:
        error: dict[str, Any] = {
            "code": failure.status,
            "message": failure.message,
            "status": _STATUS_NAMES.get(failure.status, "UNKNOWN"),
        }
        if failure.reason is not None:
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": failure.reason,
                    "domain": "googleapis.com",
                }
            ]
        return JSONResponse({"error": error}, status_code=failure.status)

    async def _stall(self, request: Request) -> None:
        deadline = time.monotonic() + self.stall_s
        while time.monotonic() < deadline and not self._stopping.is_set():
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.02)

    async def _wait_gate(self, gate: threading.Event) -> None:
        deadline = time.monotonic() + self.gate_timeout_s
        while not gate.is_set():
            if time.monotonic() > deadline or self._stopping.is_set():
                self.gate_timed_out = True
                return
            await asyncio.sleep(0.002)
        self.gate_timed_out = False

    @staticmethod
    def _event(payload: dict[str, Any]) -> bytes:
        return f"data: {json.dumps(payload)}\r\n\r\n".encode()

    async def _stream(self, model: str) -> AsyncIterator[bytes]:
        truncate_after, reset_after = self.truncate_after, self.reset_after
        sent = 0
        try:
            async for event in self._events(model):
                if truncate_after is not None and sent >= truncate_after:
                    return
                if reset_after is not None and sent >= reset_after:
                    raise ScriptedReset(f"connection dropped after {sent} events")
                yield event
                sent += 1
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _events(self, model: str) -> AsyncIterator[bytes]:
        gate = self._gate
        if self.block_reason is not None:
            yield self._event({"promptFeedback": {"blockReason": self.block_reason}})
            return
        if self.first_token_delay_s:
            await asyncio.sleep(self.first_token_delay_s)
        if not self.deltas:  # no text at all: only the reason the reply ended
            empty: dict[str, Any] = {"candidates": [{"index": 0}], "modelVersion": model}
            if self.finish_reason is not None:
                empty["candidates"][0]["finishReason"] = self.finish_reason
            if self.send_usage:
                empty["usageMetadata"] = self._usage_metadata(0)
            yield self._event(empty)
            return
        last = len(self.deltas) - 1
        words = 0
        for index, text in enumerate(self.deltas):
            if index and self.delta_delay_s:
                await asyncio.sleep(self.delta_delay_s)
            candidate: dict[str, Any] = {
                "content": {"parts": [{"text": text}], "role": "model"},
                "index": 0,
            }
            if index == last and self.finish_reason is not None:
                candidate["finishReason"] = self.finish_reason
            words += len(text.split())
            payload: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
            if self.send_usage:
                payload["usageMetadata"] = self._usage_metadata(words)
            yield self._event(payload)
            if index == 0 and gate is not None:
                await self._wait_gate(gate)

    def _usage_metadata(self, candidates_tokens: int) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "promptTokenCount": self.prompt_tokens,
            "candidatesTokenCount": candidates_tokens,
        }
        thoughts = self.thoughts_tokens or 0
        if self.thoughts_tokens is not None:
            usage["thoughtsTokenCount"] = self.thoughts_tokens
        usage["totalTokenCount"] = self.prompt_tokens + candidates_tokens + thoughts
        if self.prompt_details is not None:
            usage["promptTokensDetails"] = self.prompt_details
        if self.candidates_details is not None:
            usage["candidatesTokensDetails"] = self.candidates_details
        return usage

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{version}/models/{model}:streamGenerateContent")
        async def stream_generate(version: str, model: str, request: Request) -> Response:
            recorded = GeminiRequest(
                path=request.url.path,
                query=dict(request.query_params),
                headers=dict(request.headers),
                json=await request.json(),
                model=model,
            )
            with self._lock:
                self.requests.append(recorded)
            failure = self._next_failure()
            if failure is not None:
                return self._error_response(failure)
            if self.stall_s:
                await self._stall(request)
            with self._lock:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return StreamingResponse(self._stream(model), media_type="text/event-stream")

        return app


class FakeGeminiServer(ServerThread):
    """A ServerThread that also releases the fake's stalls and gates when it stops."""

    def __init__(self, fake: FakeGemini) -> None:
        super().__init__(fake.app)
        self._fake = fake

    @property
    def base_url(self) -> str:
        """The base URL to give google-genai (the API version is added by the SDK)."""
        return self.url

    def stop(self) -> None:
        """Release stalled and gated requests, then stop the server."""
        self._fake._stopping.set()
        super().stop()
