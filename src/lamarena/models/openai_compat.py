"""OpenAI chat completions with an audio part, and OpenAI-style transcription.

:class:`OpenAIChatModel` talks to any server that speaks the chat completions API with
``input_audio`` content parts: GPT-4o audio, vLLM serving Qwen2-Audio, and the like. It also
answers plain text (:meth:`OpenAIChatModel.stream_text`), so it can be the LLM half of an ASR
pipeline. :class:`OpenAITranscriber` calls ``/audio/transcriptions`` (whisper-1 or a compatible
server).

Token usage: the chat adapter asks for ``stream_options={"include_usage": true}``, and the
server's last chunk (empty ``choices``, a ``usage`` object) is reported on the request's
:class:`~lamarena.models.base.ReplyStream` as prompt and completion tokens. Servers that refuse
``stream_options`` get none with ``report_usage=False``; a server that ignores it sends no usage,
and the reply's usage stays None.

Each instance owns one ``httpx2.AsyncClient`` (the HTTP client of openai 3.x) with a connection
pool large enough for the arena's and the benchmark runner's concurrency, reused by every
request; nothing here serialises requests. Retries are ours, not the SDK's (whose retries also
repeat timeouts, so a stalled server would hold a request three times its read timeout): a 429
or 5xx before the first delta is retried with jittered exponential backoff, and anything else
fails at once as a :class:`~lamarena.errors.ModelError` subclass with a message a user can act
on. The API key is passed in by the registry; it is never logged and never part of a repr.

Chunks are read as the JSON the server sent (a mapping each; the fields this adapter reads are
checked where they are read), not as the SDK's pydantic models: building a model for every chunk
and walking the typed request were most of a request's CPU on a busy arena (see
``benchmarks/arena_load.py``). The request still goes through the SDK (``AsyncOpenAI.post``),
which keeps its headers, SSE parsing, error events and errors.

Spoken replies (``output="audio"``, :meth:`OpenAIChatModel.stream_speech`): the request asks for
``modalities: ["text", "audio"]`` and ``audio: {"voice": ..., "format": "pcm16"}`` with
``stream: true``, and each chunk's ``choices[0].delta.audio`` may carry ``id``, ``data`` (base64
PCM16, 24 kHz mono little-endian), ``transcript`` (the next text of the reply) and, in the last
audio update, only ``expires_at``. Field names as in the installed SDK's
``openai.types.chat.chat_completion_chunk.ChoiceDeltaAudio`` (openai 3.63: "Audio chunks may
carry an ID, base64 data, or transcript text; the final audio update contains only its expiry
timestamp"), which matches openai/openai-openapi issue #577 and openai-python issue #2507; 24 kHz
is ``pcm16``'s rate in OpenAI's audio guides.

A reply is complete only once a chunk carries a ``finish_reason`` (``stop``, or ``length`` for
one cut by ``max_tokens``); a stream that ends without one, or whose connection fails after the
server accepted the request, is a :class:`~lamarena.errors.ModelError` saying the reply broke
off (see :func:`~lamarena.models.retry.broke_off`), never a complete reply and never retried.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar

import httpx2
import openai
from openai import AsyncOpenAI, AsyncStream, omit
from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionAudioParam,
    ChatCompletionContentPartParam,
    ChatCompletionMessageParam,
    ChatCompletionUserMessageParam,
)
from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming

from lamarena.audio import AudioClip, to_wav_bytes
from lamarena.errors import ConfigError, ModelError, ModelTimeout, ModelUnavailable
from lamarena.models.base import (
    EarlierTurn,
    ModelTimeouts,
    ReplyStream,
    TextTurn,
    Usage,
    UsageSink,
)
from lamarena.models.retry import (
    backoff_s,
    broke_off,
    is_transient_status,
    redact,
    status_error,
)
from lamarena.models.speech import (
    SPEECH_SAMPLE_RATE_HZ,
    SpeechAudio,
    SpeechDelta,
    SpeechStream,
    SpeechText,
)

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MAX_CONNECTIONS", "OpenAIChatModel", "OpenAITranscriber"]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""Used when a spec gives no ``base_url``."""

DEFAULT_MAX_CONNECTIONS = 128
"""Connection pool size of each adapter: above the concurrency the arena and runner ask for."""

