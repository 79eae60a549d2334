"""Conversations in the store: migration 0005, turns through both formats, bad turns refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lamarena.errors import RecordError
from lamarena.store.db import alembic_config, migrate_to_head
from lamarena.store.importers import read_battle_records
from lamarena.store.records import records_to_frame
from lamarena.store.repo import battles_frame
from lamarena.store.votes import export_votes, import_votes, load_battle_records

WHEN = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _upgrade_to(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def _insert_0004_battles(engine: Engine) -> None:
    """Two voted battles and one unvoted, as a 0004 server stored them (no turn columns)."""
    with engine.begin() as connection:
        for number, winner in ((1, "model_a"), (2, "tie"), (3, None)):
            connection.execute(
                text(
                    "INSERT INTO battles (id, created_at, model_a, model_b, query_audio_sha256,"
                    " query_transcript, audio_kept, source, counted, equal_pace,"
                    " feedback_transcriptions) VALUES (:id, :at, 'alpha', 'beta', :sha,"
                    " :transcript, false, 'arena', true, false, 0)"
                ),
                {
                    "id": f"b{number}",
                    "at": WHEN,
                    "sha": f"{number:064x}",
                    "transcript": f"q{number}",
                },
            )
            for side, reply in (("a", f"alpha says {number}"), ("b", f"beta says {number}")):
                connection.execute(
                    text(
                        "INSERT INTO replies (battle_id, side, text, ttft_s, total_s, chars)"
                        " VALUES (:id, :side, :reply, 0.5, 1.5, :chars)"
                    ),
                    {"id": f"b{number}", "side": side, "reply": reply, "chars": len(reply)},
                )
            if winner is not None:
                connection.execute(
                    text(
                        "INSERT INTO votes (battle_id, winner, created_at)"
                        " VALUES (:id, :winner, :at)"
                    ),
                    {"id": f"b{number}", "winner": winner, "at": WHEN},
                )


def test_stored_battles_become_one_turn_conversations(databases, tmp_path):
    engine = databases.engine(migrated=False)
    _upgrade_to(engine, "0004")
    _insert_0004_battles(engine)

    migrate_to_head(engine)

    with engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "0007"
        assert connection.scalar(text("SELECT count(*) FROM battles")) == 3
        turns = connection.execute(text("SELECT DISTINCT turn FROM replies")).scalars().all()
        assert turns == [1]
        assert connection.scalar(text("SELECT count(*) FROM replies")) == 6
        assert connection.scalar(text("SELECT count(*) FROM turns")) == 0
    export_votes(engine, tmp_path / "votes.jsonl")
    records = read_battle_records(tmp_path / "votes.jsonl", "jsonl")
    assert [record.battle_id for record in records] == ["b1", "b2"]  # voted ones
    for record in records:
        number = record.battle_id.removeprefix("b")
        assert record.n_turns == 1
        (turn,) = record.turns
        assert turn.query_transcript == f"q{number}"
        assert turn.reply_a == f"alpha says {number}" and turn.reply_b == f"beta says {number}"
        assert turn.latency_a is not None and turn.latency_a.total_s == 1.5


def test_a_second_turn_of_replies_is_allowed_but_not_a_second_reply_per_turn(engine):
    _insert_0004_battles(engine)  # the same rows load at head: turn defaults to 1
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO turns (battle_id, turn, created_at, query_transcript)"
                " VALUES ('b3', 2, :at, 'and then?')"
            ),
            {"at": WHEN},
        )
        connection.execute(
            text("INSERT INTO replies (battle_id, turn, side, text) VALUES ('b3', 2, 'a', 'more')")
        )
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            text("INSERT INTO replies (battle_id, turn, side, text) VALUES ('b3', 2, 'a', 'x')")
        )
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO turns (battle_id, turn, created_at) VALUES ('b3', 1, :at)"
            ),  # the battle row is turn 1
            {"at": WHEN},
        )


def _conversation(battle_id: str) -> dict[str, object]:
    """A three-turn battle record as a file holds it."""
    return {
        "battle_id": battle_id,
        "created_at": "2026-11-02T09:00:00Z",
        "model_a": "alpha",
        "model_b": "beta",
        "winner": "model_b",
        "turns": [
            {
                "query_transcript": f"{battle_id} first",
                "query_audio_sha256": "1" * 64,
                "reply_a": "a1",
                "reply_b": "b1",
                "latency_a": {"ttft_s": 0.2, "total_s": 1.0, "chars": 2},
            },
            {"query_transcript": "second", "reply_a": "a2", "reply_b": "b2"},
            {"query_transcript": "third", "reply_a": None, "reply_b": "b3", "error_a": "timeout"},
        ],
        "n_turns": 3,
    }


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_conversation_round_trips_through_the_store_and_both_formats(databases, tmp_path, suffix):
    path = tmp_path / "conversations.jsonl"
    path.write_text(
        "".join(json.dumps(_conversation(f"c{n}")) + "\n" for n in (1, 2)), encoding="utf-8"
    )
    first, second = databases.engine(), databases.engine()
    assert import_votes(first, path, "jsonl") == 2
    export_votes(first, tmp_path / f"out{suffix}")
    import_votes(second, tmp_path / f"out{suffix}", suffix.removeprefix("."))
    (record, _) = read_battle_records(tmp_path / f"out{suffix}", suffix.removeprefix("."))
    again = {r.battle_id: r for r in load_battle_records(second)}["c1"]
    for loaded in (record, again):
        assert loaded.n_turns == 3
        assert [t.query_transcript for t in loaded.turns] == ["c1 first", "second", "third"]
        assert [t.reply_b for t in loaded.turns] == ["b1", "b2", "b3"]
        assert loaded.turns[2].error_a == "timeout" and loaded.turns[2].reply_a is None
        # the top-level fields are the first turn's, as every earlier reader expects
        assert loaded.query_transcript == "c1 first" and loaded.reply_a == "a1"
        assert loaded.latency_a is not None and loaded.latency_a.total_s == 1.0
    with first.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM turns")) == 4
        assert connection.scalar(text("SELECT count(*) FROM replies WHERE turn = 3")) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_turns": 2}, "n_turns is 2 but the record holds 3 turn"),
        ({"query_transcript": "not the first"}, "query_transcript differs from turns"),
        ({"turns": [{"reply_a": "x"}] * 51, "n_turns": 51}, "at most 50"),
    ],
)
def test_inconsistent_turns_are_refused_with_the_reason(tmp_path, change, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(_conversation("c1") | change) + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match=message):
        read_battle_records(path, "jsonl")


def test_the_frame_counts_a_conversations_length_alike_from_files_and_the_store(databases):
    fastchat = Path(__file__).parent / "data" / "fastchat_battles.json"
    engine = databases.engine()
    import_votes(engine, fastchat, "fastchat")
    from_file = records_to_frame(read_battle_records(fastchat, "fastchat"))
    with Session(engine) as session:
        from_store = battles_frame(session)
    columns = ["battle_id", "chars_a", "chars_b", "n_turns"]
    expected = from_file[columns].sort_values("battle_id").reset_index(drop=True)
    got = from_store[columns].sort_values("battle_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert (expected["n_turns"] == 2).sum() == 1  # the two-turn vote is summed over both turns
