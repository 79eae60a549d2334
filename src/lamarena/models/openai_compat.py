"""OpenAI chat completions with an audio part, and OpenAI-style transcription.

:class:`OpenAIChatModel` talks to any server that speaks the chat completions API with
``input_audio`` content parts: GPT-4o audio, vLLM serving Qwen2-Audio, and the like. It also
answers plain text (:meth:`OpenAIChatModel.stream_text`), so it can be the LLM half of an ASR
pipeline. :class:`OpenAITranscriber` calls ``/audio/transcriptions`` (whisper-1 or a compatible
server). Their client, retries and error messages are :class:`~.openai_service.OpenAIService`'s;
the messages sent and the chunks read are :mod:`.openai_messages`.

Token usage: the chat adapter asks for ``stream_options={"include_usage": true}``, and the
server's last chunk (empty ``choices``, a ``usage`` object) is reported on the request's
:class:`~lamarena.models.base.ReplyStream` as prompt and completion tokens. Servers that refuse
``stream_options`` get none with ``report_usage=False``; a server that ignores it sends no usage,
and the reply's usage stays None.

The request goes through the SDK (``AsyncOpenAI.post``), which keeps its headers, SSE parsing,
error events and errors; the chunks are read as plain JSON (see :mod:`.openai_messages`).

Spoken replies (``output="audio"``, :meth:`OpenAIChatModel.stream_speech`): the request asks for
``modalities: ["text", "audio"]`` and ``audio: {"voice": ..., "format": "pcm16"}`` with
``stream: true``; the transcript and the base64 PCM16 of each chunk become
:class:`~lamarena.models.speech.SpeechText` and :class:`~lamarena.models.speech.SpeechAudio`.
Of the formats the SDK lists (wav, aac, mp3, flac, opus, pcm16) only pcm16 streams, and lamarena
always streams, so any other is a :class:`~lamarena.errors.ConfigError` when the adapter is made.

The audio part's shape (``audio_part``) is one of :data:`~.openai_messages.AudioPart`. The reply
length limit goes as ``max_completion_tokens`` to OpenAI's own API, where ``max_tokens`` is
deprecated (the installed SDK's ``CompletionCreateParamsBase``), and as ``max_tokens`` to any
other server: every OpenAI-compatible server knows that one (vLLM reads both, preferring
``max_completion_tokens``, ``vllm/entrypoints/openai/protocol.py``; so do the study's inference
servers, ``entity/entity.py``). ``token_limit_field`` overrides the choice.

A reply is complete only once a chunk carries a ``finish_reason`` (``stop``, or ``length`` for
one cut by ``max_tokens`` after some text); a stream that ends without one, or whose connection
fails after the server accepted the request, is a :class:`~lamarena.errors.ModelError` saying
the reply broke off (see :func:`~lamarena.models.retry.broke_off`), never a complete reply and
never retried. ``content_filter`` (the service withheld the reply), and ``length`` before any
text, are errors naming the reason.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import httpx2
import openai
from openai import AsyncStream, omit
from openai.types.chat import ChatCompletionAudioParam, ChatCompletionMessageParam
from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming

from lamarena.audio import AudioClip, to_wav_bytes
from lamarena.errors import ConfigError, ModelError
from lamarena.models.base import EarlierTurn, ModelTimeouts, ReplyStream, TextTurn, UsageSink
from lamarena.models.openai_messages import (
    AudioPart,
    SpeechParser,
    choices,
    delta_texts,
    mapping,
    reported_usage,
    spoken_messages,
    text_length,
    text_messages,
)
from lamarena.models.openai_service import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_CONNECTIONS,
    OpenAIService,
)
from lamarena.models.retry import broke_off
from lamarena.models.speech import SpeechStream

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_CONNECTIONS",
    "OpenAIChatModel",
    "OpenAITranscriber",
    "default_token_limit_field",
]

logger = logging.getLogger(__name__)

_D = TypeVar("_D")

Modality = Literal["text", "audio"]
AudioOutputFormat = Literal["wav", "aac", "mp3", "flac", "opus", "pcm16"]
TokenLimitField = Literal["max_completion_tokens", "max_tokens"]

_OPENAI_HOST = "api.openai.com"


def default_token_limit_field(base_url: str) -> TokenLimitField:
    """``max_completion_tokens`` for OpenAI's own API, ``max_tokens`` for any other server."""
    host = (urlsplit(base_url).hostname or "").lower()
    return "max_completion_tokens" if host == _OPENAI_HOST else "max_tokens"


