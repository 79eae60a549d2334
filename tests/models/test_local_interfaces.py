"""DiVA- and Typhoon-like checkpoints with their own code, loaded for real from local folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers.remote_code_models import build_remote_code_model
from helpers.tiny_models import build_tiny_qwen2_audio
from lamarena.audio import AudioClip
from lamarena.errors import ConfigError, ModelError
from lamarena.models.base import AudioModel, EarlierTurn
from lamarena.models.local import LocalAudioLM
from lamarena.models.local_interfaces import (
    DivaAudioLM,
    TyphoonAudioLM,
    _CumulativeText,
    detect_interface,
    local_audio_lm,
    resolve_interface,
)
from lamarena.models.runtime import run_model


@pytest.fixture(scope="session")
def remote_code_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("remote-code")
    for family in ("diva", "typhoon", "typhoon2", "broken"):
        build_remote_code_model(root / f"tiny-{family}", family)
    build_remote_code_model(root / "slow-typhoon", "typhoon", delay_s=0.3)
    return root


def quiet_clip(seconds: float = 1.0) -> AudioClip:
    t = np.arange(int(16_000 * seconds), dtype=np.float32) / 16_000
    return AudioClip.from_samples(0.25 * np.sin(2 * np.pi * 220 * t).astype(np.float32))


async def collect(stream: Any) -> list[str]:
    return [delta async for delta in stream]


def diva(directory: Path, **options: Any) -> DivaAudioLM:
    return DivaAudioLM(
        "tiny-diva", directory, trust_remote_code=True, local_files_only=True, **options
    )


def typhoon(directory: Path, **options: Any) -> TyphoonAudioLM:
    return TyphoonAudioLM(
        "tiny-typhoon", directory, trust_remote_code=True, local_files_only=True, **options
    )


def test_the_adapters_are_audio_models(tmp_path: Path) -> None:
    assert isinstance(diva(tmp_path), AudioModel)
    assert isinstance(typhoon(tmp_path), AudioModel)


def test_remote_code_is_refused_without_trust(tmp_path: Path) -> None:
    for adapter in (DivaAudioLM, TyphoonAudioLM):
        with pytest.raises(ConfigError, match="trust_remote_code: true"):
            adapter("m", tmp_path)
    with pytest.raises(ConfigError, match=r"needs interface diva.*trust_remote_code: true"):
        resolve_interface("m", str(tmp_path / "x"), "diva", trust_remote_code=False)


async def test_diva_streams_deltas_that_add_up_to_its_final_text(remote_code_dir: Path) -> None:
    model = diva(remote_code_dir / "tiny-diva", max_new_tokens=64)
    clip = quiet_clip()
    deltas = await collect(model.stream(clip, "Be brief."))

    weights = model._weights()
    call = weights.last_call
    final = list(weights.generate_stream(clip.samples / np.max(np.abs(clip.samples)), None))[-1]
    assert "".join(deltas) == final
    assert len(deltas) >= 3
    # deltas, not the cumulative text: none repeats the text before it
    for index in range(1, len(deltas)):
        assert not deltas[index].startswith("".join(deltas[:index]))
    # every delta ends a word: a half-written word is held back
    words = final.split()
    assert all(delta.strip() in words for delta in deltas)
    assert call["text_prompt"] == "Be brief."
    assert call["do_sample"] is False
    assert call["max_new_tokens"] == 64
    assert call["dtype"] == "float32"
    assert call["peak"] == pytest.approx(1.0)  # peak-normalised, as the study fed DiVA


async def test_diva_honours_device_and_dtype(remote_code_dir: Path) -> None:
    model = diva(remote_code_dir / "tiny-diva", dtype="bfloat16", device="cpu")
    assert await collect(model.stream(quiet_clip(), ""))
    call = model._weights().last_call
    assert call["param_dtype"] == "torch.bfloat16"
    assert call["device"] == "cpu"
    assert call["text_prompt"] is None  # no prompt: DiVA's own default


async def test_diva_refuses_earlier_turns(remote_code_dir: Path) -> None:
    model = diva(remote_code_dir / "tiny-diva")
    earlier = [EarlierTurn(clip=quiet_clip(), reply="paris")]
    with pytest.raises(ModelError, match="start a new conversation"):
        await collect(model.stream(quiet_clip(), "", earlier))
    assert not model.loaded  # refused before loading anything


def test_cumulative_text_holds_back_partial_words() -> None:
    text = _CumulativeText("m")
    sent = [text.update(each) for each in ("Hel", "Hello", "Hello wor", "Hello world\ufffd")]
    assert sent == ["", "", "Hello ", ""]
    assert text.finish() == "world\ufffd"
    rewritten = _CumulativeText("m")
    assert rewritten.update("one two ") == "one two "
    assert rewritten.update("one, two three ") == ""  # cannot take back what was sent
    assert rewritten.finish() == ""


async def test_typhoon_replies_in_one_delta_timed_when_the_text_is_ready(
    remote_code_dir: Path,
) -> None:
    model = typhoon(remote_code_dir / "slow-typhoon", max_new_tokens=40)
    await model.load()
    reply = await run_model(model, quiet_clip(), "Answer the question.")
    assert reply.ok, reply.error
    assert reply.text and reply.text == reply.text.strip()
    assert reply.ttft_s is not None and reply.ttft_s >= 0.3  # after generate() returned
    assert reply.total_s - reply.ttft_s < 0.1
    call = model._weights().last_call
    assert call["prompt"] == "Answer the question."
    assert call["num_beams"] == 1
    assert call["max_new_tokens"] == 40
    assert call["samples"] == 16_000


async def test_typhoon_v1_refuses_earlier_turns(remote_code_dir: Path) -> None:
    model = typhoon(remote_code_dir / "tiny-typhoon")
    earlier = [EarlierTurn(clip=quiet_clip(), reply="paris")]
    with pytest.raises(ModelError, match=r"one clip per request.*start a new conversation"):
        await collect(model.stream(quiet_clip(), "", earlier))


async def test_typhoon2_gets_the_conversation_with_every_clip(remote_code_dir: Path) -> None:
    model = typhoon(remote_code_dir / "tiny-typhoon2")
    earlier = [EarlierTurn(clip=quiet_clip(0.5), reply="paris is the capital")]
    deltas = await collect(model.stream(quiet_clip(), "You are brief.", earlier))
    assert len(deltas) == 1
    call = model._weights().last_call
    assert call["roles"] == ["system", "user", "assistant", "user"]
    assert call["audios"] == 2
    assert call["system"] == "You are brief."


async def test_a_broken_remote_module_names_both_transformers_versions(
    remote_code_dir: Path,
) -> None:
    import transformers

    model = typhoon(remote_code_dir / "tiny-broken")
    with pytest.raises(ModelError) as caught:
        await model.load()
    message = caught.value.message
    assert "remote code failed" in message
    assert "NoSuchClassInAnyTransformersVersion" in message
    assert "transformers 4.44.0" in message
    assert f"transformers {transformers.__version__}" in message


async def test_a_checkpoint_without_the_method_is_named(remote_code_dir: Path) -> None:
    model = diva(remote_code_dir / "tiny-typhoon")  # a Typhoon-like class has no generate_stream
    with pytest.raises(ModelError, match=r"no generate_stream.*not a diva checkpoint"):
        await model.load()


def test_detect_interface_reads_config_json() -> None:
    assert detect_interface({"model_type": "qwen2_audio"}) == "qwen2-audio"
    assert (
        detect_interface({"architectures": ["Qwen2AudioForConditionalGeneration"]}) == "qwen2-audio"
    )
    diva_config = {
        "architectures": ["DiVAModel"],
        "auto_map": {"AutoModel": "modeling_diva.DiVAModel"},
    }
    assert detect_interface(diva_config) == "diva"
    typhoon_config = {
        "model_type": "typhoonaudio",
        "auto_map": {"AutoModel": "modeling_typhoonaudio.TyphoonAudio"},
    }
    assert detect_interface(typhoon_config) == "typhoon"
    assert detect_interface({"model_type": "llama", "architectures": ["DivaLike"]}) is None
    assert detect_interface({"auto_map": {"AutoModel": "modeling_x.Other"}}) is None


def test_auto_picks_the_adapter_from_the_folder(remote_code_dir: Path, tmp_path: Path) -> None:
    def build(folder: Path, trust: bool = True) -> AudioModel:
        return local_audio_lm(
            "m", folder, interface="auto", trust_remote_code=trust, local_files_only=True
        )

    assert isinstance(build(remote_code_dir / "tiny-diva"), DivaAudioLM)
    assert isinstance(build(remote_code_dir / "tiny-typhoon2"), TyphoonAudioLM)
    qwen = build_tiny_qwen2_audio(tmp_path / "qwen")
    assert type(build(qwen, trust=False)) is LocalAudioLM
    with pytest.raises(ConfigError, match=r"needs interface diva.*trust_remote_code: true"):
        build(remote_code_dir / "tiny-diva", trust=False)
    with pytest.raises(ConfigError, match="has none on disk"):
        build(tmp_path / "missing")
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ConfigError, match=r"cannot tell how to drive.*set interface"):
        build(other)
