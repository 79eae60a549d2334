"""Conversations of several turns: each side sends its own earlier replies, in the service's shape.

Every request goes to a real loopback fake that records its body. Two instances of one adapter
stand for the two sides of a battle: the same spoken turns, a different reply each, so a body
that holds its own reply (and not the other's) proves that each side keeps its own history.
"""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from helpers.fake_gemini import FakeGemini, FakeGeminiServer
from helpers.fake_openai import DEFAULT_DELTAS, FakeOpenAI, FakeOpenAIServer
from helpers.speech import speak
from lamarena.audio import AudioClip, load_audio
from lamarena.models.base import EarlierTurn, ModelTimeouts
from lamarena.models.gemini import GeminiModel
from lamarena.models.openai_compat import OpenAIChatModel, OpenAITranscriber
from lamarena.models.pipeline import PipelineModel
from lamarena.models.runtime import run_model

PROMPT = "Respond conversationally to the speech provided."
REPLIES = {"a": "Paris is the capital of France.", "b": "I believe it is Lyon, on the Rhone."}
TIMEOUTS = ModelTimeouts(connect_s=1.0, first_token_s=2.0)
HEARD = "What is the capital of France?"


@pytest.fixture(scope="module")
def follow_up_clip(tmp_path_factory: pytest.TempPathFactory) -> AudioClip:
    """The second spoken turn: longer than the first, so the two WAVs tell apart."""
    path = speak(
        "And what about Germany, and which river runs through its capital city?",
        tmp_path_factory.mktemp("speech") / "follow-up.wav",
    )
    return load_audio(path)


def _wav_seconds(data: str) -> float:
    # google-genai sends bytes as URL-safe base64 (protobuf JSON accepts both alphabets); the
    # OpenAI adapter sends the standard alphabet, which has no "-" or "_" to confuse this.
    with wave.open(io.BytesIO(base64.urlsafe_b64decode(data)), "rb") as reader:
        assert (reader.getnchannels(), reader.getsampwidth(), reader.getframerate()) == (
            1,
            2,
            16_000,
        )
        return reader.getnframes() / 16_000


def _is_clip(data: str, clip: AudioClip) -> bool:
    return abs(_wav_seconds(data) - clip.duration_s) <= 1 / 16_000


def _clips_differ(first: AudioClip, second: AudioClip) -> None:
    assert abs(first.duration_s - second.duration_s) > 0.5


# -- OpenAI chat completions ------------------------------------------------------------------


@pytest.fixture
def openai_fake() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
def openai_server(openai_fake: FakeOpenAI) -> Iterator[FakeOpenAIServer]:
    with openai_fake.serve() as server:
        yield server


@pytest.fixture
async def chat_sides(openai_server: FakeOpenAIServer) -> AsyncIterator[dict[str, OpenAIChatModel]]:
    sides = {
        side: OpenAIChatModel(
            f"gpt-{side}",
            "fake-audio-model",
            base_url=openai_server.base_url,
            timeouts=TIMEOUTS,
            retry_backoff_s=0.01,
        )
        for side in REPLIES
    }
    try:
        yield sides
    finally:
        for model in sides.values():
            await model.aclose()


def _openai_user_turn(message: dict[str, Any], clip: AudioClip) -> None:
    assert message["role"] == "user"
    assert set(message) == {"role", "content"}
    text, audio = message["content"]
    assert text == {"type": "text", "text": PROMPT}
    assert audio["type"] == "input_audio"
    assert audio["input_audio"]["format"] == "wav"
    assert _is_clip(audio["input_audio"]["data"], clip)


async def test_openai_second_turn_sends_the_first_turn_and_its_own_reply(
    chat_sides: dict[str, OpenAIChatModel],
    openai_fake: FakeOpenAI,
    question_clip: AudioClip,
    follow_up_clip: AudioClip,
) -> None:
    _clips_differ(question_clip, follow_up_clip)
    for side, model in chat_sides.items():
        history = [EarlierTurn(question_clip, REPLIES[side])]
        reply = await run_model(model, follow_up_clip, PROMPT, history=history)
        assert reply.ok and reply.text == "".join(DEFAULT_DELTAS)

    requests = openai_fake.chat_requests
    assert len(requests) == 2
    for side, request in zip(REPLIES, requests, strict=True):
        assert request.json is not None
        first, answer, second = request.json["messages"]
        _openai_user_turn(first, question_clip)
        assert answer == {"role": "assistant", "content": REPLIES[side]}
        _openai_user_turn(second, follow_up_clip)
        other = REPLIES["b" if side == "a" else "a"]
        assert other not in str(request.json)


async def test_openai_text_chat_puts_earlier_turns_between_system_and_user(
    chat_sides: dict[str, OpenAIChatModel], openai_fake: FakeOpenAI
) -> None:
    model = chat_sides["a"]
    history = [("first question", "first answer"), ("second question", "second answer")]
    text = "".join([delta async for delta in model.stream_text("third question", PROMPT, history)])

    assert text == "".join(DEFAULT_DELTAS)
    (request,) = openai_fake.chat_requests
    assert request.json is not None
    assert request.json["messages"] == [
        {"role": "system", "content": PROMPT},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
        {"role": "assistant", "content": "second answer"},
        {"role": "user", "content": "third question"},
    ]


# -- Gemini ------------------------------------------------------------------------------------


@pytest.fixture
def gemini_fake() -> FakeGemini:
    return FakeGemini()


@pytest.fixture
def gemini_server(gemini_fake: FakeGemini) -> Iterator[FakeGeminiServer]:
    with gemini_fake.serve() as server:
        yield server


