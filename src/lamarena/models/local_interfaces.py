"""Local audio LMs that ship their own code (DiVA, Typhoon-Audio); which interface drives which.

``kind: local`` has four ``interface`` values:

- ``qwen2-audio``: transformers' own Qwen2-Audio classes
  (:class:`~lamarena.models.local.LocalAudioLM`); no remote code.
- ``diva``: DiVA (``WillHeld/DiVA-llama-3-v0-8b``), :class:`DivaAudioLM`. Streams: its
  ``generate_stream`` yields the *whole* text so far each time, turned here into deltas.
- ``typhoon``: Typhoon-Audio (``scb10x/llama-3-typhoon-v1.5-8b-audio-preview``; its successor
  Typhoon2-Audio too), :class:`TyphoonAudioLM`. Its ``generate`` returns the whole reply at once,
  so the reply is one delta, sent when the text is ready (the time to first token is then the
  time to the whole reply, which is the truth for this model).
- ``auto``: :func:`detect_interface` reads the checkpoint's ``config.json``.

The last two run Python code from the checkpoint (``AutoModel.from_pretrained(...,
trust_remote_code=True)``), so they are built only with ``trust_remote_code`` (models.yaml:
``trust_remote_code: true``). That code is written against one transformers version
(``transformers_version`` in its ``config.json``); when it fails to import or load, the error
names that version and the installed one.

The calls below follow public code that drives these checkpoints:

- DiVA: SALT-NLP/audiolm-inference-server ``handler/huggingface_handler.py`` and SALT-NLP/talk-arena
  ``src/talk_arena/streaming_helpers.py``: ``model.generate_stream(audio, text_prompt,
  do_sample=, max_new_tokens=)`` with ``audio`` a float32 numpy array at 16 kHz, peak-normalised
  (``y /= max|y|``), and ``text_prompt`` the system prompt; each item is the cumulative text
  (the server sends ``text[len(previous):]``), or ``(text, outputs)`` with
  ``return_outputs=True``.
- Typhoon-Audio v1.5: its model card's example (and talk-arena's ``streaming_helpers.py``):
  ``model.generate(audio=<16 kHz numpy, at most 30 s>, prompt=, prompt_pattern=,
  do_sample=, max_new_tokens=, repetition_penalty=, num_beams=1)`` returning the reply string,
  with the Llama-3 pattern :data:`TYPHOON_PROMPT_PATTERN`.
- Typhoon2-Audio: ``typhoon2_audio/modeling_typhoon2audio.py`` (a public copy:
  Mythixz/typhoon2-audio): ``generate(conversation=[{"role", "content"}], max_new_tokens=,
  do_sample=, temperature=, ...)``, where an audio part is ``{"type": "audio", "audio_url":
  <a wav file>}`` read with soundfile; it returns the text, or ``{"text", "audio", ...}`` for
  the speech-out model.

Conversations: Typhoon2-Audio takes earlier turns in its ``conversation``; DiVA keeps a
conversation only as its own model state (``init_outputs``) and Typhoon-Audio v1.5 takes one
clip, so both refuse a request with earlier turns (a :class:`~lamarena.errors.ModelError`
that says to start a new conversation).
"""

from __future__ import annotations

import inspect
import json
import logging
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from lamarena.audio import AudioClip
from lamarena.errors import ConfigError, ModelError
from lamarena.models.base import AudioModel, EarlierTurn
from lamarena.models.local import (
    DEFAULT_MAX_NEW_TOKENS,
    Emit,
    LocalAudioLM,
    _HFModel,
    _import,
    _LoadFailure,
    _local_path,
    _not_loadable,
    _stream_from_thread,
)

__all__ = [
    "INTERFACES",
    "TYPHOON_PROMPT_PATTERN",
    "DivaAudioLM",
    "RemoteCodeAudioLM",
    "TyphoonAudioLM",
    "checkpoint_config",
    "detect_interface",
    "local_audio_lm",
    "resolve_interface",
]

logger = logging.getLogger(__name__)

