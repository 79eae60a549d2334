"""Spoken replies in the store: migration 0006, mode and reply audio through both formats."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from lamarena.errors import InvalidInputError, RecordError
from lamarena.models.speech import pcm16_wav
from lamarena.store import Winner, export_audio, prune_battles, reply_audio_path
from lamarena.store.db import alembic_config, migrate_to_head
from lamarena.store.importers import read_battle_records
from lamarena.store.repo import add_reply, battles_frame, create_battle, record_vote
from lamarena.store.votes import export_votes, import_votes, load_battle_records

WHEN = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)


def _migrate(engine: Engine, revision: str, *, down: bool = False) -> None:
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)


def _insert_0005_conversation(engine: Engine) -> None:
    """A voted two-turn battle and a voted one-turn battle, as a 0005 server stored them."""
    with engine.begin() as connection:
        for number in (1, 2):
            connection.execute(
                text(
                    "INSERT INTO battles (id, created_at, model_a, model_b, query_transcript,"
                    " audio_kept, source, counted, equal_pace, feedback_transcriptions)"
                    " VALUES (:id, :at, 'alpha', 'beta', 'hi', false, 'arena', true, false, 0)"
                ),
                {"id": f"b{number}", "at": WHEN},
            )
            connection.execute(
                text("INSERT INTO votes (battle_id, winner, created_at) VALUES (:id, 'tie', :at)"),
                {"id": f"b{number}", "at": WHEN},
            )
        connection.execute(
            text("INSERT INTO turns (battle_id, turn, created_at) VALUES ('b1', 2, :at)"),
            {"at": WHEN},
        )
        for battle, turn in (("b1", 1), ("b1", 2), ("b2", 1)):
            for side in ("a", "b"):
                connection.execute(
                    text(
                        "INSERT INTO replies (battle_id, turn, side, text, ttft_s)"
                        " VALUES (:id, :turn, :side, :reply, 0.25)"
                    ),
                    {"id": battle, "turn": turn, "side": side, "reply": f"{side}{turn}"},
                )


def _counts(engine: Engine) -> tuple[int, int, int, int]:
    with engine.connect() as connection:
        return tuple(  # type: ignore[return-value]
            connection.scalar(text(f"SELECT count(*) FROM {table}"))
            for table in ("battles", "turns", "replies", "votes")
        )


def test_migration_keeps_every_battle_as_a_text_battle_both_ways(databases):
    engine = databases.engine(migrated=False)
    _migrate(engine, "0005")
    _insert_0005_conversation(engine)
    before = _counts(engine)
    assert before == (2, 1, 6, 2)

    migrate_to_head(engine)

    assert _counts(engine) == before  # nothing cascaded away
    with engine.connect() as connection:
        modes = connection.execute(text("SELECT DISTINCT mode FROM battles")).scalars().all()
        audio = connection.scalar(text("SELECT count(audio_sha256) FROM replies"))
    assert modes == ["text"] and audio == 0
    records = {record.battle_id: record for record in load_battle_records(engine)}
    assert records["b1"].n_turns == 2 and records["b1"].mode == "text"
    assert records["b1"].turns[1].reply_b == "b2"
    assert records["b1"].latency_a is not None and records["b1"].latency_a.ttfab_s is None

    _migrate(engine, "0005", down=True)
    assert _counts(engine) == before
    migrate_to_head(engine)
    assert _counts(engine) == before


def _spoken(battle_id: str) -> dict[str, object]:
    """A two-turn speech battle record as a file holds it."""
    return {
        "battle_id": battle_id,
        "created_at": "2026-11-04T09:00:00Z",
        "model_a": "alpha",
        "model_b": "beta",
        "winner": "model_a",
        "mode": "speech",
        "turns": [
            {
                "reply_a": "hello there",
                "reply_b": "hi",
                "latency_a": {"ttft_s": 0.2, "total_s": 2.0, "ttfab_s": 0.4, "audio_s": 1.5},
                "latency_b": {"ttft_s": 0.3, "total_s": 2.5, "ttfab_s": 0.9, "audio_s": 0.75},
                "reply_audio_a_sha256": "a" * 64,
                "reply_audio_b_sha256": "b" * 64,
            },
            {
                "reply_a": "again",
                "reply_b": "more",
                "latency_a": {"ttfab_s": 0.5, "audio_s": 1.0},
                "reply_audio_a_sha256": "c" * 64,
                "reply_audio_b_sha256": "d" * 64,
                "notice_b": "the clip is 42.0 s long but model 'beta' takes at most 30 s",
            },
        ],
    }


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_speech_battle_round_trips_through_the_store_and_both_formats(
    databases, tmp_path, suffix
):
    path = tmp_path / "spoken.jsonl"
    path.write_text(json.dumps(_spoken("s1")) + "\n", encoding="utf-8")
    first, second = databases.engine(), databases.engine()
    assert import_votes(first, path, "jsonl") == 1
    out = tmp_path / f"out{suffix}"
    export_votes(first, out)
    import_votes(second, out, suffix.removeprefix("."))
    (from_file,) = read_battle_records(out, suffix.removeprefix("."))
    (from_store,) = load_battle_records(second)
    for record in (from_file, from_store):
        assert record.mode == "speech"
        assert record.reply_audio_a_sha256 == "a" * 64
        assert [t.reply_audio_b_sha256 for t in record.turns] == ["b" * 64, "d" * 64]
        assert record.latency_b is not None
        assert (record.latency_b.ttfab_s, record.latency_b.audio_s) == (0.9, 0.75)
        assert record.turns[1].latency_a is not None and record.turns[1].latency_a.audio_s == 1.0
        assert record.turns[1].notice_b is not None and "at most 30 s" in record.turns[1].notice_b
        assert record.notice_b is None  # the first turn's clip fitted
    frame = battles_frame_of(second)
    assert frame.loc[0, "mode"] == "speech"
    assert (frame.loc[0, "ttfab_a_s"], frame.loc[0, "audio_b_s"]) == (0.4, 0.75)


def battles_frame_of(engine: Engine) -> pd.DataFrame:
    with Session(engine) as session:
        return battles_frame(session)


def test_a_text_reply_is_written_without_audio_keys(databases, tmp_path):
    record = _spoken("t1") | {"mode": "text", "turns": [{"latency_a": {"ttft_s": 0.1}}]}
    path = tmp_path / "text.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    engine = databases.engine()
    import_votes(engine, path, "jsonl")
    export_votes(engine, tmp_path / "out.jsonl")
    (line,) = (tmp_path / "out.jsonl").read_text().splitlines()
    assert json.loads(line)["latency_a"] == {"ttft_s": 0.1, "total_s": None, "chars": None}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"mode": "video"}, "mode"),
        ({"turns": [{"reply_audio_a_sha256": "not-a-hash"}]}, "reply_audio_a_sha256"),
        ({"turns": [{"latency_a": {"audio_s": -1}}]}, "audio_s"),
    ],
)
def test_bad_speech_fields_are_refused_naming_the_field(tmp_path, change, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(_spoken("s1") | change) + "\n", encoding="utf-8")
    with pytest.raises(RecordError, match=message):
        read_battle_records(path, "jsonl")


def test_the_store_refuses_an_unknown_mode(engine):
    with Session(engine) as session, pytest.raises(InvalidInputError, match="mode"):
        create_battle(session, model_a="alpha", model_b="beta", mode="video")


def _battle_with_audio(
    session: Session, data_dir: Path, *, voted: bool, pcm: bytes, created_at: datetime = WHEN
) -> tuple[str, list[str]]:
    """A speech battle with both replies' WAVs kept as the arena keeps them."""
    battle_id = create_battle(
        session, model_a="alpha", model_b="beta", mode="speech", created_at=created_at
    )
    hashes = []
    for side, samples in (("a", pcm), ("b", pcm[::-1])):
        wav = pcm16_wav(samples, 24_000)
        sha = hashlib.sha256(wav).hexdigest()
        path = reply_audio_path(data_dir, sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(wav)
        add_reply(session, battle_id, side, text="hi", audio_s=0.5, audio_sha256=sha)
        hashes.append(sha)
    if voted:
        record_vote(session, battle_id, Winner.TIE)
    return battle_id, hashes


def test_export_with_audio_copies_the_voted_battles_audio_by_hash(databases, tmp_path):
    engine = databases.engine()
    data_dir = tmp_path / "data"
    with Session(engine) as session, session.begin():
        _, voted = _battle_with_audio(session, data_dir, voted=True, pcm=b"\x01\x00" * 900)
        _, unvoted = _battle_with_audio(session, data_dir, voted=False, pcm=b"\x02\x00" * 700)
    reply_audio_path(data_dir, voted[1]).unlink()  # gone from disk: counted, not fatal

    out = tmp_path / "audio"
    result = export_audio(engine, data_dir, out)

    assert (result.reply_files, result.query_files, result.missing) == (1, 0, 1)
    assert sorted(path.name for path in out.iterdir()) == [f"{voted[0]}.wav"]
    copied = (out / f"{voted[0]}.wav").read_bytes()
    assert hashlib.sha256(copied).hexdigest() == voted[0]
    assert not any(name in str(list(out.iterdir())) for name in unvoted)


def test_prune_removes_the_reply_audio_of_unvoted_battles_only(databases, tmp_path):
    engine = databases.engine()
    data_dir = tmp_path / "data"
    old = datetime(2026, 1, 1, tzinfo=UTC)
    shared = b"\x03\x00" * 800
    with Session(engine) as session, session.begin():
        _, kept = _battle_with_audio(session, data_dir, voted=True, pcm=shared, created_at=old)
        _, same = _battle_with_audio(session, data_dir, voted=False, pcm=shared, created_at=old)
        _, gone = _battle_with_audio(
            session, data_dir, voted=False, pcm=b"\x04\x00" * 500, created_at=old
        )
    assert same == kept  # one file for the same audio

    report = prune_battles(engine, timedelta(days=1), data_dir)

    assert report.battles == 2 and report.audio_files == 2
    assert all(reply_audio_path(data_dir, sha).is_file() for sha in kept)
    assert not any(reply_audio_path(data_dir, sha).exists() for sha in gone)
