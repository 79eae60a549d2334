"""Refusing what a public arena must not do for another site: cross-site writes.

:class:`SameOriginMiddleware` answers 403 to a state-changing request (POST, PUT, PATCH,
DELETE) whose ``Origin`` header, or failing that whose ``Referer``, names another site than the
one it was sent to (the request's ``Host``): a page elsewhere cannot start battles or cast votes
with a participant's cookie. A request with neither header (a script, ``curl``, a load test) is
allowed: the session cookie is ``SameSite=Lax`` and other limits apply to it. A pure ASGI
middleware, so streamed responses pass through untouched.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["CROSS_SITE_MESSAGE", "SameOriginMiddleware", "same_site"]

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
        body = json.dumps({"error": "forbidden", "message": CROSS_SITE_MESSAGE}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