INTERFACES = ("qwen2-audio", "diva", "typhoon")
"""The interfaces ``auto`` can choose from."""

TYPHOON_PROMPT_PATTERN = (
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n<Speech><SpeechHere></Speech> "
    "{}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
)
"""Typhoon-Audio v1.5's one user turn: the speech, then the prompt (``{}``), then the reply."""


def checkpoint_config(model: str) -> dict[str, Any] | None:
    """The ``config.json`` of a local checkpoint directory or a hub id in the local HF cache.

    Nothing is downloaded; None when there is no such file on disk or it is not JSON.
    """
    path = _local_path(model)
    if path is not None:
        file: Path | None = path / "config.json"
    else:
        hub = _import("transformers.utils")
        try:
            cached = hub.cached_file(model, "config.json", local_files_only=True)
        except (OSError, ValueError):
            cached = None
        file = None if cached is None else Path(cached)
    if file is None or not file.is_file():
        return None
    try:
        loaded = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def _auto_map_names(config: Mapping[str, Any]) -> list[str]:
    auto_map = config.get("auto_map")
    if not isinstance(auto_map, dict):
        return []
    names: list[str] = []
    for value in auto_map.values():  # "modeling_diva.DiVAModel", or a [slow, fast] pair
        names += [str(each) for each in (value if isinstance(value, list) else [value])]
    return names


def detect_interface(config: Mapping[str, Any]) -> str | None:
    """The interface a checkpoint's ``config.json`` calls for; None when it cannot tell.

    The rule, in order:

    1. ``model_type`` ``qwen2_audio`` or ``Qwen2AudioForConditionalGeneration`` among the
       ``architectures``: ``qwen2-audio`` (transformers' own classes).
    2. Otherwise, a checkpoint with remote code (an ``auto_map``) whose ``architectures``,
       ``model_type`` or ``auto_map`` class names contain "diva": ``diva``; "typhoon":
       ``typhoon`` (case-insensitive).
    3. Otherwise None: say ``interface:`` in models.yaml.
    """
    architectures = config.get("architectures")
    architectures = [str(each) for each in architectures] if isinstance(architectures, list) else []
    model_type = str(config.get("model_type") or "")
    if model_type == "qwen2_audio" or "Qwen2AudioForConditionalGeneration" in architectures:
        return "qwen2-audio"
    remote = _auto_map_names(config)
    if not remote:
        return None
    names = " ".join([*architectures, model_type, *remote]).lower()
    for family in ("diva", "typhoon"):
        if family in names:
            return family
    return None


def resolve_interface(name: str, model: str, interface: str, trust_remote_code: bool) -> str:
    """``interface``, with ``auto`` replaced by what :func:`detect_interface` finds.

    Raises:
        ConfigError: ``auto`` without a ``config.json`` on disk or with one it cannot read, or
            an interface that runs remote code without ``trust_remote_code``.
    """
    chosen = interface
    if interface == "auto":
        config = checkpoint_config(model)
        if config is None:
            raise ConfigError(
                f"model '{name}': interface: auto reads the checkpoint's config.json, and "
                f"{model} has none on disk (not a directory holding one, not in the Hugging "
                "Face cache): download it first, or set interface: qwen2-audio, diva or typhoon"
            )
        detected = detect_interface(config)
        if detected is None:
            seen = {
                "architectures": config.get("architectures"),
                "model_type": config.get("model_type"),
                "auto_map": sorted(_auto_map_names(config)) or None,
            }
            raise ConfigError(
                f"model '{name}': interface: auto cannot tell how to drive {model} from its "
                f"config.json ({json.dumps(seen)}): set interface: qwen2-audio, diva or typhoon"
            )
        chosen = detected
    elif interface not in INTERFACES:
        raise ConfigError(
            f"model '{name}': unknown interface '{interface}'; use {', '.join(INTERFACES)} or auto"
        )
    if chosen != "qwen2-audio" and not trust_remote_code:
        raise ConfigError(
            f"model '{name}': {model} needs interface {chosen}, which runs the Python code "
            "shipped with the checkpoint; read it, then add trust_remote_code: true"
        )
    return chosen


