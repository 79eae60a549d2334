"""The client every OpenAI-compatible adapter shares: HTTP pool, retries, errors a user can act on.

Each instance owns one ``httpx2.AsyncClient`` (the HTTP client of openai 3.x) with a connection
pool large enough for the arena's and the benchmark runner's concurrency, reused by every
request; nothing here serialises requests. Retries are ours, not the SDK's (whose retries also
repeat timeouts, so a stalled server would hold a request three times its read timeout): a 429
or 5xx before the first delta is retried with jittered exponential backoff, and anything else
fails at once as a :class:`~lamarena.errors.ModelError` subclass with a message a user can act
on. The API key is passed in by the registry; it is never logged and never part of a repr.

Used by the chat and transcription adapters (:mod:`lamarena.models.openai_compat`) and the
``/audio/speech`` synthesiser (:mod:`lamarena.models.tts`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx2
import openai
from openai import AsyncOpenAI

from lamarena.errors import ConfigError, ModelError, ModelTimeout, ModelUnavailable
from lamarena.models.base import ModelTimeouts
from lamarena.models.retry import backoff_s, is_transient_status, redact, status_error

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_MAX_CONNECTIONS", "OpenAIService"]

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""Used when a spec gives no ``base_url``."""

DEFAULT_MAX_CONNECTIONS = 128
"""Connection pool size of each adapter: above the concurrency the arena and runner ask for."""

_NO_KEY = "no-key"
"""Sent when no key is configured (servers without auth ignore it); the SDK would otherwise
read ``OPENAI_API_KEY`` itself, and lamarena reads the environment only through its settings."""

_T = TypeVar("_T")


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


class OpenAIService:
    """What every OpenAI-compatible adapter shares: the client, retries and the error mapping."""

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
