"""The ``lamarena`` command run as a user runs it: a real subprocess, real files, real SQLite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers.cli import ok, run_cli
from helpers.databases import DatabaseFactory

QUICK = ["--bootstrap", "200", "--seed", "3"]


@pytest.fixture
def simulated(tmp_path: Path) -> Path:
    out = tmp_path / "sim.jsonl"
    result = ok(
        run_cli(
            "simulate",
            "--models",
            "strong,middle,weak",
            "--votes",
            "600",
            "--seed",
            "1",
            "--study",
            "--out",
            out,
            cwd=tmp_path,
        )
    )
    assert "600" in result.stdout
    return out


def test_simulate_writes_one_battle_record_per_line(simulated: Path) -> None:
    lines = simulated.read_text().splitlines()
    assert len(lines) == 600
    first = json.loads(lines[0])
    for field in ("battle_id", "model_a", "model_b", "winner", "latency_a", "query_transcript"):
        assert field in first
    assert first["model_a"] != first["model_b"]
    assert first["query_transcript"]
    assert {json.loads(line)["winner"] for line in lines} <= {
        "model_a",
        "model_b",
        "tie",
        "both_bad",
    }


def test_simulate_is_reproducible_with_a_seed(tmp_path: Path) -> None:
    outs = []
    for name in ("a.jsonl", "b.jsonl"):
        ok(
            run_cli(
                "simulate",
                "--models",
                "4",
                "--votes",
                "50",
                "--seed",
                "9",
                "--out",
                name,
                cwd=tmp_path,
            )
        )
        outs.append(
            [
                (r["model_a"], r["model_b"], r["winner"])
                for r in map(json.loads, (tmp_path / name).read_text().splitlines())
            ]
        )
    assert outs[0] == outs[1]


def test_simulate_with_active_sampling_records_each_battles_probability(tmp_path: Path) -> None:
    result = ok(
        run_cli(
            "simulate",
            "--models",
            "6",
            "--votes",
            "400",
            "--sampling",
            "active",
            "--json",
            "--out",
            "active.jsonl",
            cwd=tmp_path,
        )
    )
    assert json.loads(result.stdout)["sampling"] == "active"
    records = [json.loads(line) for line in (tmp_path / "active.jsonl").read_text().splitlines()]
    chances = [record["sampling_probability"] for record in records]
    assert len(records) == 400
    assert all(0 < chance < 1 for chance in chances)
    assert len(set(chances)) > 5  # the design moved as votes came in
    ranked = _leaderboard_of_file(tmp_path / "active.jsonl", tmp_path)
    assert ranked["n_battles"] == 400
    assert ranked["weights"] == "ipw"  # auto: the pairs had unequal chances
    unweighted = _leaderboard_of_file(tmp_path / "active.jsonl", tmp_path, "--weights", "none")
    assert unweighted["weights"] == "none"
    rating = {row["model"]: row["rating"] for row in ranked["models"]}
    plain = {row["model"]: row["rating"] for row in unweighted["models"]}
    assert rating != plain


def _leaderboard_of_file(votes: Path, cwd: Path, *options: str) -> dict[str, Any]:
    """``leaderboard --votes VOTES --from jsonl --json`` (quick settings) as a document."""
    result = run_cli(
        "leaderboard", "--votes", votes, "--from", "jsonl", "--json", *options, *QUICK, cwd=cwd
    )
    document: dict[str, Any] = json.loads(ok(result).stdout)
    return document


def test_leaderboard_json_from_votes_file_ranks_known_strengths(
    simulated: Path, tmp_path: Path
) -> None:
    document = _leaderboard_of_file(simulated, tmp_path)
    assert document["n_battles"] == 600
    ranked = [row["model"] for row in document["models"] if not row["provisional"]]
    # strengths from names are listed strongest first by parse_strengths' spread
    assert ranked == ["strong", "middle", "weak"]
    for row in document["models"]:
        assert row["ci_low"] <= row["rating"] <= row["ci_high"]
        assert 0.0 <= row["win_rate"] <= 1.0
    assert abs(sum(row["rating"] for row in document["models"]) / 3 - 1000) < 1e-6
    assert len(document["pairwise"]) == 3
    assert len(document["head_to_head"]) == 3
    assert "unadjusted" in document["tests"]["head_to_head"]
    # simulate --study has participants casting 10 votes each: the intervals resample them
    assert document["cluster"] == {"by": "participant", "n_clusters": 60}

    holm = _leaderboard_of_file(simulated, tmp_path, "--holm", "--cluster", "none")
    assert "Holm-adjusted" in holm["tests"]["head_to_head"]
    assert holm["cluster"] == {"by": "none", "n_clusters": 600}
    for plain, adjusted in zip(document["head_to_head"], holm["head_to_head"], strict=True):
        assert adjusted["p_value"] == plain["p_value"]
        assert adjusted["significant"] == (adjusted["p_holm"] < 0.05)


def test_import_then_leaderboard_from_database_matches_file(
    simulated: Path, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'arena.db'}"
    result = ok(run_cli("votes", "import", simulated, "--from", "jsonl", "--db", db, cwd=tmp_path))
    assert "imported 600" in result.stdout
    from_db = json.loads(
        ok(run_cli("leaderboard", "--db", db, "--json", *QUICK, cwd=tmp_path)).stdout
    )
    from_file = _leaderboard_of_file(simulated, tmp_path)
    assert from_db == from_file


def test_export_round_trip_keeps_every_field(
    simulated: Path, tmp_path: Path, databases: DatabaseFactory
) -> None:
    db = databases.url(migrated=False)
    ok(run_cli("votes", "import", simulated, "--from", "jsonl", "--db", db, cwd=tmp_path))
    ok(run_cli("votes", "export", tmp_path / "out.jsonl", "--db", db, cwd=tmp_path))
    original = sorted(
        map(json.loads, simulated.read_text().splitlines()), key=lambda r: r["battle_id"]
    )
    exported = sorted(
        map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines()),
        key=lambda r: r["battle_id"],
    )
    assert exported == original


def test_bad_import_prints_one_line_and_changes_nothing(
    simulated: Path, tmp_path: Path, databases: DatabaseFactory
) -> None:
    db = databases.url()
    ok(run_cli("votes", "import", simulated, "--from", "jsonl", "--db", db, cwd=tmp_path))
    bad = tmp_path / "bad.jsonl"
    rows = [json.loads(line) for line in simulated.read_text().splitlines()[:5]]
    for i, row in enumerate(rows):
        row["battle_id"] = f"new-{i}"
    rows[3]["winner"] = "model_c"
    bad.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = run_cli("votes", "import", bad, "--from", "jsonl", "--db", db, cwd=tmp_path)
    assert result.returncode == 1
    message = result.stderr.strip()
    assert message.startswith("error: ")
    assert "\n" not in message
    assert "bad.jsonl: record 4: field 'winner'" in message
    ok(run_cli("votes", "export", tmp_path / "after.jsonl", "--db", db, cwd=tmp_path))
    assert len((tmp_path / "after.jsonl").read_text().splitlines()) == 600


def test_leaderboard_on_empty_database_says_there_are_no_votes(tmp_path: Path) -> None:
    result = run_cli("leaderboard", "--db", f"sqlite:///{tmp_path / 'empty.db'}", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_one_win_model_is_provisional_not_a_huge_number(tmp_path: Path) -> None:
    votes = tmp_path / "votes.json"
    records = {}
    for i in range(40):
        records[str(i)] = {
            "model_a": "a",
            "model_b": "b",
            "outcome": [0, 1, 0.5][i % 3],
            "why": "",
            "model_a_latency": 1.0,
            "model_b_latency": 2.0,
            "audio_hash": f"h{i}",
        }
    records["40"] = {
        "model_a": "lucky",
        "model_b": "a",
        "outcome": 0,
        "why": "",
        "audio_hash": "x",
        "model_a_latency": 1.0,
        "model_b_latency": 1.0,
    }
    votes.write_text(json.dumps({"_default": records}))
    result = ok(
        run_cli(
            "leaderboard", "--votes", votes, "--from", "talk-arena", "--json", *QUICK, cwd=tmp_path
        )
    )
    rows = {row["model"]: row for row in json.loads(result.stdout)["models"]}
    assert rows["lucky"]["provisional"] is True
    assert rows["lucky"]["rating"] is None
    assert rows["lucky"]["ci_low"] is None
    assert rows["lucky"]["ci_high"] is None
    assert rows["a"]["provisional"] is False
    table = ok(
        run_cli("leaderboard", "--votes", votes, "--from", "talk-arena", *QUICK, cwd=tmp_path)
    ).stdout
    assert "provisional" in table.lower()
    assert "lucky" in table


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["leaderboard", "--bogus"], "--bogus"),
        (["leaderboard", "--control", "colour"], "colour"),
        (["leaderboard", "--mode", "video"], "--mode"),
        (["leaderboard", "--votes", "missing.jsonl", "--from", "jsonl"], "missing.jsonl"),
        (["leaderboard", "--votes", "x.jsonl"], "--from"),
        (["simulate", "--models", "3", "--votes", "5", "--out", "x.csv"], ".jsonl"),
        (["votes", "export", "out.csv", "--db", "sqlite:///e.db"], "out.csv"),
        (["votes", "import", "x.jsonl"], "--from"),
        (["leaderboard", "--min-battles", "-1"], "--min-battles"),
        (
            ["leaderboard", "--votes", "x.jsonl", "--from", "jsonl", "--db", "sqlite:///e.db"],
            "either --db or --votes",
        ),
        (["leaderboard", "--db", "sqlite:////nonexistent-dir/x.db"], "cannot connect"),
    ],
)
def test_bad_input_exits_non_zero_with_one_line(
    args: list[str], needle: str, tmp_path: Path
) -> None:
    (tmp_path / "x.jsonl").write_text("")
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert needle in lines[0]


def test_parquet_export_imports_back_into_a_fresh_database(
    simulated: Path, tmp_path: Path, databases: DatabaseFactory
) -> None:
    first, second = databases.url(migrated=False), databases.url(migrated=False)
    ok(run_cli("votes", "import", simulated, "--from", "jsonl", "--db", first, cwd=tmp_path))
    ok(run_cli("votes", "export", tmp_path / "out.parquet", "--db", first, cwd=tmp_path))
    result = ok(
        run_cli(
            "votes",
            "import",
            tmp_path / "out.parquet",
            "--from",
            "parquet",
            "--db",
            second,
            cwd=tmp_path,
        )
    )
    assert "imported 600" in result.stdout
    ok(run_cli("votes", "export", tmp_path / "again.jsonl", "--db", second, cwd=tmp_path))
    original = sorted(
        map(json.loads, simulated.read_text().splitlines()), key=lambda r: r["battle_id"]
    )
    again = sorted(
        map(json.loads, (tmp_path / "again.jsonl").read_text().splitlines()),
        key=lambda r: r["battle_id"],
    )
    assert again == original


def test_bad_environment_setting_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    result = run_cli("leaderboard", cwd=tmp_path, env={"LAMARENA_SEED": "abc"})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: invalid settings: LAMARENA_SEED='abc'")


def test_no_arguments_prints_help_without_an_error_line(tmp_path: Path) -> None:
    result = run_cli(cwd=tmp_path)
    assert result.returncode == 2
    assert "leaderboard" in result.stdout + result.stderr
    assert "error:" not in result.stdout + result.stderr


def _mixed_mode_votes(tmp_path: Path) -> Path:
    """60 text-out votes (x ahead) and 40 speech-out votes (z ahead), 1 to 3 turns each."""
    records = []
    for number in range(100):
        speech = number >= 60
        pair = [("x", "y"), ("y", "z"), ("z", "x")][number % 3]
        favourite = "z" if speech else "x"  # wins all its battles but the ties
        if number % 5 == 0:
            winner = "tie"
        elif favourite in pair:
            winner = "model_a" if pair[0] == favourite else "model_b"
        else:
            winner = ["model_a", "model_b"][number % 2]
        turns = [{"query_transcript": f"q{number}", "reply_a": "a", "reply_b": "b"}]
        turns += [{"query_transcript": "more", "reply_a": "a", "reply_b": "b"}] * (number % 3)
        record: dict[str, Any] = {
            "battle_id": f"b{number}",
            "created_at": "2026-11-01T00:00:00Z",
            "model_a": pair[0],
            "model_b": pair[1],
            "winner": winner,
            "turns": turns,
            "n_turns": len(turns),
        }
        if speech:
            record["mode"] = "speech"
            record["latency_a"] = {"ttfab_s": 0.5 + number % 7 / 4, "audio_s": 4.0 + number % 5}
            record["latency_b"] = {"ttfab_s": 0.8 + number % 3 / 2, "audio_s": 6.0 - number % 4}
        records.append(record)
    votes = tmp_path / "modes.jsonl"
    votes.write_text("".join(json.dumps(record) + "\n" for record in records))
    return votes


def test_leaderboard_never_pools_text_out_and_speech_out_votes(tmp_path: Path) -> None:
    votes = _mixed_mode_votes(tmp_path)
    refused = run_cli("leaderboard", "--votes", votes, "--from", "jsonl", *QUICK, cwd=tmp_path)
    assert refused.returncode == 1
    message = refused.stderr.strip()
    assert "60 text-out and 40 speech-out" in message
    assert "--by mode" in message and "--mode text" in message
    by_mode = _leaderboard_of_file(votes, tmp_path, "--by", "mode", "--min-battles", "1")
    assert by_mode["by"] == "mode"
    groups = {group["group"]: group for group in by_mode["groups"]}
    assert (groups["text"]["n_battles"], groups["speech"]["n_battles"]) == (60, 40)
    assert groups["text"]["leaderboard"]["models"][0]["model"] == "x"
    assert groups["speech"]["leaderboard"]["models"][0]["model"] == "z"
    speech = _leaderboard_of_file(votes, tmp_path, "--mode", "speech", "--min-battles", "1")
    assert speech["n_battles"] == 40 and speech["mode"] == "speech"
    assert speech["models"] == groups["speech"]["leaderboard"]["models"]


def test_leaderboard_by_turns_of_one_mode_and_the_audio_style_controls(tmp_path: Path) -> None:
    votes = _mixed_mode_votes(tmp_path)
    depths = _leaderboard_of_file(votes, tmp_path, "--mode", "text", "--by", "turns")
    assert [(g["group"], g["n_battles"]) for g in depths["groups"]] == [
        ("1", 20),
        ("2", 20),
        ("3+", 20),
    ]
    assert all(g["leaderboard"]["mode"] == "text" for g in depths["groups"])
    styled = _leaderboard_of_file(
        votes, tmp_path, "--mode", "speech", "--control", "ttfab,audio", "--ci", "analytic"
    )
    assert styled["controls"] == ["ttfab", "audio"]
    assert set(styled["style_coefficients"]) == {"ttfab", "audio"}
    text_styled = run_cli(
        "leaderboard", "--votes", votes, "--from", "jsonl", "--mode", "text",
        "--control", "ttfab", *QUICK, cwd=tmp_path,
    )  # fmt: skip
    assert text_styled.returncode == 1
    assert "ttfab" in text_styled.stderr and "--mode speech" in text_styled.stderr
    both = run_cli(
        "leaderboard", "--votes", votes, "--from", "jsonl", "--by", "mode", "--mode", "text",
        cwd=tmp_path,
    )  # fmt: skip
    assert both.returncode == 1 and "--by mode" in both.stderr
    text = ok(
        run_cli("leaderboard", "--votes", votes, "--from", "jsonl", "--by", "mode", *QUICK,
                cwd=tmp_path)
    ).stdout  # fmt: skip
    assert "Text-out votes" in text and "Speech-out votes" in text


def test_leaderboard_by_turns_ranks_each_conversation_depth_apart(tmp_path: Path) -> None:
    records = []
    for number in range(60):
        turns = [{"query_transcript": f"q{number}", "reply_a": "a", "reply_b": "b"}]
        turns += [{"query_transcript": "more", "reply_a": "a", "reply_b": "b"}] * (number % 3)
        records.append(
            {
                "battle_id": f"b{number}",
                "created_at": "2026-11-01T00:00:00Z",
                "model_a": ["x", "y", "z"][number % 3],
                "model_b": ["y", "z", "x"][number % 3],
                "winner": ["model_a", "model_b", "tie"][number // 3 % 3],
                "turns": turns,
                "n_turns": len(turns),
            }
        )
    votes = tmp_path / "conversations.jsonl"
    votes.write_text("".join(json.dumps(record) + "\n" for record in records))
    grouped = _leaderboard_of_file(votes, tmp_path, "--by", "turns", "--min-battles", "1")
    assert [(g["group"], g["n_battles"]) for g in grouped["groups"]] == [
        ("1", 20),
        ("2", 20),
        ("3+", 20),
    ]
    assert all(g["leaderboard"]["n_battles"] == 20 for g in grouped["groups"])
    text = ok(
        run_cli("leaderboard", "--votes", votes, "--from", "jsonl", "--by", "turns", *QUICK,
                cwd=tmp_path)
    ).stdout  # fmt: skip
    assert "Votes after 1 turn(s)" in text and "Votes after 3+ turn(s)" in text