_NO_KEY = "no-key"
"""Sent when no key is configured (servers without auth ignore it); the SDK would otherwise
read ``OPENAI_API_KEY`` itself, and lamarena reads the environment only through its settings."""

_T = TypeVar("_T")
_D = TypeVar("_D")

Modality = Literal["text", "audio"]
AudioOutputFormat = Literal["wav", "aac", "mp3", "flac", "opus", "pcm16"]


def _http_timeout(timeouts: ModelTimeouts) -> httpx2.Timeout:
    """Connect limit, and a read limit (the longest silence between bytes) of ``first_token_s``."""
    return httpx2.Timeout(
        connect=timeouts.connect_s,
        read=timeouts.first_token_s,
        write=timeouts.first_token_s,
        pool=timeouts.first_token_s,
    )


def _retry_after_s(headers: httpx2.Headers) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


class _OpenAIService:
    """What both adapters share: the client, retries and the error mapping."""

    name: str

    def __init__(
        self,
        name: str,
        model: str,
        *,
        base_url: str | None,
        api_key: str | None,
        api_key_env: str | None,
        timeouts: ModelTimeouts | None,
        max_retries: int,
        retry_backoff_s: float,
        max_connections: int,
        http_client: httpx2.AsyncClient | None,
    ) -> None:
        if max_retries < 0:
            raise ConfigError(f"model '{name}': max_retries must be 0 or more, not {max_retries}")
        self.name = name
        self.model = model
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.timeouts = timeouts or ModelTimeouts()
        self.max_retries = max_retries
        self._retry_backoff_s = retry_backoff_s
        self._api_key = api_key or None
        self._api_key_env = api_key_env
        self._owns_http = http_client is None
        timeout = _http_timeout(self.timeouts)
        self._http = http_client or httpx2.AsyncClient(
            timeout=timeout,
            limits=httpx2.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )
        self._client = AsyncOpenAI(
            api_key=self._api_key or _NO_KEY,
            base_url=self.base_url,
            timeout=timeout,
            max_retries=0,
            http_client=self._http,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, model={self.model!r}, "
            f"base_url={self.base_url!r})"
        )

    async def aclose(self) -> None:
        """Close the HTTP client (unless it was passed in, in which case its owner closes it)."""
        if self._owns_http:
            await self._client.close()

    async def _with_retries(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``call``; retry it on 429 and 5xx; translate every SDK error."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call()
            except openai.APIStatusError as exc:
                # A 429 for an exhausted quota is not transient: waiting will not refill it.
                retryable = (
                    is_transient_status(exc.status_code) and exc.code != "insufficient_quota"
                )
                if retryable and attempt <= self.max_retries:
                    delay = backoff_s(
                        attempt, self._retry_backoff_s, _retry_after_s(exc.response.headers)
                    )
                    logger.info(
                        "model %s: HTTP %d from %s; retry %d of %d in %.2f s",
                        self.name,
                        exc.status_code,
                        self.base_url,
                        attempt,
                        self.max_retries,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                raise self._translate(exc, attempt) from None  # the SDK error holds the key
            except openai.OpenAIError as exc:
                raise self._translate(exc, attempt) from None  # the SDK error holds the key

    def _redact(self, text: str) -> str:
        return redact(text, self._api_key)

    def _server_message(self, exc: openai.APIError) -> str:
        body = exc.body
        message: object = None
        if isinstance(body, dict):
            message = body.get("message") or body.get("detail")
        elif isinstance(body, str) and body.strip():
            message = body.strip()
        text = str(message) if message else exc.message
        return self._redact(" ".join(text.split())[:500])

    def _key_hint(self) -> str:
        if self._api_key_env:
            return f"check {self._api_key_env}"
        return "check the variable named by api_key_env in models.yaml, e.g. OPENAI_API_KEY"

    def _translate(self, exc: openai.OpenAIError, attempts: int = 1) -> ModelError:
        """The ModelError subclass, with an actionable message, for an SDK error."""
        if isinstance(exc, openai.APITimeoutError):
            if isinstance(exc.__cause__, httpx2.ConnectTimeout):
                return ModelTimeout(
                    self.name,
                    f"could not connect to {self.base_url} within {self.timeouts.connect_s:g} s",
                )
            return ModelTimeout(
                self.name,
                f"{self.base_url} sent nothing for {self.timeouts.first_token_s:g} s "
                "(read timeout)",
            )
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__
            reason = f" ({type(cause).__name__})" if cause is not None else ""
            return ModelUnavailable(
                self.name,
                f"cannot reach {self.base_url}{reason}: check base_url in models.yaml and that "
                "the server is running",
            )
        if isinstance(exc, openai.APIStatusError):
            return self._translate_status(exc, attempts)
        if isinstance(exc, openai.APIError):
            return ModelError(self.name, f"the reply failed: {self._server_message(exc)}")
        return ModelError(self.name, self._redact(str(exc)))

    def _translate_status(self, exc: openai.APIStatusError, attempts: int) -> ModelError:
        status = exc.status_code
        detail = self._server_message(exc)
        if status == 401:
            if self._api_key is None:
                return ModelUnavailable(
                    self.name,
                    f"{self.base_url} requires an API key and none is configured: set "
                    "api_key_env in models.yaml to the name of the variable that holds it",
                )
            return ModelUnavailable(
                self.name, f"the API key was refused by {self.base_url} ({self._key_hint()})"
            )
        return status_error(
            name=self.name,
            model=self.model,
            base_url=self.base_url,
            status=status,
            detail=detail,
            attempts=attempts,
            key_hint=self._key_hint(),
        )


def _audio_message(clip: AudioClip, prompt: str) -> ChatCompletionUserMessageParam:
    """One spoken query as a user message: the prompt as a text part (if any), then the clip.

    Shapes from the installed SDK: ``ChatCompletionUserMessageParam`` with
    ``ChatCompletionContentPartTextParam`` and ``ChatCompletionContentPartInputAudioParam``
    (``input_audio: {data: base64, format: "wav"}``).
    """
    audio = base64.b64encode(to_wav_bytes(clip)).decode("ascii")
    parts: list[ChatCompletionContentPartParam] = []
    if prompt:
        parts.append({"type": "text", "text": prompt})
    parts.append({"type": "input_audio", "input_audio": {"data": audio, "format": "wav"}})
    return {"role": "user", "content": parts}


def _reply_message(reply: str) -> ChatCompletionAssistantMessageParam:
    """An earlier reply of this model: ``ChatCompletionAssistantMessageParam`` with text content.

    A spoken reply (``modalities`` with audio) is sent back as its transcript; the SDK's other
    form, ``audio: {id}``, names audio the service keeps only until the reply's ``expires_at``
    (and lamarena keeps no such id).
    """
    return {"role": "assistant", "content": reply}


def _spoken_messages(
    clip: AudioClip, prompt: str, history: Sequence[EarlierTurn]
) -> list[ChatCompletionMessageParam]:
    """A spoken query: each earlier turn (its audio, this model's reply), then ``clip``."""
    chat: list[ChatCompletionMessageParam] = []
    for turn in history:
        chat.append(_audio_message(turn.clip, prompt))
        chat.append(_reply_message(turn.reply))
    chat.append(_audio_message(clip, prompt))
    return chat


def _text_messages(
    text: str, prompt: str, history: Sequence[TextTurn]
) -> list[ChatCompletionMessageParam]:
    """A text chat: the system prompt (if any), the earlier turns, then the user message."""
    chat: list[ChatCompletionMessageParam] = []
    if prompt:
        chat.append({"role": "system", "content": prompt})
    for user, reply in history:
        chat.append({"role": "user", "content": user})
        chat.append(_reply_message(reply))
    chat.append({"role": "user", "content": text})
    return chat


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _delta_texts(chunk: Mapping[str, Any]) -> Iterator[str]:
    """The text of one streamed chunk: content, a spoken reply's transcript, or a refusal.

    The usage chunk that ends a stream asked for ``include_usage`` has no choices: no text.
    """
    for choice in _choices(chunk):
        if choice.get("index", 0) != 0:
            continue
        delta = _mapping(choice.get("delta"))
        for text in (
            delta.get("content"),
            _mapping(delta.get("audio")).get("transcript"),
            delta.get("refusal"),
        ):
            if isinstance(text, str) and text:
                yield text


class _SpeechParser:
    """The parts of a spoken reply in its chunks: transcript text and PCM16 audio.

    An odd trailing byte of one ``data`` chunk waits for the next, so every
    :class:`~lamarena.models.speech.SpeechAudio` holds whole samples.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._odd = b""

    def __call__(self, chunk: Mapping[str, Any]) -> Iterator[SpeechDelta]:
        for choice in _choices(chunk):
            if choice.get("index", 0) != 0:
                continue
            delta = _mapping(choice.get("delta"))
            audio = _mapping(delta.get("audio"))
            for text in (delta.get("content"), audio.get("transcript"), delta.get("refusal")):
                if isinstance(text, str) and text:
                    yield SpeechText(text)
            data = audio.get("data")
            if isinstance(data, str) and data:
                pcm = self._odd + self._decode(data)
                whole = len(pcm) - len(pcm) % 2
                self._odd = pcm[whole:]
                if whole:
                    yield SpeechAudio(pcm[:whole], SPEECH_SAMPLE_RATE_HZ)

    def _decode(self, data: str) -> bytes:
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ModelError(
                self._name, "the server sent audio that is not base64 (delta.audio.data)"
            ) from None


def _text_length(item: object) -> int:
    if isinstance(item, str):
        return len(item)
    return len(item.text) if isinstance(item, SpeechText) else 0


def _choices(chunk: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return []
    return [choice for choice in choices if isinstance(choice, Mapping)]


def _reported_usage(chunk: Mapping[str, Any]) -> Usage | None:
    usage = chunk.get("usage")
    if not isinstance(usage, Mapping):
        return None
    return Usage.reported(usage.get("prompt_tokens"), usage.get("completion_tokens"))


class OpenAIChatModel(_OpenAIService):
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
        temperature: float | None = None,
        max_tokens: int | None = None,
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
            model: the server's model id (``gpt-4o-audio-preview``, a vLLM model path, ...).
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
            audio_format: the format of a spoken reply; streaming needs ``pcm16``.
            temperature: sampling temperature; the server's default when None.
            max_tokens: longest reply; the server's default when None.
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
            ConfigError: an unknown modality, ``output="audio"`` without the audio modality or
                with a format other than ``pcm16``, or a negative ``max_retries``.
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
        if output == "audio" and ("audio" not in chosen or audio_format != "pcm16"):
            raise ConfigError(
                f"model '{name}': a spoken reply streams as modalities ['text', 'audio'] with "
                f"audio format pcm16, not {chosen} and {audio_format}"
            )
        self.speaks = output == "audio"
        self.modalities: list[Modality] = chosen
        self._audio_out: ChatCompletionAudioParam | None = (
            {"voice": audio_voice, "format": audio_format} if "audio" in chosen else None
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
                lambda: _spoken_messages(clip, prompt, history), report, _delta_texts
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
                lambda: _spoken_messages(clip, prompt, history), report, _SpeechParser(self.name)
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
                lambda: _text_messages(text, prompt, history), report, _delta_texts
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
            body["max_tokens"] = self._max_tokens
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
        finished = False
        try:
            async for item in stream:
                chunk = _mapping(item)
                usage = _reported_usage(chunk)  # the last chunk (or every one, on some servers)
                if usage is not None:
                    report(usage)
                if any(choice.get("finish_reason") for choice in _choices(chunk)):
                    finished = True  # "stop", or "length" (complete, if cut by max_tokens)
                for item in parse(chunk):
                    received += _text_length(item)
                    yield item
        except openai.APIConnectionError as exc:  # the request was accepted: not "cannot reach"
            if finished:  # only the usage chunk or [DONE] was lost; the reply is whole
                logger.debug("model %s: connection lost after the reply finished", self.name)
                return
            if isinstance(exc, openai.APITimeoutError):
                raise self._translate(exc) from None
            raise broke_off(self.name, self.base_url, received, exc.__cause__ or exc) from None
        except openai.OpenAIError as exc:
            raise self._translate(exc) from None  # the SDK error holds the key
        finally:
            await stream.close()
        if not finished:  # the body ended cleanly but without a finish_reason
            raise broke_off(self.name, self.base_url, received)


class OpenAITranscriber(_OpenAIService):
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
