"""Refusing, before any work is done, what a public arena must not accept.

- :class:`SameOriginMiddleware`: cross-site writes.
- :class:`BodyLimitMiddleware`: request bodies past a size: 413 from the ``Content-Length``
  alone, or as soon as the bytes read pass the limit (a chunked body), never spooling the rest.


:class:`SameOriginMiddleware` answers 403 to a state-changing request (POST, PUT, PATCH,
DELETE) whose ``Origin`` header, or failing that whose ``Referer``, names another site than the
one it was sent to (the request's ``Host``): a page elsewhere cannot start battles or cast votes
with a participant's cookie. A request with neither header (a script, ``curl``, a load test) is
allowed: the session cookie is ``SameSite=Lax`` and other limits apply to it. A pure ASGI
middleware, so streamed responses pass through untouched.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "CROSS_SITE_MESSAGE",
    "FORM_OVERHEAD_BYTES",
    "BodyLimitMiddleware",
    "SameOriginMiddleware",
    "same_site",
]

FORM_OVERHEAD_BYTES = 64 * 1024
"""What a multipart body may hold besides the audio file: boundaries, headers and small fields."""

CROSS_SITE_MESSAGE = (
    "this request came from another site's page and was refused; open the arena itself to take part"
)
_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def same_site(source: str, host: str) -> bool:
    """Whether the ``Origin``/``Referer`` value ``source`` is the site at ``host`` (host:port)."""
    if source == "null":  # a sandboxed or privacy-stripped origin: not the arena's own page
        return False
    parts = urlsplit(source)
    if not parts.scheme or not parts.netloc:
        return False
    default = {"http": 80, "https": 443}.get(parts.scheme)
    wanted = urlsplit(f"//{host}")
    port = parts.port or default
    return (parts.hostname or "").lower() == (wanted.hostname or "").lower() and port == (
        wanted.port or default
    )


class SameOriginMiddleware:
    """403 for a state-changing request from another site's page (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, or answer 403 when it comes from another site's page."""
        if scope["type"] != "http" or scope["method"] not in _UNSAFE:
            await self.app(scope, receive, send)
            return
        headers = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        source = headers.get("origin") or headers.get("referer")
        host = headers.get("host", "")
        if source is None or same_site(source, host):
            await self.app(scope, receive, send)
            return
        await _send_error(send, 403, "forbidden", CROSS_SITE_MESSAGE)


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    """A whole JSON error response in the arena's shape."""
    body = json.dumps({"error": code, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """413 for a request body over ``max_bytes``, decided before the rest is read.

    A ``Content-Length`` over the limit is refused before one byte of the body is read; a body
    without one (chunked) is counted as it arrives and refused the moment it passes the limit:
    the application then sees the client as gone and whatever it would answer is dropped.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        on_refused: Callable[[Scope], Awaitable[None]] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.on_refused = on_refused
        """Called after each 413 (the arena counts it toward the address's limit)."""

    async def _refuse(self, scope: Scope, send: Send) -> None:
        if self.on_refused is not None:  # counted before the answer: the next request sees it
            await self.on_refused(scope)
        await _send_error(send, 413, "too_large", self._too_large())

    def _too_large(self) -> str:
        return (
            f"the request is over {self.max_bytes / 1e6:.1f} MB: the audio may be at most "
            f"{(self.max_bytes - FORM_OVERHEAD_BYTES) / 1e6:.0f} MB"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with its body counted, or answer 413."""
        if scope["type"] != "http" or scope["method"] not in _UNSAFE:
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length":
                declared = int(value) if value.isdigit() else None
                if declared is None or declared > self.max_bytes:
                    await self._refuse(scope, send)
                    return
        received = 0
        refused = False

        async def counted() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    await self._refuse(scope, send)
                    return {"type": "http.disconnect"}
            return message

        async def unless_refused(message: Message) -> None:
            if not refused:
                await send(message)

        try:
            await self.app(scope, counted, unless_refused)
        except Exception:
            if not refused:
                raise  # the refusal was answered; what the app made of the cut body is moot