def local_audio_lm(
    name: str,
    model: str | Path,
    *,
    interface: str = "qwen2-audio",
    trust_remote_code: bool = False,
    **options: Any,
) -> AudioModel:
    """The adapter of a ``kind: local`` model, by interface (``auto`` resolved now).

    Args:
        name: the model's name.
        model: a Hugging Face id or a checkpoint directory.
        interface: qwen2-audio, diva, typhoon or auto (see :func:`detect_interface`).
        trust_remote_code: allow the checkpoint's own code (diva and typhoon need it).
        **options: the adapter's options (device, dtype, max_new_tokens, temperature, ...).

    Raises:
        ConfigError: see :func:`resolve_interface`, or a bad option.
    """
    chosen = resolve_interface(name, str(model), interface, trust_remote_code)
    if chosen == "diva":
        return DivaAudioLM(name, model, trust_remote_code=trust_remote_code, **options)
    if chosen == "typhoon":
        return TyphoonAudioLM(name, model, trust_remote_code=trust_remote_code, **options)
    return LocalAudioLM(name, model, **options)


def remote_code_failure(source: str, exc: BaseException) -> str:
    """Why the checkpoint's own code failed, with the transformers version it was written for."""
    installed = str(getattr(_import("transformers"), "__version__", "unknown"))
    config = checkpoint_config(source) or {}
    expected = config.get("transformers_version")
    message = f"its remote code failed to import or load ({type(exc).__name__}: {exc})"
    if expected and str(expected) != installed:
        return (
            f"{message}; the checkpoint was saved with transformers {expected} and this is "
            f"transformers {installed}: code written for one version often breaks on another, "
            f"so run it with transformers=={expected} (e.g. in its own environment)"
        )
    if expected:
        return f"{message} (saved with transformers {expected}, the installed version)"
    return (
        f"{message}; its config.json names no transformers_version (this is transformers "
        f"{installed})"
    )


def _peak_normalised(clip: AudioClip) -> NDArray[np.float32]:
    """The clip's samples scaled to a peak of 1, as the study's callers fed these models."""
    samples = np.asarray(clip.samples, dtype=np.float32)
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    return samples / peak if peak > 0 else samples


