"""Evaluating samples: one model, one dataset, one prompt variant, through the call cache.

:func:`process_samples` is the engine both the in-process runner and a Dask worker use. For each
sample not already done it renders the prompt, looks the call up in the cache by model spec,
audio sha256 and prompt, and only on a miss decodes the audio and calls the model (holding one
of the model's concurrency slots, taken *before* the next sample is read, so at most that many
clips are decoded at once); a complete reply goes into the cache. The answer is parsed (label
sets and options), scored, judged where a judge is configured, and handed to ``emit`` as a
``samples.jsonl`` row at once.

Under ``--decoding constrained`` a classification or multiple-choice sample is not generated:
the model (an in-process :class:`~lamarena.models.base.OptionScorer`) scores each label, or each
option letter of the sample, by the log-likelihood of its tokens after the prompt, and the
likeliest is the answer (ties go to the first, as lm-evaluation-harness's ``acc``). Nothing is
parsed, so nothing is unparsed; the row records ``decoding`` and ``option_logprobs``, and the
cache key holds the decoding and the candidates. Free-text sets (ASR, open answers) are
generated as usual and say ``decoding: free``.

A row's ``usage`` is ``{"input_tokens", "output_tokens", "cost_usd"}`` when the model's service
reported tokens for the call (a cached row: for the original call), plus ``input_audio_tokens``
and ``output_audio_tokens`` (parts of those totals) where the service split its count by
modality, with ``cost_usd`` from the model's prices in models.yaml (null without prices; audio
tokens at the audio prices where given); null when nothing was reported. The
counters add up what this run's calls reported and cost (cache hits cost nothing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lamarena.bench.data.loading import Sample, sample_clip
from lamarena.bench.data.prompts import render_prompt
from lamarena.bench.data.spec import CHOICE_LETTERS, DatasetSpec, Metric
from lamarena.bench.run.cache import CachedReply, CallCache, call_key
from lamarena.bench.run.judge import JUDGE_PROMPT_SHA256, Judge
from lamarena.bench.run.targets import ModelHandle, ModelTarget
from lamarena.bench.scoring.aggregate import cfmatch_score, sample_score
from lamarena.bench.scoring.parsing import ParsedAnswer, parse_choice, parse_label
from lamarena.bench.scoring.pedants import PedantsScorer, PedantsUnavailable
from lamarena.errors import AudioError, LamarenaError, ModelError
from lamarena.models.base import ModelTimeouts, OptionScorer, Reply, Usage
from lamarena.models.runtime import run_model

__all__ = [
    "CONSTRAINED",
    "RunCounters",
    "UnitContext",
    "candidates_for",
    "first_error",
    "parse_answer",
    "process_samples",
]

CONSTRAINED = "constrained"
"""The ``--decoding`` value under which in-process models score candidates."""

logger = logging.getLogger(__name__)

Row = dict[str, Any]


@dataclass
class RunCounters:
    """What happened, for run.json and the progress bar.

    Attributes:
        calls: model calls made (cache hits and resumed samples are not calls).
        cached: samples answered from the call cache.
        resumed: samples already done in the output folder.
        errors: rows with an error.
        judge_calls: judge calls made.
        input_tokens: input tokens of the calls that reported usage.
        output_tokens: output tokens of the calls that reported usage.
        usage_reported: calls whose service reported token usage.
        priced_calls: calls whose cost is known (usage with both counts, and prices).
        cost_usd: the cost of the priced calls, in US dollars.
    """

    calls: int = 0
    cached: int = 0
    resumed: int = 0
    errors: int = 0
    judge_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usage_reported: int = 0
    priced_calls: int = 0
    cost_usd: float = 0.0

    def count_usage(self, usage: Usage | None, cost_usd: float | None) -> None:
        """Add one call's reported usage and cost (None: not reported or not priced)."""
        if usage is None:
            return
        self.usage_reported += 1
        self.input_tokens += usage.input_tokens or 0
        self.output_tokens += usage.output_tokens or 0
        if cost_usd is not None:
            self.priced_calls += 1
            self.cost_usd += cost_usd

    def add(self, other: RunCounters) -> None:
        """Add another's counts to these."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report from a task group: its first lamarena error, else its first error."""
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        else:
            leaves.append(error)

    walk(group)
    return next((leaf for leaf in leaves if isinstance(leaf, LamarenaError)), leaves[0])


