"""max_audio_s: a longer clip is refused or cut, never silently; and where the limit comes from."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from lamarena.audio import AudioClip
from lamarena.models.base import EarlierTurn
from lamarena.models.config import parse_models_config
from lamarena.models.registry import model_entries
from lamarena.models.runtime import AudioLimit, audio_limit_of, run_model, set_audio_limit
from lamarena.settings import Settings


class Recorder:
    """An adapter that answers with the length of the audio it was given."""

    name = "recorder"

    def __init__(self) -> None:
        self.heard: list[float] = []
        self.earlier: list[float] = []

    async def stream(
        self, clip: AudioClip, prompt: str, history: Sequence[EarlierTurn] = ()
    ) -> AsyncIterator[str]:
        self.heard.append(clip.duration_s)
        self.earlier = [turn.clip.duration_s for turn in history]
        yield f"{clip.duration_s:.1f} s"


def clip_of(seconds: float) -> AudioClip:
    return AudioClip(samples=np.zeros(int(seconds * 16_000), dtype=np.float32), sha256="x")


async def test_a_clip_within_the_limit_is_sent_as_it_is() -> None:
    model = Recorder()
    reply = await run_model(model, clip_of(30.0), "", audio_limit=AudioLimit(30))
    assert reply.ok and reply.notice is None
    assert model.heard == [30.0]


async def test_a_longer_clip_is_refused_naming_both_lengths() -> None:
    model = Recorder()
    reply = await run_model(model, clip_of(42.0), "", audio_limit=AudioLimit(30))
    assert reply.error is not None
    assert "at most 30 s" in reply.error and "42.0 s long" in reply.error
    assert reply.ttft_s is None and reply.text == ""
    assert model.heard == []  # never called


async def test_a_longer_clip_is_cut_with_a_notice() -> None:
    model = Recorder()
    reply = await run_model(model, clip_of(42.0), "", audio_limit=AudioLimit(30, "cut"))
    assert reply.ok, reply.error
    assert model.heard == [30.0]
    assert reply.notice is not None
    assert "42.0 s long" in reply.notice and "first 30 s" in reply.notice


async def test_earlier_clips_are_held_to_the_same_limit() -> None:
    model = Recorder()
    history = [EarlierTurn(clip=clip_of(45.0), reply="...")]
    refused = await run_model(model, clip_of(5.0), "", history=history, audio_limit=AudioLimit(30))
    assert refused.error is not None and "turn 1" in refused.error
    cut = await run_model(
        model, clip_of(5.0), "", history=history, audio_limit=AudioLimit(30, "cut")
    )
    assert cut.ok and cut.notice is None  # the current clip fits; turn 1 had its notice
    assert model.earlier == [30.0]


async def test_the_limit_set_on_the_adapter_applies() -> None:
    model = Recorder()
    set_audio_limit(model, AudioLimit(10))
    assert audio_limit_of(model) == AudioLimit(10)
    reply = await run_model(model, clip_of(12.0), "")
    assert reply.error is not None and "at most 10 s" in reply.error


def test_a_bad_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        AudioLimit(0)
    with pytest.raises(ValueError):
        AudioLimit(10, "drop")  # type: ignore[arg-type]


def entries_of(tmp_path: Path, yaml: str) -> dict[str, object]:
    path = tmp_path / "models.yaml"
    path.write_text(yaml)
    settings = Settings(models_config=path, cache_dir=tmp_path / "cache")
    return {entry.name: entry for entry in model_entries(settings)}


def test_limits_come_from_models_yaml_with_local_defaults(tmp_path: Path) -> None:
    entries = entries_of(
        tmp_path,
        """
models:
  - {name: qwen, kind: local, model: ./qwen}
  - {name: long-qwen, kind: local, model: ./qwen, max_audio_s: 45, audio_over_limit: cut}
  - {name: remote, kind: openai, model: gpt-audio-mini}
  - {name: vllm, kind: openai, model: qwen, max_audio_s: 30}
  - name: pipe
    kind: pipeline
    asr: {kind: openai-transcription, model: whisper-1}
    llm: {kind: openai, model: gpt-4o-mini}
