"""``run.json``: what a static run was, so its numbers can be traced and repeated.

Versions (lamarena, Python, ``datasets``, the metric packages: scikit-learn, jiwer,
whisper-normalizer, scipy, qa-metrics), the options, every model's resolved models.yaml entry and
cache identity (never a key), the judge and its pinned prompt's hash, whether PEDANTS was
available and why not, every dataset's declaration, source, fingerprint, rows evaluated and left
out, and prompt texts with their hashes, the counts of calls, cache hits and errors, and tokens
and cost where the API reported them. Datasets of earlier runs into the same folder are kept.

Tokens and cost count the calls this run made to the evaluated models (cache hits, resumed
samples and the judge's calls are not counted): ``tokens`` and ``cost_usd`` for the whole run,
and ``usage_by_model`` per model with how many calls reported usage. A total is null when no
call reported tokens, and a cost is null when the model has no prices in models.yaml.
"""

from __future__ import annotations

import platform
from dataclasses import asdict
from datetime import datetime
from importlib import metadata
from typing import Any

from lamarena.bench.data.prompts import prompt_sha256
from lamarena.bench.run.execution import RunCounters
from lamarena.bench.run.judge import JUDGE_PROMPT_SHA256
from lamarena.bench.run.plan import RunPlan
from lamarena.bench.scoring.comparability import comparability
from lamarena.bench.scoring.metrics import metric_versions
from lamarena.bench.scoring.pedants import PedantsScorer, PedantsUnavailable

__all__ = ["RUN_FORMAT_VERSION", "run_document", "usage_summary"]

RUN_FORMAT_VERSION = 1
"""Version of the ``run.json`` layout."""


def _versions() -> dict[str, str]:
    versions = {"lamarena": _package_version("lamarena"), "python": platform.python_version()}
    for package in ("datasets", "numpy", "openai"):
        versions[package] = _package_version(package)
    versions.update(metric_versions())
    return versions


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def usage_summary(counters: RunCounters) -> dict[str, Any]:
    """Tokens and cost of some calls: ``calls``, ``calls_with_usage``, token totals, cost.

    Token totals are null when no call reported usage; ``cost_usd`` is null when no call's cost
    is known (no prices, or no usage), and otherwise sums the calls whose cost is known
    (``priced_calls`` of them).
    """
    reported = counters.usage_reported > 0
    return {
        "calls": counters.calls,
        "calls_with_usage": counters.usage_reported,
        "input_tokens": counters.input_tokens if reported else None,
        "output_tokens": counters.output_tokens if reported else None,
        "priced_calls": counters.priced_calls,
        "cost_usd": counters.cost_usd if counters.priced_calls else None,
    }


def run_document(
    plan: RunPlan,
    counters: RunCounters,
    started_at: datetime,
    elapsed_s: float,
    previous: Any,
    by_model: dict[str, RunCounters] | None = None,
) -> dict[str, Any]:
    """The ``run.json`` document of a finished run.

    Args:
        plan: the run.
        counters: what it did.
        started_at: when it started (UTC).
        elapsed_s: how long its samples took.
        previous: the folder's earlier run.json, whose datasets are kept beside this run's.
        by_model: what it did per model (for ``usage_by_model``).
    """
    datasets_info: dict[str, Any] = {}
    if isinstance(previous, dict) and isinstance(previous.get("datasets"), dict):
        datasets_info.update(previous["datasets"])  # earlier runs into the same folder
    for item in plan.datasets:
        spec = item.ref.spec
        datasets_info[spec.name] = {
            "spec": spec.model_dump(mode="json"),
            "source": item.ref.reference,
            "location": item.ref.location,
            "fingerprint": getattr(item.dataset, "_fingerprint", None),
            "evaluated": len(item.plan.indices),
            "available": item.plan.available,
            "usable": item.plan.usable,
            "skipped": item.plan.skipped,
            "comparability": comparability(spec),
            "prompts": [
                {"prompt_id": index, "text": text, "sha256": prompt_sha256(text)}
                for index, text in enumerate(item.prompts)
            ],
        }
    pedants = plan.pedants
    usage = None
    if counters.usage_reported:
        usage = {"input_tokens": counters.input_tokens, "output_tokens": counters.output_tokens}
    return {
        "version": RUN_FORMAT_VERSION,
        "started_at": started_at.isoformat(),
        "elapsed_s": elapsed_s,
        "versions": _versions(),
        "options": {
            "prompts": plan.options.prompts,
            "limit": plan.options.limit,
            "concurrency": plan.options.concurrency,
            "scheduler": plan.options.scheduler,
            "n_resamples": plan.options.n_resamples,
            "seed": plan.options.seed,
            "decoding": plan.options.decoding,
            "hub_dir": None if plan.settings.hub_dir is None else str(plan.settings.hub_dir),
        },
        "models": {
            target.name: {"resolved": target.resolved, "cache_identity": target.spec}
            for target in plan.targets
        },
        "judge": None
        if plan.judge is None
        else {
            "model": plan.judge.name,
            "resolved": plan.judge.resolved,
            "prompt_sha256": JUDGE_PROMPT_SHA256,
        },
        "pedants": None
        if pedants is None
        else {
            "available": isinstance(pedants, PedantsScorer),
            "model_dir": str(pedants.model_dir) if isinstance(pedants, PedantsScorer) else None,
            "reason": pedants.reason if isinstance(pedants, PedantsUnavailable) else None,
        },
        "datasets": datasets_info,
        "counts": asdict(counters),
        "tokens": usage,
        "cost_usd": counters.cost_usd if counters.priced_calls else None,
        "usage_by_model": {
            name: usage_summary(model_counters) for name, model_counters in (by_model or {}).items()
        },
        "cache": str(plan.cache_path),
    }
