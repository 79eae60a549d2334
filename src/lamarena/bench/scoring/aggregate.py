"""From ``samples.jsonl`` rows to ``scores.json`` and ``baselines.json`` entries.

Per-sample scores are recomputed here from each row's reference and answer (except an LLM
judge's rating, which is a model call and is read from the row), so the scores always follow the
rules in :mod:`lamarena.bench.scoring.parsing` and :mod:`lamarena.bench.scoring.metrics`, and a
PEDANTS scorer available now scores rows written while it was not. One entry per model, dataset,
prompt variant and metric: the dataset's own metric, plus ``llm_judge`` where a judge rated the
answers.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from lamarena.bench.data.spec import CHOICE_LETTERS, Metric
from lamarena.bench.scoring.metrics import (
    BOOTSTRAP_RESAMPLES,
    MetricResult,
    accuracy,
    macro_f1,
    mean_score,
    nominal_baseline,
    random_baseline,
    word_error_rate,
    word_errors,
)
from lamarena.bench.scoring.pedants import PedantsScorer, PedantsUnavailable
from lamarena.bench.scoring.results import latest_rows

__all__ = ["CFMATCH", "cfmatch_score", "compute_baselines", "compute_scores", "sample_score"]

Pedants = PedantsScorer | PedantsUnavailable | None


CFMATCH = "cfmatch"
"""The continuous CFMatch score of open answers, beside PEDANTS' verdicts (never in Table 1)."""


def cfmatch_score(row: Mapping[str, Any], pedants: PedantsScorer) -> float:
    """One open answer's CFMatch probability (0 for a failed call)."""
    if row.get("error"):
        return 0.0
    prediction = str(row.get("prediction") or "")
    return pedants.confidence(str(row["reference"]), prediction, str(row.get("question") or ""))


def sample_score(row: Mapping[str, Any], pedants: Pedants) -> float | None:
    """One row's own score: 1/0 for a label, its WER, PEDANTS' 1/0, or the judge's fraction.

    None where it cannot be had (PEDANTS unavailable, no judge rating).
    """
    metric = Metric(row["metric"])
    prediction = row.get("prediction") or ""
    if metric.is_classification:
        return 1.0 if row.get("parsed") is not None and row["parsed"] == row["reference"] else 0.0
    if metric is Metric.WER:
        errors, words = word_errors(str(row["reference"]), prediction)
        return errors / words if words else float(errors > 0)
    if metric is Metric.PEDANTS:
        if not isinstance(pedants, PedantsScorer):
            return None
        return pedants.judge(str(row["reference"]), prediction, str(row.get("question") or ""))
    judged = row.get("judge_score")
    return None if judged is None else float(judged)


def _entry(
    group: Sequence[dict[str, Any]], metric: str, result: MetricResult | None, **extra: Any
) -> dict[str, Any]:
    first = group[0]
    entry: dict[str, Any] = {
        "model": first["model"],
        "dataset": first["dataset"],
        "task": first["task"],
        "metric": metric,
        "prompt_id": first["prompt_id"],
        "n": len(group),
        "score": None if result is None else result.score,
        "ci_low": None if result is None else result.ci_low,
        "ci_high": None if result is None else result.ci_high,
        "n_errors": sum(1 for row in group if row.get("error")),
    }
    entry.update(extra)
    return entry


def _score_group(
    group: list[dict[str, Any]], pedants: Pedants, n_resamples: int, seed: int
) -> list[dict[str, Any]]:
    metric = Metric(group[0]["metric"])
    entries = []
    references = [str(row["reference"]) for row in group]
    if metric.is_classification:
        parsed = [None if row.get("error") else row.get("parsed") for row in group]
        unparsed = sum(1 for row in group if not row.get("error") and row.get("parsed") is None)
        score = macro_f1 if metric is Metric.MACRO_F1 else accuracy
        result = score(references, parsed, n_resamples=n_resamples, seed=seed)
        entries.append(_entry(group, metric.value, result, n_unparsed=unparsed))
    elif metric is Metric.WER:
        hypotheses = [str(row.get("prediction") or "") for row in group]
        result = word_error_rate(references, hypotheses, n_resamples=n_resamples, seed=seed)
        entries.append(_entry(group, metric.value, result))
    elif metric is Metric.PEDANTS:
        if isinstance(pedants, PedantsScorer):
            values = [sample_score(row, pedants) or 0.0 for row in group]
            entries.append(
                _entry(group, metric.value, mean_score(values, n_resamples=n_resamples, seed=seed))
            )
            confidences = [cfmatch_score(row, pedants) for row in group]
            entries.append(
                _entry(group, CFMATCH, mean_score(confidences, n_resamples=n_resamples, seed=seed))
            )
        else:
            reason = pedants.reason if pedants is not None else "PEDANTS was not loaded"
            entries.append(_entry(group, metric.value, None, unavailable=reason))
            entries.append(_entry(group, CFMATCH, None, unavailable=reason))
    judged = [row for row in group if row.get("judge_model")]
    if judged or metric is Metric.LLM_JUDGE:
        entries.append(_judge_entry(group, judged, n_resamples, seed))
    return entries


