"""Google Gemini through google-genai, with the spoken query as inline WAV.

:class:`GeminiModel` streams ``generate_content_stream`` with the prompt and the clip as two parts
of one user turn (after a conversation's earlier turns: each a ``user`` content of the same
shape and a ``model`` content with this model's own reply); :meth:`GeminiModel.stream_text`
answers text under a system instruction, so a Gemini model can also be the LLM half of an ASR
pipeline. ``base_url`` points the SDK elsewhere
(a proxy, or a loopback fake in tests). Every chunk carries the request's ``usage_metadata`` so
far; the last one seen is reported on the request's :class:`~lamarena.models.base.ReplyStream`
(prompt tokens in, candidate plus thinking tokens out, as Google bills them), with the audio part
of each from ``prompt_tokens_details`` and ``candidates_tokens_details`` (lists of ``{modality,
token_count}``, google-genai's ``GenerateContentResponseUsageMetadata``) where the service sends
them. ``thinking_budget`` becomes ``ThinkingConfig(thinking_budget=...)``: 0 turns thinking off
where the model allows it, -1 lets the model decide.

As in :mod:`lamarena.models.openai_compat`: one ``httpx2.AsyncClient`` per instance with a large
connection pool, the SDK's own retries off (they also repeat timeouts and connection errors), our
retries on 429 and 5xx before the first delta, and every failure translated to a
:class:`~lamarena.errors.ModelError` subclass. google-genai sends each request with its own
timeout, *none* unless ``HttpOptions.timeout`` is set (and that one value would bound connect and
read alike and be sent to the server as a deadline for the whole reply), so a request hook puts
the client's connect and read limits back on every request.

A reply is complete only once a chunk's candidate carries a ``finish_reason``: ``STOP``, or
``MAX_TOKENS`` for one cut by ``max_tokens`` after some text (as OpenAI's ``length``). Any other
reason (``SAFETY``, ``RECITATION``, ``PROHIBITED_CONTENT``, ``BLOCKLIST``, ``SPII``, ``OTHER``,
...; google-genai's ``FinishReason``), and ``MAX_TOKENS`` before any text (a thinking model can
spend the whole limit thinking), is a :class:`~lamarena.errors.ModelError` naming the reason,
never an empty success. A stream that ends without a reason, or whose connection fails after
the service accepted the request, is a :class:`~lamarena.errors.ModelError` saying the reply
broke off (see :func:`~lamarena.models.retry.broke_off`), never a complete reply and never
retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterator,
    Sequence,
)
from typing import Any

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

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

__all__ = ["DEFAULT_API_VERSION", "DEFAULT_BASE_URL", "DEFAULT_MAX_CONNECTIONS", "GeminiModel"]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
"""The Gemini API, used when a spec gives no ``base_url``."""

DEFAULT_API_VERSION = "v1beta"
"""Pinned, so the SDK's default (and its environment override) cannot move it."""

DEFAULT_MAX_CONNECTIONS = 128
"""Connection pool size of each adapter."""


_Hook = Callable[[httpx2.Request], Coroutine[Any, Any, None]]


def _query_parts(clip: AudioClip, prompt: str) -> list[types.Part]:
    """One spoken query's parts: the prompt as text (if any), then the clip as inline WAV."""
    audio = types.Part.from_bytes(data=to_wav_bytes(clip), mime_type="audio/wav")
    return [types.Part.from_text(text=prompt), audio] if prompt else [audio]


def _conversation(
    history: Sequence[tuple[list[types.Part], str]], query: list[types.Part]
) -> list[types.Content]:
    """Earlier turns and the query as ``contents`` with roles, oldest first.

    google-genai's ``types.Content``: ``role`` is "user" or "model", and the API wants them to
    alternate, user first, ending with the user turn to answer; each earlier turn is a "user"
    content and a "model" content holding this model's own reply as one text part.
    """
    contents: list[types.Content] = []
    for user, reply in history:
        contents.append(types.Content(role="user", parts=user))
        contents.append(types.Content(role="model", parts=[types.Part.from_text(text=reply)]))
    contents.append(types.Content(role="user", parts=query))
    return contents


def _restore_client_timeout(client: httpx2.AsyncClient) -> _Hook:
    """A request hook giving back the client's own timeouts when the SDK switched them off."""

    async def hook(request: httpx2.Request) -> None:
        limits = request.extensions.get("timeout") or {}
        if all(value is None for value in limits.values()):
            request.extensions = {**request.extensions, "timeout": client.timeout.as_dict()}

    return hook


