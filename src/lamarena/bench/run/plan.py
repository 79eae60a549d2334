"""A static run's plan: its options, its models and datasets opened and checked, nothing run.

:func:`prepare_run` checks everything first (models, datasets and their columns, the judge, the
output folder) so that bad input changes nothing; the :class:`RunPlan` it returns is what
:func:`lamarena.bench.run.runner.run_static` executes, what
:mod:`lamarena.bench.run.distributed` cuts into shards and what
:mod:`lamarena.bench.run.record` describes in ``run.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamarena.bench.data.loading import (
    DatasetRef,
    SamplePlan,
    open_dataset,
    plan_samples,
    resolve_dataset,
)
from lamarena.bench.data.registry import PROMPT_VARIANTS, Registry, load_registry
from lamarena.bench.data.spec import DatasetSpec, Metric
from lamarena.bench.run.execution import CONSTRAINED
from lamarena.bench.run.judge import check_judge
from lamarena.bench.run.targets import ModelTarget, resolve_targets
from lamarena.bench.scoring.metrics import BOOTSTRAP_RESAMPLES
from lamarena.bench.scoring.pedants import PedantsScorer, PedantsUnavailable, load_pedants
from lamarena.bench.scoring.results import RUN_FILE, read_json
from lamarena.errors import ConfigError, InvalidInputError
from lamarena.models.base import can_score_options
from lamarena.settings import Settings

if TYPE_CHECKING:
    import datasets  # type: ignore[import-untyped]

DECODINGS = frozenset({"free", CONSTRAINED})
"""How a run may read answers (``--decoding``)."""

__all__ = [
    "DECODINGS",
    "PlannedDataset",
    "RunOptions",
    "RunPlan",
    "cache_path",
    "check_resumable",
    "prepare_run",
]


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
        decoding: ``free`` (parse the reply) or ``constrained`` (in-process models score each
            label or option letter by log-likelihood).
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
    decoding: str = "free"


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
    if options.decoding not in DECODINGS:
        raise InvalidInputError(
            f"--decoding {options.decoding}: give {' or '.join(sorted(DECODINGS))}"
        )
    if options.out_dir.exists() and not options.out_dir.is_dir():
        raise InvalidInputError(f"--out {options.out_dir}: exists and is not a folder")


def _check_scorers(targets: list[ModelTarget]) -> None:
    """Refuse constrained decoding for a model that cannot score options (a remote service)."""
    for target in targets:
        if not can_score_options(target.build()):
            raise ConfigError(
                f"model '{target.name}' ({target.entry.kind}) cannot score options: "
                "--decoding constrained needs an in-process model (kind: local, or a pipeline "
                "whose llm is local); use --decoding free for remote models"
            )


def _plan_datasets(
    settings: Settings, registry: Registry, names: list[str], options: RunOptions
) -> list[PlannedDataset]:
    if not names:
        raise InvalidInputError("--datasets is empty: name at least one (lamarena static list)")
    refs = [resolve_dataset(name, registry, hub_dir=settings.hub_dir) for name in names]
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


_DESCRIPTIVE = frozenset({"notes", "source", "size"})
"""Declaration keys that do not change what a dataset's rows are (a resume may differ in them)."""


def _evaluated(spec: DatasetSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json", exclude=set(_DESCRIPTIVE))


def _first_difference(before: dict[str, Any], now: dict[str, Any]) -> str:
    for key in sorted(set(before) | set(now)):
        if before.get(key) != now.get(key):
            return f"{key}: {before.get(key)!r} then, {now.get(key)!r} now"
    return "the declaration"


def check_resumable(out_dir: Path, decoding: str, planned: list[PlannedDataset]) -> None:
    """Refuse to append to a folder whose earlier run evaluated something else.

    Rows are resumed by (model, dataset, prompt, sample id): a folder of another decoding, or of
    a dataset declared otherwise (another split, filter, sample or label mapping), would mix
    answers to different questions under one key.

    Raises:
        InvalidInputError: the folder's ``run.json`` says so (the message says what differs).
    """
    path = out_dir / RUN_FILE
    if not path.is_file():
        return
    try:
        previous = read_json(path, what="the earlier run")
    except InvalidInputError:
        return
    if not isinstance(previous, dict):
        return
    options = previous.get("options")
    before = str(options.get("decoding", "free")) if isinstance(options, dict) else "free"
    if before != decoding:
        raise InvalidInputError(
            f"--out {out_dir} holds a run with --decoding {before}; resuming it with --decoding "
            f"{decoding} would mix the two: give another --out"
        )
    datasets_before = previous.get("datasets")
    if not isinstance(datasets_before, dict):
        return
    for item in planned:
        spec = item.ref.spec
        entry = datasets_before.get(spec.name)
        if not isinstance(entry, dict) or not isinstance(entry.get("spec"), dict):
            continue
        try:
            declared = _evaluated(DatasetSpec.model_validate(entry["spec"]))
        except ValueError:
            declared = {"declaration": "unreadable"}
        if declared != _evaluated(spec):
            raise InvalidInputError(
                f"--out {out_dir} holds results of dataset '{spec.name}' as declared otherwise "
                f"({_first_difference(declared, _evaluated(spec))}); resuming would score old "
                "answers against new rows: give another --out"
            )


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
    if options.decoding == CONSTRAINED:
        _check_scorers(targets)
    planned = _plan_datasets(settings, registry, datasets, options)
    check_resumable(options.out_dir, options.decoding, planned)
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
