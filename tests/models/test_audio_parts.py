"""The three shapes of audio part, each against a loopback server that reads only its own.

``input_audio`` is OpenAI's, ``audio_url`` vLLM's, ``talk-arena`` the study's inference servers'
(SALT-NLP/audiolm-inference-server and scb-10x's fork, which Talk Arena called). A strict fake
refuses the other shapes as the real server does (400, or a plain 500 for the study's servers).
"""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest

from helpers.fake_openai import AUDIO_PARTS, DEFAULT_DELTAS, FakeOpenAI, FakeOpenAIServer
from lamarena.audio import AudioClip
from lamarena.errors import ConfigError
from lamarena.models.base import EarlierTurn, ModelTimeouts
from lamarena.models.config import AudioPart, parse_models_config
from lamarena.models.openai_compat import OpenAIChatModel
from lamarena.models.registry import ask_model
from lamarena.models.runtime import run_model
from lamarena.settings import load_settings

PROMPT = "Respond conversationally to the speech provided."
TIMEOUTS = ModelTimeouts(connect_s=1.0, first_token_s=2.0)


def _chat(base_url: str, **options: Any) -> OpenAIChatModel:
    return OpenAIChatModel(
        "lam",
        "fake-audio-model",
        base_url=base_url,
        timeouts=TIMEOUTS,
        retry_backoff_s=0.01,
        **options,
    )


def _wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data), "rb") as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (
            1,
            2,
            16_000,
        )
        return reader.getnframes() / 16_000


def test_the_fake_knows_every_shape_the_config_accepts() -> None:
    assert set(AUDIO_PARTS) == set(get_args(AudioPart))


@pytest.mark.parametrize("shape", AUDIO_PARTS)
async def test_each_shape_is_read_by_its_own_server(
    shape: AudioPart, question_clip: AudioClip
) -> None:
    fake = FakeOpenAI.talk_arena() if shape == "talk-arena" else FakeOpenAI()
    fake.accept_audio_part = shape
    with fake.serve() as server:
        model = _chat(server.base_url, audio_part=shape)
        try:
            reply = await run_model(model, question_clip, PROMPT)
        finally:
            await model.aclose()

    assert reply.ok, reply.error
    assert reply.text == "".join(DEFAULT_DELTAS)
    (request,) = fake.chat_requests
    (audio,) = request.audio
    assert abs(_wav_seconds(audio) - question_clip.duration_s) <= 1 / 16_000
    assert request.json is not None
    (message,) = request.json["messages"]
    text, part = message["content"]
    assert text == {"type": "text", "text": PROMPT}
    if shape == "input_audio":
        assert part["type"] == "input_audio" and part["input_audio"]["format"] == "wav"
    elif shape == "audio_url":
        assert part["type"] == "audio_url"
        assert part["audio_url"]["url"].startswith("data:audio/wav;base64,")
    else:  # Talk Arena's part: a string, not an object
        assert part["type"] == "audio"
        assert part["audio_url"].startswith("data:audio/wav;base64,")


@pytest.mark.parametrize(
    ("server_shape", "sent_shape"),
    [(server, sent) for server in AUDIO_PARTS for sent in AUDIO_PARTS if server != sent],
)
async def test_a_server_refuses_the_other_shapes(
    server_shape: AudioPart, sent_shape: AudioPart, question_clip: AudioClip
) -> None:
    fake = FakeOpenAI()
    fake.accept_audio_part = server_shape
    with fake.serve() as server:
        model = _chat(server.base_url, audio_part=sent_shape, max_retries=1)
        try:
            reply = await run_model(model, question_clip, PROMPT)
        finally:
            await model.aclose()

    assert not reply.ok and reply.text == ""
    assert reply.error is not None
    if server_shape == "talk-arena":  # the study's servers crash: a 500, retried, then failed
        assert "500" in reply.error
        assert len(fake.chat_requests) == 2
    else:
        assert "rejected (400)" in reply.error
        assert len(fake.chat_requests) == 1