def _error_reasons(details: Any) -> set[str]:
    """The ``reason`` fields of a Google error body's ``details`` (e.g. ``API_KEY_INVALID``)."""
    error = details.get("error", details) if isinstance(details, dict) else None
    items = error.get("details") if isinstance(error, dict) else None
    if not isinstance(items, list):
        return set()
    return {str(item["reason"]) for item in items if isinstance(item, dict) and "reason" in item}


def _audio_tokens(details: list[types.ModalityTokenCount] | None) -> int | None:
    """The AUDIO tokens of a per-modality breakdown; None when the service sent none."""
    if details is None:
        return None
    return sum(
        item.token_count or 0 for item in details if item.modality == types.MediaModality.AUDIO
    )


def _report_usage(chunk: types.GenerateContentResponse, report: UsageSink) -> None:
    """Report a chunk's usage so far: prompt tokens in; candidate and thinking tokens out.

    The audio parts come from the per-modality breakdowns; thinking tokens are text.
    """
    metadata = chunk.usage_metadata
    if metadata is None:
        return
    generated = [
        count
        for count in (metadata.candidates_token_count, metadata.thoughts_token_count)
        if count is not None
    ]
    usage = Usage.from_service(
        metadata.prompt_token_count,
        sum(generated) if generated else None,
        input_audio_tokens=_audio_tokens(metadata.prompt_tokens_details),
        output_audio_tokens=_audio_tokens(metadata.candidates_tokens_details),
    )
    if usage is not None:
        report(usage)


def _finish_reason(chunk: types.GenerateContentResponse) -> str | None:
    """The reason a chunk ends the reply (STOP, MAX_TOKENS, SAFETY, ...), or None.

    CONTINUATION is not an end: the SDK follows it with another request when it can, and clears
    it from the chunk when it does; when it cannot, the reply is unfinished.
    """
    if not chunk.candidates:
        return None
    reason = chunk.candidates[0].finish_reason
    if not reason or reason == types.FinishReason.CONTINUATION:
        return None
    return str(getattr(reason, "value", reason))


