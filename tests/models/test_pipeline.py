"""PipelineModel: a transcription server, then a chat server, both real loopback fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from helpers.fake_gemini import DEFAULT_DELTAS as GEMINI_DELTAS
from helpers.fake_gemini import FakeGemini, FakeGeminiServer
from helpers.fake_openai import DEFAULT_DELTAS, FakeOpenAI, FakeOpenAIServer
from lamarena.audio import AudioClip
from lamarena.errors import ModelError, ModelTimeout, ModelUnavailable
from lamarena.models.base import ModelTimeouts, TranscribingModel
from lamarena.models.gemini import GeminiModel
from lamarena.models.openai_compat import OpenAIChatModel, OpenAITranscriber
from lamarena.models.pipeline import PipelineModel
from lamarena.models.runtime import run_model

PROMPT = "You are a helpful assistant. Respond conversationally to the speech provided."
TRANSCRIPT = "What is the capital of France?"
TIMEOUTS = ModelTimeouts(connect_s=1.0, first_token_s=0.3)


@pytest.fixture
def asr_fake() -> FakeOpenAI:
    return FakeOpenAI(transcript=TRANSCRIPT)


@pytest.fixture
def llm_fake() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
def asr_server(asr_fake: FakeOpenAI) -> Iterator[FakeOpenAIServer]:
    with asr_fake.serve() as server:
        yield server


@pytest.fixture
def llm_server(llm_fake: FakeOpenAI) -> Iterator[FakeOpenAIServer]:
    with llm_fake.serve() as server:
        yield server


def _transcriber(server: FakeOpenAIServer) -> OpenAITranscriber:
    return OpenAITranscriber(
        "whisper-llama/asr", base_url=server.base_url, timeouts=TIMEOUTS, retry_backoff_s=0.01
    )


@pytest.fixture
async def pipeline(
    asr_server: FakeOpenAIServer, llm_server: FakeOpenAIServer
) -> AsyncIterator[PipelineModel]:
    llm = OpenAIChatModel(
        "whisper-llama/llm",
        "meta-llama/Meta-Llama-3-8B-Instruct",
        base_url=llm_server.base_url,
        timeouts=TIMEOUTS,
        retry_backoff_s=0.01,
    )
    model = PipelineModel("whisper-llama", _transcriber(asr_server), llm)
    try:
        yield model
    finally:
        await model.aclose()


async def _collect(stream: AsyncIterator[str]) -> list[str]:
    return [delta async for delta in stream]


def test_pipeline_is_a_transcribing_model(pipeline: PipelineModel) -> None:
    assert isinstance(pipeline, TranscribingModel)


async def test_transcribes_then_answers_the_transcript_under_the_prompt(
    pipeline: PipelineModel, asr_fake: FakeOpenAI, llm_fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    deltas = await _collect(pipeline.stream(question_clip, PROMPT))

    assert deltas == list(DEFAULT_DELTAS)
    (asr_request,) = asr_fake.transcription_requests
    (chat_request,) = llm_fake.chat_requests
    assert asr_request.received_at < chat_request.received_at
    assert asr_request.file is not None and asr_request.file.startswith(b"RIFF")
    assert chat_request.json is not None
    assert chat_request.json["messages"] == [
        {"role": "system", "content": PROMPT},
        {"role": "user", "content": TRANSCRIPT},
    ]


async def test_run_model_keeps_the_transcript_on_the_reply(
    pipeline: PipelineModel, question_clip: AudioClip
) -> None:
    reply = await run_model(pipeline, question_clip, PROMPT, timeouts=ModelTimeouts())

    assert reply.ok, reply.error
    assert reply.transcript == TRANSCRIPT
    assert reply.text == "".join(DEFAULT_DELTAS)
    assert reply.model == "whisper-llama"


async def test_empty_transcript_is_heard_no_speech_and_skips_the_llm(
    pipeline: PipelineModel, asr_fake: FakeOpenAI, llm_fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    asr_fake.transcript = "  \n"

    with pytest.raises(ModelError, match="heard no speech") as caught:
        await _collect(pipeline.stream(question_clip, PROMPT))

    assert caught.value.model == "whisper-llama"
    assert llm_fake.chat_requests == []


async def test_asr_failure_keeps_its_kind_and_names_the_asr(
    pipeline: PipelineModel, asr_fake: FakeOpenAI, llm_fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    asr_fake.fail_next(404, "The model `whisper-1` does not exist")

    with pytest.raises(ModelUnavailable) as caught:
        await _collect(pipeline.stream(question_clip, PROMPT))

    assert caught.value.model == "whisper-llama"
    assert "the ASR 'whisper-llama/asr' failed" in caught.value.message
    assert "model 'whisper-1' not found" in caught.value.message
    assert llm_fake.chat_requests == []


async def test_llm_failure_keeps_its_kind_and_names_the_llm(
    pipeline: PipelineModel, llm_fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    llm_fake.stall_s = 10.0

    with pytest.raises(ModelTimeout) as caught:
        await _collect(pipeline.stream(question_clip, PROMPT))

    assert caught.value.model == "whisper-llama"
    assert "the LLM 'whisper-llama/llm' failed" in caught.value.message


async def test_llm_rejection_carries_the_server_message(
    pipeline: PipelineModel, llm_fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    llm_fake.fail_next(400, "This model's maximum context length is 8192 tokens.")

    with pytest.raises(ModelError) as caught:
        await _collect(pipeline.stream(question_clip, PROMPT))

    assert type(caught.value) is ModelError
    assert "maximum context length is 8192 tokens" in caught.value.message
    assert len(llm_fake.chat_requests) == 1


async def test_gemini_can_be_the_llm(
    asr_server: FakeOpenAIServer, question_clip: AudioClip
) -> None:
    gemini_fake = FakeGemini()
    with gemini_fake.serve() as gemini_server:
        pipeline = PipelineModel(
            "whisper-gemini",
            _transcriber(asr_server),
            _gemini_llm(gemini_server),
        )
        try:
            deltas = await _collect(pipeline.stream(question_clip, PROMPT))
        finally:
            await pipeline.aclose()

    assert deltas == list(GEMINI_DELTAS)
    body = gemini_fake.requests[0].json
    assert body["contents"] == [{"parts": [{"text": TRANSCRIPT}], "role": "user"}]
    assert body["systemInstruction"]["parts"] == [{"text": PROMPT}]


def _gemini_llm(server: FakeGeminiServer) -> GeminiModel:
    return GeminiModel(
        "whisper-gemini/llm",
        "gemini-test",
        api_key="AIza-test",
        base_url=server.base_url,
        timeouts=TIMEOUTS,
    )