async def test_a_talk_arena_server_s_zero_usage_is_no_usage(question_clip: AudioClip) -> None:
    fake = FakeOpenAI.talk_arena()
    with fake.serve() as server:
        model = _chat(server.base_url, audio_part="talk-arena")
        try:
            reply = await run_model(model, question_clip, PROMPT)
        finally:
            await model.aclose()

    assert reply.ok, reply.error
    assert reply.text == "".join(DEFAULT_DELTAS)
    assert reply.usage is None  # "no usage reported", never 0 tokens and $0


async def test_talk_arena_sends_only_the_current_query(question_clip: AudioClip) -> None:
    earlier = AudioClip.from_samples(question_clip.samples[:8000])
    history = [EarlierTurn(earlier, "An earlier reply.")]
    fake = FakeOpenAI.talk_arena()
    with fake.serve() as server:
        model = _chat(server.base_url, audio_part="talk-arena")
        try:
            reply = await run_model(model, question_clip, PROMPT, history=history)
        finally:
            await model.aclose()

    assert reply.ok, reply.error
    (request,) = fake.chat_requests
    assert request.json is not None
    assert len(request.json["messages"]) == 1  # the server answers the first audio part
    (audio,) = request.audio
    assert abs(_wav_seconds(audio) - question_clip.duration_s) <= 1 / 16_000


@pytest.mark.parametrize("shape", ["input_audio", "audio_url"])
async def test_other_shapes_send_the_whole_conversation(
    shape: AudioPart, question_clip: AudioClip
) -> None:
    history = [EarlierTurn(question_clip, "An earlier reply.")]
    fake = FakeOpenAI()
    fake.accept_audio_part = shape
    with fake.serve() as server:
        model = _chat(server.base_url, audio_part=shape)
        try:
            reply = await run_model(model, question_clip, PROMPT, history=history)
        finally:
            await model.aclose()

    assert reply.ok, reply.error
    (request,) = fake.chat_requests
    assert request.json is not None
    assert [m["role"] for m in request.json["messages"]] == ["user", "assistant", "user"]
    assert len(request.audio) == 2


def test_an_unknown_audio_part_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown audio_part 'audio'"):
        _chat("http://127.0.0.1:9/v1", audio_part="audio")


# -- models.yaml ---------------------------------------------------------------------------


@pytest.fixture
def talk_arena_fake() -> FakeOpenAI:
    return FakeOpenAI.talk_arena()


@pytest.fixture
def talk_arena_server(talk_arena_fake: FakeOpenAI) -> Iterator[FakeOpenAIServer]:
    with talk_arena_fake.serve() as server:
        yield server


def test_audio_part_defaults_to_input_audio_and_refuses_unknown_shapes() -> None:
    config = parse_models_config("models:\n  - {name: m, kind: openai, model: x}\n")
    (spec,) = config.models
    assert spec.kind == "openai" and spec.audio_part == "input_audio"
    with pytest.raises(ConfigError, match="key 'audio_part'"):
        parse_models_config("models:\n  - {name: m, kind: openai, model: x, audio_part: wav}\n")


async def test_the_registry_sends_the_configured_shape(
    talk_arena_server: FakeOpenAIServer,
    talk_arena_fake: FakeOpenAI,
    tmp_path: Path,
    question_clip: AudioClip,
) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n"
        "  - name: diva\n"
        "    kind: openai\n"
        "    model: WillHeld/DiVA-llama-3-v0-8b\n"
        f"    base_url: {talk_arena_server.base_url}\n"
        "    audio_part: talk-arena\n"
        "    price_per_million_input_tokens: 1\n"
        "    price_per_million_output_tokens: 1\n"
    )
    reply = await ask_model(load_settings(models_config=path), "diva", question_clip)

    assert reply.ok, reply.error
    assert reply.usage is None
    assert len(talk_arena_fake.chat_requests[0].audio) == 1
