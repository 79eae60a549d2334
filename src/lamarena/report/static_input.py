"""Static scores for the report: a results directory of ``static run`` or a CSV table.

``lamarena analyze --static`` takes either

- a directory written by ``lamarena static run --out DIR``: its ``scores.json`` is a list of
  ``{model, dataset, task, metric, prompt_id, n, score, ci_low, ci_high}`` (DESIGN.md "Static
  results"); each dataset is one benchmark, scored by the mean over its prompt variants, and a
  ``wer`` dataset is lower-is-better; or
- a CSV with a ``model`` column and one numeric column per benchmark (the study's
  ``paper_table1_static.csv``), read by :func:`lamarena.analysis.gap.load_static_table`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from lamarena.analysis.gap import StaticTable, load_static_table, static_table_from_frame
from lamarena.errors import InvalidInputError

__all__ = ["ALTERNATIVE_METRICS", "SCORES_FILE", "load_static_input", "read_scores_json"]

ALTERNATIVE_METRICS = frozenset({"llm_judge", "cfmatch"})
"""Scores of open answers beside a dataset's own metric; never a benchmark column."""

SCORES_FILE = "scores.json"
"""The file of a static results directory that holds the aggregated scores."""

_REQUIRED = ("model", "dataset", "metric", "score")


def load_static_input(path: Path) -> StaticTable:
    """Static scores from a results directory, its ``scores.json``, or a CSV table.

    Args:
        path: a ``static run --out`` directory, a ``scores.json`` file, or a ``.csv`` table.

    Returns:
        The model x benchmark table (WER lower-is-better).

    Raises:
        InvalidInputError: the path does not exist, is of another kind, or is malformed.
    """
    path = Path(path)
    if path.is_dir():
        scores = path / SCORES_FILE
        if not scores.is_file():
            raise InvalidInputError(
                f"--static {path}: no {SCORES_FILE} in this directory; give the --out directory "
                "of `lamarena static run` or a CSV with a model column"
            )
        return read_scores_json(scores)
    if not path.exists():
        raise InvalidInputError(f"--static {path}: no such file or directory")
    if path.suffix.lower() == ".json":
        return read_scores_json(path)
    if path.suffix.lower() == ".csv":
        return load_static_table(path)
    raise InvalidInputError(
        f"--static {path}: expected a static results directory, a scores.json or a .csv table"
    )


def read_scores_json(path: Path) -> StaticTable:
    """Turn a static run's ``scores.json`` into a model x dataset table.

    Each (model, dataset) score is the mean over its rows (one per prompt variant). A dataset
    scored by ``wer`` is lower-is-better (WER is a fraction; other scores are percentages).

    Args:
        path: the ``scores.json`` file.

    Returns:
        The table, datasets in order of first appearance.

    Raises:
        InvalidInputError: unreadable JSON, not a list of score objects, a missing field or a
            non-numeric score (naming the entry), or a dataset scored by two metrics.
    """
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(rows, list) or not rows:
        raise InvalidInputError(
            f"{path}: expected a non-empty JSON list of {{model, dataset, metric, score, ...}}"
        )
    records = [_record(path, position, row) for position, row in enumerate(rows, start=1)]
    # The LLM judge and CFMatch are second, separately named scores of the open-ended sets (as
    # in `static table`): the benchmark is the dataset's own metric.
    records = [record for record in records if record["metric"] not in ALTERNATIVE_METRICS]
    if not records:
        raise InvalidInputError(
            f"{path}: only llm_judge or cfmatch scores; no benchmark metric to compare"
        )
    frame = pd.DataFrame(records, columns=["model", "dataset", "metric", "score"])
    metrics = frame.groupby("dataset", sort=False)["metric"].unique()
    mixed = {str(d): sorted(str(m) for m in ms) for d, ms in metrics.items() if len(ms) > 1}
    if mixed:
        dataset, names = next(iter(mixed.items()))
        raise InvalidInputError(
            f"{path}: dataset {dataset!r} is scored by {' and '.join(names)}; a benchmark needs "
            "one metric"
        )
    table = frame.pivot_table(index="model", columns="dataset", values="score", aggfunc="mean")
    order = list(dict.fromkeys(frame["dataset"]))
    table = table.reindex(columns=order)
    table.columns = pd.Index([str(c) for c in table.columns], dtype=object)
    lower = {str(d) for d, ms in metrics.items() if str(ms[0]).lower() == "wer"}
    return static_table_from_frame(table.reset_index(), lower_is_better=lower, source=str(path))


def _record(path: Path, position: int, row: Any) -> dict[str, Any]:
    """One score entry, checked: strings for the names, a finite number for the score."""
    if not isinstance(row, dict):
        raise InvalidInputError(f"{path}: entry {position} is not an object")
    missing = [
        key for key in _REQUIRED if key not in row or (row[key] in (None, "") and key != "score")
    ]
    if missing:
        raise InvalidInputError(f"{path}: entry {position} has no {', '.join(missing)}")
    score = row["score"]
    if score is None:  # the metric was unavailable (e.g. PEDANTS without its model files)
        score = math.nan
    elif isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
        raise InvalidInputError(
            f"{path}: entry {position} ({row['model']}, {row['dataset']}): score {score!r} is "
            "not a finite number"
        )
    return {
        "model": str(row["model"]).strip(),
        "dataset": str(row["dataset"]).strip(),
        "metric": str(row["metric"]).strip(),
        "score": float(score),
    }
