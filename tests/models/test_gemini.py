"""GeminiModel (google-genai) against a real loopback Gemini API server."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import time
import wave
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx2
import pytest

from helpers.fake_gemini import DEFAULT_DELTAS, FakeGemini, FakeGeminiServer
from helpers.servers import unused_port
from lamarena.audio import AudioClip
from lamarena.errors import ConfigError, ModelError, ModelTimeout, ModelUnavailable
from lamarena.models.base import AudioModel, ModelTimeouts, TextModel
from lamarena.models.gemini import GeminiModel

KEY = "AIza-test-0123456789abcdef"
PROMPT = "Respond conversationally to the speech provided."
READ_TIMEOUT_S = 0.3


@pytest.fixture
def fake() -> FakeGemini:
    return FakeGemini()


@pytest.fixture
def server(fake: FakeGemini) -> Iterator[FakeGeminiServer]:
    with fake.serve() as server:
        yield server


def _gemini(base_url: str, **options: Any) -> GeminiModel:
    settings: dict[str, Any] = {
        "api_key": KEY,
        "timeouts": ModelTimeouts(connect_s=1.0, first_token_s=READ_TIMEOUT_S),
        "retry_backoff_s": 0.01,
    }
    settings.update(options)
    return GeminiModel("fake-gemini", "gemini-test", base_url=base_url, **settings)


@pytest.fixture
async def model(server: FakeGeminiServer) -> AsyncIterator[GeminiModel]:
    model = _gemini(server.base_url)
    try:
        yield model
    finally:
        await model.aclose()


async def _collect(stream: AsyncIterator[str]) -> list[str]:
    return [delta async for delta in stream]


def test_adapter_satisfies_the_protocols() -> None:
    model = GeminiModel("g", "gemini-test", api_key=KEY, base_url="http://127.0.0.1:9")
    assert isinstance(model, AudioModel)
    assert isinstance(model, TextModel)
    assert KEY not in repr(model)


def test_missing_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="needs an API key; set GEMINI_API_KEY"):
        GeminiModel("g", "gemini-test", api_key=None, api_key_env="GEMINI_API_KEY")


async def test_request_carries_the_prompt_and_the_clip_as_inline_wav(
    model: GeminiModel, fake: FakeGemini, question_clip: AudioClip
) -> None:
    await _collect(model.stream(question_clip, PROMPT))

    (request,) = fake.requests
    assert request.path == "/v1beta/models/gemini-test:streamGenerateContent"
    assert request.query == {"alt": "sse"}
    assert request.headers["x-goog-api-key"] == KEY
    (turn,) = request.json["contents"]
    assert turn["role"] == "user"
    text_part, audio_part = turn["parts"]
    assert text_part == {"text": PROMPT}
    inline = audio_part["inlineData"]
    assert inline["mime_type"] == "audio/wav"
    with wave.open(io.BytesIO(base64.b64decode(inline["data"])), "rb") as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (
            1,
            2,
            16_000,
        )
        assert abs(reader.getnframes() / 16_000 - question_clip.duration_s) <= 1 / 16_000


async def test_deltas_arrive_in_order_while_the_server_is_still_sending(
    model: GeminiModel, fake: FakeGemini, question_clip: AudioClip
) -> None:
    gate = fake.hold_after_first()
    received: list[str] = []
    async for delta in model.stream(question_clip, PROMPT):
        received.append(delta)
        gate.set()

    assert received == list(DEFAULT_DELTAS)
    assert fake.gate_timed_out is False


async def test_text_reply_uses_system_instruction_and_generation_options(
    server: FakeGeminiServer, fake: FakeGemini
) -> None:
    model = _gemini(server.base_url, temperature=0.3, max_tokens=50)
    try:
        text = "".join(await _collect(model.stream_text("What is the capital of France?", PROMPT)))
    finally:
        await model.aclose()

    assert text == "".join(DEFAULT_DELTAS)
    body = fake.requests[0].json
    assert body["contents"] == [
        {"parts": [{"text": "What is the capital of France?"}], "role": "user"}
    ]
    assert body["systemInstruction"]["parts"] == [{"text": PROMPT}]
    assert body["generationConfig"] == {"temperature": 0.3, "maxOutputTokens": 50}


async def test_server_error_is_retried_then_succeeds(
    model: GeminiModel, fake: FakeGemini, question_clip: AudioClip
) -> None:
    fake.fail_next(503, "The model is overloaded.", times=2)

    deltas = await _collect(model.stream(question_clip, PROMPT))

    assert deltas == list(DEFAULT_DELTAS)
    assert len(fake.requests) == 3


async def test_rate_limit_is_retried_and_gives_up_after_max_retries(
    model: GeminiModel, fake: FakeGemini, question_clip: AudioClip
) -> None:
    fake.fail_next(429, "Resource has been exhausted (e.g. check quota).", times=10)

    with pytest.raises(ModelUnavailable, match=r"rate limited \(429\) after 3 attempts: Resource"):
        await _collect(model.stream(question_clip, PROMPT))

    assert len(fake.requests) == 3


async def test_bad_request_is_not_retried_and_keeps_the_server_message(
    model: GeminiModel, fake: FakeGemini, question_clip: AudioClip
) -> None:
    fake.fail_next(400, "Request contains an invalid argument: audio too long.")

    with pytest.raises(ModelError) as caught:
        await _collect(model.stream(question_clip, PROMPT))

    assert type(caught.value) is ModelError
    assert "Request contains an invalid argument: audio too long." in caught.value.message
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("status", "reason"), [(400, "API_KEY_INVALID"), (401, None)], ids=["400-invalid", "401"]
)
async def test_refused_key_names_the_variable_but_never_the_key(
    server: FakeGeminiServer,
    fake: FakeGemini,
    question_clip: AudioClip,
    caplog: pytest.LogCaptureFixture,
    status: int,
    reason: str | None,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail_next(status, f"API key not valid: {KEY}. Please pass a valid API key.", reason=reason)
    model = _gemini(server.base_url, api_key_env="GEMINI_API_KEY")
    try:
        with pytest.raises(ModelUnavailable) as caught:
            await _collect(model.stream(question_clip, PROMPT))
    finally:
        await model.aclose()

    message = str(caught.value)
    assert "the API key was refused" in message
    assert "GEMINI_API_KEY" in message
    assert KEY not in message
    assert KEY not in caplog.text
    assert len(fake.requests) == 1


async def test_unknown_model_is_not_retried(
    model: GeminiModel, fake: FakeGemini, question_clip: AudioClip
) -> None:
    fake.fail_next(404, "models/gemini-test is not found for API version v1beta")

    with pytest.raises(ModelUnavailable, match="model 'gemini-test' not found"):
        await _collect(model.stream(question_clip, PROMPT))

    assert len(fake.requests) == 1


async def test_blocked_prompt_is_a_model_error(
    model: GeminiModel, fake: FakeGemini, question_clip: AudioClip
) -> None:
    fake.block_reason = "SAFETY"

    with pytest.raises(ModelError, match=r"blocked by the service \(SAFETY\)"):
        await _collect(model.stream(question_clip, PROMPT))


async def test_stalled_server_times_out_once_without_retrying(
    model: GeminiModel, fake: FakeGemini, question_clip: AudioClip
) -> None:
    fake.stall_s = 10.0
    started = time.perf_counter()

    with pytest.raises(ModelTimeout, match=r"sent nothing for 0.3 s"):
        await _collect(model.stream(question_clip, PROMPT))

    assert time.perf_counter() - started < READ_TIMEOUT_S + 1.5  # not the 10 s stall
    assert len(fake.requests) == 1


async def test_unreachable_server_is_unavailable(question_clip: AudioClip) -> None:
    base_url = f"http://127.0.0.1:{unused_port()}"
    model = _gemini(base_url)
    try:
        with pytest.raises(ModelUnavailable, match=rf"cannot reach {base_url}"):
            await _collect(model.stream(question_clip, PROMPT))
    finally:
        await model.aclose()


async def test_requests_run_concurrently(
    model: GeminiModel, fake: FakeGemini, question_clip: AudioClip
) -> None:
    fake.first_token_delay_s = 0.2  # each reply stays open at least this long

    replies = await asyncio.gather(
        *(_collect(model.stream(question_clip, PROMPT)) for _ in range(8))
    )

    assert all(reply == list(DEFAULT_DELTAS) for reply in replies)
    assert fake.max_in_flight == 8


async def test_injected_client_keeps_its_own_timeouts_and_stays_open(
    server: FakeGeminiServer, fake: FakeGemini, question_clip: AudioClip
) -> None:
    client = httpx2.AsyncClient(timeout=httpx2.Timeout(READ_TIMEOUT_S, connect=1.0))
    model = GeminiModel(
        "fake-gemini", "gemini-test", api_key=KEY, base_url=server.base_url, http_client=client
    )
    try:
        fake.stall_s = 10.0
        with pytest.raises(ModelTimeout):
            await _collect(model.stream(question_clip, PROMPT))
        await model.aclose()
        assert not client.is_closed
    finally:
        await client.aclose()
