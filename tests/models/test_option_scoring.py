"""Constrained decoding: in-process models score candidate answers by log-likelihood.

Every score is checked against an independent computation in this file: the prompt built here
with the processor or tokenizer, the option's ids appended, one plain forward pass, and the sum
of ``log_softmax`` at the positions before each option token. ``greedy`` is checked against
``generate`` with ``do_sample=False``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from helpers.tiny_models import WORDS, build_tiny_qwen2_audio, build_tiny_text_lm
from lamarena.audio import AudioClip
from lamarena.bench.scoring.parsing import parse_label
from lamarena.errors import ConfigError, ModelError
from lamarena.models.base import OptionScore, OptionScorer, TextOptionScorer, can_score_options
from lamarena.models.local import FasterWhisperTranscriber, LocalAudioLM, LocalTextLM
from lamarena.models.loglik import continuation_ids
from lamarena.models.offline import whisper_tiny_en_dir
from lamarena.models.openai_compat import OpenAIChatModel
from lamarena.models.pipeline import PipelineModel

ATOL = 1e-5
YES_NO_PROMPT = "Is the speaker asking a question? Answer yes or no."
SYSTEM_PROMPT = "You are a helpful assistant."
TRANSCRIPT = "what is the capital of france"


@pytest.fixture(scope="module")
def tiny_audio_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2_audio(tmp_path_factory.mktemp("tiny-qwen2-audio"))


@pytest.fixture(scope="module")
def tiny_text_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_text_lm(tmp_path_factory.mktemp("tiny-text-lm"))


@pytest.fixture
def audio_lm(tiny_audio_lm_dir: Path) -> LocalAudioLM:
    return LocalAudioLM("tiny-audio", tiny_audio_lm_dir, max_new_tokens=8, local_files_only=True)


@pytest.fixture
def text_lm(tiny_text_lm_dir: Path) -> LocalTextLM:
    return LocalTextLM("tiny-text", tiny_text_lm_dir, max_new_tokens=8, local_files_only=True)


# --- the independent computation -------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    logprob: float
    ids: list[int]
    greedy: bool  # generate(max_new_tokens=len(ids), do_sample=False) gives exactly ``ids``


def audio_prompt(model: LocalAudioLM, clip: AudioClip, prompt: str) -> tuple[Any, str, Any]:
    """The tokenizer, templated text and model inputs, built here as Qwen2-Audio documents it."""
    processor, _weights = model._weights()
    conversation = [
        {
            "role": "user",
            "content": [{"type": "audio", "audio": clip.samples}, {"type": "text", "text": prompt}],
        }
    ]
    text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    inputs = processor(
        text=text, audio=[clip.samples], sampling_rate=clip.sample_rate_hz, return_tensors="pt"
    )
    return processor.tokenizer, text, dict(inputs)


def audio_prompt_inputs(model: LocalAudioLM, clip: AudioClip, prompt: str) -> tuple[Any, Any]:
    tokenizer, _text, inputs = audio_prompt(model, clip, prompt)
    return tokenizer, inputs


def text_prompt_inputs(model: LocalTextLM, text: str, prompt: str) -> tuple[Any, Any]:
    """The tokenizer and the chat's model inputs: system prompt, then ``text`` as the user."""
    tokenizer, _weights = model._weights()
    messages = [{"role": "system", "content": prompt}, {"role": "user", "content": text}]
    inputs = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    return tokenizer, dict(inputs)


def reference(weights: Any, tokenizer: Any, inputs: dict[str, Any], option: str) -> Reference:
    """Score ``option`` after ``inputs`` with one plain forward pass, and generate greedily."""
    ids: list[int] = tokenizer(option, add_special_tokens=False)["input_ids"]
    start = inputs["input_ids"].shape[1]
    full = dict(inputs)
    full["input_ids"] = torch.cat([inputs["input_ids"], torch.tensor([ids])], dim=1)
    full["attention_mask"] = torch.ones_like(full["input_ids"])
    with torch.no_grad():
        logits = weights(**full).logits[0].double()
        logprobs = torch.log_softmax(logits, dim=-1)
        generated = weights.generate(**inputs, max_new_tokens=len(ids), do_sample=False)
    total = sum(float(logprobs[start - 1 + i, token]) for i, token in enumerate(ids))
    return Reference(total, ids, generated[0, start:].tolist() == ids)


