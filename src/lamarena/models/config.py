"""models.yaml: the list of contestants, validated into typed specs.

A typo fails loudly: YAML duplicate keys are refused, unknown keys are refused (``extra="forbid"``),
and every message names the file, the entry (its name and position) and the key. Secrets are
never in the file, only the *name* of the environment variable that holds them (``api_key_env``).

Remote models may give ``price_per_million_input_tokens`` and ``price_per_million_output_tokens``
(US dollars, both or neither; a pipeline's prices its LLM's tokens): static runs then record the
cost of every call whose tokens the service reported. ``price_per_million_input_audio_tokens``
and ``price_per_million_output_audio_tokens`` price the tokens a service reports as audio
(OpenAI and Gemini split their counts by modality; without an audio price, or from a service
that does not split, every token costs the text price). ``report_usage: false`` stops an
``openai`` model (or a pipeline's ``openai`` LLM) asking for token counts, for servers that
reject ``stream_options``.

An ``openai`` model sends the clip as an ``input_audio`` part (OpenAI); ``audio_part:
audio_url`` sends vLLM's other form and ``audio_part: talk-arena`` the form of the study's own
inference servers. ``max_tokens`` goes as ``max_completion_tokens`` to OpenAI's API and as
``max_tokens`` elsewhere (``token_limit_field`` overrides). A ``gemini`` model may give
``thinking_budget``.

.. code-block:: yaml

    models:
      - name: gpt-audio
        kind: openai
        model: gpt-audio-1.5                 # GPT-4o audio's successor on Chat Completions
        api_key_env: OPENAI_API_KEY
        price_per_million_input_tokens: 2.5
        price_per_million_output_tokens: 10
        price_per_million_input_audio_tokens: 32     # optional; default: the text price
        price_per_million_output_audio_tokens: 64
      - name: qwen2-audio-vllm
        kind: openai
        model: Qwen/Qwen2-Audio-7B-Instruct
        base_url: http://127.0.0.1:8000/v1
        audio_part: audio_url              # input_audio (default) | audio_url | talk-arena
      - name: whisper-llama
        kind: pipeline
        asr: {kind: openai-transcription, model: gpt-transcribe}
        llm: {kind: openai, model: meta-llama/Meta-Llama-3-8B-Instruct, base_url: http://127.0.0.1:8001/v1}
      - name: qwen2-audio-local
        kind: local
        model: Qwen/Qwen2-Audio-7B-Instruct
      - name: gpt-audio-spoken             # answers with speech (and its transcript)
        kind: openai
        model: gpt-audio-1.5
        output: audio                      # text (default) | audio
        voice: alloy                       # or audio_voice; audio_format: pcm16 (only it streams)
      - name: whisper-llama-espeak         # a pipeline speaks through its tts stage
        kind: pipeline
        output: audio
        asr: {kind: local-whisper, model: tiny.en}
        llm: {kind: local, model: HuggingFaceTB/SmolLM2-135M-Instruct}
        tts: {kind: espeak, voice: en}     # or {kind: openai-speech, model: gpt-4o-mini-tts}
    transcriber: {kind: local-whisper, model: tiny.en}   # optional: the arena's own ASR

``output: audio`` makes a model answer with speech: an ``openai`` model asks for
``modalities: [text, audio]`` and streams PCM16 audio with its transcript, a ``pipeline`` speaks
its LLM's text with its ``tts`` stage. ``gemini`` and ``local`` models cannot speak (Gemini
answers audio only through its Live API, which lamarena does not use); a pipeline with
``output: audio`` needs a ``tts`` stage, and a ``tts`` stage needs ``output: audio``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from lamarena.errors import ConfigError
from lamarena.models.base import TokenPrices

__all__ = [
    "DEFAULT_SYSTEM_PROMPT",
    "LOCAL_MAX_AUDIO_S",
    "AsrSpec",
    "AudioFormat",
    "AudioPart",
    "EspeakTtsSpec",
    "GeminiSpec",
    "LlmSpec",
    "LocalInterface",
    "LocalSpec",
    "ModelSpec",
    "ModelsConfig",
    "OpenAISpec",
    "OpenAISpeechTtsSpec",
    "OverLimit",
    "PipelineSpec",
    "TtsSpec",
    "load_models_config",
    "parse_models_config",
]

DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant. Respond conversationally to the speech provided."
)
"""The text part the study sent with every spoken query (Talk Arena)."""

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][\w.:+-]*$")]
EnvVar = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
PositiveSeconds = Annotated[float, Field(gt=0, le=3600)]


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value


BaseUrl = Annotated[str, AfterValidator(_http_url)]

Output = Literal["text", "audio"]
"""How a model answers: in text, or with speech (and its text)."""

Voice = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][\w.+/-]*$")]
"""A voice name: never starts with ``-``, so it cannot become an espeak-ng option."""


def _cannot_speak(kind: str, why: str) -> ValueError:
    return ValueError(
        f"output: audio is not possible for kind {kind} ({why}); use output: text, or a "
        "pipeline with a tts stage (tts: {kind: espeak}), or an openai audio model"
    )


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


OverLimit = Literal["refuse", "cut"]
"""What a model does with a clip longer than its ``max_audio_s``."""


class _AudioLimit(_Spec):
    """How much audio a model takes: longer clips are refused (default) or cut, never silently.

    ``max_audio_s`` None means no limit, except for ``local`` models, whose Whisper encoders
    read 30 s (see :data:`LOCAL_MAX_AUDIO_S`).
    """

    max_audio_s: PositiveSeconds | None = Field(
        default=None, description="The longest clip the model takes, in seconds."
    )
    audio_over_limit: OverLimit = Field(
        default="refuse",
        description="A longer clip: refuse it (an error reply naming both lengths) or cut it "
        "to max_audio_s (the reply then carries a notice).",
    )


class _Remote(_Spec):
    """Fields shared by every remote service."""

    model: str = Field(min_length=1)
    base_url: BaseUrl | None = None
    api_key_env: EnvVar | None = None
    timeout_s: PositiveSeconds = 60.0
    connect_timeout_s: PositiveSeconds = 10.0
    max_retries: int = Field(default=2, ge=0, le=10)


class _Generation(_Spec):
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0, le=32_768)


Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]

_REPORT_USAGE = (
    "Ask the server for token counts (stream_options.include_usage); false for servers that "
    "reject stream_options."
)


class _Priced(_Spec):
    """What a remote model's tokens cost, in US dollars per million.

    The text prices come both or neither; the audio prices are optional, need the text prices,
    and apply to the tokens the service reports as audio (without one, audio tokens cost the
    text price of their side).
    """

    price_per_million_input_tokens: Price | None = None
    price_per_million_output_tokens: Price | None = None
    price_per_million_input_audio_tokens: Price | None = Field(
        default=None, description="Input tokens the service reports as audio; default: text price."
    )
    price_per_million_output_audio_tokens: Price | None = Field(
        default=None, description="Output tokens the service reports as audio; default: text price."
    )

    @model_validator(mode="after")
    def _both_prices(self) -> Self:
        given = (self.price_per_million_input_tokens, self.price_per_million_output_tokens)
        if (given[0] is None) != (given[1] is None):
            raise ValueError(
                "give both price_per_million_input_tokens and price_per_million_output_tokens "
                "(0 for a side that is free), or neither"
            )
        audio = (
            self.price_per_million_input_audio_tokens,
            self.price_per_million_output_audio_tokens,
        )
        if given[0] is None and any(price is not None for price in audio):
            raise ValueError(
                "audio prices need the text prices too: give price_per_million_input_tokens and "
                "price_per_million_output_tokens as well"
            )
        return self

    @property
    def prices(self) -> TokenPrices | None:
        """The prices, or None when the entry gives none."""
        if self.price_per_million_input_tokens is None:
            return None
        if self.price_per_million_output_tokens is None:
            return None
        return TokenPrices(
            input_per_million=self.price_per_million_input_tokens,
            output_per_million=self.price_per_million_output_tokens,
            input_audio_per_million=self.price_per_million_input_audio_tokens,
            output_audio_per_million=self.price_per_million_output_audio_tokens,
        )


AudioPart = Literal["input_audio", "audio_url", "talk-arena"]
"""How an ``openai`` model's request carries the clip (see :mod:`.openai_messages`)."""

