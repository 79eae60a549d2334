"""A static run on a model that takes less audio than the samples: every cut is in its row."""

from __future__ import annotations

from pathlib import Path

from helpers.fake_static_model import FakeStaticServer
from helpers.static_fixtures import FixtureSample
from lamarena.audio import decode_audio
from lamarena.settings import Settings

from .conftest import write_models_yaml
from .test_runner import read_rows, run


async def test_cut_clips_carry_their_notice_fresh_and_from_the_cache(
    settings: Settings,
    fake_server: FakeStaticServer,
    gender_set: tuple[Path, list[FixtureSample]],
    tmp_path: Path,
) -> None:
    config = write_models_yaml(tmp_path / "models.yaml", fake_server.base_url)
    config.write_text(
        config.read_text() + "    max_audio_s: 0.5\n    audio_over_limit: cut\n", encoding="utf-8"
    )
    folder, samples = gender_set
    assert all(decode_audio(sample.audio).duration_s > 0.5 for sample in samples)

    await run(settings, [str(folder)], tmp_path / "first", prompts=1)
    await run(settings, [str(folder)], tmp_path / "again", prompts=1)

    for out, cached in (("first", False), ("again", True)):
        rows = read_rows(tmp_path / out)
        assert len(rows) == len(samples)
        assert all(row["cached"] is cached for row in rows)
        assert all("takes at most 0.5 s" in row["notice"] for row in rows), rows[0]
