"""An API key never reaches a message, a reply or a traceback, even when a server echoes it."""

from __future__ import annotations

import traceback

import pytest

from helpers.fake_gemini import FakeGemini
from helpers.fake_openai import FakeOpenAI
from lamarena.audio import AudioClip
from lamarena.errors import ModelError
from lamarena.models.gemini import GeminiModel
from lamarena.models.openai_compat import OpenAIChatModel

KEY = "sk-live-0123456789abcdefSECRET"


async def _failure(model: OpenAIChatModel | GeminiModel, clip: AudioClip) -> ModelError:
    try:
        with pytest.raises(ModelError) as caught:
            async for _ in model.stream(clip, "prompt"):
                pass
    finally:
        await model.aclose()
    return caught.value


@pytest.mark.parametrize("status", [400, 500])
async def test_openai_errors_and_their_tracebacks_hide_an_echoed_key(
    status: int, question_clip: AudioClip
) -> None:
    fake = FakeOpenAI()
    fake.fail_next(status, f"bad request from key {KEY}", times=5)
    with fake.serve() as server:
        model = OpenAIChatModel(
            "o", "m", base_url=server.base_url, api_key=KEY, max_retries=0, retry_backoff_s=0.01
        )
        error = await _failure(model, question_clip)
    assert "bad request from key ***" in str(error)
    assert KEY not in "".join(traceback.format_exception(error))


@pytest.mark.parametrize("status", [400, 500])
async def test_gemini_errors_and_their_tracebacks_hide_an_echoed_key(
    status: int, question_clip: AudioClip
) -> None:
    fake = FakeGemini()
    fake.fail_next(status, f"bad request from key {KEY}", times=5)
    with fake.serve() as server:
        model = GeminiModel(
            "g", "m", base_url=server.base_url, api_key=KEY, max_retries=0, retry_backoff_s=0.01
        )
        error = await _failure(model, question_clip)
    assert "bad request from key ***" in str(error)
    assert KEY not in "".join(traceback.format_exception(error))
