"""Flagged votes on the command line: leaderboard filters, ``votes audit``, ``battles prune``."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from helpers.cli import ok, run_cli
from helpers.databases import DatabaseFactory
from store.arena_rows import ArenaRows

QUICK = ["--bootstrap", "50", "--seed", "3"]
MODELS = ("alpha", "beta", "gamma")


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def _url(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def flagged_votes(tmp_path: Path) -> Path:
    """600 simulated battles, the first 100 flagged and not counted."""
    simulated = tmp_path / "sim.jsonl"
    ok(
        run_cli(
            "simulate", "--models", "3", "--votes", "600", "--seed", "4", "--out", simulated,
            cwd=tmp_path,
        )
    )  # fmt: skip
    rows = [json.loads(line) for line in simulated.read_text().splitlines()]
    for row in rows[:100]:
        row.update(counted=False, flags=["self_identified"])
    out = tmp_path / "flagged.jsonl"
    out.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return out


def _n_battles(*args: str | Path, cwd: Path) -> int:
    result = ok(run_cli("leaderboard", *args, "--json", *QUICK, cwd=cwd))
    return int(json.loads(result.stdout)["n_battles"])


def test_leaderboard_of_a_file_counts_only_counted_votes(
    flagged_votes: Path, tmp_path: Path
) -> None:
    from_file = ("--votes", flagged_votes, "--from", "jsonl")
    assert _n_battles(*from_file, cwd=tmp_path) == 500
    assert _n_battles(*from_file, "--include-flagged", cwd=tmp_path) == 600


def test_leaderboard_of_the_database_counts_only_counted_votes(
    flagged_votes: Path, tmp_path: Path, databases: DatabaseFactory
) -> None:
    db = databases.url(migrated=False)
    ok(run_cli("votes", "import", flagged_votes, "--from", "jsonl", "--db", db, cwd=tmp_path))
    assert _n_battles("--db", db, cwd=tmp_path) == 500
    assert _n_battles("--db", db, "--include-flagged", cwd=tmp_path) == 600
    table = ok(run_cli("leaderboard", "--db", db, *QUICK, cwd=tmp_path)).stdout
    assert "500 battles" in table
    ok(run_cli("votes", "export", tmp_path / "out.jsonl", "--db", db, cwd=tmp_path))
    exported = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sum(not row["counted"] for row in exported) == 100  # an export keeps every battle


def _arena_store(engine) -> dict[str, str]:
    """Five ordinary sessions and one that votes in under a second; returns the fast one."""
    rows = ArenaRows(engine)
    pairs = [(a, b) for a in MODELS for b in MODELS if a != b]
    winners = ["model_a", "model_b", "tie", "model_a", "model_b"]
    for number in range(5):
        session_id = rows.session()
        for turn, winner in enumerate(winners):
            model_a, model_b = pairs[(number + turn) % len(pairs)]
            rows.battle(
                session_id,
                winner=winner,
                model_a=model_a,
                model_b=model_b,
                seconds_after_replies=6.0,
                client_hash=f"{number:02d}" * 32,
                vote_client_hash=f"{number:02d}" * 32,
            )
    fast = rows.session()
    for turn in range(6):
        model_a, model_b = pairs[turn]
        rows.battle(
            fast,
            winner="model_a",
            model_a=model_a,
            model_b=model_b,
            seconds_after_replies=0.4,
            client_hash="ff" * 32,
            vote_client_hash="ff" * 32,
        )
    return {"fast": fast}


def test_exclude_flagged_drops_the_votes_audit_flags(
    tmp_path: Path, databases: DatabaseFactory
) -> None:
    engine = databases.engine()
    _arena_store(engine)
    db = _url(engine)
    assert _n_battles("--db", db, cwd=tmp_path) == 31
    assert _n_battles("--db", db, "--exclude-flagged", cwd=tmp_path) == 25


def test_votes_audit_json_and_table(tmp_path: Path, databases: DatabaseFactory) -> None:
    engine = databases.engine()
    fast = _arena_store(engine)["fast"]
    db = _url(engine)
    result = ok(run_cli("votes", "audit", "--db", db, "--json", cwd=tmp_path))
    assert fast not in result.stdout
    document = json.loads(result.stdout)
    assert len(document["sessions"]) == 6 and len(document["addresses"]) == 6
    first = document["sessions"][0]
    assert first["flags"] == ["fast"] and first["session"].startswith("sh-")
    assert first["median_seconds_after_replies"] == 0.4
    assert (first["votes"], first["side"], first["side_share"]) == (6, "a", 1.0)
    assert document["addresses"][0] == {
        "address": "ff" * 32,
        "votes": 6,
        "battles": 6,
        "median_seconds_after_replies": 0.4,
        "side": "a",
        "side_share": 1.0,
        "duplicate_audio": 0,
        "uncounted": 0,
        "sessions_per_day": 1,
        "flags": ["fast"],
    }
    assert document["flagged"] == {"sessions": 1, "addresses": 1, "votes": 6}

    table = ok(run_cli("votes", "audit", "--db", db, cwd=tmp_path)).stdout
    assert fast not in table
    assert first["session"] in table and "ff" * 8 in table
    assert "6 sessions, 1 flagged" in table and "6 addresses, 1 flagged" in table
    assert "fast" in table and "leaves out 6 votes" in table


def test_votes_audit_of_an_empty_store(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'empty.db'}"
    document = json.loads(ok(run_cli("votes", "audit", "--db", db, "--json", cwd=tmp_path)).stdout)
    assert document["sessions"] == [] and document["addresses"] == []
    assert "0 sessions, 0 flagged" in ok(run_cli("votes", "audit", "--db", db, cwd=tmp_path)).stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["leaderboard", "--votes", "x.jsonl", "--from", "jsonl", "--exclude-flagged"],
            "--exclude-flagged needs the voter signals stored in the database",
        ),
        (
            ["leaderboard", "--include-flagged", "--exclude-flagged"],
            "give --include-flagged or --exclude-flagged, not both",
        ),
        (["battles", "prune", "--older-than", "7weeks"], "--older-than '7weeks': give a whole"),
        (["battles", "prune", "--older-than", "0d"], "more than zero"),
    ],
)
def test_bad_flag_combinations_are_one_line(args: list[str], needle: str, tmp_path: Path) -> None:
    (tmp_path / "x.jsonl").write_text("")
    db = f"sqlite:///{tmp_path / 'e.db'}"
    extra = ["--db", db] if args[0] == "battles" or "--votes" not in args else []
    assert needle in one_error_line(run_cli(*args, *extra, cwd=tmp_path))


def test_battles_prune_dry_run_then_prune(tmp_path: Path, databases: DatabaseFactory) -> None:
    engine = databases.engine()
    rows = ArenaRows(engine)
    data = tmp_path / "data"
    (data / "audio").mkdir(parents=True)
    audio = data / "audio" / "old.wav"
    audio.write_bytes(b"x" * 321)
    session_id = rows.session(consent=True)
    old = datetime.now(UTC) - timedelta(days=10)
    rows.battle(session_id, winner=None, created_at=old, kept_audio_path=str(audio))
    rows.battle(session_id, winner=None, created_at=datetime.now(UTC))
    voted = rows.battle(session_id, created_at=old)
    rows.event("c1" * 32, "battle", old)
    db = _url(engine)
    prune = ("battles", "prune", "--older-than", "7d", "--db", db, "--data-dir", data)

    dry = json.loads(ok(run_cli(*prune, "--dry-run", "--json", cwd=tmp_path)).stdout)
    assert {key: dry[key] for key in ("battles", "replies", "client_events", "dry_run")} == {
        "battles": 1,
        "replies": 2,
        "client_events": 1,
        "dry_run": True,
    }
    assert (dry["audio_files"], dry["audio_bytes"]) == (1, 321)
    assert audio.exists()

    text = ok(run_cli(*prune, cwd=tmp_path)).stdout
    assert "removed 1 unvoted battles" in text and "1 kept audio files (321 bytes)" in text
    assert "1 client events" in text
    assert not audio.exists()
    with engine.connect() as connection:
        remaining = {row[0] for row in connection.exec_driver_sql("SELECT id FROM battles")}
    assert voted in remaining and len(remaining) == 2
