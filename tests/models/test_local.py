"""In-process adapters on tiny random checkpoints saved to disk, loaded like real ones."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers.tiny_models import WORDS, build_tiny_qwen2_audio, build_tiny_text_lm
from lamarena.audio import AudioClip
from lamarena.errors import ConfigError, ModelError
from lamarena.models.base import AudioModel, EarlierTurn, TextModel, Transcriber
from lamarena.models.local import (
    CONVERSATION_AUDIO_WINDOWS,
    FasterWhisperTranscriber,
    LocalAudioLM,
    LocalTextLM,
)


@pytest.fixture(scope="session")
def tiny_audio_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2_audio(tmp_path_factory.mktemp("tiny-qwen2-audio"))


@pytest.fixture(scope="session")
def tiny_text_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_text_lm(tmp_path_factory.mktemp("tiny-text-lm"))


def audio_lm(directory: Path, **options: Any) -> LocalAudioLM:
    return LocalAudioLM("tiny-audio", directory, local_files_only=True, **options)


async def collect(stream: Any) -> list[str]:
    return [delta async for delta in stream]


def generation_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("lamarena:")]


async def wait_for_generation_threads() -> None:
    for _ in range(500):
        if not generation_threads():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"generation threads still running: {generation_threads()}")


def test_adapters_implement_the_protocols(tmp_path: Path) -> None:
    assert isinstance(audio_lm(tmp_path), AudioModel)
    assert isinstance(LocalTextLM("llm", tmp_path), TextModel)
    assert isinstance(FasterWhisperTranscriber("asr", tmp_path), Transcriber)


def test_construction_loads_nothing(tmp_path: Path) -> None:
    model = audio_lm(tmp_path / "not-yet-checked")
    assert not model.loaded
    assert model.load_s is None


async def test_audio_lm_streams_words_without_blocking_the_event_loop(
    tiny_audio_lm_dir: Path, question_clip: AudioClip
) -> None:
    model = audio_lm(tiny_audio_lm_dir, max_new_tokens=48)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    deltas: list[str] = []
    ticks_at_delta: list[int] = []
    try:
        async for delta in model.stream(question_clip, "Answer the question."):
            deltas.append(delta)
            ticks_at_delta.append(ticks)
    finally:
        ticking.cancel()

    assert len(deltas) >= 2
    # A generate() run on the event loop would deliver every delta with no tick in between.
    assert ticks_at_delta[-1] - ticks_at_delta[0] >= 3
    words = "".join(deltas).split()
    assert words
    assert set(words) <= set(WORDS)
    assert model.loaded


async def test_audio_lm_greedy_decoding_repeats_itself(
    tiny_audio_lm_dir: Path, question_clip: AudioClip
) -> None:
    model = audio_lm(tiny_audio_lm_dir, max_new_tokens=12)
    first = "".join(await collect(model.stream(question_clip, "Answer.")))
    second = "".join(await collect(model.stream(question_clip, "Answer.")))
    assert first == second
    assert first.strip()


async def test_concurrent_first_requests_load_the_weights_once(
    tiny_audio_lm_dir: Path, question_clip: AudioClip, caplog: pytest.LogCaptureFixture
) -> None:
    model = audio_lm(tiny_audio_lm_dir, max_new_tokens=4)
    with caplog.at_level(logging.INFO, logger="lamarena.models.local"):
        replies = await asyncio.gather(
            *(collect(model.stream(question_clip, "Answer.")) for _ in range(3))
        )
    assert all(replies)
    loads = [record for record in caplog.records if "loaded in" in record.getMessage()]
    assert len(loads) == 1
    assert model.load_s is not None


async def test_a_consumer_that_stops_listening_stops_generation(
    tiny_audio_lm_dir: Path, question_clip: AudioClip, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = audio_lm(tiny_audio_lm_dir, max_new_tokens=1500)
    await model.load()
    _processor, weights = model._weights()
    generated: list[int] = []
    original = weights.generate

    def counting_generate(**kwargs: Any) -> Any:
        output = original(**kwargs)
        generated.append(output.shape[1] - kwargs["input_ids"].shape[1])
        return output

    monkeypatch.setattr(weights, "generate", counting_generate)
    stream = model.stream(question_clip, "Answer.")
    assert await anext(stream)
    await stream.aclose()
    await wait_for_generation_threads()
    assert len(generated) == 1
    assert generated[0] < 1500


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (RuntimeError("boom"), "failed: RuntimeError: boom"),
        (MemoryError("no room"), "ran out of memory"),
    ],
)
async def test_generation_failures_become_model_errors(
    tiny_audio_lm_dir: Path,
    question_clip: AudioClip,
    monkeypatch: pytest.MonkeyPatch,
    failure: Exception,
    message: str,
) -> None:
    model = audio_lm(tiny_audio_lm_dir)
    await model.load()

    def failing_generate(**_kwargs: Any) -> Any:
        raise failure

    monkeypatch.setattr(model._weights()[1], "generate", failing_generate)
    with pytest.raises(ModelError, match=message) as caught:
        await collect(model.stream(question_clip, "Answer."))
    assert caught.value.model == "tiny-audio"


async def test_a_missing_model_directory_is_a_clear_model_error(
    tmp_path: Path, question_clip: AudioClip
) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelError) as caught:
        await collect(audio_lm(missing).stream(question_clip, "Answer."))
    assert caught.value.model == "tiny-audio"
    assert str(missing) in caught.value.message
    assert "does not exist" in caught.value.message


async def test_a_directory_without_a_checkpoint_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"has no config\.json"):
        await LocalTextLM("llm", tmp_path).load()


async def test_an_uncached_hub_id_offline_says_how_to_get_it(question_clip: AudioClip) -> None:
    model = LocalAudioLM("hub", "lamarena-tests/no-such-model", local_files_only=True)
    with pytest.raises(ModelError) as caught:
        await collect(model.stream(question_clip, "Answer."))
    assert "local_files_only" in caught.value.message
    assert "hf download lamarena-tests/no-such-model" in caught.value.message


async def test_a_missing_whisper_directory_is_a_model_error(
    tmp_path: Path, question_clip: AudioClip
) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        await FasterWhisperTranscriber("asr", tmp_path / "nothing").transcribe(question_clip)


def test_bad_options_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown dtype 'float8'"):
        LocalAudioLM("x", tmp_path, dtype="float8")
    with pytest.raises(ConfigError, match="needs a cache_dir"):
        LocalTextLM("x", tmp_path, gguf_file="model.gguf")
    with pytest.raises(ConfigError, match="shares its weights"):
        LocalTextLM("x", tmp_path).variant("y", dtype="bfloat16")
    with pytest.raises(ConfigError, match="not an option"):
        LocalTextLM("x", tmp_path).variant("y", beam_size=3)


async def test_text_lm_streams_a_reply_under_a_system_prompt(tiny_text_lm_dir: Path) -> None:
    model = LocalTextLM("tiny-text", tiny_text_lm_dir, max_new_tokens=16, local_files_only=True)
    deltas = await collect(model.stream_text("what is the capital of france", "Be helpful."))
    assert len(deltas) >= 2
    assert set("".join(deltas).split()) <= set(WORDS)


async def test_a_variant_shares_the_loaded_weights_but_not_the_decoding(
    tiny_text_lm_dir: Path,
) -> None:
    greedy = LocalTextLM("greedy", tiny_text_lm_dir, max_new_tokens=8, local_files_only=True)
    sampled = greedy.variant("sampled", temperature=1.5, top_p=0.95, instruction="Be brief.")
    await greedy.load()
    assert sampled.loaded
    assert (sampled.name, sampled.temperature, greedy.temperature) == ("sampled", 1.5, None)
    assert sampled._weights() is greedy._weights()
    replies = {"".join(await collect(sampled.stream_text("hello", "Answer."))) for _ in range(4)}
    assert len(replies) > 1  # sampling at a high temperature over random logits varies


# -- conversations -----------------------------------------------------------------------------


async def test_audio_lm_gets_both_turns_in_its_chat_template(
    tiny_audio_lm_dir: Path, question_clip: AudioClip, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = audio_lm(tiny_audio_lm_dir, max_new_tokens=4)
    await model.load()
    processor, weights = model._weights()
    follow_up = AudioClip.from_samples(question_clip.samples[: len(question_clip.samples) // 2])
    history = [EarlierTurn(question_clip, "paris is the capital")]

    prompt = model._prompt(follow_up, "Answer.", history)
    assert prompt.text.count("<|audio_bos|><|AUDIO|><|audio_eos|>") == 2
    first_audio = prompt.text.index("Audio 1:")
    reply = prompt.text.index("<|im_start|>assistant\nparis is the capital<|im_end|>")
    second_audio = prompt.text.index("Audio 2:")
    assert first_audio < reply < second_audio
    assert prompt.text.endswith("<|im_start|>assistant\n")

    seen: dict[str, Any] = {}
    original = weights.generate

    def recording_generate(**kwargs: Any) -> Any:
        seen.update(kwargs)
        return original(**kwargs)

    monkeypatch.setattr(weights, "generate", recording_generate)
    assert await collect(model.stream(follow_up, "Answer.", history))
    # One feature row per clip, in order: the full question, then the half-length follow-up.
    assert seen["input_features"].shape[0] == 2
    frames = seen["feature_attention_mask"].sum(-1).tolist()
    assert frames[0] > frames[1] > 0
    audio_tokens = int((seen["input_ids"] == processor.audio_token_id).sum())
    assert audio_tokens == sum((((n - 1) // 2 + 1) - 2) // 2 + 1 for n in frames)


async def test_audio_lm_refuses_a_conversation_past_its_audio_budget(
    tiny_audio_lm_dir: Path,
) -> None:
    model = audio_lm(tiny_audio_lm_dir, max_new_tokens=4)
    window = AudioClip.from_samples(np.full(30 * 16_000, 0.1, dtype=np.float32))
    history = [EarlierTurn(window, "yes") for _ in range(CONVERSATION_AUDIO_WINDOWS)]

    with pytest.raises(ModelError, match="start a new conversation") as caught:
        await collect(model.stream(window, "Answer.", history))
    assert caught.value.model == "tiny-audio"
    assert "150 s of audio over 5 turns" in caught.value.message
    # One clip fewer fits exactly.
    assert await collect(model.stream(window, "Answer.", history[1:]))


async def test_text_lm_gets_earlier_turns_in_its_chat_template(tiny_text_lm_dir: Path) -> None:
    model = LocalTextLM("tiny-text", tiny_text_lm_dir, max_new_tokens=4, local_files_only=True)
    await model.load()
    history = [("what is the capital of france", "paris")]

    prompt = model._prompt("and of seine", "Be helpful.", history)
    assert prompt.text == (
        "<|im_start|>system\nBe helpful.<|im_end|>\n"
        "<|im_start|>user\nwhat is the capital of france<|im_end|>\n"
        "<|im_start|>assistant\nparis<|im_end|>\n"
        "<|im_start|>user\nand of seine<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert await collect(model.stream_text("and of seine", "Be helpful.", history))
