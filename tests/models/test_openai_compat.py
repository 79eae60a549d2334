"""OpenAIChatModel and OpenAITranscriber against a real loopback OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import time
import wave
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from helpers.fake_openai import DEFAULT_DELTAS, FakeOpenAI, FakeOpenAIServer
from helpers.servers import unused_port
from lamarena.audio import AudioClip
from lamarena.errors import ModelError, ModelTimeout, ModelUnavailable
from lamarena.models.base import AudioModel, ModelTimeouts, TextModel, Transcriber
from lamarena.models.openai_compat import OpenAIChatModel, OpenAITranscriber

KEY = "sk-test-0123456789abcdef"
PROMPT = "Respond conversationally to the speech provided."
READ_TIMEOUT_S = 0.3


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
def server(fake: FakeOpenAI) -> Iterator[FakeOpenAIServer]:
    with fake.serve() as server:
        yield server


def _chat(base_url: str, **options: Any) -> OpenAIChatModel:
    settings: dict[str, Any] = {
        "api_key": KEY,
        "timeouts": ModelTimeouts(connect_s=1.0, first_token_s=READ_TIMEOUT_S),
        "retry_backoff_s": 0.01,
    }
    settings.update(options)
    return OpenAIChatModel("fake-lam", "fake-audio-model", base_url=base_url, **settings)


@pytest.fixture
async def model(server: FakeOpenAIServer) -> AsyncIterator[OpenAIChatModel]:
    model = _chat(server.base_url)
    try:
        yield model
    finally:
        await model.aclose()


@pytest.fixture
async def transcriber(server: FakeOpenAIServer) -> AsyncIterator[OpenAITranscriber]:
    asr = OpenAITranscriber(
        "fake-asr",
        base_url=server.base_url,
        api_key=KEY,
        timeouts=ModelTimeouts(connect_s=1.0, first_token_s=READ_TIMEOUT_S),
        retry_backoff_s=0.01,
    )
    try:
        yield asr
    finally:
        await asr.aclose()


async def _collect(stream: AsyncIterator[str]) -> list[str]:
    return [delta async for delta in stream]


def _wav_frames(data: bytes) -> tuple[int, int, int, int]:
    """(channels, sample width, rate, frames) of a WAV file."""
    with wave.open(io.BytesIO(data), "rb") as reader:
        return (
            reader.getnchannels(),
            reader.getsampwidth(),
            reader.getframerate(),
            reader.getnframes(),
        )


def _assert_wav_matches(data: bytes, clip: AudioClip) -> None:
    channels, width, rate, frames = _wav_frames(data)
    assert (channels, width, rate) == (1, 2, 16_000)
    assert abs(frames / rate - clip.duration_s) <= 1 / rate


def test_adapters_satisfy_the_protocols() -> None:
    chat = OpenAIChatModel("m", "x", base_url="http://127.0.0.1:9/v1")
    asr = OpenAITranscriber("a", base_url="http://127.0.0.1:9/v1")
    assert isinstance(chat, AudioModel)
    assert isinstance(chat, TextModel)
    assert isinstance(asr, Transcriber)


async def test_request_carries_the_prompt_and_the_clip_as_wav(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    await _collect(model.stream(question_clip, PROMPT))

    (request,) = fake.chat_requests
    body = request.json
    assert body is not None
    assert body["model"] == "fake-audio-model"
    assert body["stream"] is True
    assert "modalities" not in body and "audio" not in body
    assert request.headers["authorization"] == f"Bearer {KEY}"
    (message,) = body["messages"]
    assert message["role"] == "user"
    text_part, audio_part = message["content"]
    assert text_part == {"type": "text", "text": PROMPT}
    assert audio_part["type"] == "input_audio"
    assert audio_part["input_audio"]["format"] == "wav"
    _assert_wav_matches(base64.b64decode(audio_part["input_audio"]["data"]), question_clip)


async def test_deltas_arrive_in_order_while_the_server_is_still_sending(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    gate = fake.hold_after_first()
    received: list[str] = []
    async for delta in model.stream(question_clip, PROMPT):
        received.append(delta)
        gate.set()  # the server holds the rest of the reply until the first delta is here

    assert received == list(DEFAULT_DELTAS)
    assert fake.gate_timed_out is False


async def test_chunks_without_text_of_the_first_choice_add_nothing(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    # Chunks are read as the JSON sent, not the SDK's models: shapes real servers send must
    # neither add text nor break the reply.
    fake.extra_choices = [
        {"index": 1, "delta": {"content": "another choice"}, "finish_reason": None},
        {"index": 0, "delta": {"content": None, "refusal": None}, "finish_reason": None},
        {"index": 0, "delta": {"audio": None}, "finish_reason": None},
        {"index": 0, "delta": {}, "finish_reason": None},
    ]
    stream = model.stream(question_clip, PROMPT)

    assert await _collect(stream) == list(DEFAULT_DELTAS)
    assert stream.usage is not None and stream.usage.input_tokens == fake.prompt_tokens


async def test_an_error_event_mid_stream_fails_the_reply_with_the_server_message(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.error_after = 2
    received: list[str] = []
    with pytest.raises(ModelError, match="ran out of memory") as caught:
        async for delta in model.stream(question_clip, PROMPT):
            received.append(delta)

    assert received == list(DEFAULT_DELTAS[:2])
    assert not isinstance(caught.value, (ModelTimeout, ModelUnavailable))
    assert len(fake.chat_requests) == 1  # a failure after the first delta is never retried


async def test_gpt4o_audio_modality_streams_the_spoken_transcript(
    server: FakeOpenAIServer, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.audio_transcript = True
    model = _chat(server.base_url, modalities=["text", "audio"], audio_voice="verse")
    try:
        deltas = await _collect(model.stream(question_clip, PROMPT))
    finally:
        await model.aclose()

    assert deltas == list(DEFAULT_DELTAS)
    body = fake.chat_requests[0].json
    assert body is not None
    assert body["modalities"] == ["text", "audio"]
    assert body["audio"] == {"voice": "verse", "format": "pcm16"}


async def test_text_reply_uses_system_prompt_and_generation_options(
    server: FakeOpenAIServer, fake: FakeOpenAI
) -> None:
    model = _chat(server.base_url, temperature=0.2, max_tokens=64)
    try:
        text = "".join(await _collect(model.stream_text("What is the capital of France?", PROMPT)))
    finally:
        await model.aclose()

    assert text == "".join(DEFAULT_DELTAS)
    body = fake.chat_requests[0].json
    assert body is not None
    assert body["messages"] == [
        {"role": "system", "content": PROMPT},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 64


async def test_server_error_is_retried_then_succeeds(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.fail_next(500, "upstream overloaded", times=2)

    deltas = await _collect(model.stream(question_clip, PROMPT))

    assert deltas == list(DEFAULT_DELTAS)
    assert len(fake.chat_requests) == 3


async def test_rate_limit_is_retried_after_the_server_s_delay(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.fail_next(429, "slow down", retry_after_s=0.05)

    deltas = await _collect(model.stream(question_clip, PROMPT))

    assert deltas == list(DEFAULT_DELTAS)
    assert len(fake.chat_requests) == 2


async def test_exhausted_quota_is_not_retried(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.fail_next(429, "You exceeded your current quota.", times=3, code="insufficient_quota")

    with pytest.raises(ModelUnavailable, match=r"rate limited \(429\): You exceeded"):
        await _collect(model.stream(question_clip, PROMPT))

    assert len(fake.chat_requests) == 1


async def test_persistent_server_error_gives_up_after_max_retries(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.fail_next(503, "maintenance", times=10)

    with pytest.raises(ModelUnavailable, match=r"server error 503 after 3 attempts: maintenance"):
        await _collect(model.stream(question_clip, PROMPT))

    assert len(fake.chat_requests) == 3


async def test_bad_request_is_not_retried_and_keeps_the_server_message(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.fail_next(400, "Invalid audio: the file is too short.")

    with pytest.raises(ModelError) as caught:
        await _collect(model.stream(question_clip, PROMPT))

    assert type(caught.value) is ModelError
    assert caught.value.model == "fake-lam"
    assert "Invalid audio: the file is too short." in caught.value.message
    assert len(fake.chat_requests) == 1


async def test_unknown_model_is_not_retried_and_says_which(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.fail_next(404, "The model `fake-audio-model` does not exist.")

    with pytest.raises(ModelUnavailable, match=r"model 'fake-audio-model' not found"):
        await _collect(model.stream(question_clip, PROMPT))

    assert len(fake.chat_requests) == 1


async def test_refused_key_names_the_variable_but_never_the_key(
    server: FakeOpenAIServer,
    fake: FakeOpenAI,
    question_clip: AudioClip,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fail_next(401, f"Incorrect API key provided: {KEY}.")
    model = _chat(server.base_url, api_key_env="OPENAI_API_KEY")
    try:
        with pytest.raises(ModelUnavailable) as caught:
            await _collect(model.stream(question_clip, PROMPT))
    finally:
        await model.aclose()

    message = str(caught.value)
    assert "the API key was refused" in message
    assert "OPENAI_API_KEY" in message
    assert KEY not in message
    assert KEY not in repr(model)
    assert KEY not in caplog.text
    assert len(fake.chat_requests) == 1


async def test_missing_key_says_how_to_configure_one(
    server: FakeOpenAIServer, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.fail_next(401, "You didn't provide an API key.")
    model = _chat(server.base_url, api_key=None)
    try:
        with pytest.raises(ModelUnavailable, match="none is configured: set api_key_env"):
            await _collect(model.stream(question_clip, PROMPT))
    finally:
        await model.aclose()


async def test_stalled_server_times_out_once_without_retrying(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.stall_s = 10.0
    started = time.perf_counter()

    with pytest.raises(ModelTimeout, match=r"sent nothing for 0.3 s"):
        await _collect(model.stream(question_clip, PROMPT))

    assert time.perf_counter() - started < READ_TIMEOUT_S + 1.5  # not the 10 s stall
    assert len(fake.chat_requests) == 1


async def test_unreachable_server_is_unavailable(question_clip: AudioClip) -> None:
    base_url = f"http://127.0.0.1:{unused_port()}/v1"
    model = _chat(base_url)
    try:
        with pytest.raises(ModelUnavailable, match=rf"cannot reach {base_url}"):
            await _collect(model.stream(question_clip, PROMPT))
    finally:
        await model.aclose()


async def test_requests_run_concurrently(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.first_token_delay_s = 0.2  # each reply stays open at least this long

    replies = await asyncio.gather(
        *(_collect(model.stream(question_clip, PROMPT)) for _ in range(8))
    )

    assert all(reply == list(DEFAULT_DELTAS) for reply in replies)
    assert fake.max_in_flight == 8


def test_unknown_modality_is_a_config_error() -> None:
    from lamarena.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown modalities"):
        OpenAIChatModel("m", "x", modalities=["video"])  # type: ignore[list-item]


async def test_transcriber_uploads_the_clip_and_returns_the_text(
    transcriber: OpenAITranscriber, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.transcript = "  What is the capital of France?\n"

    text = await transcriber.transcribe(question_clip)

    assert text == "What is the capital of France?"
    (request,) = fake.transcription_requests
    assert request.form["model"] == "whisper-1"
    assert request.file_name == "query.wav"
    assert request.file is not None
    _assert_wav_matches(request.file, question_clip)


async def test_transcriber_retries_server_errors_only(
    transcriber: OpenAITranscriber, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.fail_next(502, "bad gateway")
    assert await transcriber.transcribe(question_clip) == fake.transcript
    assert len(fake.transcription_requests) == 2

    fake.fail_next(400, "Unsupported audio format")
    with pytest.raises(ModelError, match="rejected \\(400\\): Unsupported audio format"):
        await transcriber.transcribe(question_clip)
    assert len(fake.transcription_requests) == 3


async def test_transcriber_maps_refused_key_and_timeout(
    transcriber: OpenAITranscriber, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.fail_next(401, f"Incorrect API key provided: {KEY}")
    with pytest.raises(ModelUnavailable, match="the API key was refused") as caught:
        await transcriber.transcribe(question_clip)
    assert KEY not in str(caught.value)

    fake.stall_s = 10.0
    with pytest.raises(ModelTimeout):
        await transcriber.transcribe(question_clip)
    assert len(fake.transcription_requests) == 2
