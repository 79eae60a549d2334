"""serve loads in-process models before it is ready; one that cannot load stops it, named."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from helpers.tiny_models import build_tiny_qwen2_audio
from lamarena.arena import create_app
from lamarena.arena.state import Arena
from lamarena.errors import ModelError
from lamarena.models.local import LocalAudioLM
from lamarena.models.registry import ModelEntry
from lamarena.settings import Settings

from .conftest import make_entry


def local_entry(name: str, directory: Path) -> ModelEntry:
    return ModelEntry(
        name=name,
        kind="local",
        model=str(directory),
        offline=True,
        system_prompt="",
        build=lambda: LocalAudioLM(name, directory, local_files_only=True),
        max_concurrency=1,
    )


def settings_in(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path / 'arena.db'}", data_dir=tmp_path)


async def test_local_models_are_loaded_before_the_app_is_ready(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tiny = build_tiny_qwen2_audio(tmp_path / "tiny-qwen2-audio")
    entries = [local_entry("tiny-local", tiny), make_entry("remote", "http://127.0.0.1:9/v1")]
    app = create_app(settings_in(tmp_path), entries=entries)
    with caplog.at_level(logging.INFO, logger="lamarena.arena.app"):
        async with app.router.lifespan_context(app):
            arena: Arena = app.state.arena
            adapter = arena.models["tiny-local"].adapter
            assert isinstance(adapter, LocalAudioLM)
            assert adapter.loaded  # before any battle
    lines = [record.getMessage() for record in caplog.records]
    assert any(line.startswith("loading tiny-local ... done in ") for line in lines), lines
    assert not any("loading remote" in line for line in lines)  # nothing to load


async def test_a_model_that_cannot_load_stops_the_start_with_its_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    entries = [
        local_entry("missing-local", tmp_path / "no-checkpoint-here"),
        make_entry("remote", "http://127.0.0.1:9/v1"),
    ]
    app = create_app(settings_in(tmp_path), entries=entries)
    with pytest.raises(ModelError, match="missing-local") as caught:
        async with app.router.lifespan_context(app):
            pytest.fail("the app started with a model that cannot load")
    assert "does not exist" in caught.value.message
    assert any("loading missing-local failed" in r.getMessage() for r in caplog.records)
