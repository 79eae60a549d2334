"""``lamarena static list|run|table`` run as a user runs them: a subprocess, real files."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.fake_static_model import FakeStaticModel, FakeStaticServer, audio_digest
from helpers.static_cli import static_cli
from helpers.static_fixtures import FixtureSample, gender_fixture

ANSWERS = ["male", "The speaker is male.", "female", "Female.", "I can't tell.", "A woman."]
HAND_MACRO_F1 = 100 * ((2 * 2 / (3 + 2)) + (2 * 2 / (3 + 3))) / 2


def static(*args: str | Path, home: Path) -> subprocess.CompletedProcess[str]:
    return static_cli(*args, home=home, timeout_s=120)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def gender(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[FixtureSample]]:
    folder = tmp_path_factory.mktemp("cli-static") / "gender"
    return folder, gender_fixture(folder)


@pytest.fixture
def server(gender: tuple[Path, list[FixtureSample]]) -> Iterator[FakeStaticServer]:
    _, samples = gender
    fake = FakeStaticModel(
        {audio_digest(s.audio): answer for s, answer in zip(samples, ANSWERS, strict=True)}
    )
    with fake.serve() as running:
        yield running


@pytest.fixture
def config(tmp_path: Path, server: FakeStaticServer) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(
        f"models:\n  - {{name: fake, kind: openai, model: m, base_url: '{server.base_url}'}}\n"
    )
    return path


def test_list_json_shows_all_20_datasets_with_hub_ids(tmp_path: Path) -> None:
    result = static("list", "--json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == 20
    assert all(set(row) == {"name", "task", "hf_id", "split", "size", "metric"} for row in rows)
    assert {row["hf_id"] for row in rows} >= {"SALT-NLP/Mustard_sarcasm", "qmeeus/slurp"}
    plain = static("list", home=tmp_path)
    assert len(plain.stdout.splitlines()) == 20 and "SALT-NLP/URFunny_humor" in plain.stdout


def test_run_then_table_in_three_formats(
    tmp_path: Path, config: Path, gender: tuple[Path, list[FixtureSample]]
) -> None:
    out = tmp_path / "results"
    result = static(
        "run", "--config", config, "--models", "fake", "--datasets", gender[0], "--prompts", "2",
        "--out", out, "--json", home=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["counts"]["calls"] == 12
    assert [entry["score"] for entry in summary["scores"]] == pytest.approx([HAND_MACRO_F1] * 2)
    assert (out / "samples.jsonl").read_text().count("\n") == 12

    table = static("table", "--out", out, "--json", home=tmp_path)
    assert table.returncode == 0, table.stderr
    assert json.loads(table.stdout) == [
        {"model": "fake", "task": "gender", "score": pytest.approx(HAND_MACRO_F1)}
    ]
    markdown = static("table", "--out", out, home=tmp_path).stdout.splitlines()
    assert markdown[0] == "| model | gender |"
    assert markdown[2] == "| fake | 73.3 |" and markdown[3] == "| random (1/K) | 50.0 |"
    assert markdown[4] == "| random (labels) | 50.0 |"
    csv_text = static("table", "--out", out, "--format", "csv", home=tmp_path).stdout
    assert csv_text.splitlines()[0] == "model,gender"
    assert csv_text.splitlines()[1].startswith("fake,73.33")

    rerun = static("run", "--config", config, "--models", "fake", "--datasets", gender[0],
                   "--prompts", "2", "--out", out, home=tmp_path)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.startswith("0 model calls, 0 from the cache, 12 already done")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--models", "fake", "--datasets", "mustrad"), "Did you mean 'mustard'"),
        (("run", "--models", "fake", "--datasets", "mustard"),
         "dataset 'mustard' (SALT-NLP/Mustard_sarcasm) could not be loaded: no network access"),
        (("run", "--models", "fake", "--datasets", "./nowhere"), "no such folder"),
        (("run", "--models", "nobody", "--datasets", "mustard"), "no model named 'nobody'"),
        (("run", "--models", " , ", "--datasets", "mustard"), "--models is empty"),
        (("table", "--out", "missing"), "no such folder"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path, config: Path, args: tuple[str, ...], message: str
) -> None:
    argv: list[str | Path] = list(args)
    if args[0] == "run":
        argv += ["--config", config, "--out", tmp_path / "out"]
    line = one_line_error(static(*argv, home=tmp_path))
    assert message in line
    assert not (tmp_path / "out").exists()


def test_out_of_range_prompts_is_a_usage_error(tmp_path: Path) -> None:
    result = static("run", "--models", "a", "--datasets", "b", "--prompts", "4", home=tmp_path)
    assert result.returncode == 2
    assert "--prompts" in result.stderr