@dataclass
class UnitContext:
    """Everything one (model, dataset, prompt variant) needs.

    Attributes:
        target: the model evaluated.
        model: its adapter, built on the first call that the cache cannot answer.
        spec: the dataset.
        prompt_id: which prompt variant (0-based).
        template: that variant's text.
        cache: the call cache.
        slots: the model's concurrency limit (shared by all its units).
        timeouts: per-call limits.
        emit: receives every finished row.
        advance: called once per sample finished or found done (for progress).
        judge: the LLM judge for open answers, if any.
        pedants: the PEDANTS scorer (or why there is none).
        decoding: ``free`` or ``constrained`` (see the module docstring).
        counters: counts updated as samples finish.
    """

    target: ModelTarget
    model: ModelHandle
    spec: DatasetSpec
    prompt_id: int
    template: str
    cache: CallCache
    slots: asyncio.Semaphore
    timeouts: ModelTimeouts
    emit: Callable[[Row], None]
    advance: Callable[[bool], None]
    judge: Judge | None = None
    pedants: PedantsScorer | PedantsUnavailable | None = None
    decoding: str = "free"
    counters: RunCounters = field(default_factory=RunCounters)


def parse_answer(spec: DatasetSpec, sample: Sample, answer: str) -> ParsedAnswer | None:
    """The label or option letter in ``answer``; None for a dataset of free-text answers."""
    if sample.options is not None:
        return parse_choice(answer, sample.options)
    if spec.labels is not None and spec.metric.is_classification:
        return parse_label(answer, spec.labels, spec.aliases)
    return None


def candidates_for(spec: DatasetSpec, sample: Sample) -> list[str] | None:
    """What constrained decoding chooses among: the labels, or the sample's option letters.

    None for a free-text dataset (it is generated).
    """
    if sample.options is not None:
        return list(CHOICE_LETTERS[: len(sample.options)])
    if spec.labels is not None and spec.metric.is_classification:
        return list(spec.labels)
    return None


def _constrained(ctx: UnitContext, sample: Sample) -> list[str] | None:
    return candidates_for(ctx.spec, sample) if ctx.decoding == CONSTRAINED else None


def _row(
    ctx: UnitContext,
    sample: Sample,
    *,
    prediction: str | None,
    cached: bool,
    latency_s: float | None,
    ttft_s: float | None = None,
    usage: Usage | None = None,
    error: str | None = None,
    option_logprobs: dict[str, float] | None = None,
    notice: str | None = None,
) -> Row:
    candidates = _constrained(ctx, sample)
    if candidates is not None:
        parsed = None if prediction is None else ParsedAnswer(prediction, "constrained")
    else:
        parsed = None if prediction is None else parse_answer(ctx.spec, sample, prediction)
    usage_row = None
    if usage is not None:
        usage_row = {**usage.as_dict(), "cost_usd": ctx.target.entry.cost_usd(usage)}
    row: Row = {
        "model": ctx.target.name,
        "dataset": ctx.spec.name,
        "task": ctx.spec.task,
        "prompt_id": ctx.prompt_id,
        "sample_id": sample.sample_id,
        "reference": sample.reference,
        "prediction": prediction,
        "parsed": None if parsed is None else parsed.label,
        "score": None,
        "cached": cached,
        "latency_s": latency_s,
        "metric": ctx.spec.metric.value,
        "rule": None if parsed is None else parsed.rule,
        "error": error,
        "ttft_s": ttft_s,
        "usage": usage_row,
        "decoding": "free" if candidates is None else CONSTRAINED,
    }
    if option_logprobs is not None:
        row["option_logprobs"] = option_logprobs
    if notice is not None:  # e.g. the clip was cut to the model's max_audio_s
        row["notice"] = notice
    if sample.options is not None:
        row["n_options"] = len(sample.options)
    if ctx.spec.metric.is_open:
        row["question"] = sample.question
    return row


async def _judge(ctx: UnitContext, sample: Sample, row: Row) -> None:
    if ctx.judge is None or not ctx.spec.metric.is_open or row["error"]:
        return
    row["judge_model"] = ctx.judge.name
    row["judge_prompt_sha256"] = JUDGE_PROMPT_SHA256
    try:
        verdict = await ctx.judge.rate(sample.question or "", sample.reference, row["prediction"])
    except ModelError as exc:
        row["judge_score"] = None
        row["error"] = f"judge: {exc.message}"
        return
    row["judge_rating"] = verdict.rating
    row["judge_score"] = verdict.score
    row["judge_reply"] = verdict.reply[:300]
    row["judge_cached"] = verdict.cached
    if not verdict.cached:
        ctx.counters.judge_calls += 1


async def _finish(ctx: UnitContext, sample: Sample, row: Row) -> None:
    await _judge(ctx, sample, row)
    if not row["error"]:
        row["score"] = sample_score(row, ctx.pedants)
        if ctx.spec.metric is Metric.PEDANTS and isinstance(ctx.pedants, PedantsScorer):
            row["cfmatch"] = cfmatch_score(row, ctx.pedants)
    else:
        ctx.counters.errors += 1
    ctx.emit(row)
    ctx.advance(bool(row["cached"]))