class GeminiModel:
    """A Gemini model answering spoken queries with streamed text (AudioModel and TextModel)."""

    name: str

    def __init__(
        self,
        name: str,
        model: str,
        *,
        api_key: str | None,
        api_key_env: str | None = None,
        base_url: str | None = None,
        api_version: str = DEFAULT_API_VERSION,
        temperature: float | None = None,
        max_tokens: int | None = None,
        thinking_budget: int | None = None,
        timeouts: ModelTimeouts | None = None,
        max_retries: int = 2,
        retry_backoff_s: float = 0.5,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        """Configure the adapter; no request is made here.

        Args:
            name: the model's name in models.yaml.
            model: the Gemini model id (``gemini-3.8-flash``, ...).
            api_key: the key itself (the registry reads it from ``api_key_env``).
            api_key_env: the variable's name, only to say which one to check in messages.
            base_url: the API root without the version; Google's when None.
            api_version: the path segment after ``base_url``.
            temperature: sampling temperature; the server's default when None.
            max_tokens: longest reply (``max_output_tokens``); the server's default when None.
            thinking_budget: thinking tokens a thinking model may spend (0: none where the
                model allows it, -1: the model decides); the model's default when None.
            timeouts: ``connect_s`` and ``first_token_s`` become the HTTP connect and read
                limits (the read limit bounds every silence, not just the first).
            max_retries: how often a 429 or 5xx is retried before the first delta.
            retry_backoff_s: the first retry's delay; each next one doubles (at most 8 s).
            max_connections: size of the connection pool (requests beyond it wait).
            http_client: an ``httpx2.AsyncClient`` to use instead of one of its own; its owner
                closes it, and its own timeouts and limits apply.

        Raises:
            ConfigError: no API key, or a negative ``max_retries``.
        """
        if not api_key:
            hint = api_key_env or "the variable named by api_key_env in models.yaml"
            raise ConfigError(f"model '{name}': Gemini needs an API key; set {hint}")
        if max_retries < 0:
            raise ConfigError(f"model '{name}': max_retries must be 0 or more, not {max_retries}")
        self.name = name
        self.model = model
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.timeouts = timeouts or ModelTimeouts()
        self.max_retries = max_retries
        self._retry_backoff_s = retry_backoff_s
        self._api_key_env = api_key_env
        self._api_key = api_key  # only to scrub it from server messages; never shown
        self._temperature = temperature
        self._max_tokens = max_tokens
        self._thinking_budget = thinking_budget
        self._owns_http = http_client is None
        self._http = http_client or httpx2.AsyncClient(
            timeout=httpx2.Timeout(
                connect=self.timeouts.connect_s,
                read=self.timeouts.first_token_s,
                write=self.timeouts.first_token_s,
                pool=self.timeouts.first_token_s,
            ),
            limits=httpx2.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )
        hooks = self._http.event_hooks
        hooks["request"] = [*hooks["request"], _restore_client_timeout(self._http)]
        self._http.event_hooks = hooks
        self._client = genai.Client(
            api_key=api_key,
            vertexai=False,
            http_options=types.HttpOptions(
                base_url=self.base_url,
                api_version=api_version,
                httpx_async_client=self._http,
            ),
        )

    def __repr__(self) -> str:
        return f"GeminiModel(name={self.name!r}, model={self.model!r}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        """Close the HTTP clients (an injected one is left to its owner)."""
        self._client.close()  # the SDK's own sync client, unused but opened
        if self._owns_http:
            await self._http.aclose()

    def stream(
        self, clip: AudioClip, prompt: str, history: Sequence[EarlierTurn] = ()
    ) -> ReplyStream:
        """Yield the reply's text deltas to a spoken query, in order.

        Args:
            clip: the query, mono 16 kHz (sent inline as WAV).
            prompt: the text part sent before the audio (system prompt or task instruction),
                in every user turn.
            history: earlier turns, oldest first: each becomes a "user" content (prompt and
                audio, as the query's) and a "model" content with this model's own reply.

        Returns:
            The deltas; its ``usage`` holds the service's token counts once the stream ends.

        Raises:
            ModelError: the service refused the request, blocked it, or the reply broke off;
                ModelTimeout and ModelUnavailable where they apply (while iterating).
        """

        def contents() -> types.ContentListUnion:
            if not history:  # one user turn, as the SDK makes it from a list of parts
                audio = types.Part.from_bytes(data=to_wav_bytes(clip), mime_type="audio/wav")
                return [prompt, audio] if prompt else [audio]
            earlier = [(_query_parts(turn.clip, prompt), turn.reply) for turn in history]
            return _conversation(earlier, _query_parts(clip, prompt))

        return ReplyStream(lambda report: self._stream(contents, None, report))

    def stream_text(self, text: str, prompt: str, history: Sequence[TextTurn] = ()) -> ReplyStream:
        """Yield the reply's deltas to the user message ``text`` under system prompt ``prompt``.

        ``history`` holds the earlier (user message, reply) pairs, oldest first; each becomes a
        "user" and a "model" content before ``text``.

        Returns:
            The deltas; its ``usage`` holds the service's token counts once the stream ends.

        Raises:
            ModelError: as for :meth:`stream`.
        """

        def contents() -> types.ContentListUnion:
            if not history:
                return [text]
            earlier = [([types.Part.from_text(text=user)], reply) for user, reply in history]
            return _conversation(earlier, [types.Part.from_text(text=text)])

        return ReplyStream(lambda report: self._stream(contents, prompt or None, report))

    def _config(self, system: str | None) -> types.GenerateContentConfig:
        thinking = None
        if self._thinking_budget is not None:
            thinking = types.ThinkingConfig(thinking_budget=self._thinking_budget)
        return types.GenerateContentConfig(
            system_instruction=system,
            temperature=self._temperature,
            max_output_tokens=self._max_tokens,
            thinking_config=thinking,
        )

    async def _open(
        self, contents: types.ContentListUnion, system: str | None
    ) -> tuple[AsyncIterator[types.GenerateContentResponse], types.GenerateContentResponse | None]:
        """Send the request (retrying 429 and 5xx) and wait for its first chunk."""
        attempt = 0
        while True:
            attempt += 1
            try:
                chunks = await self._client.aio.models.generate_content_stream(
                    model=self.model,
                    contents=contents,
                    config=self._config(system),
                )
                iterator = aiter(chunks)
                return iterator, await anext(iterator, None)
            except genai_errors.APIError as exc:
                if is_transient_status(exc.code) and attempt <= self.max_retries:
                    delay = backoff_s(attempt, self._retry_backoff_s)
                    logger.info(
                        "model %s: HTTP %d from %s; retry %d of %d in %.2f s",
                        self.name,
                        exc.code,
                        self.base_url,
                        attempt,
                        self.max_retries,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                raise self._translate(exc, attempt) from None  # the SDK error holds the key
            except (genai_errors.UnknownApiResponseError, httpx2.HTTPError) as exc:
                raise self._translate(exc, attempt) from None  # the SDK error holds the key

    async def _stream(
        self,
        contents: Callable[[], types.ContentListUnion],
        system: str | None,
        report: UsageSink,
    ) -> AsyncGenerator[str, None]:
        iterator, chunk = await self._open(contents(), system)
        received = 0
        finished: str | None = None
        try:
            while chunk is not None:
                _report_usage(chunk, report)
                finished = finished or _finish_reason(chunk)
                for text in self._texts(chunk):
                    received += len(text)
                    yield text
                chunk = await anext(iterator, None)
        except httpx2.TransportError as exc:  # the request was accepted: not "cannot reach"
            if not finished:
                if isinstance(exc, httpx2.TimeoutException):
                    raise self._translate(exc) from None
                raise broke_off(self.name, self.base_url, received, exc) from None
            # Only what followed the finishing chunk was lost; the reply is whole (its reason is
            # checked below, outside this handler, so no SDK error is chained to a ModelError).
            logger.debug("model %s: connection lost after the reply finished", self.name)
        except (
            genai_errors.APIError,
            genai_errors.UnknownApiResponseError,
            httpx2.HTTPError,
        ) as exc:
            raise self._translate(exc) from None  # the SDK error holds the key
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                await close()
        if not finished:  # the body ended cleanly but no chunk carried a finishReason
            raise broke_off(self.name, self.base_url, received)
        self._check_finish(finished, received)

    def _check_finish(self, reason: str, received: int) -> None:
        """Refuse a reply that ended otherwise than STOP, or MAX_TOKENS after some text."""
        if reason == "STOP" or (reason == "MAX_TOKENS" and received):
            return
        if reason == "MAX_TOKENS":
            raise ModelError(
                self.name,
                f"the reply reached the token limit before any text (finishReason MAX_TOKENS): "
                f"raise max_tokens (now {self._max_tokens}) in models.yaml, or lower "
                "thinking_budget (thinking tokens count against it)",
            )
        cut = f" after {received} characters" if received else ""
        raise ModelError(self.name, f"the service stopped the reply{cut} (finishReason {reason})")

    def _texts(self, chunk: types.GenerateContentResponse) -> Iterator[str]:
        """The text parts of one chunk (thoughts left out); a blocked prompt is an error."""
        if not chunk.candidates:
            feedback = chunk.prompt_feedback
            if feedback is not None and feedback.block_reason is not None:
                reason = getattr(feedback.block_reason, "value", feedback.block_reason)
                raise ModelError(self.name, f"the prompt was blocked by the service ({reason})")
            return
        content = chunk.candidates[0].content
        for part in (content.parts if content is not None else None) or []:
            if part.text and not part.thought:
                yield part.text

    def _key_hint(self) -> str:
        if self._api_key_env:
            return f"check {self._api_key_env}"
        return "check the variable named by api_key_env in models.yaml, e.g. GEMINI_API_KEY"

    def _translate(self, exc: Exception, attempts: int = 1) -> ModelError:
        """The ModelError subclass, with an actionable message, for an SDK or HTTP error."""
        if isinstance(exc, httpx2.ConnectTimeout):
            return ModelTimeout(
                self.name,
                f"could not connect to {self.base_url} within {self.timeouts.connect_s:g} s",
            )
        if isinstance(exc, httpx2.TimeoutException):
            return ModelTimeout(
                self.name,
                f"{self.base_url} sent nothing for {self.timeouts.first_token_s:g} s "
                "(read timeout)",
            )
        if isinstance(exc, httpx2.ConnectError):
            return ModelUnavailable(
                self.name,
                f"cannot reach {self.base_url} ({type(exc).__name__}): check base_url in "
                "models.yaml and the network",
            )
        if isinstance(exc, httpx2.HTTPError):
            return ModelUnavailable(
                self.name, f"the connection to {self.base_url} failed ({type(exc).__name__})"
            )
        if isinstance(exc, genai_errors.APIError):
            return self._translate_status(exc, attempts)
        return ModelError(
            self.name, redact(f"unreadable reply from {self.base_url}: {exc}", self._api_key)
        )

    def _translate_status(self, exc: genai_errors.APIError, attempts: int) -> ModelError:
        code = exc.code
        detail = redact(
            " ".join(str(exc.message or exc.status or "no message").split())[:500], self._api_key
        )
        reasons = _error_reasons(exc.details)
        if code == 401 or "API_KEY_INVALID" in reasons or "API key not valid" in detail:
            return ModelUnavailable(
                self.name, f"the API key was refused by {self.base_url} ({self._key_hint()})"
            )
        return status_error(
            name=self.name,
            model=self.model,
            base_url=self.base_url,
            status=code,
            detail=detail,
            attempts=attempts,
            key_hint=self._key_hint(),
        )