def _accepted(method: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """The ``options`` that ``method`` takes (all of them when it takes ``**kwargs``)."""
    parameters = inspect.signature(method).parameters
    if any(each.kind is inspect.Parameter.VAR_KEYWORD for each in parameters.values()):
        return options
    return {key: value for key, value in options.items() if key in parameters}


class RemoteCodeAudioLM(_HFModel):
    """A checkpoint run through its own code (``AutoModel`` with ``trust_remote_code``).

    Constructor: :class:`~lamarena.models.local._HFModel`'s options, plus ``trust_remote_code``,
    which must be true. Subclasses say which methods the model class must have and how one
    request runs.
    """

    family: ClassVar[str] = ""
    required: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        name: str,
        model: str | Path,
        *,
        trust_remote_code: bool = False,
        device: str = "cpu",
        dtype: str = "float32",
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        repetition_penalty: float | None = None,
        local_files_only: bool = False,
    ) -> None:
        """Describe the model; nothing is loaded until the first request (or :meth:`load`).

        Args: as :class:`~lamarena.models.local._HFModel`, and ``trust_remote_code``: allow
        the checkpoint's own code (required).

        Raises:
            ConfigError: ``trust_remote_code`` is false, or an unknown dtype.
        """
        if not trust_remote_code:
            raise ConfigError(
                f"model '{name}': interface {self.family} runs the Python code shipped with "
                f"{model}; read it, then add trust_remote_code: true"
            )
        super().__init__(
            name,
            model,
            device=device,
            dtype=dtype,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            repetition_penalty=repetition_penalty,
            local_files_only=local_files_only,
        )
        self.trust_remote_code = trust_remote_code

    def _load(self) -> Any:
        transformers = _import("transformers")
        source = self._source()
        try:
            model = transformers.AutoModel.from_pretrained(
                source,
                trust_remote_code=True,
                dtype=self._torch_dtype(),
                local_files_only=self.local_files_only,
            )
        except OSError as exc:  # missing files: the checkpoint, not its code
            raise _not_loadable(source, self.local_files_only, exc) from exc
        except Exception as exc:  # the remote module failed to import, build or load
            raise _LoadFailure(remote_code_failure(source, exc)) from exc
        missing = [method for method in self.required if not callable(getattr(model, method, None))]
        if missing:
            raise _LoadFailure(
                f"{source} loads as {type(model).__name__}, which has no {', '.join(missing)}: "
                f"it is not a {self.family} checkpoint; check interface: in models.yaml"
            )
        return self._place(model)

    def _generation_options(self) -> dict[str, Any]:
        """Decoding options in the names these models' methods use."""
        options: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
            "do_sample": bool(self.temperature),
        }
        if self.temperature:
            options["temperature"] = self.temperature
            if self.top_p is not None:
                options["top_p"] = self.top_p
        if self.repetition_penalty is not None:
            options["repetition_penalty"] = self.repetition_penalty
        return options

    def _refuse_history(self, history: Sequence[EarlierTurn], why: str) -> None:
        if history:
            raise ModelError(
                self.name,
                f"{why}, so it answers one spoken turn at a time: start a new conversation",
            )

    def stream(
        self, clip: AudioClip, prompt: str, history: Sequence[EarlierTurn] = ()
    ) -> AsyncIterator[str]:
        """Yield the reply to the spoken ``clip`` with ``prompt`` as its text prompt.

        Raises:
            ModelError: loading or generation failed, or earlier turns this model cannot take.
        """
        return _stream_from_thread(
            self.name, lambda emit, stop: self._run(clip, prompt, history, emit, stop)
        )

    def _run(
        self,
        clip: AudioClip,
        prompt: str,
        history: Sequence[EarlierTurn],
        emit: Emit,
        stop: threading.Event,
    ) -> None:
        raise NotImplementedError