def assert_matches(score: OptionScore, option: str, expected: Reference) -> None:
    assert score.text == option
    assert score.n_tokens == len(expected.ids)
    assert score.logprob == pytest.approx(expected.logprob, abs=ATOL)
    assert score.greedy is expected.greedy


def greedy_words(weights: Any, inputs: dict[str, Any], tokenizer: Any, n: int) -> list[str]:
    with torch.no_grad():
        generated = weights.generate(**inputs, max_new_tokens=n, do_sample=False)
    tokens: list[str] = tokenizer.convert_ids_to_tokens(
        generated[0, inputs["input_ids"].shape[1] :]
    )
    return tokens


# --- the protocols -----------------------------------------------------------------------------


def test_in_process_models_are_option_scorers(tmp_path: Path) -> None:
    audio = LocalAudioLM("a", tmp_path)
    text = LocalTextLM("t", tmp_path)
    assert isinstance(audio, OptionScorer)
    assert can_score_options(audio)
    assert isinstance(text, TextOptionScorer)
    assert not can_score_options(text)  # a text LM has no audio to score options for
    local = PipelineModel("p", FixedTranscriber(), text)
    remote = PipelineModel("r", FixedTranscriber(), StreamingOnlyLLM())
    assert can_score_options(local)
    assert isinstance(remote, OptionScorer)
    assert not can_score_options(remote)  # the pipeline says its remote LLM cannot


# --- Qwen2-Audio -------------------------------------------------------------------------------


async def test_audio_scores_equal_an_independent_forward_pass(
    audio_lm: LocalAudioLM, question_clip: AudioClip
) -> None:
    options = ["yes", "no", "paris", "the capital of france"]
    scores = await audio_lm.score_options(question_clip, YES_NO_PROMPT, options)
    tokenizer, inputs = audio_prompt_inputs(audio_lm, question_clip, YES_NO_PROMPT)
    weights = audio_lm._weights()[1]
    assert [score.text for score in scores] == options
    for score, option in zip(scores, options, strict=True):
        assert_matches(score, option, reference(weights, tokenizer, inputs, option))


async def test_options_of_different_token_lengths(
    audio_lm: LocalAudioLM, question_clip: AudioClip
) -> None:
    one, four = await audio_lm.score_options(question_clip, "Answer.", ["paris", "a city on river"])
    assert (one.n_tokens, four.n_tokens) == (1, 4)
    # Each further token multiplies in a probability below 1: a longer option built on a shorter
    # one scores lower.
    longer = await audio_lm.score_options(
        question_clip, "Answer.", ["paris", "paris is", "paris is a", "paris is a city"]
    )
    assert [score.n_tokens for score in longer] == [1, 2, 3, 4]
    logprobs = [score.logprob for score in longer]
    assert logprobs == sorted(logprobs, reverse=True)
    assert logprobs[0] == pytest.approx(one.logprob, abs=ATOL)


async def test_the_continuation_is_the_joint_tokenization_spliced_after_the_processor_ids(
    audio_lm: LocalAudioLM, question_clip: AudioClip
) -> None:
    tokenizer, text, inputs = audio_prompt(audio_lm, question_clip, YES_NO_PROMPT)
    assert text.endswith("<|im_start|>assistant\n")

    def encode(value: str) -> list[int]:
        ids: list[int] = tokenizer(value, add_special_tokens=False)["input_ids"]
        return ids

    # The processor expands <|AUDIO|> into one token per audio frame: more ids than the text's.
    assert inputs["input_ids"].shape[1] > len(encode(text))
    for option in ("yes", "a city on river"):
        joint = encode(text + option)[len(encode(text)) :]
        assert continuation_ids(encode, text, option) == joint == encode(option)


