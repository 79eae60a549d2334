"""Fixtures for static-evaluation tests: espeak-ng datasets, a loopback model, offline hubs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.fake_static_model import FakeStaticModel, FakeStaticServer
from helpers.static_fixtures import (
    FixtureSample,
    asr_fixture,
    gender_fixture,
    language_fixture,
    open_qa_fixture,
    qa_options_fixture,
)
from lamarena.settings import Settings


@pytest.fixture(autouse=True)
def hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reaches the Hugging Face hub: datasets answers at once that it is offline."""
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(scope="session")
def fixtures_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("static-fixtures")


@pytest.fixture(scope="session")
def gender_set(fixtures_root: Path) -> tuple[Path, list[FixtureSample]]:
    folder = fixtures_root / "commonvoice-gender"
    return folder, gender_fixture(folder)


@pytest.fixture(scope="session")
def language_set(fixtures_root: Path) -> tuple[Path, list[FixtureSample]]:
    folder = fixtures_root / "covost2-language"
    return folder, language_fixture(folder)


@pytest.fixture(scope="session")
def asr_set(fixtures_root: Path) -> tuple[Path, list[FixtureSample]]:
    folder = fixtures_root / "librispeech-asr"
    return folder, asr_fixture(folder)


@pytest.fixture(scope="session")
def qa_options_set(fixtures_root: Path) -> tuple[Path, list[FixtureSample]]:
    folder = fixtures_root / "cn-college-listen"
    return folder, qa_options_fixture(folder)


@pytest.fixture(scope="session")
def open_qa_set(fixtures_root: Path) -> tuple[Path, list[FixtureSample]]:
    folder = fixtures_root / "public-sg-speech"
    return folder, open_qa_fixture(folder)


@pytest.fixture
def fake_model() -> FakeStaticModel:
    return FakeStaticModel()


@pytest.fixture
def fake_server(fake_model: FakeStaticModel) -> Iterator[FakeStaticServer]:
    with fake_model.serve() as server:
        yield server


def write_models_yaml(path: Path, base_url: str, *, names: tuple[str, ...] = ("fake",)) -> Path:
    """A models.yaml whose models are the loopback fake (temperature 0, usable as a judge)."""
    entries = "".join(
        f"  - name: {name}\n    kind: openai\n    model: fake-audio\n    base_url: {base_url}\n"
        "    temperature: 0\n    max_retries: 0\n"
        for name in names
    )
    path.write_text(f"models:\n{entries}", encoding="utf-8")
    return path


@pytest.fixture
def models_yaml(tmp_path: Path, fake_server: FakeStaticServer) -> Path:
    return write_models_yaml(tmp_path / "models.yaml", fake_server.base_url)


@pytest.fixture
def settings(tmp_path: Path, models_yaml: Path) -> Settings:
    """Settings on the loopback models, with caches in the test's folder."""
    return Settings(
        models_config=models_yaml,
        cache_dir=tmp_path / "cache",
        data_dir=tmp_path / "data",
        pedants_model_dir=tmp_path / "no-pedants",
    )


@pytest.fixture(scope="session")
def base_wav_folder(fixtures_root: Path) -> Path:
    """A folder holding ``speech.wav``: espeak-ng saying a short sentence."""
    from helpers.static_fixtures import speech_bytes

    folder = fixtures_root / "base-speech"
    speech_bytes("Testing one two three.", folder)
    return folder