class _CumulativeText:
    """Turns a stream of whole-text-so-far strings into deltas that add up to the last one.

    A partial word (text not ending in whitespace) or a trailing U+FFFD (half a multi-byte
    character) is held back until the next string, as transformers' TextStreamer holds back an
    unfinished word, because a later string may still change it; :meth:`finish` sends the rest.
    A string that rewrites text already sent (rare: a tokenizer cleaning up spaces) cannot be
    taken back: it is logged and the stream goes on from what was sent.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent = ""
        self.latest = ""
        self._warned = False

    def _delta(self, text: str) -> str:
        if not text.startswith(self.sent):
            if not self._warned:
                logger.warning(
                    "%s: the model rewrote text it had already streamed; keeping what was sent",
                    self.name,
                )
                self._warned = True
            return ""
        delta = text[len(self.sent) :]
        self.sent = text
        return delta

    def update(self, text: str) -> str:
        """The delta of ``text`` that is safe to send now."""
        self.latest = text
        stable = text.rstrip("\ufffd")
        if stable and not stable[-1].isspace():
            cut = max(stable.rfind(" "), stable.rfind("\n"))
            stable = stable[: cut + 1] if cut >= 0 else ""
        return self._delta(stable) if len(stable) > len(self.sent) else ""

    def finish(self) -> str:
        """Whatever of the last string is not sent yet."""
        return self._delta(self.latest)


class DivaAudioLM(RemoteCodeAudioLM):
    """DiVA (Distilled Voice Assistant) through its remote code, streamed.

    ``prompt`` is DiVA's ``text_prompt``; the clip goes in as 16 kHz float32 samples,
    peak-normalised as the study's callers did. Greedy unless ``temperature`` is set (DiVA's
    ``generate_stream`` takes ``do_sample``; a temperature or top-p is passed only where its
    signature takes one). A consumer that stops listening stops the generation at the next item.
    """

    family = "diva"
    required = ("generate_stream",)

    def _run(
        self,
        clip: AudioClip,
        prompt: str,
        history: Sequence[EarlierTurn],
        emit: Emit,
        stop: threading.Event,
    ) -> None:
        self._refuse_history(
            history,
            "DiVA keeps a conversation only as its own model state (init_outputs), which "
            "lamarena does not keep between requests",
        )
        model = self._weights()
        torch = _import("torch")
        options = _accepted(model.generate_stream, self._generation_options())
        text = _CumulativeText(self.name)
        with torch.no_grad():
            items = model.generate_stream(_peak_normalised(clip), prompt or None, **options)
            try:
                for item in items:
                    whole = item[0] if isinstance(item, tuple) else item
                    if isinstance(whole, str):
                        emit(text.update(whole))
                    if stop.is_set():
                        return
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()
        emit(text.finish())


class TyphoonAudioLM(RemoteCodeAudioLM):
    """Typhoon-Audio through its remote code: the whole reply at once, as one delta.

    Typhoon-Audio v1.5 (``generate(audio=, prompt=, prompt_pattern=)``) takes one clip and
    ``prompt`` as the instruction after it, in :data:`TYPHOON_PROMPT_PATTERN`. Typhoon2-Audio
    (``generate(conversation=)``) gets ``prompt`` as the system turn and the earlier turns of a
    conversation before the query; its clips go in as temporary 16 kHz WAV files, which it
    reads itself. Which of the two is told apart by ``generate``'s parameters. The generation
    cannot be stopped half-way: a consumer that stops listening waits for nothing, but the
    worker thread finishes the reply.
    """

    family = "typhoon"
    required = ("generate",)

    def _run(
        self,
        clip: AudioClip,
        prompt: str,
        history: Sequence[EarlierTurn],
        emit: Emit,
        stop: threading.Event,
    ) -> None:
        model = self._weights()
        parameters = inspect.signature(model.generate).parameters
        if "prompt_pattern" in parameters:
            self._refuse_history(history, "Typhoon-Audio v1.5 takes one clip per request")
        elif "conversation" not in parameters:
            raise ModelError(
                self.name,
                "its generate() takes neither prompt_pattern (Typhoon-Audio v1.5) nor "
                "conversation (Typhoon2-Audio): not a Typhoon-Audio checkpoint lamarena knows",
            )
        torch = _import("torch")
        options = _accepted(model.generate, {**self._generation_options(), "num_beams": 1})
        with torch.no_grad():
            if "prompt_pattern" in parameters:
                result = model.generate(
                    audio=_peak_normalised(clip),
                    prompt=prompt,
                    prompt_pattern=TYPHOON_PROMPT_PATTERN,
                    **options,
                )
            else:
                result = self._generate_conversation(model, clip, prompt, history, options)
        if isinstance(result, dict):
            result = result.get("text")
        if not isinstance(result, str):
            kind = type(result).__name__
            raise ModelError(self.name, f"its generate() returned {kind}, not text")
        if not stop.is_set():
            emit(result.strip())

    def _generate_conversation(
        self,
        model: Any,
        clip: AudioClip,
        prompt: str,
        history: Sequence[EarlierTurn],
        options: dict[str, Any],
    ) -> Any:
        """Typhoon2-Audio: the system prompt, the earlier turns and the query as one chat."""
        soundfile = _import("soundfile")
        with tempfile.TemporaryDirectory(prefix="lamarena-typhoon-") as folder:

            def user(index: int, turn_clip: AudioClip) -> dict[str, Any]:
                path = Path(folder) / f"turn-{index}.wav"
                soundfile.write(path, _peak_normalised(turn_clip), turn_clip.sample_rate_hz)
                return {"role": "user", "content": [{"type": "audio", "audio_url": str(path)}]}

            conversation: list[dict[str, Any]] = []
            if prompt:
                conversation.append({"role": "system", "content": prompt})
            for index, turn in enumerate(history, 1):
                reply = {"role": "assistant", "content": turn.reply}
                conversation += [user(index, turn.clip), reply]
            conversation.append(user(len(history) + 1, clip))
            return model.generate(conversation=conversation, **options)