@pytest.fixture
async def gemini_sides(gemini_server: FakeGeminiServer) -> AsyncIterator[dict[str, GeminiModel]]:
    sides = {
        side: GeminiModel(
            f"gemini-{side}",
            "gemini-test",
            api_key="AIza-test-key",
            base_url=gemini_server.base_url,
            timeouts=TIMEOUTS,
            retry_backoff_s=0.01,
        )
        for side in REPLIES
    }
    try:
        yield sides
    finally:
        for model in sides.values():
            await model.aclose()


def _gemini_user_turn(content: dict[str, Any], clip: AudioClip) -> None:
    assert content["role"] == "user"
    text, audio = content["parts"]
    assert text == {"text": PROMPT}
    assert audio["inlineData"]["mime_type"] == "audio/wav"
    assert _is_clip(audio["inlineData"]["data"], clip)


async def test_gemini_second_turn_sends_user_and_model_contents_in_order(
    gemini_sides: dict[str, GeminiModel],
    gemini_fake: FakeGemini,
    question_clip: AudioClip,
    follow_up_clip: AudioClip,
) -> None:
    _clips_differ(question_clip, follow_up_clip)
    for side, model in gemini_sides.items():
        history = [EarlierTurn(question_clip, REPLIES[side])]
        reply = await run_model(model, follow_up_clip, PROMPT, history=history)
        assert reply.ok, reply.error

    assert len(gemini_fake.requests) == 2
    for side, request in zip(REPLIES, gemini_fake.requests, strict=True):
        first, answer, second = request.json["contents"]
        _gemini_user_turn(first, question_clip)
        assert answer == {"role": "model", "parts": [{"text": REPLIES[side]}]}
        _gemini_user_turn(second, follow_up_clip)
        assert "systemInstruction" not in request.json
        other = REPLIES["b" if side == "a" else "a"]
        assert other not in str(request.json)


async def test_gemini_text_chat_sends_roles_under_the_system_instruction(
    gemini_sides: dict[str, GeminiModel], gemini_fake: FakeGemini
) -> None:
    history = [("first question", "first answer")]
    stream = gemini_sides["a"].stream_text("second question", PROMPT, history)
    assert [delta async for delta in stream]

    (request,) = gemini_fake.requests
    assert request.json["contents"] == [
        {"role": "user", "parts": [{"text": "first question"}]},
        {"role": "model", "parts": [{"text": "first answer"}]},
        {"role": "user", "parts": [{"text": "second question"}]},
    ]
    assert request.json["systemInstruction"]["parts"] == [{"text": PROMPT}]


# -- ASR pipeline ------------------------------------------------------------------------------


@pytest.fixture
def asr_fake() -> FakeOpenAI:
    return FakeOpenAI(transcript=HEARD)


@pytest.fixture
def asr_server(asr_fake: FakeOpenAI) -> Iterator[FakeOpenAIServer]:
    with asr_fake.serve() as server:
        yield server


@pytest.fixture
async def pipeline_sides(
    asr_server: FakeOpenAIServer, openai_server: FakeOpenAIServer
) -> AsyncIterator[dict[str, PipelineModel]]:
    sides = {
        side: PipelineModel(
            f"pipeline-{side}",
            OpenAITranscriber(f"pipeline-{side}/asr", base_url=asr_server.base_url),
            OpenAIChatModel(f"pipeline-{side}/llm", "llama", base_url=openai_server.base_url),
        )
        for side in REPLIES
    }
    try:
        yield sides
    finally:
        for model in sides.values():
            await model.aclose()


async def test_pipeline_llm_gets_earlier_transcripts_and_its_own_replies(
    pipeline_sides: dict[str, PipelineModel],
    asr_fake: FakeOpenAI,
    openai_fake: FakeOpenAI,
    question_clip: AudioClip,
    follow_up_clip: AudioClip,
) -> None:
    for side, model in pipeline_sides.items():
        history = [EarlierTurn(question_clip, REPLIES[side], transcript=f"own words of {side}")]
        reply = await run_model(model, follow_up_clip, PROMPT, history=history)
        assert reply.ok and reply.transcript == HEARD

    # Each side's own earlier transcript is used: only the two new queries were transcribed.
    assert len(asr_fake.transcription_requests) == 2
    for side, request in zip(REPLIES, openai_fake.chat_requests, strict=True):
        assert request.json is not None
        assert request.json["messages"] == [
            {"role": "system", "content": PROMPT},
            {"role": "user", "content": f"own words of {side}"},
            {"role": "assistant", "content": REPLIES[side]},
            {"role": "user", "content": HEARD},
        ]


async def test_pipeline_transcribes_an_earlier_turn_without_a_transcript(
    pipeline_sides: dict[str, PipelineModel],
    asr_fake: FakeOpenAI,
    openai_fake: FakeOpenAI,
    question_clip: AudioClip,
    follow_up_clip: AudioClip,
) -> None:
    model = pipeline_sides["b"]
    history = [EarlierTurn(question_clip, REPLIES["b"])]
    assert [delta async for delta in model.stream(follow_up_clip, PROMPT, history)]

    assert len(asr_fake.transcription_requests) == 2
    first, second = (request.file for request in asr_fake.transcription_requests)
    assert first is not None and second is not None and len(first) != len(second)
    (request,) = openai_fake.chat_requests
    assert request.json is not None
    assert [message["content"] for message in request.json["messages"]] == [
        PROMPT,
        HEARD,
        REPLIES["b"],
        HEARD,
    ]