async def test_the_best_single_token_option_is_the_greedy_first_token(
    audio_lm: LocalAudioLM, question_clip: AudioClip
) -> None:
    scores = await audio_lm.score_options(question_clip, "Answer.", list(WORDS))
    tokenizer, inputs = audio_prompt_inputs(audio_lm, question_clip, "Answer.")
    [first] = greedy_words(audio_lm._weights()[1], inputs, tokenizer, 1)
    best = max(scores, key=lambda score: score.logprob)
    assert best.text == first
    assert [score.text for score in scores if score.greedy] == [first]


async def test_greedy_flags_a_multi_token_option_exactly_when_generation_produces_it(
    audio_lm: LocalAudioLM, question_clip: AudioClip
) -> None:
    tokenizer, inputs = audio_prompt_inputs(audio_lm, question_clip, "Answer.")
    weights = audio_lm._weights()[1]
    words = greedy_words(weights, inputs, tokenizer, 3)
    generated = " ".join(words)
    other_last = next(word for word in WORDS if word != words[-1])
    swapped = " ".join([*words[:2], other_last])
    scores = await audio_lm.score_options(question_clip, "Answer.", [generated, swapped])
    for score, option in zip(scores, [generated, swapped], strict=True):
        assert_matches(score, option, reference(weights, tokenizer, inputs, option))
    assert [score.greedy for score in scores] == [True, False]
    assert scores[0].n_tokens == scores[1].n_tokens == 3
    # Same first two tokens, and only the generated one takes the argmax last: it scores higher.
    assert scores[0].logprob > scores[1].logprob


async def test_the_constrained_answer_exists_where_the_free_reply_names_no_label(
    audio_lm: LocalAudioLM, question_clip: AudioClip
) -> None:
    free = "".join([delta async for delta in audio_lm.stream(question_clip, YES_NO_PROMPT)])
    # Hand-checked on the seed-0 tiny model: eight random words, none of them yes or no.
    assert free.split()
    assert not {"yes", "no"} & set(free.split())
    assert parse_label(free, ["yes", "no"]).label is None

    scores = await audio_lm.score_options(question_clip, YES_NO_PROMPT, ["yes", "no"])
    constrained = max(scores, key=lambda score: score.logprob).text
    tokenizer, inputs = audio_prompt_inputs(audio_lm, question_clip, YES_NO_PROMPT)
    weights = audio_lm._weights()[1]
    expected = {option: reference(weights, tokenizer, inputs, option) for option in ("yes", "no")}
    assert constrained == max(expected, key=lambda option: expected[option].logprob)
    assert constrained == "no"  # by about 0.2 nats on the seed-0 tiny model
    assert not any(score.greedy for score in scores)  # the free reply starts with neither


async def test_scoring_runs_in_a_worker_thread_under_no_grad(
    audio_lm: LocalAudioLM, question_clip: AudioClip, monkeypatch: pytest.MonkeyPatch
) -> None:
    await audio_lm.load()
    weights = audio_lm._weights()[1]
    seen: list[tuple[str, bool]] = []
    forward = weights.forward

    def recording_forward(*args: Any, **kwargs: Any) -> Any:
        seen.append((threading.current_thread().name, torch.is_grad_enabled()))
        return forward(*args, **kwargs)

    monkeypatch.setattr(weights, "forward", recording_forward)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    try:
        scores = await audio_lm.score_options(question_clip, "Answer.", list(WORDS[:6]))
    finally:
        ticking.cancel()
    assert len(scores) == len(seen) == 6  # one forward pass per option
    assert all(name != threading.main_thread().name for name, _grad in seen)
    assert not any(grad for _name, grad in seen)
    assert ticks > 1


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([], "no options to score"),
        ("yes", "must be a list of candidate answers"),
        (["yes", ""], "the option '' is no tokens"),
        (["no", "  \n"], r"the option '  \\n' is no tokens"),
    ],
)
async def test_options_that_cannot_be_scored_are_clear_model_errors(
    audio_lm: LocalAudioLM,
    text_lm: LocalTextLM,
    question_clip: AudioClip,
    options: Sequence[str],
    message: str,
) -> None:
    with pytest.raises(ModelError, match=message) as caught:
        await audio_lm.score_options(question_clip, YES_NO_PROMPT, options)
    assert caught.value.model == "tiny-audio"
    with pytest.raises(ModelError, match=message) as caught:
        await text_lm.score_text_options(TRANSCRIPT, YES_NO_PROMPT, options)
    assert caught.value.model == "tiny-text"