def _judge_entry(
    group: list[dict[str, Any]], judged: list[dict[str, Any]], n_resamples: int, seed: int
) -> dict[str, Any]:
    rated = [float(row["judge_score"]) for row in judged if row.get("judge_score") is not None]
    extra: dict[str, Any] = {
        "n_unparsed": sum(1 for row in judged if row.get("judge_score") is None),
        "judge_model": sorted({str(row["judge_model"]) for row in judged}),
        "judge_prompt_sha256": sorted({str(row.get("judge_prompt_sha256")) for row in judged}),
    }
    if not rated:
        extra["unavailable"] = "no judge rating could be parsed" if judged else "no judge ran"
        return _entry(group, Metric.LLM_JUDGE.value, None, **extra)
    result = mean_score(rated, n_resamples=n_resamples, seed=seed)
    entry = _entry(group, Metric.LLM_JUDGE.value, result, **extra)
    entry["n"] = len(rated)
    return entry


def compute_scores(
    rows: Iterable[dict[str, Any]],
    *,
    pedants: Pedants = None,
    n_resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The ``scores.json`` entries of every model, dataset and prompt variant in ``rows``.

    Args:
        rows: ``samples.jsonl`` rows (a key's last row counts).
        pedants: the PEDANTS scorer, or why it is unavailable (its datasets then get a null
            score and the reason under ``unavailable``).
        n_resamples: bootstrap resamples of each confidence interval.
        seed: seed of the bootstraps.
    """
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for (model, dataset, prompt_id, _), row in sorted(latest_rows(rows).items()):
        groups[(model, dataset, prompt_id)].append(row)
    entries: list[dict[str, Any]] = []
    for key in sorted(groups):
        entries.extend(_score_group(groups[key], pedants, n_resamples, seed))
    return entries


def compute_baselines(
    rows: Iterable[dict[str, Any]], label_sets: Mapping[str, Sequence[str] | None]
) -> list[dict[str, Any]]:
    """The random baseline of every classification dataset in ``rows``.

    Args:
        rows: ``samples.jsonl`` rows; each sample's reference is counted once.
        label_sets: dataset -> its label set; None for a multiple-choice set (its labels are
            the letters of its most options).
    """
    references: dict[str, dict[str, str]] = defaultdict(dict)
    meta: dict[str, dict[str, Any]] = {}
    options: Counter[str] = Counter()
    for row in latest_rows(rows).values():
        if not Metric(row["metric"]).is_classification:
            continue
        dataset = str(row["dataset"])
        references[dataset][str(row["sample_id"])] = str(row["reference"])
        meta[dataset] = {"task": row["task"], "metric": row["metric"]}
        options[dataset] = max(options[dataset], int(row.get("n_options") or 0))
    baselines = []
    for dataset in sorted(references):
        refs = list(references[dataset].values())
        labels = label_sets.get(dataset) or CHOICE_LETTERS[: options[dataset] or 4]
        baselines.append(
            {
                "dataset": dataset,
                "task": meta[dataset]["task"],
                "metric": meta[dataset]["metric"],
                "score": random_baseline(refs, list(labels), meta[dataset]["metric"]),
                "nominal_score": nominal_baseline(len(labels)),
                "n": len(refs),
                "n_labels": len(labels),
                "label_counts": dict(sorted(Counter(refs).items())),
            }
        )
    return baselines
