"""The study's Table 1 from a run's ``scores.json``: model x task, as Markdown, CSV or JSON.

A cell is the mean over a task's datasets of each dataset's mean over its prompt variants (so a
dataset run with fewer variants weighs as much as the others), in the dataset's own metric:
percent for macro-F1, accuracy and PEDANTS, a fraction for WER (the ``asr`` column). The
``llm_judge`` and ``cfmatch`` alternatives never enter the table. A cell one of whose datasets
has no score (PEDANTS unavailable) is empty (``n/a``), not the mean of the rest. Columns follow
Table 1's order; tasks of local datasets follow. The Markdown table ends with two random
baseline rows (from ``baselines.json``): Table 1's nominal 1/K, and the expected score of a
uniform guesser given each set's label distribution; the JSON and CSV hold models only.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lamarena.bench.data.registry import TABLE_TASKS
from lamarena.bench.scoring.results import BASELINES_FILE, SCORES_FILE, read_json
from lamarena.errors import InvalidInputError

__all__ = ["build_table", "load_scores", "render_csv", "render_markdown", "task_order"]

_EXCLUDED_METRICS = frozenset({"llm_judge", "cfmatch"})


def load_scores(out_dir: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``scores.json`` and (when present) ``baselines.json`` of a run's output folder.

    Raises:
        InvalidInputError: the folder has no readable scores.json, or it is not a list of scores.
    """
    if not out_dir.is_dir():
        raise InvalidInputError(f"--out {out_dir}: no such folder (run `lamarena static run`)")
    scores = read_json(out_dir / SCORES_FILE, what="the scores of a static run")
    if not isinstance(scores, list) or not all(
        isinstance(entry, dict) and {"model", "task", "dataset", "metric", "score"} <= set(entry)
        for entry in scores
    ):
        raise InvalidInputError(f"{out_dir / SCORES_FILE}: not a list of static scores")
    baselines: list[dict[str, Any]] = []
    if (out_dir / BASELINES_FILE).is_file():
        loaded = read_json(out_dir / BASELINES_FILE, what="random baselines")
        baselines = loaded if isinstance(loaded, list) else []
    return scores, baselines


def _mean(values: Sequence[float | None]) -> float | None:
    if not values or any(value is None for value in values):
        return None
    return sum(value for value in values if value is not None) / len(values)


def build_table(scores: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``static table --json`` rows: ``[{model, task, score}]``, models then tasks in order."""
    by_dataset: dict[tuple[str, str, str], list[float | None]] = defaultdict(list)
    for entry in scores:
        if entry["metric"] in _EXCLUDED_METRICS:
            continue
        key = (str(entry["model"]), str(entry["task"]), str(entry["dataset"]))
        by_dataset[key].append(None if entry["score"] is None else float(entry["score"]))
    by_task: dict[tuple[str, str], list[float | None]] = defaultdict(list)
    for (model, task, _), values in sorted(by_dataset.items()):
        by_task[(model, task)].append(_mean(values))
    order = task_order({task for _, task in by_task})
    rows = [
        {"model": model, "task": task, "score": _mean(values)}
        for (model, task), values in by_task.items()
    ]
    return sorted(rows, key=lambda row: (row["model"], order.index(row["task"])))


def task_order(tasks: set[str]) -> list[str]:
    """Table 1's task order, then any other task alphabetically."""
    return [task for task in TABLE_TASKS if task in tasks] + sorted(tasks - set(TABLE_TASKS))


def _wide(rows: Sequence[dict[str, Any]]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    tasks = task_order({row["task"] for row in rows})
    grid: dict[str, dict[str, Any]] = {}
    for row in rows:
        grid.setdefault(row["model"], {})[row["task"]] = row["score"]
    return tasks, grid


def _cell(task: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2f}" if task == "asr" else f"{value:.1f}"


def _baseline_row(
    baselines: Sequence[dict[str, Any]], tasks: list[str], field: str = "score"
) -> list[str]:
    per_task: dict[str, list[float]] = defaultdict(list)
    for entry in baselines:
        if entry.get(field) is not None:
            per_task[str(entry["task"])].append(float(entry[field]))
    return [
        _cell(task, sum(per_task[task]) / len(per_task[task])) if per_task.get(task) else "-"
        for task in tasks
    ]


def render_markdown(
    rows: Sequence[dict[str, Any]], baselines: Sequence[dict[str, Any]] = ()
) -> str:
    """Table 1 as a Markdown table (models as rows; the random baseline last)."""
    tasks, grid = _wide(rows)
    headers = ["model", *("asr (WER)" if task == "asr" else task for task in tasks)]
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join(["---"] + ["---:"] * len(tasks)) + "|",
    ]
    for model, cells in grid.items():
        values = [_cell(task, cells.get(task)) for task in tasks]
        lines.append("| " + " | ".join([model, *values]) + " |")
    if baselines and tasks:
        for label, field in (("random (1/K)", "nominal_score"), ("random (labels)", "score")):
            lines.append("| " + " | ".join([label, *_baseline_row(baselines, tasks, field)]) + " |")
    return "\n".join(lines) + "\n"


def render_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Table 1 as CSV, one row per model (columns as the study's ``paper_table1_static.csv``)."""
    tasks, grid = _wide(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", *("asr_wer" if task == "asr" else task for task in tasks)])
    for model, cells in grid.items():
        writer.writerow(
            [model, *("" if cells.get(task) is None else cells[task] for task in tasks)]
        )
    return buffer.getvalue()