async def test_loading_failures_are_the_same_one_line_model_errors_as_when_streaming(
    tmp_path: Path, question_clip: AudioClip
) -> None:
    missing = LocalAudioLM("tiny-audio", tmp_path / "no-such-model")
    with pytest.raises(ModelError) as caught:
        await missing.score_options(question_clip, "Answer.", ["yes", "no"])
    with pytest.raises(ModelError) as streamed:
        await anext(missing.stream(question_clip, "Answer."))
    assert caught.value.message == streamed.value.message
    assert "does not exist" in caught.value.message
    assert "\n" not in caught.value.message
    with pytest.raises(ModelError, match=r"has no config\.json"):
        await LocalTextLM("llm", tmp_path).score_text_options(TRANSCRIPT, "Answer.", ["yes"])


async def test_a_failing_forward_pass_is_a_model_error(
    audio_lm: LocalAudioLM, question_clip: AudioClip, monkeypatch: pytest.MonkeyPatch
) -> None:
    await audio_lm.load()

    def failing_forward(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(audio_lm._weights()[1], "forward", failing_forward)
    with pytest.raises(ModelError, match="failed: RuntimeError: boom") as caught:
        await audio_lm.score_options(question_clip, "Answer.", ["yes", "no"])
    assert caught.value.model == "tiny-audio"


def test_joint_tokenization_falls_back_to_the_option_alone_across_a_merged_boundary() -> None:
    vocab = ["ab", "a", "b", "x", "\n"]

    def encode(text: str) -> list[int]:  # greedy longest match: "a" + "b" merge into "ab"
        ids: list[int] = []
        while text:
            piece = next(piece for piece in vocab if text.startswith(piece))
            ids.append(vocab.index(piece))
            text = text[len(piece) :]
        return ids

    # The context's trailing newline stays in the context (it is the generation prompt).
    assert continuation_ids(encode, "x\n", "ab") == [vocab.index("ab")]
    # "xa" + "b" tokenizes as x, ab: the joint tail would not follow the context's x, a.
    assert continuation_ids(encode, "xa", "b") == [vocab.index("b")]
    assert continuation_ids(encode, "xa", "") == []


# --- text LMs and pipelines --------------------------------------------------------------------


async def test_text_scores_equal_an_independent_forward_pass(text_lm: LocalTextLM) -> None:
    options = ["yes", "no", "paris", "the capital of france"]
    scores = await text_lm.score_text_options(TRANSCRIPT, SYSTEM_PROMPT, options)
    tokenizer, inputs = text_prompt_inputs(text_lm, TRANSCRIPT, SYSTEM_PROMPT)
    weights = text_lm._weights()[1]
    for score, option in zip(scores, options, strict=True):
        assert_matches(score, option, reference(weights, tokenizer, inputs, option))
    free = "".join([delta async for delta in text_lm.stream_text(TRANSCRIPT, SYSTEM_PROMPT)])
    assert free.split()[0] in WORDS
    first_word = await text_lm.score_text_options(TRANSCRIPT, SYSTEM_PROMPT, [free.split()[0]])
    assert first_word[0].greedy


class StreamingOnlyLLM:
    """A text model that can only generate, as every remote LLM adapter."""

    name = "streaming-only"

    async def stream_text(self, text: str, prompt: str) -> AsyncIterator[str]:
        yield "yes"


class FixedTranscriber:
    """A local stand-in ASR that always hears the same words, and counts how often it is asked."""

    name = "fixed-asr"

    def __init__(self, transcript: str = TRANSCRIPT) -> None:
        self.transcript = transcript
        self.calls = 0

    async def transcribe(self, clip: AudioClip) -> str:
        self.calls += 1
        return self.transcript


async def test_a_pipeline_scores_options_for_the_transcript_under_the_system_prompt(
    text_lm: LocalTextLM, question_clip: AudioClip
) -> None:
    asr = FixedTranscriber()
    pipeline = PipelineModel("pipe", asr, text_lm)
    options = ["yes", "no", "the capital"]
    scores = await pipeline.score_options(question_clip, SYSTEM_PROMPT, options)
    assert asr.calls == 1
    tokenizer, inputs = text_prompt_inputs(text_lm, TRANSCRIPT, SYSTEM_PROMPT)
    weights = text_lm._weights()[1]
    for score, option in zip(scores, options, strict=True):
        assert_matches(score, option, reference(weights, tokenizer, inputs, option))
    # The roles swapped (prompt as the user, transcript as the system) score differently.
    swapped = await text_lm.score_text_options(SYSTEM_PROMPT, TRANSCRIPT, options)
    assert [score.logprob for score in swapped] != pytest.approx(
        [score.logprob for score in scores], abs=ATOL
    )


async def test_a_pipeline_on_real_whisper_scores_what_it_heard(
    text_lm: LocalTextLM, question_clip: AudioClip
) -> None:
    whisper = FasterWhisperTranscriber("whisper", whisper_tiny_en_dir(), local_files_only=True)
    pipeline = PipelineModel("offline-pipe", whisper, text_lm)
    heard = await pipeline.transcribe(question_clip)
    assert "capital" in heard.lower()
    scores = await pipeline.score_options(question_clip, YES_NO_PROMPT, ["yes", "no"])
    direct = await text_lm.score_text_options(heard, YES_NO_PROMPT, ["yes", "no"])
    assert scores == direct


async def test_a_pipeline_with_a_remote_llm_cannot_score_options(
    question_clip: AudioClip,
) -> None:
    asr = FixedTranscriber()
    llm = OpenAIChatModel("remote-llm", "some-model", base_url="http://127.0.0.1:9/v1")
    pipeline = PipelineModel("remote-pipe", asr, llm)
    with pytest.raises(ConfigError, match=r"pipeline's LLM 'remote-llm' .* is not one") as caught:
        await pipeline.score_options(question_clip, YES_NO_PROMPT, ["yes", "no"])
    assert "in-process" in caught.value.message
    assert asr.calls == 0  # refused before transcribing
    await pipeline.aclose()


async def test_pipeline_scoring_failures_name_the_pipeline_and_its_part(
    text_lm: LocalTextLM, question_clip: AudioClip
) -> None:
    asr = FixedTranscriber()
    pipeline = PipelineModel("pipe", asr, text_lm)
    with pytest.raises(ModelError, match="no options to score") as caught:
        await pipeline.score_options(question_clip, YES_NO_PROMPT, [])
    assert caught.value.model == "pipe"
    assert asr.calls == 0
    with pytest.raises(
        ModelError, match=r"the LLM 'tiny-text' failed: .*'' is no tokens"
    ) as caught:
        await pipeline.score_options(question_clip, YES_NO_PROMPT, ["yes", ""])
    assert caught.value.model == "pipe"
    with pytest.raises(ModelError, match="heard no speech"):
        await PipelineModel("pipe", FixedTranscriber(" "), text_lm).score_options(
            question_clip, YES_NO_PROMPT, ["yes"]
        )