AudioFormat = Literal["wav", "aac", "mp3", "flac", "opus", "pcm16"]
"""The formats of a spoken reply the SDK lists; lamarena streams, and only pcm16 streams."""


class OpenAISpec(_Remote, _Generation, _Priced, _AudioLimit):
    """Chat completions with an audio part (GPT-4o audio, vLLM, any compatible server)."""

    name: Name
    kind: Literal["openai"]
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    modalities: list[Literal["text", "audio"]] | None = None
    output: Output = "text"
    audio_part: AudioPart = Field(
        default="input_audio",
        description="input_audio (OpenAI), audio_url (vLLM), or talk-arena (the study's own "
        "inference servers, which read only parts of type audio).",
    )
    token_limit_field: Literal["max_completion_tokens", "max_tokens"] | None = Field(
        default=None,
        description="The request field that carries max_tokens; by default max_completion_tokens "
        "for OpenAI's API and max_tokens for any other server.",
    )
    voice: Voice = Field(
        default="alloy",
        validation_alias=AliasChoices("voice", "audio_voice"),
        description="The voice of a spoken reply (audio_voice is the same key).",
    )
    audio_format: AudioFormat = Field(
        default="pcm16", description="The format of a spoken reply (streaming needs pcm16)."
    )
    max_concurrency: int | None = Field(default=None, gt=0)
    report_usage: bool = Field(default=True, description=_REPORT_USAGE)

    @model_validator(mode="before")
    @classmethod
    def _one_voice_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and "voice" in data and "audio_voice" in data:
            raise ValueError("give voice or audio_voice (the same setting), not both")
        return data

    @model_validator(mode="after")
    def _audio_modality(self) -> Self:
        if (
            self.output == "audio"
            and self.modalities is not None
            and ("audio" not in self.modalities)
        ):
            raise ValueError(
                "output: audio needs the audio modality: remove modalities (it is then "
                "[text, audio]) or set modalities: [text, audio]"
            )
        speaks = self.output == "audio" or "audio" in (self.modalities or [])
        if speaks and self.audio_format != "pcm16":
            raise ValueError(
                f"audio_format: {self.audio_format} cannot stream: lamarena streams every reply, "
                "and a spoken reply streams only as pcm16; use audio_format: pcm16"
            )
        return self


