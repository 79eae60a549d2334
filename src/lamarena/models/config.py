"""models.yaml: the list of contestants, validated into typed specs.

A typo fails loudly: YAML duplicate keys are refused, unknown keys are refused (``extra="forbid"``),
and every message names the file, the entry (its name and position) and the key. Secrets are
never in the file, only the *name* of the environment variable that holds them (``api_key_env``).

Remote models may give ``price_per_million_input_tokens`` and ``price_per_million_output_tokens``
(US dollars, both or neither; a pipeline's prices its LLM's tokens): static runs then record the
cost of every call whose tokens the service reported. ``report_usage: false`` stops an
``openai`` model (or a pipeline's ``openai`` LLM) asking for token counts, for servers that
reject ``stream_options``.

.. code-block:: yaml

    models:
      - name: gpt4o
        kind: openai
        model: gpt-4o-audio-preview
        api_key_env: OPENAI_API_KEY
        price_per_million_input_tokens: 2.5
        price_per_million_output_tokens: 10
      - name: whisper-llama
        kind: pipeline
        asr: {kind: openai-transcription, model: whisper-1}
        llm: {kind: openai, model: meta-llama/Meta-Llama-3-8B-Instruct, base_url: http://127.0.0.1:8001/v1}
      - name: qwen2-audio-local
        kind: local
        model: Qwen/Qwen2-Audio-7B-Instruct
      - name: gpt-audio-spoken             # answers with speech (and its transcript)
        kind: openai
        model: gpt-audio-mini
        output: audio                      # text (default) | audio
        voice: alloy                       # default alloy; audio_format: pcm16 (the only one)
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
    "AsrSpec",
    "EspeakTtsSpec",
    "GeminiSpec",
    "LlmSpec",
    "LocalSpec",
    "ModelSpec",
    "ModelsConfig",
    "OpenAISpec",
    "OpenAISpeechTtsSpec",
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
    """What a remote model's tokens cost, in US dollars per million (both or neither)."""

    price_per_million_input_tokens: Price | None = None
    price_per_million_output_tokens: Price | None = None

    @model_validator(mode="after")
    def _both_prices(self) -> Self:
        given = (self.price_per_million_input_tokens, self.price_per_million_output_tokens)
        if (given[0] is None) != (given[1] is None):
            raise ValueError(
                "give both price_per_million_input_tokens and price_per_million_output_tokens "
                "(0 for a side that is free), or neither"
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
        )


class OpenAISpec(_Remote, _Generation, _Priced):
    """Chat completions with an audio part (GPT-4o audio, vLLM, any compatible server)."""

    name: Name
    kind: Literal["openai"]
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    modalities: list[Literal["text", "audio"]] | None = None
    output: Output = "text"
    voice: Voice = Field(default="alloy", description="The voice of a spoken reply.")
    audio_format: Literal["pcm16"] = Field(
        default="pcm16", description="The format of a spoken reply (streaming needs pcm16)."
    )
    max_concurrency: int | None = Field(default=None, gt=0)
    report_usage: bool = Field(default=True, description=_REPORT_USAGE)

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
        return self


class GeminiSpec(_Remote, _Generation, _Priced):
    """Google Gemini through google-genai, audio inline."""

    name: Name
    kind: Literal["gemini"]
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    output: Output = "text"
    max_concurrency: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _text_only(self) -> Self:
        if self.output == "audio":
            raise _cannot_speak(
                "gemini", "Gemini speaks only through its Live API, which lamarena does not use"
            )
        return self


class AsrSpec(_Spec):
    """The speech recogniser of a pipeline."""

    kind: Literal["openai-transcription", "local-whisper"]
    model: str = Field(min_length=1)
    base_url: BaseUrl | None = None
    api_key_env: EnvVar | None = None
    timeout_s: PositiveSeconds = 60.0
    allow_download: bool = False


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


class PipelineSpec(_Priced):
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


class LocalSpec(_Generation):
    """An in-process Hugging Face audio LM (Qwen2-Audio family): a hub id or a local path."""

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

    @model_validator(mode="after")
    def _text_only(self) -> Self:
        if self.output == "audio":
            raise _cannot_speak("local", "in-process audio models here answer only in text")
        return self


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
