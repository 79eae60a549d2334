"""A loopback OpenAI-compatible model that answers by the audio it hears, for static-run tests.

``POST /v1/chat/completions`` streams (server-sent events) a scripted answer chosen by the
request's audio: the test maps :func:`audio_digest` of a sample's audio file to the text the model
should say (a default answers the rest). A text-only request (an LLM judge) is answered by
``judge_reply``. Every request is counted, so a test can assert how many calls a run made;
``latency_s`` waits before the first delta (the runner benchmark uses it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from helpers.servers import ServerThread
from lamarena.audio import decode_audio, to_wav_bytes
from lamarena.bench.data.loading import BENCH_AUDIO_LIMITS

__all__ = ["FakeStaticModel", "FakeStaticServer", "audio_digest"]


def audio_digest(audio_file_bytes: bytes) -> str:
    """The digest the fake computes for a sample: sha256 of the WAV the adapter sends."""
    clip = decode_audio(audio_file_bytes, limits=BENCH_AUDIO_LIMITS)
    return hashlib.sha256(to_wav_bytes(clip)).hexdigest()


class FakeStaticModel:
    """Script and record of the fake; ``app`` is its ASGI app."""

    def __init__(
        self,
        answers: dict[str, str] | None = None,
        *,
        default: str = "I am not sure.",
        judge_reply: str = "Rating: 4",
        latency_s: float = 0.0,
        answer_for: Callable[[str, str], str | None] | None = None,
    ) -> None:
        self.answers = dict(answers or {})
        self.default = default
        self.judge_reply = judge_reply
        self.latency_s = latency_s
        self.answer_for = answer_for
        self.audio_requests = 0
        self.text_requests = 0
        self.prompts: list[str] = []
        self._lock = threading.Lock()
        self.app = self._build()

    @property
    def requests(self) -> int:
        """Every chat request received so far."""
        return self.audio_requests + self.text_requests

    def reset(self) -> None:
        """Forget the counts."""
        with self._lock:
            self.audio_requests = 0
            self.text_requests = 0
            self.prompts.clear()

    def serve(self) -> FakeStaticServer:
        """A server for this fake (a context manager)."""
        return FakeStaticServer(self)

    def _answer(self, body: dict[str, Any]) -> str:
        prompt, audio = "", None
        for message in body.get("messages", []):
            content = message.get("content")
            if isinstance(content, str):
                prompt += content
                continue
            for part in content or []:
                if part.get("type") == "text":
                    prompt += part["text"]
                elif part.get("type") == "input_audio":
                    audio = base64.b64decode(part["input_audio"]["data"])
        with self._lock:
            self.prompts.append(prompt)
            if audio is None:
                self.text_requests += 1
            else:
                self.audio_requests += 1
        if audio is None:
            return self.judge_reply
        digest = hashlib.sha256(audio).hexdigest()
        if self.answer_for is not None:
            scripted = self.answer_for(digest, prompt)
            if scripted is not None:
                return scripted
        return self.answers.get(digest, self.default)

    def _chunk(self, model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk = {
            "id": "chatcmpl-static",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(chunk)}\n\n".encode()

    async def _stream(self, model: str, text: str) -> AsyncIterator[bytes]:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        yield self._chunk(model, {"role": "assistant", "content": text})
        yield self._chunk(model, {}, finish="stop")
        yield b"data: [DONE]\n\n"

    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            body = await request.json()
            text = self._answer(body)
            return StreamingResponse(
                self._stream(str(body.get("model", "")), text), media_type="text/event-stream"
            )

        return app


class FakeStaticServer(ServerThread):
    """The fake under real uvicorn on 127.0.0.1."""

    def __init__(self, fake: FakeStaticModel) -> None:
        super().__init__(fake.app)

    @property
    def base_url(self) -> str:
        """The OpenAI base URL (``.../v1``)."""
        return f"{self.url}/v1"