class GeminiSpec(_Remote, _Generation, _Priced, _AudioLimit):
    """Google Gemini through google-genai, audio inline."""

    name: Name
    kind: Literal["gemini"]
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    output: Output = "text"
    thinking_budget: int | None = Field(
        default=None,
        ge=-1,
        le=32_768,
        description="Thinking tokens a thinking model may spend (ThinkingConfig.thinking_budget): "
        "0 turns thinking off where the model allows it, -1 lets the model decide; the model's "
        "default when absent.",
    )
    max_concurrency: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _text_only(self) -> Self:
        if self.output == "audio":
            raise _cannot_speak(
                "gemini", "Gemini speaks only through its Live API, which lamarena does not use"
            )
        return self


ComputeType = Literal[
    "default",
    "auto",
    "int8",
    "int8_float16",
    "int8_float32",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
]
"""A CTranslate2 compute type (faster-whisper's ``WhisperModel(compute_type=)``)."""

Language = Annotated[str, Field(pattern=r"^([a-z]{2,3}|auto)$")]
"""An ISO-639-1 (or -3) code such as ``en`` or ``th``; ``auto``: the recogniser detects it."""


class AsrSpec(_Spec):
    """The speech recogniser of a pipeline (or the arena's own, ``transcriber:``).

    ``language`` (both kinds) names the spoken language: ``local-whisper`` assumes ``en`` when
    it is absent (its default model, tiny.en, knows only English) and detects it with ``auto``;
    ``openai-transcription`` sends it as the ``language`` hint (absent or ``auto``: the server
    detects it). ``compute_type`` and ``beam_size`` are faster-whisper's, so ``local-whisper``
    only.
    """

    kind: Literal["openai-transcription", "local-whisper"]
    model: str = Field(min_length=1)
    base_url: BaseUrl | None = None
    api_key_env: EnvVar | None = None
    timeout_s: PositiveSeconds = 60.0
    allow_download: bool = False
    language: Language | None = Field(
        default=None, description="Spoken language (en, th, ...) or auto; see the class doc."
    )
    compute_type: ComputeType | None = Field(
        default=None, description="local-whisper: CTranslate2 compute type (default int8)."
    )
    beam_size: int | None = Field(
        default=None, ge=1, le=20, description="local-whisper: 1 decodes greedily (default)."
    )

    @model_validator(mode="after")
    def _whisper_options(self) -> Self:
        if self.kind != "local-whisper":
            given = [key for key in ("compute_type", "beam_size") if getattr(self, key) is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: faster-whisper options, for kind local-whisper only; "
                    "remove them for openai-transcription"
                )
        return self


