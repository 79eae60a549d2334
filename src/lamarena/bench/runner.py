"""The static runner: models x datasets x prompt variants, resumable, cached, in process or on Dask.

:func:`prepare_run` checks everything first (models, datasets and their columns, the judge, the
output folder) so that bad input changes nothing; :func:`run_static` then evaluates every
(model, dataset, prompt variant) unit, appending rows to ``samples.jsonl`` as they finish, and
writes ``scores.json``, ``baselines.json`` and ``run.json``. A killed run started again with the
same output folder asks only for what is missing; the call cache (keyed by model spec, audio and
prompt) makes a second run over the same data cost no model calls even in a new folder.

In process, each model gets one concurrency limit shared by all its units (``asyncio`` tasks in
one event loop). With ``scheduler`` set, units are cut into shards of about ``shard_size``
samples and spread over a Dask distributed cluster (:mod:`lamarena.bench.distributed`).
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
from typing import TYPE_CHECKING, Any

from lamarena.bench.cache import CallCache
from lamarena.bench.execution import RunCounters, UnitContext, first_error, process_samples
from lamarena.bench.judge import Judge, check_judge
from lamarena.bench.loading import DatasetRef, SamplePlan, iter_samples, open_dataset, plan_samples
from lamarena.bench.metrics import BOOTSTRAP_RESAMPLES
from lamarena.bench.pedants import PedantsScorer, PedantsUnavailable, load_pedants
from lamarena.bench.progress import NullProgress, Progress
from lamarena.bench.record import run_document
from lamarena.bench.registry import PROMPT_VARIANTS, Registry, load_registry
from lamarena.bench.results import (
    BASELINES_FILE,
    RUN_FILE,
    SCORES_FILE,
    SamplesLog,
    read_json,
    write_json,
)
from lamarena.bench.scoring import compute_baselines, compute_scores
from lamarena.bench.spec import Metric
from lamarena.bench.targets import ModelHandle, ModelTarget, resolve_targets
from lamarena.errors import ConfigError, InvalidInputError
from lamarena.models.base import ModelTimeouts
from lamarena.settings import Settings

if TYPE_CHECKING:
    import datasets  # type: ignore[import-untyped]

__all__ = [
    "PlannedDataset",
    "RunOptions",
    "RunPlan",
    "RunSummary",
    "cache_path",
    "prepare_run",
    "run_static",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """How to run (the CLI's flags).

    Attributes:
        out_dir: the output folder (created; an existing one is resumed).
        prompts: how many prompt variants per dataset (1 to 3).
        limit: evaluate at most this many samples per dataset.
        concurrency: concurrent calls per model (capped by a model's own limit).
        scheduler: a Dask scheduler address (``tcp://host:8786``); None runs in process.
        shard_size: samples per Dask work unit.
        scheduler_timeout_s: how long to try reaching the Dask scheduler.
        n_resamples: bootstrap resamples per confidence interval.
        seed: seed of the bootstraps.
    """

    out_dir: Path
    prompts: int = PROMPT_VARIANTS
    limit: int | None = None
    concurrency: int = 8
    scheduler: str | None = None
    shard_size: int = 64
    scheduler_timeout_s: float = 10.0
    n_resamples: int = BOOTSTRAP_RESAMPLES
    seed: int = 0


@dataclass(frozen=True)
class PlannedDataset:
    """A dataset opened and planned: the rows to evaluate and its prompt variants."""

    ref: DatasetRef
    dataset: datasets.Dataset
    plan: SamplePlan
    prompts: list[str]


@dataclass(frozen=True)
class RunPlan:
    """A checked run: nothing is written until :func:`run_static` executes it."""

    settings: Settings
    options: RunOptions
    targets: list[ModelTarget]
    datasets: list[PlannedDataset]
    judge: ModelTarget | None
    pedants: PedantsScorer | PedantsUnavailable | None
    cache_path: Path

    @property
    def pedants_unavailable(self) -> str | None:
        """Why PEDANTS cannot score this run's open answers, if it cannot."""
        return self.pedants.reason if isinstance(self.pedants, PedantsUnavailable) else None

    @property
    def total(self) -> int:
        """Samples to evaluate over every unit (done ones included)."""
        return len(self.targets) * sum(
            len(item.plan.indices) * len(item.prompts) for item in self.datasets
        )


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


def cache_path(settings: Settings) -> Path:
    """The call cache file: ``static_cache``, or ``static-cache.sqlite`` in ``cache_dir``."""
    return settings.static_cache or settings.cache_dir / "static-cache.sqlite"


def _check_options(options: RunOptions) -> None:
    if not 1 <= options.prompts <= PROMPT_VARIANTS:
        raise InvalidInputError(f"--prompts {options.prompts}: give 1 to {PROMPT_VARIANTS}")
    if options.limit is not None and options.limit < 1:
        raise InvalidInputError(f"--limit {options.limit}: give 1 or more")
    if options.concurrency < 1:
        raise InvalidInputError(f"--concurrency {options.concurrency}: give 1 or more")
    if options.shard_size < 1:
        raise InvalidInputError(f"shard size {options.shard_size}: give 1 or more")
    if options.out_dir.exists() and not options.out_dir.is_dir():
        raise InvalidInputError(f"--out {options.out_dir}: exists and is not a folder")


def _plan_datasets(
    settings: Settings, registry: Registry, names: list[str], options: RunOptions
) -> list[PlannedDataset]:
    from lamarena.bench.loading import resolve_dataset

    if not names:
        raise InvalidInputError("--datasets is empty: name at least one (lamarena static list)")
    refs = [resolve_dataset(name, registry) for name in names]
    seen: set[str] = set()
    for ref in refs:
        if ref.spec.name in seen:
            raise InvalidInputError(f"--datasets: dataset '{ref.spec.name}' is given twice")
        seen.add(ref.spec.name)
    planned = []
    for ref in refs:
        dataset = open_dataset(ref, cache_dir=settings.cache_dir)
        plan = plan_samples(ref.spec, dataset, limit=options.limit)
        if not plan.indices:
            raise InvalidInputError(
                f"dataset '{ref.spec.name}' ({ref.reference}) has no usable sample: "
                f"{plan.skipped or 'it is empty'}"
            )
        prompts = registry.prompts_for(ref.spec)[: options.prompts]
        planned.append(PlannedDataset(ref, dataset, plan, prompts))
    return planned


def prepare_run(
    settings: Settings, *, models: list[str], datasets: list[str], options: RunOptions
) -> RunPlan:
    """Check and plan a run; nothing is written to the output folder.

    Raises:
        InvalidInputError: bad options, an unreadable local dataset or a missing column.
        UnknownTask: a dataset name not in the registry.
        NotFound: a hub dataset that cannot be reached.
        ConfigError: an unknown model, a bad models.yaml, or an unusable judge.
    """
    _check_options(options)
    registry = load_registry()
    targets = resolve_targets(settings, models)
    planned = _plan_datasets(settings, registry, datasets, options)
    metrics = {item.ref.spec.metric for item in planned}
    judge = None
    if settings.judge_model is not None and (
        Metric.PEDANTS in metrics or Metric.LLM_JUDGE in metrics
    ):
        judge = resolve_targets(settings, [settings.judge_model])[0]
        check_judge(judge)
    elif Metric.LLM_JUDGE in metrics:
        raise ConfigError(
            "a dataset is scored by llm_judge but no judge is set: set LAMARENA_JUDGE_MODEL "
            "(or --judge) to a models.yaml model with temperature: 0"
        )
    pedants = load_pedants(settings.pedants_model_dir) if Metric.PEDANTS in metrics else None
    return RunPlan(
        settings=settings,
        options=options,
        targets=targets,
        datasets=planned,
        judge=judge,
        pedants=pedants,
        cache_path=cache_path(settings),
    )


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
            from lamarena.bench.distributed import run_on_cluster

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