class OpenAIChatModel(OpenAIService):
    """A Large Audio Model behind the chat completions API (an AudioModel and a TextModel).

    The spoken query goes as a user message of two parts, the prompt as text and the clip as
    base64 WAV (16 kHz mono). In a conversation each earlier turn comes first, as the same kind
    of user message followed by an assistant message with this model's own reply. With
    ``modalities=["text", "audio"]`` (GPT-4o audio models, which only answer that way) the
    reply's text is the streamed ``delta.audio.transcript``.
    """

    def __init__(
        self,
        name: str,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        modalities: Sequence[Modality] | None = None,
        output: Literal["text", "audio"] = "text",
        audio_voice: str = "alloy",
        audio_format: AudioOutputFormat = "pcm16",
        audio_part: AudioPart = "input_audio",
        temperature: float | None = None,
        max_tokens: int | None = None,
        token_limit_field: TokenLimitField | None = None,
        report_usage: bool = True,
        timeouts: ModelTimeouts | None = None,
        max_retries: int = 2,
        retry_backoff_s: float = 0.5,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        """Configure the adapter; no request is made here.

        Args:
            name: the model's name in models.yaml.
            model: the server's model id (``gpt-audio-1.5``, a vLLM model path, ...).
            base_url: the API root, ending in ``/v1``; OpenAI's when None.
            api_key: the key itself (the registry reads it from ``api_key_env``); None for
                servers without auth.
            api_key_env: the variable's name, only to say which one to check in messages.
            modalities: output modalities; None or ``["text"]`` for text, ``["text", "audio"]``
                for GPT-4o audio models (the text then comes from the spoken reply's
                transcript). With ``output="audio"`` None means ``["text", "audio"]``.
            output: ``"audio"`` to answer with speech (:meth:`stream_speech`, and ``speaks``
                is true); ``"text"`` (the default) answers in text only.
            audio_voice: the voice of a spoken reply (with an ``audio`` modality).
            audio_format: the format of a spoken reply; streaming needs ``pcm16``, the only
                one accepted with an ``audio`` modality.
            audio_part: the shape of the audio part: ``input_audio`` (OpenAI, vLLM),
                ``audio_url`` (vLLM) or ``talk-arena`` (the study's inference servers; only the
                current query is sent, without earlier turns).
            temperature: sampling temperature; the server's default when None.
            max_tokens: longest reply; the server's default when None.
            token_limit_field: the request field for ``max_tokens``; None chooses
                ``max_completion_tokens`` for OpenAI's API and ``max_tokens`` elsewhere.
            report_usage: ask for token usage (``stream_options.include_usage``); turn it off
                for servers that reject ``stream_options`` (replies then have no usage).
            timeouts: ``connect_s`` and ``first_token_s`` become the HTTP connect and read
                limits (the read limit bounds every silence, not just the first).
            max_retries: how often a 429 or 5xx is retried before the first delta.
            retry_backoff_s: the first retry's delay; each next one doubles (at most 8 s).
            max_connections: size of the connection pool (requests beyond it wait).
            http_client: an ``httpx2.AsyncClient`` to use instead of one of its own; its owner
                closes it, and its own timeouts and limits apply.

        Raises:
            ConfigError: an unknown modality or audio part, ``output="audio"`` without the
                audio modality, an audio modality with a format other than ``pcm16``, or a
                negative ``max_retries``.
        """
        super().__init__(
            name,
            model,
            base_url=base_url,
            api_key=api_key,
            api_key_env=api_key_env,
            timeouts=timeouts,
            max_retries=max_retries,
            retry_backoff_s=retry_backoff_s,
            max_connections=max_connections,
            http_client=http_client,
        )
        default: list[Modality] = ["text", "audio"] if output == "audio" else ["text"]
        chosen: list[Modality] = list(modalities) if modalities else default
        unknown = sorted(set(chosen) - {"text", "audio"})
        if unknown:
            raise ConfigError(
                f"model '{name}': unknown modalities {unknown}; use ['text'] or ['text', 'audio']"
            )
        if output == "audio" and "audio" not in chosen:
            raise ConfigError(
                f"model '{name}': a spoken reply streams as modalities ['text', 'audio'], "
                f"not {chosen}"
            )
        if "audio" in chosen and audio_format != "pcm16":
            raise ConfigError(
                f"model '{name}': audio_format {audio_format} cannot stream: lamarena streams "
                "every reply, and a spoken reply streams only as pcm16; use audio_format: pcm16"
            )
        if audio_part not in ("input_audio", "audio_url", "talk-arena"):
            raise ConfigError(
                f"model '{name}': unknown audio_part {audio_part!r}; use input_audio, audio_url "
                "or talk-arena"
            )
        self.speaks = output == "audio"
        self.modalities: list[Modality] = chosen
        self._audio_out: ChatCompletionAudioParam | None = (
            {"voice": audio_voice, "format": audio_format} if "audio" in chosen else None
        )
        self.audio_part: AudioPart = audio_part
        self.token_limit_field: TokenLimitField = token_limit_field or default_token_limit_field(
            self.base_url
        )
        self._temperature = temperature
        self._max_tokens = max_tokens
        self.report_usage = report_usage

    def stream(
        self, clip: AudioClip, prompt: str, history: Sequence[EarlierTurn] = ()
    ) -> ReplyStream:
        """Yield the reply's text deltas to a spoken query, in order.

        Args:
            clip: the query, mono 16 kHz (sent as WAV).
            prompt: the text part sent before the audio (system prompt or task instruction),
                in every user message.
            history: earlier turns, oldest first: each becomes a user message (prompt and
                audio, as the query's) and an assistant message with this model's own reply.

        Returns:
            The deltas; its ``usage`` holds the server's token counts once the stream ends.

        Raises:
            ModelError: the server refused the request or the reply broke off;
                ModelTimeout and ModelUnavailable where they apply (while iterating).
        """
        return ReplyStream(
            lambda report: self._stream(
                lambda: spoken_messages(clip, prompt, history, self.audio_part), report, delta_texts
            )
        )

    def stream_speech(
        self, clip: AudioClip, prompt: str, history: Sequence[EarlierTurn] = ()
    ) -> SpeechStream:
        """Yield the spoken reply to a spoken query: its transcript and its audio, in order.

        The request is :meth:`stream`'s (``modalities`` with audio, ``audio.format`` pcm16);
        text parts come from ``delta.audio.transcript`` (or ``content``), audio parts are the
        decoded ``delta.audio.data``: PCM16 mono at 24 kHz.

        Returns:
            The parts; its ``usage`` holds the server's token counts once the stream ends.

        Raises:
            ConfigError: this model does not speak (``output`` is not ``"audio"``).
            ModelError: as for :meth:`stream`, or audio that is not base64 (while iterating).
        """
        if not self.speaks:
            raise ConfigError(
                f"model '{self.name}' answers in text: set output: audio in models.yaml for "
                "spoken replies"
            )

        return SpeechStream(
            lambda report: self._stream(
                lambda: spoken_messages(clip, prompt, history, self.audio_part),
                report,
                SpeechParser(self.name),
            )
        )

    def stream_text(self, text: str, prompt: str, history: Sequence[TextTurn] = ()) -> ReplyStream:
        """Yield the reply's deltas to the user message ``text`` under system prompt ``prompt``.

        ``history`` holds the earlier (user message, reply) pairs, oldest first; each becomes a
        user message and an assistant message between the system prompt and ``text``.

        Returns:
            The deltas; its ``usage`` holds the server's token counts once the stream ends.

        Raises:
            ModelError: as for :meth:`stream`.
        """
        return ReplyStream(
            lambda report: self._stream(
                lambda: text_messages(text, prompt, history), report, delta_texts
            )
        )

    def _request_body(
        self, messages: list[ChatCompletionMessageParam]
    ) -> CompletionCreateParamsStreaming:
        body: CompletionCreateParamsStreaming = {
            "model": self.model,
            "messages": messages,
            "stream": True,
        }
        if self.report_usage:
            body["stream_options"] = {"include_usage": True}
        if self._audio_out is not None:
            body["modalities"] = self.modalities
            body["audio"] = self._audio_out
        if self._temperature is not None:
            body["temperature"] = self._temperature
        if self._max_tokens is not None:
            body[self.token_limit_field] = self._max_tokens
        return body

    async def _open(self, messages: list[ChatCompletionMessageParam]) -> AsyncStream[object]:
        """Send the request (retrying 429 and 5xx); the stream of chunks as the server sent them.

        ``chat.completions.create`` would send the same body; ``post`` skips its typed walk of
        the request (the audio part included) and a pydantic model per chunk.
        """
        body = self._request_body(messages)
        try:
            return await self._with_retries(
                lambda: self._client.post(
                    "/chat/completions",
                    body=body,
                    cast_to=object,
                    stream=True,
                    stream_cls=AsyncStream[object],
                )
            )
        except ModelError as exc:
            if not self.report_usage or "stream_options" not in exc.message:
                raise
            detail = exc.message.removeprefix(f"model '{self.name}': ")
            raise type(exc)(
                self.name,
                f"{detail}; if this server does not support stream_options, set "
                "report_usage: false for this model in models.yaml",
            ) from None

    async def _stream(
        self,
        messages: Callable[[], list[ChatCompletionMessageParam]],
        report: UsageSink,
        parse: Callable[[Mapping[str, Any]], Iterator[_D]],
    ) -> AsyncGenerator[_D, None]:
        stream = await self._open(messages())
        received = 0
        finished: str | None = None
        try:
            async for item in stream:
                chunk = mapping(item)
                usage = reported_usage(chunk)  # the last chunk (or every one, on some servers)
                if usage is not None:
                    report(usage)
                finished = finished or _finish_reason(chunk)
                for item in parse(chunk):
                    received += text_length(item)
                    yield item
        except openai.APIConnectionError as exc:  # the request was accepted: not "cannot reach"
            if not finished:
                if isinstance(exc, openai.APITimeoutError):
                    raise self._translate(exc) from None
                raise broke_off(self.name, self.base_url, received, exc.__cause__ or exc) from None
            # Only the usage chunk or [DONE] was lost; the reply is whole (its reason is checked
            # below, outside this handler, so no SDK error is chained to a ModelError).
            logger.debug("model %s: connection lost after the reply finished", self.name)
        except openai.OpenAIError as exc:
            raise self._translate(exc) from None  # the SDK error holds the key
        finally:
            await stream.close()
        if not finished:  # the body ended cleanly but without a finish_reason
            raise broke_off(self.name, self.base_url, received)
        self._check_finish(finished, received)

    def _check_finish(self, reason: str, received: int) -> None:
        """Refuse a reply the service withheld, or one cut by the token limit before any text."""
        if reason == "content_filter":
            raise ModelError(
                self.name,
                "the service's content filter withheld the reply (finish_reason content_filter)",
            )
        if reason == "length" and not received:
            raise ModelError(
                self.name,
                f"the reply reached the token limit before any text (finish_reason length): "
                f"raise max_tokens (now {self._max_tokens}) in models.yaml",
            )


def _finish_reason(chunk: Mapping[str, Any]) -> str | None:
    """The chunk's finish reason ("stop", "length", ...), if a choice carries one."""
    for choice in choices(chunk):
        reason = choice.get("finish_reason")
        if reason:
            return str(reason)
    return None


class OpenAITranscriber(OpenAIService):
    """Speech to text through ``/audio/transcriptions`` (a Transcriber)."""

    def __init__(
        self,
        name: str,
        model: str = "whisper-1",
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        language: str | None = None,
        timeouts: ModelTimeouts | None = None,
        max_retries: int = 2,
        retry_backoff_s: float = 0.5,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        """Configure the transcriber; no request is made here.

        Args:
            name: the name used in messages (the registry uses ``<pipeline>/asr``).
            model: the server's ASR model id.
            base_url: the API root, ending in ``/v1``; OpenAI's when None.
            api_key: the key itself; None for servers without auth.
            api_key_env: the variable's name, only to say which one to check in messages.
            language: an ISO-639-1 hint (``en``); detected by the server when None.
            timeouts: ``connect_s`` and ``first_token_s`` become the connect and read limits.
            max_retries: how often a 429 or 5xx is retried.
            retry_backoff_s: the first retry's delay; each next one doubles (at most 8 s).
            max_connections: size of the connection pool.
            http_client: an ``httpx2.AsyncClient`` to use (its owner closes it).

        Raises:
            ConfigError: a negative ``max_retries``.
        """
        super().__init__(
            name,
            model,
            base_url=base_url,
            api_key=api_key,
            api_key_env=api_key_env,
            timeouts=timeouts,
            max_retries=max_retries,
            retry_backoff_s=retry_backoff_s,
            max_connections=max_connections,
            http_client=http_client,
        )
        self.language = language

    async def transcribe(self, clip: AudioClip) -> str:
        """The transcript of ``clip`` (sent as 16 kHz WAV), stripped of surrounding space.

        Raises:
            ModelError: the server refused or failed; ModelTimeout and ModelUnavailable where
                they apply.
        """
        wav = to_wav_bytes(clip)
        result = await self._with_retries(
            lambda: self._client.audio.transcriptions.create(
                model=self.model,
                file=("query.wav", wav, "audio/wav"),
                language=self.language if self.language is not None else omit,
            )
        )
        return result.text.strip()
