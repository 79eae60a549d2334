"""Request options, and how a reply ends: a service's stop is never an empty success.

The token limit's field, spoken-reply settings, Gemini's thinking budget, and replies a service
stopped or cut before any text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from helpers.fake_gemini import DEFAULT_DELTAS as GEMINI_DELTAS
from helpers.fake_gemini import FakeGemini
from helpers.fake_openai import DEFAULT_DELTAS, FakeOpenAI
from lamarena.audio import AudioClip
from lamarena.errors import ConfigError
from lamarena.models.base import ModelTimeouts
from lamarena.models.config import parse_models_config
from lamarena.models.gemini import GeminiModel
from lamarena.models.openai_compat import OpenAIChatModel, default_token_limit_field
from lamarena.models.registry import ask_model
from lamarena.models.runtime import run_model
from lamarena.settings import load_settings

PROMPT = "Respond conversationally to the speech provided."
TIMEOUTS = ModelTimeouts(connect_s=1.0, first_token_s=2.0)


def _chat(base_url: str, **options: Any) -> OpenAIChatModel:
    return OpenAIChatModel("lam", "m", base_url=base_url, timeouts=TIMEOUTS, **options)


def _gemini(base_url: str, **options: Any) -> GeminiModel:
    return GeminiModel(
        "gem", "gemini-test", api_key="AIza-k", base_url=base_url, timeouts=TIMEOUTS, **options
    )


def _thinking_budget(body: dict[str, Any]) -> object:
    """The thinking budget a Gemini request carries, if any.

    google-genai 3.6 writes ``thinkingConfig`` with its proto field name, ``thinking_budget``;
    the API's JSON parser accepts both that and ``thinkingBudget`` (protobuf's JSON mapping).
    """
    config = body.get("generationConfig", {}).get("thinkingConfig")
    if config is None:
        return None
    return config.get("thinkingBudget", config.get("thinking_budget"))


def _entry(extra: str, kind: str = "openai") -> str:
    return f"models:\n  - name: m\n    kind: {kind}\n    model: x\n{extra}"


# -- the token limit ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base_url", "field"),
    [
        ("https://api.openai.com/v1", "max_completion_tokens"),
        ("https://API.OpenAI.com/v1/", "max_completion_tokens"),
        ("http://127.0.0.1:8000/v1", "max_tokens"),
        ("https://api.openai.com.example.org/v1", "max_tokens"),
    ],
)
def test_the_token_limit_field_follows_the_server(base_url: str, field: str) -> None:
    assert default_token_limit_field(base_url) == field


async def test_openai_s_api_gets_max_completion_tokens() -> None:
    model = OpenAIChatModel("lam", "gpt-audio-mini", max_tokens=64)  # OpenAI's API; no request
    try:
        body = model._request_body([])
    finally:
        await model.aclose()
    assert body.get("max_completion_tokens") == 64 and "max_tokens" not in body


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({}, "max_tokens"),
        ({"token_limit_field": "max_completion_tokens"}, "max_completion_tokens"),
        ({"token_limit_field": "max_tokens"}, "max_tokens"),
    ],
)
async def test_a_compatible_server_gets_the_field_it_is_configured_for(
    options: dict[str, Any], field: str, question_clip: AudioClip
) -> None:
    fake = FakeOpenAI()
    with fake.serve() as server:
        model = _chat(server.base_url, max_tokens=64, **options)
        try:
            reply = await run_model(model, question_clip, PROMPT)
        finally:
            await model.aclose()
    assert reply.ok, reply.error
    (request,) = fake.chat_requests
    assert request.json is not None
    assert request.json[field] == 64
    other = {"max_tokens", "max_completion_tokens"} - {field}
    assert not other & set(request.json)


def test_token_limit_field_loads_from_models_yaml() -> None:
    (spec,) = parse_models_config(_entry("    token_limit_field: max_completion_tokens\n")).models
    assert spec.kind == "openai" and spec.token_limit_field == "max_completion_tokens"
    (default,) = parse_models_config(_entry("")).models
    assert default.kind == "openai" and default.token_limit_field is None
    with pytest.raises(ConfigError, match="key 'token_limit_field'"):
        parse_models_config(_entry("    token_limit_field: max_new_tokens\n"))


# -- spoken replies ----------------------------------------------------------------------------


def test_audio_voice_is_the_same_key_as_voice() -> None:
    (spec,) = parse_models_config(_entry("    output: audio\n    audio_voice: verse\n")).models
    assert spec.kind == "openai" and spec.voice == "verse"
    (spec,) = parse_models_config(_entry("    output: audio\n    voice: sage\n")).models
    assert spec.kind == "openai" and spec.voice == "sage"
    with pytest.raises(ConfigError, match="give voice or audio_voice"):
        parse_models_config(_entry("    voice: sage\n    audio_voice: verse\n"))


@pytest.mark.parametrize("audio_format", ["wav", "aac", "mp3", "flac", "opus"])
def test_a_format_that_cannot_stream_is_refused(audio_format: str) -> None:
    with pytest.raises(ConfigError, match=f"audio_format: {audio_format} cannot stream"):
        parse_models_config(_entry(f"    output: audio\n    audio_format: {audio_format}\n"))
    with pytest.raises(ConfigError, match=f"audio_format {audio_format} cannot stream"):
        _chat("http://127.0.0.1:9/v1", modalities=["text", "audio"], audio_format=audio_format)
    # Unused without the audio modality: a text model may keep it.
    (spec,) = parse_models_config(_entry(f"    audio_format: {audio_format}\n")).models
    assert spec.kind == "openai" and spec.audio_format == audio_format
    with pytest.raises(ConfigError, match="key 'audio_format'"):
        parse_models_config(_entry("    audio_format: ogg\n"))


# -- how an OpenAI reply ends ------------------------------------------------------------------


async def test_a_reply_the_content_filter_withheld_is_an_error(question_clip: AudioClip) -> None:
    fake = FakeOpenAI(deltas=())
    fake.finish_reason = "content_filter"
    with fake.serve() as server:
        model = _chat(server.base_url)
        try:
            reply = await run_model(model, question_clip, PROMPT)
        finally:
            await model.aclose()
    assert not reply.ok
    assert reply.error is not None and "content_filter" in reply.error


async def test_a_reply_cut_before_any_text_is_an_error(question_clip: AudioClip) -> None:
    fake = FakeOpenAI(deltas=())
    fake.finish_reason = "length"
    with fake.serve() as server:
        model = _chat(server.base_url, max_tokens=5)
        try:
            reply = await run_model(model, question_clip, PROMPT)
        finally:
            await model.aclose()
    assert not reply.ok and reply.text == ""
    assert reply.error is not None
    assert "token limit before any text" in reply.error and "max_tokens (now 5)" in reply.error


async def test_a_reply_cut_after_some_text_is_complete(question_clip: AudioClip) -> None:
    fake = FakeOpenAI()
    fake.finish_reason = "length"
    with fake.serve() as server:
        model = _chat(server.base_url, max_tokens=5)
        try:
            reply = await run_model(model, question_clip, PROMPT)
        finally:
            await model.aclose()
    assert reply.ok and reply.text == "".join(DEFAULT_DELTAS)


# -- Gemini: thinking budget and how a reply ends ----------------------------------------------


@pytest.mark.parametrize("budget", [0, 512, -1])
async def test_gemini_sends_the_thinking_budget(budget: int, question_clip: AudioClip) -> None:
    fake = FakeGemini()
    with fake.serve() as server:
        model = _gemini(server.base_url, thinking_budget=budget)
        try:
            reply = await run_model(model, question_clip, PROMPT)
        finally:
            await model.aclose()
    assert reply.ok, reply.error
    (request,) = fake.requests
    assert _thinking_budget(request.json) == budget


async def test_gemini_without_a_budget_sends_no_thinking_config(question_clip: AudioClip) -> None:
    fake = FakeGemini()
    with fake.serve() as server:
        model = _gemini(server.base_url)
        try:
            await run_model(model, question_clip, PROMPT)
        finally:
            await model.aclose()
    (request,) = fake.requests
    assert _thinking_budget(request.json) is None


async def test_thinking_budget_loads_from_models_yaml_and_reaches_the_request(
    tmp_path: Path, question_clip: AudioClip, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="key 'thinking_budget'"):
        parse_models_config(_entry("    thinking_budget: -2\n", kind="gemini"))
    with pytest.raises(ConfigError, match="key 'thinking_budget'"):
        parse_models_config(_entry("    thinking_budget: 0\n"))  # not an openai key
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-test")
    fake = FakeGemini()
    with fake.serve() as server:
        path = tmp_path / "models.yaml"
        path.write_text(
            _entry(f"    base_url: {server.base_url}\n    thinking_budget: 0\n", kind="gemini")
        )
        reply = await ask_model(load_settings(models_config=path), "m", question_clip)
    assert reply.ok, reply.error
    assert _thinking_budget(fake.requests[0].json) == 0


@pytest.mark.parametrize(
    "reason", ["SAFETY", "RECITATION", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "OTHER"]
)
async def test_gemini_stopped_before_any_text_is_an_error_naming_the_reason(
    reason: str, question_clip: AudioClip
) -> None:
    fake = FakeGemini(deltas=())
    fake.finish_reason = reason
    with fake.serve() as server:
        model = _gemini(server.base_url)
        try:
            reply = await run_model(model, question_clip, PROMPT)
        finally:
            await model.aclose()
    assert not reply.ok and reply.text == ""
    assert reply.error == f"model 'gem': the service stopped the reply (finishReason {reason})"


async def test_gemini_stopped_mid_reply_keeps_the_text_but_is_an_error(
    question_clip: AudioClip,
) -> None:
    fake = FakeGemini()
    fake.finish_reason = "SAFETY"
    with fake.serve() as server:
        model = _gemini(server.base_url)
        try:
            reply = await run_model(model, question_clip, PROMPT)
        finally:
            await model.aclose()
    assert not reply.ok and reply.text == "".join(GEMINI_DELTAS)
    assert reply.error is not None and "(finishReason SAFETY)" in reply.error


async def test_gemini_spending_max_tokens_before_any_text_is_an_error(
    question_clip: AudioClip,
) -> None:
    fake = FakeGemini(deltas=())
    fake.finish_reason = "MAX_TOKENS"
    fake.thoughts_tokens = 50  # a thinking model spent the limit thinking
    with fake.serve() as server:
        model = _gemini(server.base_url, max_tokens=50)
        try:
            reply = await run_model(model, question_clip, PROMPT)
        finally:
            await model.aclose()
    assert not reply.ok and reply.text == ""
    assert reply.error is not None
    assert "MAX_TOKENS" in reply.error and "thinking_budget" in reply.error
    assert reply.usage is not None and reply.usage.output_tokens == 50
