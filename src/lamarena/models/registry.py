"""Build adapters from models.yaml specs (or the built-in offline models), by ``kind``.

Each kind's adapter module is imported only when a model of that kind is built, so the package
loads without optional extras; a missing extra is a :class:`~lamarena.errors.ConfigError` that
gives the exact ``pip install`` line. API keys are read from the environment variable the spec
names, at build time, and never kept anywhere else.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from typing import Any

from lamarena.audio import AudioClip, decode_audio
from lamarena.errors import ConfigError
from lamarena.models.base import (
    AudioModel,
    ModelTimeouts,
    Reply,
    TextModel,
    TokenPrices,
    Transcriber,
    Usage,
)
from lamarena.models.config import (
    LOCAL_MAX_AUDIO_S,
    AsrSpec,
    EspeakTtsSpec,
    GeminiSpec,
    LlmSpec,
    LocalSpec,
    ModelsConfig,
    OpenAISpec,
    OpenAISpeechTtsSpec,
    PipelineSpec,
    load_models_config,
)
from lamarena.models.model_ids import (
    RETIRING_SOON_DAYS,
    Lifecycle,
    Retired,
    Retiring,
    describe,
    hosted_ids,
    lifecycle,
)
from lamarena.models.runtime import (
    AudioCallback,
    AudioLimit,
    DeltaCallback,
    run_model,
    set_audio_limit,
)
from lamarena.models.speech import Synthesiser
from lamarena.settings import Settings, read_secret

__all__ = [
    "ModelEntry",
    "arena_transcriber",
    "ask_model",
    "check_models",
    "check_output_mode",
    "model_entries",
]

_EXTRA_FOR_MODULE = {
    "lamarena.models.local": "local",
    "lamarena.models.local_interfaces": "local",
    "lamarena.models.offline": "local",
}

Spec = OpenAISpec | GeminiSpec | PipelineSpec | LocalSpec


@dataclass(frozen=True)
class ModelEntry:
    """A model that can be built: what ``models list`` shows, and how to make the adapter.

    Attributes:
        name: its name in models.yaml (or the built-in offline model's).
        kind: openai, gemini, pipeline or local.
        model: the model id (a pipeline's ``asr -> llm``).
        offline: whether it runs with no network.
        system_prompt: the text the arena sends with each query.
        build: makes a new adapter.
        description: a line for ``models list`` (built-in models).
        max_concurrency: the model's own limit on concurrent calls, if any.
        prices: what its tokens cost, where models.yaml says (a pipeline's: its LLM's tokens).
        speaks: whether it answers with speech (``output: audio``); its adapter then has
            ``speaks`` true and :func:`~lamarena.models.runtime.run_model` collects audio.
        audio_limit: the most audio it takes per clip (``max_audio_s``) and what happens to a
            longer clip; ``build`` sets it on the adapter, where
            :func:`~lamarena.models.runtime.run_model` applies it. None: no limit.
        trust_remote_code: whether it runs code shipped with its checkpoint (local models).
        interface: how a local model is driven (qwen2-audio, diva, typhoon or auto); "" for
            other kinds.
    """

    name: str
    kind: str
    model: str
    offline: bool
    system_prompt: str
    build: Callable[[], AudioModel]
    description: str = ""
    max_concurrency: int | None = None
    prices: TokenPrices | None = None
    speaks: bool = False
    audio_limit: AudioLimit | None = None
    trust_remote_code: bool = False
    interface: str = ""

    def cost_usd(self, usage: Usage | None) -> float | None:
        """The cost of a request with ``usage``; None without prices or without both counts."""
        return None if self.prices is None else self.prices.cost_usd(usage)

    def describe(self) -> dict[str, Any]:
        """The ``models list --json`` row."""
        row: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "model": self.model,
            "offline": self.offline,
        }
        if self.description:
            row["description"] = self.description
        if self.interface:
            row["interface"] = self.interface
        if self.kind == "local":
            row["trust_remote_code"] = self.trust_remote_code
        if self.audio_limit is not None:
            row["max_audio_s"] = self.audio_limit.max_s
            row["audio_over_limit"] = self.audio_limit.over_limit
        return row


def _module(name: str) -> Any:
    """Import an adapter module, turning a missing optional dependency into a ConfigError."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        extra = _EXTRA_FOR_MODULE.get(name)
        hint = f"pip install 'lamarena[{extra}]'" if extra else "pip install lamarena"
        missing = exc.name or "a package"
        raise ConfigError(f"{name} needs {missing}, which is not installed: {hint}") from exc


def _api_key(owner: str, env_var: str | None) -> str | None:
    """The key in ``env_var``; a named but unset variable is an error naming it."""
    if env_var is None:
        return None
    key = read_secret(env_var)
    if key is None:
        raise ConfigError(f"model '{owner}' needs the environment variable {env_var} (its API key)")
    return key


def _openai(spec: OpenAISpec) -> AudioModel:
    module = _module("lamarena.models.openai_compat")
    model: AudioModel = module.OpenAIChatModel(
        spec.name,
        spec.model,
        base_url=spec.base_url,
        api_key=_api_key(spec.name, spec.api_key_env),
        api_key_env=spec.api_key_env,
        timeouts=ModelTimeouts(connect_s=spec.connect_timeout_s, first_token_s=spec.timeout_s),
        max_retries=spec.max_retries,
        modalities=spec.modalities,
        output=spec.output,
        audio_voice=spec.voice,
        audio_format=spec.audio_format,
        audio_part=spec.audio_part,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        token_limit_field=spec.token_limit_field,
        report_usage=spec.report_usage,
    )
    return model


def _gemini(spec: GeminiSpec) -> AudioModel:
    module = _module("lamarena.models.gemini")
    model: AudioModel = module.GeminiModel(
        spec.name,
        spec.model,
        base_url=spec.base_url,
        api_key=_api_key(spec.name, spec.api_key_env or "GEMINI_API_KEY"),
        api_key_env=spec.api_key_env or "GEMINI_API_KEY",
        timeouts=ModelTimeouts(connect_s=spec.connect_timeout_s, first_token_s=spec.timeout_s),
        max_retries=spec.max_retries,
        temperature=spec.temperature,
        max_tokens=spec.max_tokens,
        thinking_budget=spec.thinking_budget,
    )
    return model


def _transcriber(owner: str, spec: AsrSpec, settings: Settings) -> Transcriber:
    if spec.kind == "openai-transcription":
        module = _module("lamarena.models.openai_compat")
        remote: Transcriber = module.OpenAITranscriber(
            f"{owner}/asr",
            spec.model,
            base_url=spec.base_url,
            api_key=_api_key(owner, spec.api_key_env),
            api_key_env=spec.api_key_env,
            timeouts=ModelTimeouts(first_token_s=spec.timeout_s),
            language=None if spec.language in (None, "auto") else spec.language,
        )
        return remote
    module = _module("lamarena.models.local")
    whisper: dict[str, Any] = {}
    if spec.compute_type is not None:
        whisper["compute_type"] = spec.compute_type
    if spec.beam_size is not None:
        whisper["beam_size"] = spec.beam_size
    if spec.language is not None:  # absent: English, as ever; auto: detected per clip
        whisper["language"] = None if spec.language == "auto" else spec.language
    local: Transcriber = module.FasterWhisperTranscriber(
        f"{owner}/asr",
        spec.model,
        device=settings.local_device,
        local_files_only=not spec.allow_download,
        **whisper,
    )
    return local


def _text_model(owner: str, spec: LlmSpec, settings: Settings) -> TextModel:
    name = f"{owner}/llm"
    timeouts = ModelTimeouts(first_token_s=spec.timeout_s)
    common = {"temperature": spec.temperature, "max_tokens": spec.max_tokens}
    if spec.kind == "openai":
        module = _module("lamarena.models.openai_compat")
        openai_llm: TextModel = module.OpenAIChatModel(
            name,
            spec.model,
            base_url=spec.base_url,
            api_key=_api_key(owner, spec.api_key_env),
            api_key_env=spec.api_key_env,
            timeouts=timeouts,
            report_usage=spec.report_usage,
            **common,
        )
        return openai_llm
    if spec.kind == "gemini":
        module = _module("lamarena.models.gemini")
        gemini_llm: TextModel = module.GeminiModel(
            name,
            spec.model,
            base_url=spec.base_url,
            api_key=_api_key(owner, spec.api_key_env or "GEMINI_API_KEY"),
            api_key_env=spec.api_key_env or "GEMINI_API_KEY",
            timeouts=timeouts,
            **common,
        )
        return gemini_llm
    module = _module("lamarena.models.local")
    local_llm: TextModel = module.LocalTextLM(
        name,
        spec.model,
        gguf_file=spec.gguf_file,
        cache_dir=settings.cache_dir,
        device=settings.local_device,
        dtype=settings.local_dtype,
        max_new_tokens=spec.max_tokens,
        temperature=spec.temperature,
        local_files_only=not spec.allow_download,
    )
    return local_llm


def _synthesiser(owner: str, spec: EspeakTtsSpec | OpenAISpeechTtsSpec) -> Synthesiser:
    module = _module("lamarena.models.tts")
    if isinstance(spec, EspeakTtsSpec):
        espeak: Synthesiser = module.EspeakSynthesiser(
            f"{owner}/tts", voice=spec.voice, speed=spec.speed, timeout_s=spec.timeout_s
        )
        return espeak
    remote: Synthesiser = module.OpenAISpeechSynthesiser(
        f"{owner}/tts",
        spec.model,
        voice=spec.voice,
        speed=spec.speed,
        base_url=spec.base_url,
        api_key=_api_key(owner, spec.api_key_env),
        api_key_env=spec.api_key_env,
        timeouts=ModelTimeouts(first_token_s=spec.timeout_s),
    )
    return remote


def _pipeline(spec: PipelineSpec, settings: Settings) -> AudioModel:
    module = _module("lamarena.models.pipeline")
    model: AudioModel = module.PipelineModel(
        spec.name,
        _transcriber(spec.name, spec.asr, settings),
        _text_model(spec.name, spec.llm, settings),
        None if spec.tts is None else _synthesiser(spec.name, spec.tts),
    )
    return model


def _local(spec: LocalSpec, settings: Settings) -> AudioModel:
    module = _module("lamarena.models.local_interfaces")
    model: AudioModel = module.local_audio_lm(
        spec.name,
        spec.model,
        interface=spec.interface,
        trust_remote_code=spec.trust_remote_code,
        device=spec.device or settings.local_device,
        dtype=spec.dtype or settings.local_dtype,
        max_new_tokens=spec.max_tokens,
        temperature=spec.temperature,
        local_files_only=not spec.allow_download,
    )
    return model


def _is_offline(spec: Spec) -> bool:
    """Whether the model runs with no network: in process, and not allowed to download."""
    if isinstance(spec, LocalSpec):
        return not spec.allow_download
    if isinstance(spec, PipelineSpec):
        asr, llm = spec.asr, spec.llm
        return (
            asr.kind == "local-whisper"
            and llm.kind == "local"
            and (spec.tts is None or spec.tts.kind == "espeak")
            and not (asr.allow_download or llm.allow_download)
        )
    return False


def _build(spec: Spec, settings: Settings) -> AudioModel:
    if isinstance(spec, OpenAISpec):
        return _openai(spec)
    if isinstance(spec, GeminiSpec):
        return _gemini(spec)
    if isinstance(spec, PipelineSpec):
        return _pipeline(spec, settings)
    return _local(spec, settings)


def _audio_limit(spec: Spec) -> AudioLimit | None:
    """The spec's ``max_audio_s`` (a local model's default: its encoder's 30 s window)."""
    max_s = spec.max_audio_s
    if max_s is None and isinstance(spec, LocalSpec):
        max_s = LOCAL_MAX_AUDIO_S
    return None if max_s is None else AudioLimit(max_s, spec.audio_over_limit)


def _limited(adapter: AudioModel, limit: AudioLimit | None) -> AudioModel:
    set_audio_limit(adapter, limit)
    return adapter


def _entry(spec: Spec, settings: Settings) -> ModelEntry:
    model = (
        f"{spec.asr.model} -> {spec.llm.model}" if isinstance(spec, PipelineSpec) else spec.model
    )
    limit = _audio_limit(spec)
    return ModelEntry(
        name=spec.name,
        kind=spec.kind,
        model=model,
        offline=_is_offline(spec),
        system_prompt=spec.system_prompt,
        build=lambda: _limited(_build(spec, settings), limit),
        max_concurrency=spec.max_concurrency,
        prices=None if isinstance(spec, LocalSpec) else spec.prices,
        speaks=spec.output == "audio",
        audio_limit=limit,
        trust_remote_code=spec.trust_remote_code if isinstance(spec, LocalSpec) else False,
        interface=spec.interface if isinstance(spec, LocalSpec) else "",
    )


def model_entries(settings: Settings) -> list[ModelEntry]:
    """The models of ``settings.models_config``, or the built-in offline models without one.

    Raises:
        ConfigError: the models file is invalid, or the offline extra is missing.
    """
    if settings.models_config is None:
        offline = _module("lamarena.models.offline")
        entries: list[ModelEntry] = offline.builtin_offline_entries(settings)
        return entries
    config: ModelsConfig = load_models_config(settings.models_config)
    return [_entry(spec, settings) for spec in config.models]


def check_output_mode(entries: Sequence[ModelEntry], mode: str) -> None:
    """Refuse models that answer otherwise than the arena's mode (``serve --mode``).

    A speech arena needs every model to speak (``output: audio``) and a text arena none, so that
    both sides of every battle answer alike.

    Raises:
        ConfigError: naming the models that do not fit, and what to change.
    """
    if mode == "speech":
        silent = [entry.name for entry in entries if not entry.speaks]
        if silent:
            raise ConfigError(
                f"serve --mode speech needs every model to answer with speech, but "
                f"{', '.join(silent)} answer(s) in text: give them output: audio (a pipeline "
                "also a tts stage), leave them out, or use --mode text"
            )
    elif mode == "text":
        speaking = [entry.name for entry in entries if entry.speaks]
        if speaking:
            raise ConfigError(
                f"serve --mode text shows text replies, but {', '.join(speaking)} answer(s) "
                "with speech (output: audio): use --mode speech, or give them output: text"
            )
    else:
        raise ConfigError(f"unknown mode {mode!r}: use text or speech")


def arena_transcriber(
    settings: Settings, adapters: Sequence[AudioModel] = ()
) -> Transcriber | None:
    """The speech recogniser the arena uses for query transcripts and spoken reasons.

    models.yaml's ``transcriber`` when it has one; otherwise the ASR of the first pipeline among
    ``adapters`` (so the built-in offline models need no second Whisper); otherwise None.

    Raises:
        ConfigError: the models file is invalid, or the extra of a local recogniser is missing.
    """
    if settings.models_config is not None:
        config: ModelsConfig = load_models_config(settings.models_config)
        if config.transcriber is not None:
            return _transcriber("arena", config.transcriber, settings)
    for adapter in adapters:
        found = getattr(adapter, "transcriber", None)
        if isinstance(found, Transcriber):
            return found
    return None


def _find(entries: list[ModelEntry], name: str) -> ModelEntry:
    for entry in entries:
        if entry.name == name:
            return entry
    names = ", ".join(entry.name for entry in entries)
    raise ConfigError(f"no model named '{name}'; models: {names}")


def _timeouts(settings: Settings) -> ModelTimeouts:
    return ModelTimeouts(
        first_token_s=settings.model_first_token_timeout_s,
        total_s=settings.model_total_timeout_s,
    )


async def ask_model(
    settings: Settings,
    name: str,
    clip: AudioClip,
    *,
    prompt: str | None = None,
    on_delta: DeltaCallback | None = None,
    on_audio: AudioCallback | None = None,
) -> Reply:
    """Build the model called ``name`` and collect its reply to ``clip``.

    A model that speaks also hands each audio chunk to ``on_audio`` and keeps its audio on
    the reply.

    Raises:
        ConfigError: no such model, a missing key or a missing extra.
    """
    entry = _find(model_entries(settings), name)
    model = entry.build()
    try:
        return await run_model(
            model,
            clip,
            entry.system_prompt if prompt is None else prompt,
            timeouts=_timeouts(settings),
            on_delta=on_delta,
            on_audio=on_audio,
        )
    finally:
        await _close(model)


async def _close(model: object) -> None:
    close = getattr(model, "aclose", None)
    if close is not None:
        await close()


def probe_clip() -> AudioClip:
    """The packaged probe: espeak-ng saying "Please say hello." (1.6 s, 16 kHz)."""
    data = resources.files("lamarena.data").joinpath("probe.wav").read_bytes()
    return decode_audio(data)


async def check_models(settings: Settings, *, today: date | None = None) -> list[dict[str, Any]]:
    """Probe every model at once with the packaged question; one row per model.

    A model that cannot even be built (missing key, missing extra) gets a failed row, so one
    broken entry does not hide the state of the others. An id sent to OpenAI's or Google's own
    API that the installed SDKs list as shut down (:mod:`lamarena.models.model_ids`) fails its
    row without a request; one whose shutdown is at most ``RETIRING_SOON_DAYS`` away is probed,
    and the row's ``warnings`` say when it goes and what replaces it.

    Args:
        settings: where models.yaml is.
        today: the day shutdown dates are judged against (default: today, UTC).
    """
    clip = probe_clip()
    entries = model_entries(settings)
    day = datetime.now(UTC).date() if today is None else today
    statuses: dict[str, list[Lifecycle]] = {}
    if settings.models_config is not None:
        for spec in load_models_config(settings.models_config).models:
            hosted = hosted_ids(spec.model_dump())
            statuses[spec.name] = [lifecycle(h.model_id, h.provider, day) for h in hosted]

    async def probe(entry: ModelEntry) -> dict[str, Any]:
        row: dict[str, Any] = {"name": entry.name, "kind": entry.kind, "offline": entry.offline}
        known = statuses.get(entry.name, [])
        retired = [describe(status, day) for status in known if isinstance(status, Retired)]
        if retired:
            error = f"model '{entry.name}': " + "; and ".join(retired)
            return {**row, "ok": False, "error": error, "warnings": []}
        row["warnings"] = [
            describe(status, day)
            for status in known
            if isinstance(status, Retiring) and status.days_left(day) <= RETIRING_SOON_DAYS
        ]
        try:
            model = entry.build()
        except ConfigError as exc:
            return {**row, "ok": False, "error": exc.message}
        try:
            reply = await run_model(model, clip, entry.system_prompt, timeouts=_timeouts(settings))
        finally:
            await _close(model)
        return {
            **row,
            "ok": reply.ok,
            "ttft_s": reply.ttft_s,
            "total_s": reply.total_s,
            "reply": reply.text[:80],
            "error": reply.error,
        }

    return list(await asyncio.gather(*(probe(entry) for entry in entries)))
