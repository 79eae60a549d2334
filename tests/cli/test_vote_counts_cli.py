"""``lamarena votes check-counts``: rows checked, drift listed, exit 1 until ``--repair``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import Engine

from helpers.cli import run_cli
from lamarena.store import repo
from lamarena.store.db import make_sessionmaker
from lamarena.store.tables import PairCount

WHEN = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _votes(engine: Engine) -> None:
    with make_sessionmaker(engine).begin() as db:
        session_id = repo.create_session(db, participant_id="p-1", created_at=WHEN)
        for winner in ("model_a", "model_b", "tie"):
            battle_id = repo.create_battle(
                db, model_a="beta", model_b="alpha", session_id=session_id, created_at=WHEN
            )
            repo.record_vote(db, battle_id, winner, created_at=WHEN)


def test_check_counts_exits_1_on_drift_until_repaired(databases, tmp_path):
    engine = databases.engine()
    db = ("--db", engine.url.render_as_string(hide_password=False))
    _votes(engine)

    clean = run_cli("votes", "check-counts", *db, cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout.splitlines() == ["checked 2 vote count rows: 0 differ"]

    with engine.begin() as connection:
        connection.execute(PairCount.__table__.update().values(ties=PairCount.ties + 2))

    found = run_cli("votes", "check-counts", *db, cwd=tmp_path)
    assert found.returncode == 1, found.stderr
    lines = found.stdout.splitlines()
    assert lines[0] == "checked 2 vote count rows: 1 differ"
    assert lines[1] == "pair_counts mode=text n_turns=1 model_first=alpha model_second=beta"
    assert "ties=3" in lines[2] and lines[2].split()[0] == "stored"
    assert "ties=1" in lines[3] and lines[3].split()[0] == "recounted"
    assert lines[-1] == "run with --repair to rewrite them from the votes"

    as_json = run_cli("votes", "check-counts", *db, "--json", cwd=tmp_path)
    assert as_json.returncode == 1
    document = json.loads(as_json.stdout)
    assert (document["rows_checked"], document["repaired"]) == (2, False)
    assert [
        (entry["stored"]["ties"], entry["recounted"]["ties"]) for entry in document["drift"]
    ] == [(3, 1)]

    repaired = run_cli("votes", "check-counts", *db, "--repair", cwd=tmp_path)
    assert repaired.returncode == 0, repaired.stderr
    assert repaired.stdout.splitlines()[-1] == "repaired: both tables were rewritten from the votes"

    again = run_cli("votes", "check-counts", *db, "--json", cwd=tmp_path)
    assert again.returncode == 0
    assert json.loads(again.stdout) == {"rows_checked": 2, "drift": [], "repaired": False}


def test_check_counts_of_an_unreachable_database_is_one_error_line(tmp_path):
    result = run_cli(
        "votes", "check-counts", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/x", cwd=tmp_path
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: database ")