class LlmSpec(_Generation):
    """The text LLM of a pipeline."""

    kind: Literal["openai", "gemini", "local"]
    model: str = Field(min_length=1)
    base_url: BaseUrl | None = None
    api_key_env: EnvVar | None = None
    timeout_s: PositiveSeconds = 60.0
    gguf_file: str | None = None
    allow_download: bool = False
    report_usage: bool = Field(default=True, description=_REPORT_USAGE + " (kind openai only)")


Speed = Annotated[float, Field(ge=0.25, le=4.0)]


class EspeakTtsSpec(_Spec):
    """Speech from the espeak-ng program: offline, robotic, quick (tests and demos)."""

    kind: Literal["espeak"]
    voice: Voice = Field(default="en", description="An espeak-ng voice (espeak-ng --voices).")
    speed: Speed = Field(default=1.0, description="1.0 is 175 words per minute.")
    timeout_s: PositiveSeconds = 30.0


class OpenAISpeechTtsSpec(_Spec):
    """Speech from an OpenAI-compatible ``/audio/speech`` endpoint (tts-1, gpt-4o-mini-tts)."""

    kind: Literal["openai-speech"]
    model: str = Field(min_length=1)
    voice: Voice = "alloy"
    speed: Speed | None = None
    base_url: BaseUrl | None = None
    api_key_env: EnvVar | None = None
    timeout_s: PositiveSeconds = 60.0


TtsSpec = Annotated[EspeakTtsSpec | OpenAISpeechTtsSpec, Field(discriminator="kind")]
"""A pipeline's text-to-speech stage, told apart by ``kind``."""


class PipelineSpec(_Priced, _AudioLimit):
    """ASR then a text LLM (then, with ``output: audio``, speech): the "ASR pipeline" baseline."""

    name: Name
    kind: Literal["pipeline"]
    asr: AsrSpec
    llm: LlmSpec
    tts: TtsSpec | None = None
    output: Output = "text"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    max_concurrency: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _tts_for_audio(self) -> Self:
        if self.output == "audio" and self.tts is None:
            raise ValueError(
                "output: audio needs a tts stage, e.g. tts: {kind: espeak, voice: en} or "
                "tts: {kind: openai-speech, model: gpt-4o-mini-tts, voice: alloy}"
            )
        if self.output == "text" and self.tts is not None:
            raise ValueError(
                "a tts stage speaks only with output: audio; add output: audio or remove tts"
            )
        return self


LOCAL_MAX_AUDIO_S = 30.0
"""The default ``max_audio_s`` of a ``local`` model: Qwen2-Audio, DiVA and Typhoon-Audio all
hear through a Whisper encoder, whose feature extractor reads one 30 s window."""

LocalInterface = Literal["qwen2-audio", "diva", "typhoon", "auto"]
"""How lamarena drives a local checkpoint (see :mod:`lamarena.models.local_interfaces`)."""


class LocalSpec(_Generation, _AudioLimit):
    """An in-process Hugging Face audio LM: a hub id or a local path.

    ``interface`` says how to drive it: ``qwen2-audio`` (the default; transformers' own
    Qwen2-Audio classes), ``diva`` (DiVA's remote code, streamed), ``typhoon`` (Typhoon-Audio's
    remote code, one reply at once) or ``auto`` (read from the checkpoint's ``config.json``,
    which must then be on disk; see :func:`lamarena.models.local_interfaces.detect_interface`).
    ``diva`` and ``typhoon`` run code shipped with the checkpoint, so they need
    ``trust_remote_code: true``.
    """

    name: Name
    kind: Literal["local"]
    model: str = Field(min_length=1)
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    output: Output = "text"
    device: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] | None = None
    max_concurrency: int | None = Field(default=1, gt=0)
    allow_download: bool = Field(
        default=False,
        description="Fetch a hub id that is not in the local cache; off: weights must be local.",
    )
    interface: LocalInterface = Field(
        default="qwen2-audio", description="qwen2-audio | diva | typhoon | auto (config.json)."
    )
    trust_remote_code: bool = Field(
        default=False,
        description="Run the Python code shipped with the checkpoint (DiVA, Typhoon-Audio).",
    )

    @model_validator(mode="after")
    def _text_only(self) -> Self:
        if self.output == "audio":
            raise _cannot_speak("local", "in-process audio models here answer only in text")
        return self

    @model_validator(mode="after")
    def _remote_code_trusted(self) -> Self:
        if self.interface in ("diva", "typhoon") and not self.trust_remote_code:
            raise ValueError(
                f"interface: {self.interface} runs the Python code shipped with the checkpoint "
                f"({self.model}); read it, then add trust_remote_code: true to allow it"
            )
        return self

    @property
    def audio_limit_s(self) -> float:
        """``max_audio_s``, or :data:`LOCAL_MAX_AUDIO_S` when the entry gives none."""
        return LOCAL_MAX_AUDIO_S if self.max_audio_s is None else self.max_audio_s


