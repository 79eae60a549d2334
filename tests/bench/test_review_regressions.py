"""Regressions found in review: accent answers, resumed logs cut mid-character, repeated ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lamarena.bench.data.registry import load_registry
from lamarena.bench.scoring.parsing import parse_label
from lamarena.bench.scoring.results import SamplesLog
from lamarena.errors import InvalidInputError

REGISTRY = load_registry()


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("American English", "american"),
        ("The speaker has an Indian English accent.", "indian"),
        ("Sounds like US English", "american"),
        ("British English", "british"),
        ("an accent from England", "british"),
    ],
)
def test_an_accent_named_with_english_is_that_accent(answer: str, label: str) -> None:
    spec = REGISTRY.dataset("commonvoice_accent")
    parsed = parse_label(answer, spec.labels, spec.aliases)
    assert parsed.label == label, parsed


def _row(sample_id: str) -> dict[str, object]:
    return {
        "model": "m",
        "dataset": "d",
        "task": "t",
        "prompt_id": 0,
        "sample_id": sample_id,
        "reference": "café 听力",
        "prediction": "x",
    }


def test_a_log_cut_inside_a_character_resumes(tmp_path: Path) -> None:
    whole = (json.dumps(_row("0"), ensure_ascii=False) + "\n").encode()
    partial = json.dumps(_row("1"), ensure_ascii=False).encode()
    cut = partial.index("听".encode()) + 1  # the kill lands inside a multi-byte character
    (tmp_path / "samples.jsonl").write_bytes(whole + partial[:cut])
    log = SamplesLog(tmp_path)
    assert log.done() == {("m", "d", 0, "0")}
    log.append(_row("1"))
    log.close()
    assert log.done() == {("m", "d", 0, "0"), ("m", "d", 0, "1")}
    lines = (tmp_path / "samples.jsonl").read_bytes().split(b"\n")
    assert lines[1] == partial[:cut]  # the torn line is kept, ended, and skipped


def test_an_id_column_that_repeats_is_refused() -> None:
    from datasets import Dataset

    from lamarena.bench.data.loading import plan_samples

    spec = REGISTRY.dataset("mustard").model_copy(update={"id_column": "speaker"})
    rows = Dataset.from_dict({"sarcasm": [True, False, True], "speaker": ["ann", "bob", "ann"]})
    with pytest.raises(InvalidInputError, match=r"id_column 'speaker' repeats 'ann'"):
        plan_samples(spec, rows, limit=None)
    unique = Dataset.from_dict({"sarcasm": [True, False], "speaker": ["ann", "bob"]})
    assert plan_samples(spec, unique, limit=None).indices == [0, 1]
