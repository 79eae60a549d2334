"""Table 1 from scores: means over datasets and prompt variants, in three formats."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from lamarena.bench.scoring.table import build_table, load_scores, render_csv, render_markdown
from lamarena.errors import InvalidInputError


def score(
    model: str, dataset: str, task: str, prompt: int, value: float | None, metric: str = "macro_f1"
) -> dict[str, Any]:
    return {
        "model": model,
        "dataset": dataset,
        "task": task,
        "metric": metric,
        "prompt_id": prompt,
        "n": 10,
        "score": value,
        "ci_low": None,
        "ci_high": None,
    }


SCORES = [
    score("m1", "iemocap", "emotion", 0, 40.0),
    score("m1", "iemocap", "emotion", 1, 60.0),
    score("m1", "meld", "emotion", 0, 20.0),  # one variant only: weighs as much as iemocap
    score("m1", "librispeech_asr", "asr", 0, 0.2, "wer"),
    score("m1", "commonvoice_asr", "asr", 0, 0.4, "wer"),
    score("m1", "public_sg_speech", "qa", 0, None, "pedants"),
    score("m1", "cn_college_listen", "qa", 0, 70.0),
    score("m1", "public_sg_speech", "qa", 0, 90.0, "llm_judge"),  # never in the table
    score("m1", "mustard", "sarcasm", 0, 55.0),
    score("m0", "mustard", "sarcasm", 0, 45.0),
    score("m0", "my_set", "colour", 0, 33.0),
]


def test_cells_are_means_of_dataset_means_in_table_1_order() -> None:
    rows = build_table(SCORES)
    assert rows == [
        {"model": "m0", "task": "sarcasm", "score": 45.0},
        {"model": "m0", "task": "colour", "score": 33.0},
        {"model": "m1", "task": "sarcasm", "score": 55.0},
        {"model": "m1", "task": "emotion", "score": pytest.approx(35.0)},
        {"model": "m1", "task": "qa", "score": None},  # PEDANTS unavailable: no half mean
        {"model": "m1", "task": "asr", "score": pytest.approx(0.3)},
    ]


def test_markdown_csv_and_json_agree(tmp_path: Path) -> None:
    rows = build_table(SCORES)
    baselines = [
        {
            "dataset": "mustard",
            "task": "sarcasm",
            "metric": "macro_f1",
            "score": 48.0,
            "nominal_score": 50.0,
        }
    ]
    markdown = render_markdown(rows, baselines)
    lines = markdown.splitlines()
    assert lines[0] == "| model | sarcasm | emotion | qa | asr (WER) | colour |"
    assert lines[2] == "| m0 | 45.0 | n/a | n/a | n/a | 33.0 |"
    assert lines[3] == "| m1 | 55.0 | 35.0 | n/a | 0.30 | n/a |"
    assert lines[4] == "| random (1/K) | 50.0 | - | - | - | - |"
    assert lines[5] == "| random (labels) | 48.0 | - | - | - | - |"
    table = list(csv.DictReader(io.StringIO(render_csv(rows))))
    assert list(table[0]) == ["model", "sarcasm", "emotion", "qa", "asr_wer", "colour"]
    assert table[1]["model"] == "m1" and float(table[1]["asr_wer"]) == pytest.approx(0.3)
    assert table[1]["qa"] == ""
    assert json.loads(json.dumps(rows))[0] == {"model": "m0", "task": "sarcasm", "score": 45.0}


def test_loading_scores_needs_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no such folder"):
        load_scores(tmp_path / "missing")
    (tmp_path / "run").mkdir()
    with pytest.raises(InvalidInputError, match="static run --out"):
        load_scores(tmp_path / "run")
    (tmp_path / "run" / "scores.json").write_text('{"not": "a list"}')
    with pytest.raises(InvalidInputError, match="not a list of static scores"):
        load_scores(tmp_path / "run")
    (tmp_path / "run" / "scores.json").write_text(json.dumps(SCORES))
    assert load_scores(tmp_path / "run") == (SCORES, [])