ModelSpec = Annotated[
    OpenAISpec | GeminiSpec | PipelineSpec | LocalSpec, Field(discriminator="kind")
]
"""One entry of models.yaml, told apart by ``kind``."""


class ModelsConfig(_Spec):
    """The whole models.yaml file."""

    models: list[ModelSpec] = Field(min_length=1)
    transcriber: AsrSpec | None = Field(
        default=None,
        description="The arena's speech recogniser for query transcripts and spoken reasons; "
        "when absent the arena reuses a pipeline model's ASR, if it has one.",
    )

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for spec in models:
            if spec.name in seen:
                raise ValueError(f"model name '{spec.name}' is used twice; names must be unique")
            seen.add(spec.name)
        return models

    def get(self, name: str) -> OpenAISpec | GeminiSpec | PipelineSpec | LocalSpec:
        """The spec called ``name``.

        Raises:
            ConfigError: no model has that name (the message lists those that exist).
        """
        for spec in self.models:
            if spec.name == name:
                return spec
        names = ", ".join(spec.name for spec in self.models)
        raise ConfigError(f"no model named '{name}'; models: {names}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key repeated in one mapping (a silent override otherwise)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise ConfigError(
                f"line {key_node.start_mark.line + 1}: key '{key}' appears twice in one entry"
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _entry_label(raw: Any, index: int) -> str:
    name = None
    if isinstance(raw, dict) and isinstance(raw.get("models"), list):
        entries = raw["models"]
        if index < len(entries) and isinstance(entries[index], dict):
            name = entries[index].get("name")
    return f"model '{name}' (entry {index + 1})" if name else f"entry {index + 1}"


_TTS_KINDS = ("espeak", "openai-speech")


def _describe(error: Any, raw: Any) -> str:
    loc = list(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if loc == ["models"]:
        return "the 'models:' list is empty" if error["type"] == "too_short" else message
    where = "models.yaml"
    if len(loc) >= 2 and loc[0] == "models" and isinstance(loc[1], int):
        where = _entry_label(raw, loc[1])
        loc = loc[2:]
        if loc and loc[0] in {"openai", "gemini", "pipeline", "local"}:
            loc = loc[1:]  # the discriminator's tag, not a key the user wrote
        if len(loc) >= 2 and loc[0] == "tts" and loc[1] in _TTS_KINDS:
            loc = [loc[0], *loc[2:]]  # the tts stage's tag, likewise
    key = ".".join(str(part) for part in loc)
    tts = loc[:1] == ["tts"]
    kinds = "espeak, openai-speech" if tts else "openai, gemini, pipeline, local"
    if error["type"] == "missing":
        message = "is missing"
    elif error["type"] == "extra_forbidden":
        message = "unknown key (check its spelling)"
    elif error["type"] == "union_tag_invalid":
        message = f"kind must be one of {kinds}"
        key = f"{key}.kind" if key else "kind"
    elif error["type"] == "union_tag_not_found":
        message = f"is missing: {'a tts stage' if tts else 'every model'} needs a kind ({kinds})"
        key = f"{key}.kind" if key else "kind"
    return f"{where}: key '{key}': {message}" if key else f"{where}: {message}"


def parse_models_config(text: str, *, source: str = "models.yaml") -> ModelsConfig:
    """Validate the text of a models.yaml file.

    Raises:
        ConfigError: bad YAML, a repeated key, an unknown key, a wrong value or a duplicate name;
            the message names the file, the entry and the key.
    """
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.message}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from exc
    if not isinstance(raw, dict) or "models" not in raw:
        raise ConfigError(f"{source}: expected a mapping with a 'models:' list at the top")
    try:
        return ModelsConfig.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key also makes the right key "missing": name the misspelling first.
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{source}: {_describe(first, raw)}{more}") from exc


def load_models_config(path: str | Path) -> ModelsConfig:
    """Read and validate a models.yaml file (see :func:`parse_models_config`).

    Raises:
        ConfigError: the file cannot be read or is not a valid models.yaml.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the models file ({exc.strerror})") from exc
    return parse_models_config(text, source=str(path))