""",
    )
    rows = {name: entry.describe() for name, entry in entries.items()}  # type: ignore[attr-defined]
    assert rows["qwen"]["max_audio_s"] == 30.0
    assert rows["qwen"]["audio_over_limit"] == "refuse"
    assert rows["qwen"]["interface"] == "qwen2-audio"
    assert rows["qwen"]["trust_remote_code"] is False
    assert rows["long-qwen"]["max_audio_s"] == 45.0
    assert rows["long-qwen"]["audio_over_limit"] == "cut"
    assert "max_audio_s" not in rows["remote"]
    assert "trust_remote_code" not in rows["remote"]
    assert rows["vllm"]["max_audio_s"] == 30.0
    assert "max_audio_s" not in rows["pipe"]


def test_a_built_local_adapter_carries_its_limit(tmp_path: Path) -> None:
    entries = entries_of(
        tmp_path, "models:\n  - {name: qwen, kind: local, model: ./qwen, max_audio_s: 20}\n"
    )
    adapter = entries["qwen"].build()  # type: ignore[attr-defined]
    assert audio_limit_of(adapter) == AudioLimit(20.0, "refuse")


def test_models_yaml_validates_the_new_keys() -> None:
    config = parse_models_config(
        """
models:
  - {name: diva, kind: local, model: WillHeld/DiVA-llama-3-v0-8b, interface: diva,
     trust_remote_code: true}
transcriber: {kind: local-whisper, model: tiny.en, language: th, compute_type: float32,
              beam_size: 5}
"""
    )
    assert config.transcriber is not None and config.transcriber.beam_size == 5
    for bad, why in [
        ("models:\n - {name: d, kind: local, model: m, interface: diva}", "trust_remote_code"),
        ("models:\n - {name: d, kind: local, model: m, interface: typhoon}", "trust_remote_code"),
        ("models:\n - {name: d, kind: local, model: m, max_audio_s: 0}", "max_audio_s"),
        ("models:\n - {name: d, kind: local, model: m, audio_over_limit: drop}", "audio_over"),
        (
            "models:\n - {name: d, kind: openai, model: m}\n"
            "transcriber: {kind: openai-transcription, model: w, beam_size: 2}",
            "local-whisper only",
        ),
        (
            "models:\n - {name: d, kind: openai, model: m}\n"
            "transcriber: {kind: local-whisper, model: w, compute_type: int4}",
            "compute_type",
        ),
        (
            "models:\n - {name: d, kind: openai, model: m}\n"
            "transcriber: {kind: local-whisper, model: w, language: English}",
            "language",
        ),
    ]:
        with pytest.raises(Exception, match=why):
            parse_models_config(bad)


def test_asr_options_reach_the_recognisers(tmp_path: Path) -> None:
    from lamarena.models.registry import arena_transcriber

    def recogniser(spec: str) -> object:
        path = tmp_path / "models.yaml"
        path.write_text(f"models:\n  - {{name: m, kind: openai, model: x}}\ntranscriber: {spec}\n")
        return arena_transcriber(Settings(models_config=path, cache_dir=tmp_path))

    local = recogniser(
        "{kind: local-whisper, model: ./w, language: th, compute_type: float32, beam_size: 4}"
    )
    assert (local.language, local.compute_type, local.beam_size) == ("th", "float32", 4)  # type: ignore[attr-defined]
    default = recogniser("{kind: local-whisper, model: ./w}")
    assert (default.language, default.compute_type, default.beam_size) == ("en", "int8", 1)  # type: ignore[attr-defined]
    assert recogniser("{kind: local-whisper, model: ./w, language: auto}").language is None  # type: ignore[attr-defined]
    remote = recogniser("{kind: openai-transcription, model: whisper-1, language: th}")
    assert remote.language == "th"  # type: ignore[attr-defined]
    assert recogniser("{kind: openai-transcription, model: whisper-1}").language is None  # type: ignore[attr-defined]
