"""``lamarena votes export --with-audio``: the records and the audio their hashes name."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.orm import Session

from helpers.cli import ok, run_cli
from helpers.databases import DatabaseFactory
from lamarena.store import make_engine
from store.test_spoken_replies import _battle_with_audio


def test_export_with_audio_writes_the_files_the_records_name(
    databases: DatabaseFactory, tmp_path: Path
) -> None:
    db = databases.url()
    engine = make_engine(db)
    data_dir = tmp_path / "data"
    try:
        with Session(engine) as session, session.begin():
            _battle_with_audio(session, data_dir, voted=True, pcm=b"\x05\x00" * 600)
    finally:
        engine.dispose()
    result = ok(
        run_cli(
            "votes", "export", tmp_path / "out.jsonl", "--db", db,
            "--with-audio", tmp_path / "audio",
            cwd=tmp_path,
            env={"LAMARENA_DATA_DIR": str(data_dir)},
        )
    )  # fmt: skip
    assert "copied 2 reply and 0 query audio files" in result.stdout
    (record,) = map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())
    assert record["mode"] == "speech"
    for side in "ab":
        assert (tmp_path / "audio" / f"{record[f'reply_audio_{side}_sha256']}.wav").is_file()
