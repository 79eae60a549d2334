"""``leaderboard`` and ``analyze`` given a folder of vote shards, run as a user runs them.

The cluster runs (``--scheduler``) are in ``tests/store/test_shards.py``, which starts one
``LocalCluster`` for all of them; here the folder is read in one process.
"""

from __future__ import annotations

import json
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from helpers.cli import run_cli as run_lamarena
from lamarena.cli.analyze import load_battles_with_feedback
from lamarena.cli.common import VoteFormat
from lamarena.settings import load_settings
from lamarena.simulation.battles import simulate_battles
from lamarena.store.exporters import write_battle_records
from lamarena.store.records import records_from_frame

run_cli = partial(run_lamarena, timeout_s=180)


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout
    message = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message
    return message


@pytest.fixture(scope="module")
def votes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same 600 votes as one JSONL file and as a folder of three JSONL shards."""
    directory = tmp_path_factory.mktemp("votes")
    frame = simulate_battles(
        {"a": 1100.0, "b": 1000.0, "c": 930.0, "d": 1040.0},
        600,
        seed=8,
        votes_per_participant=12,
        feedback=True,
    )
    frame.loc[frame.index % 11 == 0, "counted"] = False
    records = records_from_frame(frame)
    whole = directory / "votes.jsonl"
    write_battle_records(records, whole)
    folder = directory / "shards"
    folder.mkdir()
    for name, (start, stop) in zip("abc", ((0, 150), (150, 420), (420, 600)), strict=True):
        write_battle_records(records[start:stop], folder / f"{name}.jsonl")
    return whole, folder


QUICK = ("--from", "jsonl", "--json", "--bootstrap", "100", "--seed", "3")


@pytest.mark.parametrize("extra", [("--control", "length"), ("--by", "turns")])
def test_the_record_paths_read_a_folder_like_its_file(votes, tmp_path, extra):
    whole, folder = votes
    from_folder = _json(run_cli("leaderboard", "--votes", folder, *QUICK, *extra, cwd=tmp_path))
    from_file = _json(run_cli("leaderboard", "--votes", whole, *QUICK, *extra, cwd=tmp_path))
    assert from_folder == from_file


def test_the_columnar_path_reads_a_folder_like_its_file(votes, tmp_path):
    whole, folder = votes
    from_folder = _json(run_cli("leaderboard", "--votes", folder, *QUICK, cwd=tmp_path))
    from_file = _json(run_cli("leaderboard", "--votes", whole, *QUICK, cwd=tmp_path))
    assert from_folder == from_file
    assert from_folder["n_battles"] == 600 - 55


def test_analyze_reads_a_folder_like_its_file(votes):
    whole, folder = votes
    settings = load_settings()
    from_folder = load_battles_with_feedback(settings, folder, VoteFormat.JSONL)
    from_file = load_battles_with_feedback(settings, whole, VoteFormat.JSONL)
    assert from_folder.equals(from_file)
    assert from_folder["feedback_text"].notna().any()


def test_a_scheduler_needs_a_folder(votes, tmp_path):
    whole, _ = votes
    address = "tcp://127.0.0.1:9"
    message = _error(
        run_cli("leaderboard", "--votes", whole, *QUICK, "--scheduler", address, cwd=tmp_path)
    )
    assert f"--votes {whole} is not a folder" in message
    message = _error(
        run_cli(
            "analyze",
            "--static",
            tmp_path / "absent.csv",
            "--out",
            tmp_path / "report",
            "--scheduler",
            address,
            cwd=tmp_path,
        )
    )
    assert "--scheduler spreads the shards of a --votes folder over a Dask cluster" in message
    assert "no --votes" in message


def test_a_folder_of_another_format_is_refused(votes, tmp_path):
    _, folder = votes
    message = _error(
        run_cli("leaderboard", "--votes", folder, "--from", "talk-arena", cwd=tmp_path)
    )
    assert "holds jsonl or parquet files, not talk-arena" in message
    message = _error(run_cli("leaderboard", "--votes", folder, "--from", "parquet", cwd=tmp_path))
    assert "no *.parquet shard in this folder (it holds .jsonl files)" in message