async def _finish_releasing(ctx: UnitContext, sample: Sample, row: Row) -> None:
    try:
        await _finish(ctx, sample, row)
    finally:
        ctx.slots.release()


async def _call(ctx: UnitContext, sample: Sample, prompt: str, key: str) -> None:
    try:
        try:
            clip = sample_clip(sample)
        except AudioError as exc:
            await _finish(
                ctx,
                sample,
                _row(ctx, sample, prediction=None, cached=False, latency_s=None, error=exc.message),
            )
            return
        candidates = _constrained(ctx, sample)
        if candidates is None:
            reply = await run_model(ctx.model.get(), clip, prompt, timeouts=ctx.timeouts)
            scores = None
        else:
            reply, scores = await _score(ctx, clip, prompt, candidates)
    finally:
        ctx.slots.release()
    ctx.counters.calls += 1
    usage = reply.usage
    ctx.counters.count_usage(usage, ctx.target.entry.cost_usd(usage))
    if reply.ok:
        ctx.cache.put(
            key,
            CachedReply(
                text=reply.text,
                total_s=reply.total_s,
                ttft_s=reply.ttft_s,
                transcript=reply.transcript,
                usage=None if usage is None else usage.as_dict(),
                option_logprobs=scores,
                notice=reply.notice,
            ),
        )
    row = _row(
        ctx,
        sample,
        prediction=reply.text if reply.ok else None,
        cached=False,
        latency_s=reply.total_s,
        ttft_s=reply.ttft_s,
        usage=usage,
        error=reply.error,
        option_logprobs=scores,
        notice=reply.notice,
    )
    await _finish(ctx, sample, row)


async def _score(
    ctx: UnitContext, clip: Any, prompt: str, candidates: list[str]
) -> tuple[Reply, dict[str, float] | None]:
    """Score ``candidates`` (see the module docstring); the reply's text is the likeliest."""
    model = ctx.model.get()
    if not isinstance(model, OptionScorer):
        name = ctx.target.name
        return Reply(name, "", None, 0.0, error=f"model '{name}' cannot score options"), None
    started = time.perf_counter()
    try:
        scored = await asyncio.wait_for(
            model.score_options(clip, prompt, candidates), timeout=ctx.timeouts.total_s
        )
    except TimeoutError:
        elapsed = time.perf_counter() - started
        message = f"model '{ctx.target.name}': scoring the options took over {elapsed:.0f} s"
        return Reply(ctx.target.name, "", None, elapsed, error=message), None
    except ModelError as exc:
        return Reply(ctx.target.name, "", None, time.perf_counter() - started, exc.message), None
    elapsed = time.perf_counter() - started
    logprobs = {score.text: score.logprob for score in scored}
    best = max(candidates, key=lambda text: (logprobs[text], -candidates.index(text)))
    return Reply(ctx.target.name, best, elapsed, elapsed), logprobs


async def process_samples(
    ctx: UnitContext, samples: Iterable[Sample], done: set[str] | frozenset[str]
) -> None:
    """Evaluate ``samples`` (skipping the ids in ``done``) and emit a row for each.

    Args:
        ctx: the unit's model, dataset, prompt and plumbing.
        samples: the samples, read lazily.
        done: sample ids already evaluated in this output folder (not asked again).
    """
    try:
        await _process(ctx, samples, done)
    except BaseExceptionGroup as group:
        raise first_error(group) from group


async def _process(
    ctx: UnitContext, samples: Iterable[Sample], done: set[str] | frozenset[str]
) -> None:
    async with asyncio.TaskGroup() as group:
        for sample in samples:
            if sample.sample_id in done:
                ctx.counters.resumed += 1
                ctx.advance(True)
                continue
            prompt = render_prompt(ctx.template, ctx.spec, sample)
            candidates = _constrained(ctx, sample)
            key = call_key(
                model=ctx.target.spec,
                prompt=prompt,
                audio_sha256=sample.audio_sha256,
                generation=None
                if candidates is None
                else {"decoding": CONSTRAINED, "candidates": candidates},
            )
            cached = ctx.cache.get(key)
            if cached is not None:
                ctx.counters.cached += 1
                row = _row(
                    ctx,
                    sample,
                    prediction=cached.text,
                    cached=True,
                    latency_s=cached.total_s,
                    ttft_s=cached.ttft_s,
                    usage=Usage.from_dict(cached.usage),
                    option_logprobs=cached.option_logprobs,
                    notice=cached.notice,
                )
                if ctx.judge is not None and ctx.spec.metric.is_open:
                    await ctx.slots.acquire()  # bounds the samples held by pending judgements
                    group.create_task(_finish_releasing(ctx, sample, row))
                else:
                    await _finish(ctx, sample, row)
                continue
            await ctx.slots.acquire()
            group.create_task(_call(ctx, sample, prompt, key))
