"""A model that takes less audio than the arena accepts: the clip is cut, with a notice.

The notice is stored and exported with the battle, never streamed (it names the model).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import soundfile
from sqlalchemy import select

from lamarena.models.openai_compat import OpenAIChatModel
from lamarena.models.registry import ModelEntry
from lamarena.models.runtime import AudioLimit, set_audio_limit
from lamarena.store.tables import Reply
from lamarena.store.votes import export_votes

from .conftest import Harness, read_events


def _short_eared(entry: ModelEntry, max_s: float) -> ModelEntry:
    """``entry`` with an adapter that takes at most ``max_s`` seconds and cuts longer clips."""

    def build() -> OpenAIChatModel:
        adapter = entry.build()
        assert isinstance(adapter, OpenAIChatModel)
        set_audio_limit(adapter, AudioLimit(max_s, "cut"))
        return adapter

    return ModelEntry(
        name=entry.name,
        kind=entry.kind,
        model=entry.model,
        offline=entry.offline,
        system_prompt=entry.system_prompt,
        build=build,
        audio_limit=AudioLimit(max_s, "cut"),
    )


def test_a_cut_clip_is_stored_with_its_notice_and_never_streamed(
    harness_factory: Any, speech_wav: bytes, tmp_path: Path
) -> None:
    # alpha cuts at one second (the question is about two)
    cutting: Harness = harness_factory(
        wrap_entry=lambda entry: _short_eared(entry, 1.0) if entry.name == "alpha" else entry
    )
    client = cutting.client()
    created = client.post("/api/battles", files={"audio": ("q.wav", speech_wav, "audio/wav")})
    assert created.status_code == 201, created.text
    battle_id = created.json()["battle_id"]
    events = read_events(client, battle_id)
    assert [e.name for e in events].count("done") == 2
    assert "alpha" not in json.dumps([e.data for e in events])  # nothing names a model
    assert not any("notice" in e.data for e in events)

    with cutting.engine.connect() as connection:
        notices = dict(connection.execute(select(Reply.side, Reply.notice)).all())
    (cut_side,) = [side for side, notice in notices.items() if notice]
    assert "model 'alpha' takes at most 1 s" in notices[cut_side]
    assert "it heard only the first 1 s" in notices[cut_side]
    (sent,) = cutting.fakes["alpha"].chat_requests[-1].audio
    samples, rate = soundfile.read(io.BytesIO(sent))
    assert abs(len(samples) / rate - 1.0) < 0.01  # alpha heard one second
    (whole,) = cutting.fakes["beta"].chat_requests[-1].audio
    samples, rate = soundfile.read(io.BytesIO(whole))
    assert len(samples) / rate > 1.5  # beta heard it all

    assert client.post(f"/api/battles/{battle_id}/vote", json={"winner": "tie"}).is_success
    export_votes(cutting.engine, tmp_path / "out.jsonl")
    (record,) = map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())
    assert record[f"notice_{cut_side}"] == notices[cut_side]
