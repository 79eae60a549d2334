"""The static runner: models x datasets x prompt variants, resumable, cached, in process or on Dask.

:func:`lamarena.bench.run.plan.prepare_run` checks everything first, so that bad input changes
nothing; :func:`run_static` then evaluates every
(model, dataset, prompt variant) unit, appending rows to ``samples.jsonl`` as they finish, and
writes ``scores.json``, ``baselines.json`` and ``run.json``. A killed run started again with the
same output folder asks only for what is missing; the call cache (keyed by model spec, audio and
prompt) makes a second run over the same data cost no model calls even in a new folder.

In process, each model gets one concurrency limit shared by all its units (``asyncio`` tasks in
one event loop). With ``scheduler`` set, units are cut into shards of about ``shard_size``
samples and spread over a Dask distributed cluster (:mod:`lamarena.bench.run.distributed`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any

from lamarena.bench.data.loading import iter_samples
from lamarena.bench.run.cache import CallCache
from lamarena.bench.run.execution import RunCounters, UnitContext, first_error, process_samples
from lamarena.bench.run.judge import Judge
from lamarena.bench.run.plan import PlannedDataset, RunPlan
from lamarena.bench.run.progress import NullProgress, Progress
from lamarena.bench.run.record import run_document
from lamarena.bench.run.targets import ModelHandle
from lamarena.bench.scoring.aggregate import compute_baselines, compute_scores
from lamarena.bench.scoring.results import (
    BASELINES_FILE,
    RUN_FILE,
    SCORES_FILE,
    SamplesLog,
    read_json,
    write_json,
)
from lamarena.errors import InvalidInputError
from lamarena.models.base import ModelTimeouts
from lamarena.settings import Settings

__all__ = ["RunSummary", "run_static"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    """What a run did.

    Attributes:
        out_dir: the output folder.
        counters: the counts of the whole run (calls, cache hits, errors, tokens, cost).
        scores: the scores of everything in the output folder.
        pedants_unavailable: why PEDANTS could not score, if it could not.
        skipped: per dataset, the rows left out and why.
        elapsed_s: how long the samples took.
        cache_path: the call cache file.
        by_model: the counts of each model (its tokens and cost where reported).
    """

    out_dir: Path
    counters: RunCounters
    scores: list[dict[str, Any]]
    pedants_unavailable: str | None
    skipped: dict[str, dict[str, int]]
    elapsed_s: float
    cache_path: Path
    by_model: dict[str, RunCounters] = field(default_factory=dict)


def _timeouts(settings: Settings) -> ModelTimeouts:
    return ModelTimeouts(
        first_token_s=settings.model_first_token_timeout_s,
        total_s=settings.model_total_timeout_s,
    )


def _done_by_unit(log: SamplesLog) -> dict[tuple[str, str, int], set[str]]:
    done: dict[tuple[str, str, int], set[str]] = defaultdict(set)
    for model, dataset, prompt_id, sample_id in log.done():
        done[(model, dataset, prompt_id)].add(sample_id)
    return done


async def _run_in_process(
    plan: RunPlan,
    done: dict[tuple[str, str, int], set[str]],
    emit: Callable[[dict[str, Any]], None],
    progress: Progress,
    by_model: dict[str, RunCounters],
) -> None:
    cache = CallCache(plan.cache_path)
    handles: list[ModelHandle] = []
    try:
        judge = None
        if plan.judge is not None:
            judge_model = ModelHandle(plan.judge.build)
            handles.append(judge_model)
            judge = Judge(
                plan.judge,
                judge_model,
                cache,
                concurrency=plan.options.concurrency,
                timeout_s=plan.settings.model_total_timeout_s,
            )
        contexts: list[tuple[UnitContext, PlannedDataset, set[str]]] = []
        for target in plan.targets:
            model = ModelHandle(target.build)
            handles.append(model)
            slots = asyncio.Semaphore(target.concurrency(plan.options.concurrency))
            for item in plan.datasets:
                for prompt_id, template in enumerate(item.prompts):
                    context = UnitContext(
                        target=target,
                        model=model,
                        spec=item.ref.spec,
                        prompt_id=prompt_id,
                        template=template,
                        cache=cache,
                        slots=slots,
                        timeouts=_timeouts(plan.settings),
                        emit=emit,
                        advance=progress.advance,
                        judge=judge,
                        pedants=plan.pedants,
                        decoding=plan.options.decoding,
                    )
                    unit_done = done.get((target.name, item.ref.spec.name, prompt_id), set())
                    contexts.append((context, item, unit_done))
        try:
            async with asyncio.TaskGroup() as group:
                for context, item, unit_done in contexts:
                    samples = iter_samples(item.ref.spec, item.dataset, item.plan.indices)
                    group.create_task(process_samples(context, samples, unit_done))
        except BaseExceptionGroup as failed:
            raise first_error(failed) from failed
        for context, _, _ in contexts:
            by_model.setdefault(context.target.name, RunCounters()).add(context.counters)
    finally:
        for handle in handles:
            await handle.aclose()
        cache.close()


async def run_static(plan: RunPlan, *, progress: Progress | None = None) -> RunSummary:
    """Execute a planned run and write its result files.

    Args:
        plan: from :func:`prepare_run`.
        progress: where to report progress (nothing by default).

    Returns:
        What the run did, with the scores of everything in the output folder.

    Raises:
        ConfigError: a model or judge cannot be built, or the cache or scheduler is unusable.
    """
    progress = progress or NullProgress()
    options = plan.options
    out_dir = options.out_dir
    log = SamplesLog(out_dir)
    done = _done_by_unit(log)
    by_model = {target.name: RunCounters() for target in plan.targets}
    started_at = datetime.now(UTC)
    started = perf_counter()
    progress.start(plan.total)
    try:
        if options.scheduler is None:
            await _run_in_process(plan, done, log.append, progress, by_model)
        else:
            from lamarena.bench.run.distributed import run_on_cluster

            await run_on_cluster(plan, done, log.append, progress, by_model)
    finally:
        log.close()
        progress.stop()
    elapsed_s = perf_counter() - started
    counters = RunCounters()
    for model_counters in by_model.values():
        counters.add(model_counters)
    rows = list(log.rows())
    scores = compute_scores(
        rows, pedants=plan.pedants, n_resamples=options.n_resamples, seed=options.seed
    )
    write_json(out_dir / SCORES_FILE, scores)
    run_file = out_dir / RUN_FILE
    previous = None
    if run_file.is_file():
        try:
            previous = read_json(run_file, what="the previous run")
        except InvalidInputError:
            previous = None
    document = run_document(plan, counters, started_at, elapsed_s, previous, by_model)
    label_sets = {name: info["spec"].get("labels") for name, info in document["datasets"].items()}
    write_json(out_dir / BASELINES_FILE, compute_baselines(rows, label_sets))
    write_json(run_file, document)
    return RunSummary(
        out_dir=out_dir,
        counters=counters,
        scores=scores,
        pedants_unavailable=plan.pedants_unavailable,
        skipped={item.ref.spec.name: item.plan.skipped for item in plan.datasets},
        elapsed_s=elapsed_s,
        cache_path=plan.cache_path,
        by_model=by_model,
    )
