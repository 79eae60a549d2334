"""Token usage and cost: adapters report what their service counted, per request, never a guess."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.fake_gemini import DEFAULT_DELTAS as GEMINI_DELTAS
from helpers.fake_gemini import DEFAULT_PROMPT_TOKENS as GEMINI_PROMPT_TOKENS
from helpers.fake_gemini import FakeGemini, FakeGeminiServer
from helpers.fake_openai import (
    DEFAULT_DELTAS,
    DEFAULT_PROMPT_TOKENS,
    STREAM_OPTIONS_REJECTED,
    FakeOpenAI,
    FakeOpenAIServer,
)
from lamarena.audio import AudioClip
from lamarena.errors import ConfigError, ModelError
from lamarena.models.base import ModelTimeouts, ReplyStream, TokenPrices, Usage, reported_usage
from lamarena.models.config import parse_models_config
from lamarena.models.gemini import GeminiModel
from lamarena.models.openai_compat import OpenAIChatModel, OpenAITranscriber
from lamarena.models.pipeline import PipelineModel
from lamarena.models.registry import ask_model, model_entries
from lamarena.models.runtime import run_model
from lamarena.settings import load_settings

PROMPT = "Respond conversationally to the speech provided."
TIMEOUTS = ModelTimeouts(connect_s=1.0, first_token_s=2.0)
OPENAI_WORDS = len("".join(DEFAULT_DELTAS).split())
GEMINI_WORDS = len("".join(GEMINI_DELTAS).split())


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
def server(fake: FakeOpenAI) -> Iterator[FakeOpenAIServer]:
    with fake.serve() as server:
        yield server


def _chat(base_url: str, **options: Any) -> OpenAIChatModel:
    return OpenAIChatModel(
        "fake-lam", "fake-audio-model", base_url=base_url, timeouts=TIMEOUTS, **options
    )


@pytest.fixture
async def model(server: FakeOpenAIServer) -> AsyncIterator[OpenAIChatModel]:
    chat = _chat(server.base_url)
    try:
        yield chat
    finally:
        await chat.aclose()


# -- the value types ------------------------------------------------------------------------


def test_usage_totals_only_what_is_known() -> None:
    assert Usage(input_tokens=10, output_tokens=5).total_tokens == 15
    assert Usage(input_tokens=10, output_tokens=None).total_tokens is None
    assert Usage.reported(-1, True) == Usage(None, None)  # nonsense from a server is not a count
    assert Usage.reported(3, 4) == Usage(3, 4)
    assert Usage.from_dict(Usage(3, None).as_dict()) == Usage(3, None)
    assert Usage.from_dict({"input_tokens": None, "output_tokens": None}) is None
    assert Usage.from_dict("not a dict") is None


def test_cost_needs_both_counts() -> None:
    prices = TokenPrices(input_per_million=2.5, output_per_million=10.0)
    assert prices.cost_usd(Usage(1_000_000, 200_000)) == pytest.approx(4.5)
    assert prices.cost_usd(Usage(1000, None)) is None
    assert prices.cost_usd(None) is None


async def test_a_plain_generator_adapter_reports_no_usage(question_clip: AudioClip) -> None:
    class Local:
        name = "local"

        async def stream(self, clip: AudioClip, prompt: str) -> AsyncIterator[str]:
            yield "hello"

    reply = await run_model(Local(), question_clip, PROMPT)
    assert reply.ok and reply.usage is None


# -- OpenAI-compatible servers ---------------------------------------------------------------


async def test_the_final_usage_chunk_becomes_the_reply_s_usage(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    reply = await run_model(model, question_clip, PROMPT)

    assert reply.ok
    assert reply.text == "".join(DEFAULT_DELTAS)  # the usage chunk (no choices) adds no text
    assert reply.usage == Usage(input_tokens=DEFAULT_PROMPT_TOKENS, output_tokens=OPENAI_WORDS)
    assert reply.usage.total_tokens == DEFAULT_PROMPT_TOKENS + OPENAI_WORDS
    (request,) = fake.chat_requests
    assert request.json is not None
    assert request.json["stream_options"] == {"include_usage": True}


async def test_a_text_reply_reports_usage_on_its_stream(
    model: OpenAIChatModel, fake: FakeOpenAI
) -> None:
    fake.usage_for = lambda body: (40, 3)
    stream = model.stream_text("What is the capital of France?", "Answer briefly.")
    assert isinstance(stream, ReplyStream)
    assert stream.usage is None  # nothing is sent before the stream is read
    assert fake.chat_requests == []

    text = "".join([delta async for delta in stream])

    assert text == "".join(DEFAULT_DELTAS)
    assert reported_usage(stream) == Usage(40, 3)


async def test_concurrent_streams_on_one_adapter_each_get_their_own_usage(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    # Each request's prompt names its own count; all streams are open at the same time.
    def usage_for(body: dict[str, Any]) -> tuple[int, int]:
        text = body["messages"][0]["content"][0]["text"]
        number = int(text.removeprefix("question "))
        return 100 + number, number

    fake.usage_for = usage_for
    fake.first_token_delay_s = 0.2
    fake.delta_delay_s = 0.01

    replies = await asyncio.gather(
        *(run_model(model, question_clip, f"question {n}") for n in range(8))
    )

    assert fake.max_in_flight == 8
    assert [reply.usage for reply in replies] == [Usage(100 + n, n) for n in range(8)]


async def test_report_usage_off_sends_no_stream_options(
    server: FakeOpenAIServer, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.reject_stream_options = True
    model = _chat(server.base_url, report_usage=False)
    try:
        reply = await run_model(model, question_clip, PROMPT)
    finally:
        await model.aclose()

    assert reply.ok and reply.text == "".join(DEFAULT_DELTAS)
    assert reply.usage is None
    (request,) = fake.chat_requests
    assert request.json is not None
    assert "stream_options" not in request.json


async def test_a_server_that_rejects_stream_options_says_to_turn_report_usage_off(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.reject_stream_options = True

    with pytest.raises(ModelError) as caught:
        _ = [delta async for delta in model.stream(question_clip, PROMPT)]

    message = caught.value.message
    assert STREAM_OPTIONS_REJECTED in message
    assert "report_usage: false" in message
    assert message.startswith("model 'fake-lam': the request was rejected (400)")
    assert len(fake.chat_requests) == 1  # a 400 is not retried


async def test_a_server_that_sends_no_usage_gives_none(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.send_usage = False  # accepts stream_options and ignores it

    reply = await run_model(model, question_clip, PROMPT)

    assert reply.ok and reply.usage is None


async def test_a_stream_cut_short_before_the_usage_chunk_has_no_usage(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.delta_delay_s = 0.5
    reply = await run_model(
        model, question_clip, PROMPT, timeouts=ModelTimeouts(first_token_s=2.0, total_s=0.3)
    )
    assert not reply.ok and reply.text  # some text arrived, then the limit struck
    assert reply.usage is None


# -- Gemini ------------------------------------------------------------------------------------


@pytest.fixture
def gemini_fake() -> FakeGemini:
    return FakeGemini()


@pytest.fixture
def gemini_server(gemini_fake: FakeGemini) -> Iterator[FakeGeminiServer]:
    with gemini_fake.serve() as server:
        yield server


@pytest.fixture
async def gemini(gemini_server: FakeGeminiServer) -> AsyncIterator[GeminiModel]:
    model = GeminiModel(
        "fake-gemini", "gemini-test", api_key="AIza-test-key", base_url=gemini_server.base_url
    )
    try:
        yield model
    finally:
        await model.aclose()


async def test_gemini_reports_the_last_usage_metadata(
    gemini: GeminiModel, question_clip: AudioClip
) -> None:
    reply = await run_model(gemini, question_clip, PROMPT)

    assert reply.ok and reply.text == "".join(GEMINI_DELTAS)
    assert reply.usage == Usage(input_tokens=GEMINI_PROMPT_TOKENS, output_tokens=GEMINI_WORDS)


async def test_gemini_thinking_tokens_count_as_output(
    gemini: GeminiModel, gemini_fake: FakeGemini
) -> None:
    gemini_fake.thoughts_tokens = 30
    stream = gemini.stream_text("What is the capital of France?", "Answer briefly.")
    _ = [delta async for delta in stream]
    assert reported_usage(stream) == Usage(GEMINI_PROMPT_TOKENS, GEMINI_WORDS + 30)


async def test_gemini_without_usage_metadata_gives_none(
    gemini: GeminiModel, gemini_fake: FakeGemini, question_clip: AudioClip
) -> None:
    gemini_fake.send_usage = False
    reply = await run_model(gemini, question_clip, PROMPT)
    assert reply.ok and reply.usage is None


# -- pipelines ---------------------------------------------------------------------------------


@pytest.fixture
def asr_fake() -> FakeOpenAI:
    return FakeOpenAI(transcript="What is the capital of France?")


@pytest.fixture
def asr_server(asr_fake: FakeOpenAI) -> Iterator[FakeOpenAIServer]:
    with asr_fake.serve() as server:
        yield server


def _pipeline(asr_server: FakeOpenAIServer, llm: Any) -> PipelineModel:
    asr = OpenAITranscriber("p/asr", base_url=asr_server.base_url, timeouts=TIMEOUTS)
    return PipelineModel("p", asr, llm)


@pytest.mark.parametrize("report_usage", [True, False])
async def test_a_pipeline_reports_its_llm_s_usage(
    asr_server: FakeOpenAIServer,
    server: FakeOpenAIServer,
    question_clip: AudioClip,
    report_usage: bool,
) -> None:
    pipeline = _pipeline(asr_server, _chat(server.base_url, report_usage=report_usage))
    try:
        reply = await run_model(pipeline, question_clip, PROMPT)
        direct = pipeline.stream(question_clip, PROMPT)  # without run_model's transcript path
        text = "".join([delta async for delta in direct])
    finally:
        await pipeline.aclose()

    assert reply.ok and reply.transcript == "What is the capital of France?"
    assert text == reply.text
    expected = Usage(DEFAULT_PROMPT_TOKENS, OPENAI_WORDS) if report_usage else None
    assert reply.usage == expected
    assert direct.usage == expected


async def test_a_pipeline_with_a_gemini_llm_reports_gemini_s_usage(
    asr_server: FakeOpenAIServer, gemini_server: FakeGeminiServer, question_clip: AudioClip
) -> None:
    llm = GeminiModel("p/llm", "gemini-test", api_key="AIza-k", base_url=gemini_server.base_url)
    pipeline = _pipeline(asr_server, llm)
    try:
        reply = await run_model(pipeline, question_clip, PROMPT)
    finally:
        await pipeline.aclose()
    assert reply.usage == Usage(GEMINI_PROMPT_TOKENS, GEMINI_WORDS)


# -- models.yaml ---------------------------------------------------------------------------


def _yaml(base_url: str, extra: str = "", llm_extra: str = "") -> str:
    return (
        "models:\n"
        "  - name: priced\n"
        "    kind: openai\n"
        "    model: fake-audio-model\n"
        f"    base_url: {base_url}\n"
        "    max_retries: 0\n"
        f"{extra}"
        "  - name: piped\n"
        "    kind: pipeline\n"
        f"    asr: {{kind: openai-transcription, model: whisper-1, base_url: {base_url}}}\n"
        f"    llm: {{kind: openai, model: llama, base_url: {base_url}{llm_extra}}}\n"
        "    price_per_million_input_tokens: 0.1\n"
        "    price_per_million_output_tokens: 0.2\n"
    )


def test_prices_and_report_usage_load_from_models_yaml() -> None:
    prices = "    price_per_million_input_tokens: 2.5\n    price_per_million_output_tokens: 10\n"
    config = parse_models_config(_yaml("http://127.0.0.1:9/v1", prices))
    priced, piped = config.models
    assert priced.kind == "openai" and piped.kind == "pipeline"
    assert priced.prices == TokenPrices(2.5, 10.0)
    assert priced.report_usage is True
    assert piped.prices == TokenPrices(0.1, 0.2)
    assert piped.llm.report_usage is True
    bare = parse_models_config(_yaml("http://127.0.0.1:9/v1")).models[0]
    assert bare.kind == "openai" and bare.prices is None


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("    price_per_million_input_tokens: 2.5\n", "give both price_per_million_input_tokens"),
        (
            "    price_per_million_input_tokens: -1\n    price_per_million_output_tokens: 1\n",
            "key 'price_per_million_input_tokens'",
        ),
        (
            "    price_per_million_input_tokens: .nan\n    price_per_million_output_tokens: 1\n",
            "key 'price_per_million_input_tokens'",
        ),
        ("    report_usage: maybe\n", "key 'report_usage'"),
    ],
)
def test_bad_prices_are_refused_naming_the_model(extra: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_models_config(_yaml("http://127.0.0.1:9/v1", extra), source="my.yaml")
    assert "model 'priced' (entry 1)" in caught.value.message
    assert expected in caught.value.message


async def test_the_registry_passes_report_usage_and_prices(
    server: FakeOpenAIServer, fake: FakeOpenAI, tmp_path: Path, question_clip: AudioClip
) -> None:
    path = tmp_path / "models.yaml"
    prices = "    price_per_million_input_tokens: 2.5\n    price_per_million_output_tokens: 10\n"
    path.write_text(
        _yaml(server.base_url, prices + "    report_usage: false\n", ", report_usage: false")
    )
    settings = load_settings(models_config=path)
    priced, piped = model_entries(settings)
    assert priced.prices == TokenPrices(2.5, 10.0)
    assert priced.cost_usd(Usage(1000, 100)) == pytest.approx((1000 * 2.5 + 100 * 10) / 1e6)
    assert priced.cost_usd(None) is None
    assert piped.prices == TokenPrices(0.1, 0.2)

    reply = await ask_model(settings, "priced", question_clip)
    piped_reply = await ask_model(settings, "piped", question_clip)

    assert reply.ok and reply.usage is None
    assert piped_reply.ok and piped_reply.usage is None
    assert [r.json is not None and "stream_options" in r.json for r in fake.chat_requests] == [
        False,
        False,
    ]


# -- usage by modality and what it costs ----------------------------------------------------

AUDIO_PRICES = TokenPrices(
    input_per_million=2.5,
    output_per_million=10.0,
    input_audio_per_million=40.0,
    output_audio_per_million=80.0,
)
SPLIT = Usage(input_tokens=1000, output_tokens=200, input_audio_tokens=800, output_audio_tokens=150)


def test_a_cost_with_audio_tokens_prices_each_modality() -> None:
    # 200 text in at $2.5/M, 800 audio in at $40/M, 50 text out at $10/M, 150 audio out at $80/M.
    by_hand = (200 * 2.5 + 800 * 40.0 + 50 * 10.0 + 150 * 80.0) / 1_000_000
    assert by_hand == pytest.approx(0.045)
    assert AUDIO_PRICES.cost_usd(SPLIT) == pytest.approx(by_hand)
    assert SPLIT.input_text_tokens == 200 and SPLIT.output_text_tokens == 50


def test_without_audio_prices_or_a_split_every_token_costs_the_text_price() -> None:
    text_only = TokenPrices(2.5, 10.0)
    assert text_only.cost_usd(SPLIT) == pytest.approx((1000 * 2.5 + 200 * 10.0) / 1e6)
    unsplit = Usage(1000, 200)
    assert AUDIO_PRICES.cost_usd(unsplit) == pytest.approx((1000 * 2.5 + 200 * 10.0) / 1e6)
    assert unsplit.input_text_tokens == 1000 and unsplit.output_text_tokens == 200
    only_in = TokenPrices(2.5, 10.0, input_audio_per_million=40.0)
    assert only_in.cost_usd(SPLIT) == pytest.approx((200 * 2.5 + 800 * 40 + 200 * 10) / 1e6)


def test_usage_that_counts_nothing_is_not_reported() -> None:
    assert Usage.from_service(0, 0) is None  # the study's servers: zeros on every chunk
    assert Usage.from_service(0, 12) is None  # no request lamarena sends has no input
    assert Usage.from_service(None, None) is None
    assert Usage.from_service("12", -3) is None
    assert Usage.from_service(12, 0) == Usage(12, 0)  # an empty reply can cost nothing
    assert Usage.from_service(12, None) == Usage(12, None)
    # An audio part larger than its total is nonsense, not a count.
    assert Usage.from_service(10, 5, input_audio_tokens=11, output_audio_tokens=5) == Usage(
        10, 5, None, 5
    )


def test_the_split_is_stored_only_where_the_service_gave_one() -> None:
    assert Usage(3, 4).as_dict() == {"input_tokens": 3, "output_tokens": 4}
    stored = SPLIT.as_dict()
    assert stored == {
        "input_tokens": 1000,
        "output_tokens": 200,
        "input_audio_tokens": 800,
        "output_audio_tokens": 150,
    }
    assert Usage.from_dict(stored) == SPLIT
    assert Usage.from_dict({"input_tokens": 3, "output_tokens": 4}) == Usage(3, 4)


async def test_openai_usage_details_split_the_counts(
    model: OpenAIChatModel, fake: FakeOpenAI, question_clip: AudioClip
) -> None:
    fake.usage_for = lambda body: (1000, 200)
    fake.audio_usage = (800, 150)  # prompt_tokens_details / completion_tokens_details

    reply = await run_model(model, question_clip, PROMPT)

    assert reply.ok and reply.usage == SPLIT
    assert AUDIO_PRICES.cost_usd(reply.usage) == pytest.approx(0.045)


async def test_gemini_modality_details_split_the_counts(
    gemini: GeminiModel, gemini_fake: FakeGemini, question_clip: AudioClip
) -> None:
    gemini_fake.prompt_tokens = 1000
    gemini_fake.thoughts_tokens = 20
    gemini_fake.prompt_details = [
        {"modality": "TEXT", "tokenCount": 200},
        {"modality": "AUDIO", "tokenCount": 800},
    ]
    gemini_fake.candidates_details = [{"modality": "TEXT", "tokenCount": GEMINI_WORDS}]

    reply = await run_model(gemini, question_clip, PROMPT)

    assert reply.ok
    assert reply.usage == Usage(1000, GEMINI_WORDS + 20, 800, 0)
    assert reply.usage.input_text_tokens == 200


def test_audio_prices_load_from_models_yaml() -> None:
    prices = (
        "    price_per_million_input_tokens: 2.5\n    price_per_million_output_tokens: 10\n"
        "    price_per_million_input_audio_tokens: 40\n"
        "    price_per_million_output_audio_tokens: 80\n"
    )
    priced = parse_models_config(_yaml("http://127.0.0.1:9/v1", prices)).models[0]
    assert priced.kind == "openai" and priced.prices == AUDIO_PRICES
    gemini_yaml = (
        "models:\n  - {name: g, kind: gemini, model: gemini-2.5-flash,\n"
        "     price_per_million_input_tokens: 0.3, price_per_million_output_tokens: 2.5,\n"
        "     price_per_million_input_audio_tokens: 1.0}\n"
    )
    (gemini_spec,) = parse_models_config(gemini_yaml).models
    assert gemini_spec.kind == "gemini"
    assert gemini_spec.prices == TokenPrices(0.3, 2.5, input_audio_per_million=1.0)


def test_audio_prices_without_text_prices_are_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_models_config(
            _yaml("http://127.0.0.1:9/v1", "    price_per_million_input_audio_tokens: 40\n")
        )
    assert "audio prices need the text prices too" in caught.value.message
