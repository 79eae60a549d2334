"""Static scores for the report: a static run's scores.json, or a CSV table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lamarena.errors import InvalidInputError
from lamarena.report import load_static_input, read_scores_json

from .conftest import PAPER_TABLE

DATASET_CSV = PAPER_TABLE.with_name("talkarena_dec2024_static_per_dataset.csv")


def score(model: str, dataset: str, metric: str, prompt_id: int, value: float) -> dict[str, Any]:
    return {
        "model": model,
        "dataset": dataset,
        "task": "task",
        "metric": metric,
        "prompt_id": prompt_id,
        "n": 50,
        "score": value,
        "ci_low": value - 1,
        "ci_high": value + 1,
    }


def write_scores(directory: Path, rows: list[Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "scores.json").write_text(json.dumps(rows))
    return directory


def test_a_results_directory_becomes_a_table_of_datasets(tmp_path: Path) -> None:
    rows = [
        score("a", "meld", "macro_f1", 0, 40.0),
        score("a", "meld", "macro_f1", 1, 50.0),
        score("b", "meld", "macro_f1", 0, 30.0),
        score("a", "librispeech", "wer", 0, 0.12),
        score("a", "librispeech", "wer", 1, 0.08),
        score("b", "librispeech", "wer", 0, 0.30),
        score("b", "callhome", "accuracy", 0, 61.0),
    ]
    table = load_static_input(write_scores(tmp_path / "run", rows))
    assert table.benchmarks == ("meld", "librispeech", "callhome")
    assert set(table.models) == {"a", "b"}
    assert table.scores.loc["a", "meld"] == pytest.approx(45.0)  # mean over prompt variants
    assert table.scores.loc["a", "librispeech"] == pytest.approx(0.10)
    assert np.isnan(table.scores.loc["a", "callhome"])
    assert table.lower_is_better == frozenset({"librispeech"})
    oriented = table.oriented()
    assert oriented.loc["a", "librispeech"] > oriented.loc["b", "librispeech"]  # less error
    same = read_scores_json(tmp_path / "run" / "scores.json")
    assert same.scores.equals(table.scores)


def test_csv_tables_of_the_study_load_with_wer_lower_is_better() -> None:
    tasks = load_static_input(PAPER_TABLE)
    assert len(tasks.benchmarks) == 14 and "group" not in tasks.benchmarks
    assert tasks.lower_is_better == frozenset({"asr_wer"})
    datasets = load_static_input(DATASET_CSV)
    assert len(datasets.benchmarks) == 18 and len(datasets.models) == 11


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([], "non-empty JSON list"),
        ({"model": "a"}, "non-empty JSON list"),
        (["x"], "entry 1 is not an object"),
        ([{"model": "a", "dataset": "d", "metric": "wer"}], "entry 1 has no score"),
        ([{"model": "a", "dataset": "d", "metric": "wer", "score": "high"}], "not a finite"),
        (
            [score("a", "d", "wer", 0, 0.1), score("b", "d", "accuracy", 0, 50.0)],
            "scored by accuracy and wer",
        ),
    ],
)
def test_malformed_scores_are_one_line_errors(tmp_path: Path, rows: Any, match: str) -> None:
    directory = write_scores(tmp_path / "run", rows)
    with pytest.raises(InvalidInputError, match=match) as caught:
        load_static_input(directory)
    assert "\n" not in str(caught.value)


def test_paths_that_are_not_static_scores_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"no scores\.json"):
        load_static_input(tmp_path)
    with pytest.raises(InvalidInputError, match="no such file"):
        load_static_input(tmp_path / "missing.csv")
    (tmp_path / "scores.txt").write_text("model,x\na,1\n")
    with pytest.raises(InvalidInputError, match="expected a static results directory"):
        load_static_input(tmp_path / "scores.txt")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        load_static_input(tmp_path / "bad.json")


def test_a_run_with_a_judge_and_an_unavailable_metric_is_read(tmp_path: Path) -> None:
    # What `static run --judge` writes when PEDANTS has no model files: the dataset's own
    # metric with a null score (unavailable) and a separately named llm_judge score.
    unavailable = score("a", "public_sg_speech", "pedants", 0, 0.0) | {"score": None}
    rows = [
        score("a", "meld", "macro_f1", 0, 40.0),
        score("b", "meld", "macro_f1", 0, 30.0),
        unavailable,
        score("b", "public_sg_speech", "pedants", 0, 55.0),
        score("a", "public_sg_speech", "llm_judge", 0, 70.0),
        score("b", "public_sg_speech", "llm_judge", 0, 60.0),
    ]
    table = load_static_input(write_scores(tmp_path / "run", rows))
    assert list(table.scores.columns) == ["meld", "public_sg_speech"]
    assert np.isnan(table.scores.loc["a", "public_sg_speech"])  # missing, not a judge score
    assert table.scores.loc["b", "public_sg_speech"] == 55.0
    judge_only = [score("a", "x", "llm_judge", 0, 1.0)]
    with pytest.raises(InvalidInputError, match="only llm_judge or cfmatch scores"):
        load_static_input(write_scores(tmp_path / "judge", judge_only))
