"""Spoken replies: OpenAI audio output and pipelines with a tts stage, against loopback fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from helpers.fake_openai import (
    DEFAULT_DELTAS,
    SPEECH_RATE_HZ,
    FakeOpenAI,
    FakeOpenAIServer,
    sine_pcm16,
)
from lamarena.audio import AudioClip, decode_audio
from lamarena.errors import ConfigError
from lamarena.models.base import ModelTimeouts
from lamarena.models.config import parse_models_config
from lamarena.models.openai_compat import OpenAIChatModel, OpenAITranscriber
from lamarena.models.pipeline import PipelineModel, split_sentences
from lamarena.models.registry import model_entries
from lamarena.models.runtime import run_model
from lamarena.models.speech import (
    SPEECH_SAMPLE_RATE_HZ,
    SpeechAudio,
    SpeechText,
    Synthesiser,
    can_speak,
    pcm16_wav,
)
from lamarena.models.tts import EspeakSynthesiser, OpenAISpeechSynthesiser
from lamarena.settings import load_settings

PROMPT = "Respond conversationally to the speech provided."
TRANSCRIPT = "What is the capital of France?"
TWO_SENTENCES = ("Paris is the capital", " of France. It lies on", " the river Seine.")
TIMEOUTS = ModelTimeouts(connect_s=1.0, first_token_s=5.0)


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI(transcript=TRANSCRIPT)


@pytest.fixture
def server(fake: FakeOpenAI) -> Iterator[FakeOpenAIServer]:
    with fake.serve() as server:
        yield server


def _pipeline(server: FakeOpenAIServer, tts: Synthesiser | None) -> PipelineModel:
    asr = OpenAITranscriber("spoken/asr", base_url=server.base_url, timeouts=TIMEOUTS)
    llm = OpenAIChatModel("spoken/llm", "llama", base_url=server.base_url, timeouts=TIMEOUTS)
    return PipelineModel("spoken", asr, llm, tts)


@pytest.fixture
async def speaking_gpt(server: FakeOpenAIServer) -> AsyncIterator[OpenAIChatModel]:
    model = OpenAIChatModel(
        "gpt-spoken",
        "gpt-audio-mini",
        base_url=server.base_url,
        output="audio",
        audio_voice="verse",
        timeouts=TIMEOUTS,
    )
    try:
        yield model
    finally:
        await model.aclose()


async def test_openai_audio_output_collects_transcript_and_pcm(
    speaking_gpt: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    chunks: list[SpeechAudio] = []
    texts: list[str] = []

    reply = await run_model(
        speaking_gpt, question_clip, PROMPT, on_delta=texts.append, on_audio=chunks.append
    )

    assert reply.ok, reply.error
    body = fake.chat_requests[0].json
    assert body is not None
    assert body["modalities"] == ["text", "audio"]
    assert body["audio"] == {"voice": "verse", "format": "pcm16"}
    assert body["stream"] is True
    assert reply.text == "".join(DEFAULT_DELTAS) and texts == list(DEFAULT_DELTAS)
    assert reply.audio == fake.speech_pcm * len(DEFAULT_DELTAS)
    assert [chunk.pcm16 for chunk in chunks] == [fake.speech_pcm] * len(DEFAULT_DELTAS)
    assert reply.audio_sample_rate_hz == SPEECH_RATE_HZ == SPEECH_SAMPLE_RATE_HZ
    assert reply.ttfab_s is not None and 0 < reply.ttfab_s <= reply.total_s
    assert reply.audio_s == pytest.approx(len(reply.audio) / 2 / SPEECH_RATE_HZ)
    assert reply.audio_s == pytest.approx(0.25 * len(DEFAULT_DELTAS), abs=1e-3)


async def test_openai_audio_chunks_of_odd_length_still_give_whole_samples(
    speaking_gpt: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.speech_pcm = b"\x01\x02\x03"  # 1.5 samples per chunk

    parts = [part async for part in speaking_gpt.stream_speech(question_clip, PROMPT)]

    audio = [part.pcm16 for part in parts if isinstance(part, SpeechAudio)]
    assert all(len(chunk) % 2 == 0 for chunk in audio)
    assert b"".join(audio) == (b"\x01\x02\x03" * 3)[:8]
    assert "".join(p.text for p in parts if isinstance(p, SpeechText)) == "".join(DEFAULT_DELTAS)


async def test_a_text_model_does_not_speak_and_refuses_speech(
    server: FakeOpenAIServer, question_clip: AudioClip
) -> None:
    model = OpenAIChatModel("texty", "gpt", base_url=server.base_url, timeouts=TIMEOUTS)
    try:
        assert not can_speak(model)
        with pytest.raises(ConfigError, match="output: audio"):
            model.stream_speech(question_clip, PROMPT)
        reply = await run_model(model, question_clip, PROMPT)
    finally:
        await model.aclose()
    assert reply.ok and reply.audio is None and reply.ttfab_s is None and reply.audio_s is None


async def test_pipeline_with_espeak_speaks_the_llm_text_sentence_by_sentence(
    server: FakeOpenAIServer, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.deltas = TWO_SENTENCES
    pipeline = _pipeline(server, EspeakSynthesiser("spoken/tts", voice="en"))
    chunks: list[SpeechAudio] = []
    try:
        assert can_speak(pipeline)
        reply = await run_model(pipeline, question_clip, PROMPT, on_audio=chunks.append)
    finally:
        await pipeline.aclose()

    assert reply.ok, reply.error
    assert reply.text == "".join(TWO_SENTENCES)
    assert reply.transcript == TRANSCRIPT
    assert len(chunks) == 2  # one per sentence, the first before the LLM's last delta was spoken
    assert reply.audio == b"".join(chunk.pcm16 for chunk in chunks)
    assert reply.audio_sample_rate_hz == SPEECH_SAMPLE_RATE_HZ
    assert reply.audio_s is not None and reply.audio_s > 0.3
    samples = np.frombuffer(reply.audio, "<i2")
    assert np.abs(samples).max() > 1000  # speech, not silence
    assert reply.ttfab_s is not None and reply.ttft_s is not None
    assert reply.ttft_s < reply.ttfab_s < reply.total_s


async def test_pipeline_with_openai_speech_posts_each_sentence(
    server: FakeOpenAIServer, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.deltas = TWO_SENTENCES
    tts = OpenAISpeechSynthesiser(
        "spoken/tts", "gpt-4o-mini-tts", voice="coral", base_url=server.base_url, speed=1.25
    )
    pipeline = _pipeline(server, tts)
    try:
        reply = await run_model(pipeline, question_clip, PROMPT)
    finally:
        await pipeline.aclose()

    assert reply.ok, reply.error
    bodies = [request.json for request in fake.speech_requests]
    assert bodies == [
        {
            "model": "gpt-4o-mini-tts",
            "input": sentence,
            "voice": "coral",
            "response_format": "pcm",
            "speed": 1.25,
        }
        for sentence in ("Paris is the capital of France.", "It lies on the river Seine.")
    ]
    assert reply.audio == fake.speech_pcm * 2
    assert reply.audio_s == pytest.approx(0.5, abs=1e-3)


async def test_a_tts_failure_names_the_tts_and_keeps_the_text(
    server: FakeOpenAIServer, question_clip: AudioClip
) -> None:
    pipeline = _pipeline(server, EspeakSynthesiser("spoken/tts", voice="xx-no-such-voice"))
    try:
        reply = await run_model(pipeline, question_clip, PROMPT)
    finally:
        await pipeline.aclose()

    assert not reply.ok and reply.error is not None
    assert "the TTS 'spoken/tts' failed" in reply.error
    assert "xx-no-such-voice" in reply.error
    assert reply.text  # the LLM's text that arrived before the failure is kept


def test_split_sentences_keeps_the_unfinished_rest() -> None:
    assert split_sentences("Paris is the capital. It lies on") == (
        ["Paris is the capital."],
        "It lies on",
    )
    assert split_sentences("Hi. Paris is the capital.\nNext") == (
        ["Hi. Paris is the capital."],
        "Next",
    )


_ASR_LLM = (
    "asr: {kind: openai-transcription, model: whisper-1}\n    llm: {kind: openai, model: llama}\n"
)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "kind: local\n    model: Qwen/Qwen2-Audio-7B-Instruct\n    output: audio\n",
            "model 'm' (entry 1): output: audio is not possible for kind local",
        ),
        (
            "kind: gemini\n    model: gemini-2.5-flash\n    output: audio\n",
            "model 'm' (entry 1): output: audio is not possible for kind gemini",
        ),
        (
            f"kind: pipeline\n    output: audio\n    {_ASR_LLM}",
            "model 'm' (entry 1): output: audio needs a tts stage",
        ),
        (
            f"kind: pipeline\n    {_ASR_LLM}    tts: {{kind: espeak}}\n",
            "model 'm' (entry 1): a tts stage speaks only with output: audio",
        ),
        (
            f"kind: pipeline\n    output: audio\n    {_ASR_LLM}    tts: {{kind: festival}}\n",
            "key 'tts.kind': kind must be one of espeak, openai-speech",
        ),
        (
            "kind: openai\n    model: gpt\n    output: audio\n    modalities: [text]\n",
            "output: audio needs the audio modality",
        ),
    ],
)
def test_output_audio_is_refused_where_it_cannot_work(entry: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_models_config(f"models:\n  - name: m\n    {entry}")
    assert message in caught.value.message


def test_registry_builds_speaking_models_and_says_which_speak(tmp_path: Path) -> None:
    config = tmp_path / "models.yaml"
    config.write_text(
        "models:\n"
        "  - {name: gpt-spoken, kind: openai, model: gpt-audio-mini, output: audio, voice: sage}\n"
        "  - {name: gpt-text, kind: openai, model: gpt-4o}\n"
        f"  - name: piped\n    kind: pipeline\n    output: audio\n    {_ASR_LLM}"
        "    tts: {kind: espeak, voice: en-us, speed: 1.5}\n"
    )
    entries = model_entries(load_settings(models_config=config))

    assert [entry.speaks for entry in entries] == [True, False, True]
    built = [entry.build() for entry in entries]
    assert [can_speak(model) for model in built] == [True, False, True]
    gpt, _, piped = built
    assert isinstance(gpt, OpenAIChatModel)
    assert gpt._request_body([])["audio"] == {"voice": "sage", "format": "pcm16"}
    assert isinstance(piped, PipelineModel) and isinstance(piped.tts, EspeakSynthesiser)
    assert piped.tts.voice == "en-us" and piped.tts.words_per_minute == 262


def test_wav_of_a_spoken_reply_decodes_to_its_duration() -> None:
    clip = decode_audio(pcm16_wav(sine_pcm16(1.0), SPEECH_SAMPLE_RATE_HZ))
    assert clip.duration_s == pytest.approx(1.0, abs=0.01)
    assert np.abs(clip.samples).max() > 0.2
