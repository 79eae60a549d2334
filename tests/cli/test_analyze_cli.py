"""``lamarena analyze`` run as a user runs it: simulated study votes in, a report directory out."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest

from helpers.cli import ok
from helpers.cli import run_cli as run_lamarena
from helpers.fake_openai import FakeOpenAI

PAPER_TABLE = Path(__file__).parents[2] / "src/lamarena/data/study/paper_table1_static.csv"
PAPER_MODELS = "GPT4o,Gemini,Qwen2-audio,Typhoon,DiVA,Qwen-audio,NExTGPT,PandaGPT,ASR Pipeline"
QUICK = ["--bootstrap", "200", "--tau-rounds", "100", "--seed", "2"]


run_cli = partial(run_lamarena, timeout_s=240)


@pytest.fixture(scope="module")
def study_votes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("study")
    out = directory / "votes.jsonl"
    ok(
        run_cli(
            "simulate",
            "--models",
            PAPER_MODELS,
            "--votes",
            "900",
            "--seed",
            "5",
            "--study",
            "--out",
            out,
            cwd=directory,
        )
    )
    return out


def test_simulated_study_votes_carry_transcripts_and_reasons(study_votes: Path) -> None:
    records = [json.loads(line) for line in study_votes.read_text().splitlines()]
    assert len(records) == 900
    assert all(record["query_transcript"] for record in records)
    reasons = [record["feedback_text"] for record in records if record["feedback_text"]]
    assert 0.3 < len(reasons) / 900 < 0.5


def test_analyze_writes_the_report_with_a_tau_for_every_task(
    study_votes: Path, tmp_path: Path
) -> None:
    result = ok(
        run_cli(
            "analyze",
            "--votes",
            study_votes,
            "--from",
            "jsonl",
            "--static",
            PAPER_TABLE,
            "--out",
            tmp_path / "report",
            *QUICK,
            cwd=tmp_path,
        )
    )
    assert "index.html" in result.stdout and "14 benchmarks" in result.stdout
    assert result.stderr == ""  # nothing left out, no progress bars
    numbers = json.loads((tmp_path / "report" / "numbers.json").read_text())
    assert len(numbers["kendall_tau"]) == 14
    assert {row["benchmark"] for row in numbers["kendall_tau"]} >= {"humor", "asr_wer", "qa"}
    assert numbers["leaderboard"]["n_battles"] == 900
    assert numbers["leaderboard"]["n_resamples"] == 200
    assert numbers["topics"]["n_queries"] == 900
    assert numbers["feedback"]["n_feedback"] > 200
    assert numbers["regression"] and numbers["pca"]
    assert numbers["regression"]["method"] == "logistic_mixed_model_laplace"
    assert numbers["settings"]["permutations"] == 1000
    html = (tmp_path / "report" / "index.html").read_text()
    assert html.startswith("<!doctype html>") and "fig-kendall-tau" in html


def test_analyze_reads_the_database_and_names_topics_with_a_text_model(
    study_votes: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    ok(run_cli("votes", "import", study_votes, "--from", "jsonl", "--db", url, cwd=tmp_path))
    fake = FakeOpenAI(deltas=("advice ", "seeking"))
    with fake.serve() as server:
        config = tmp_path / "models.yaml"
        config.write_text(
            "models:\n  - name: namer\n    kind: openai\n    model: fake-text-model\n"
            f"    base_url: {server.base_url}\n"
        )
        ok(
            run_cli(
                "analyze",
                "--db",
                url,
                "--static",
                PAPER_TABLE,
                "--out",
                tmp_path / "report",
                "--topics",
                "4",
                "--config",
                config,
                "--label-model",
                "namer",
                *QUICK,
                cwd=tmp_path,
            )
        )
    numbers = json.loads((tmp_path / "report" / "numbers.json").read_text())
    assert numbers["n_battles"] == 900
    topics = numbers["topics"]
    assert len(topics["topics"]) == 4
    assert topics["labelled_by"] == "namer" and topics["label_failures"] == {}
    assert {topic["label"] for topic in topics["topics"]} == {"advice seeking"}
    assert len(fake.chat_requests) == 4 + sum(len(t["subtopics"]) for t in topics["topics"])
    given = sum(
        1 for line in study_votes.read_text().splitlines() if json.loads(line)["feedback_text"]
    )
    assert numbers["feedback"]["n_feedback"] == given


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--db", "sqlite:///x.db", "--votes", "v.jsonl"], "give either --db or --votes"),
        (["--votes", "VOTES"], "--votes needs --from"),
        (["--votes", "VOTES", "--from", "jsonl", "--static", "missing.csv"], "no such file"),
        (["--votes", "VOTES", "--from", "jsonl", "--label-model", "x"], "needs --config"),
        (
            ["--votes", "VOTES", "--from", "jsonl", "--regression", "probit"],
            "regression model must be one of logistic, linear",
        ),
    ],
)
def test_bad_input_is_one_line(
    study_votes: Path, tmp_path: Path, arguments: list[str], message: str
) -> None:
    arguments = [str(study_votes) if a == "VOTES" else a for a in arguments]
    if "--static" not in arguments:
        arguments += ["--static", str(PAPER_TABLE)]
    result = run_cli("analyze", *arguments, "--out", tmp_path / "report", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "report").exists()
