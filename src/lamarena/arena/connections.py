"""Connection limits for the arena under uvicorn: slow clients cannot hold connections open.

uvicorn (0.55, h11) closes an idle keep-alive connection after ``timeout_keep_alive`` but sets
no deadline for the request headers of a new connection, none for a request body that stalls
or trickles in, and none for the rest of a body the application answered without reading. A
client sending a byte now and then ("slowloris") therefore keeps a connection, its file
descriptor and its buffers, for ever. This module bounds each of those waits:

- :class:`HeaderTimeoutH11Protocol` (built with :func:`header_timeout_protocol`): uvicorn's h11
  protocol with a deadline for request headers, see its docstring for when the clock runs.
- :class:`BodyTimeoutMiddleware`: an ASGI middleware answering 408 when a request body pauses
  for too long or arrives slower than a minimum rate.
- :class:`RedactIdsFilter`: takes participant ids (query strings) and battle ids (paths) out of
  uvicorn's access log; :func:`install_access_log_filter` adds it in a serving process.
- :func:`server_options`: the keyword arguments for ``uvicorn.run`` that put these in place.

Example::

    install_access_log_filter()  # in each serving process: the app factory with workers > 1
    uvicorn.run(app, host=host, port=port, **server_options(settings.header_timeout_s))
"""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import logging
import math
import re
from typing import Any, ClassVar
from urllib.parse import quote, unquote

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = [
    "ACCESS_LOGGER",
    "DEFAULT_HEADER_TIMEOUT_S",
    "DEFAULT_MIN_BODY_RATE",
    "KEEP_ALIVE_S",
    "MAX_HEADER_BYTES",
    "BodyTimeoutMiddleware",
    "HeaderTimeoutH11Protocol",
    "RedactIdsFilter",
    "header_timeout_protocol",
    "header_timeout_protocol_path",
    "install_access_log_filter",
    "log_config",
    "redact_ids_filter",
    "redact_path",
    "server_options",
]

ACCESS_LOGGER = "uvicorn.access"
"""The logger uvicorn writes one line a request to."""

DEFAULT_HEADER_TIMEOUT_S = 10.0
"""Header deadline of :class:`HeaderTimeoutH11Protocol` itself (the settings' default)."""

DEFAULT_MIN_BODY_RATE = 1024.0
"""Bytes a second a request body must average (see :class:`BodyTimeoutMiddleware`).

8 kbit/s: slower than any real uplink (a poor 2G link manages several times that), so only a
deliberate trickle falls under it; a client keeping a connection must then at least spend the
bandwidth, and the body limit bounds for how long.
"""

KEEP_ALIVE_S = 5
"""Seconds an idle keep-alive connection stays open (uvicorn's default, set explicitly).

The header deadline does not run while a connection sits idle between requests, so this is what
bounds an idle connection; a browser reuses its connections within it, and opening a new one
after a longer pause costs one round trip.
"""

MAX_HEADER_BYTES = 16 * 1024
"""Bytes of an unfinished request head h11 holds before it answers 400 (its default, set here).

The arena's requests carry a session cookie and a few ordinary headers, well under 2 KiB. h11
applies the limit to what it buffers while the head is incomplete: a longer head that arrives
in one read still passes, so this bounds what a slow client can leave a connection holding.
"""

_TIMEOUT_CODE = "timeout"
_REDACTED = "..."
_ID = "{id}"


def _json_error(message: str) -> bytes:
    """The arena's error body: ``{"error": "timeout", "message": ...}``."""
    return json.dumps({"error": _TIMEOUT_CODE, "message": message}).encode()


def _seconds(value: float) -> str:
    """``value`` for a message: ``10``, ``0.5``."""
    return f"{value:g}"


# ---------------------------------------------------------------------------------------------
# Request headers: a protocol class with a deadline.


class HeaderTimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose client is too slow to send a request.

    The deadline, :attr:`header_timeout_s`, runs while the server waits for request bytes that
    no application code is reading:

    - from the moment a connection is made, until its first request's headers are complete;
    - on a keep-alive connection, from the first byte of the next request until its headers are
      complete (while the connection sits idle, uvicorn's own ``timeout_keep_alive`` applies:
      an idle connection is not cut short by this deadline);
    - after a response went out before the request's body was read, until that body and the
      next request's headers are complete (uvicorn sets no deadline for those bytes).

    It does not run while the application handles a request: a streamed response (server-sent
    events) lasts as long as it needs, and a request body is the business of
    :class:`BodyTimeoutMiddleware`. When the deadline passes the connection is closed, after a
    408 JSON response if part of a request had arrived.

    uvicorn builds one instance a connection, so the deadline is a class attribute: use
    :func:`header_timeout_protocol` for a class with another one.
    """

    header_timeout_s: ClassVar[float] = DEFAULT_HEADER_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(  # type: ignore[override]  # uvicorn's own signature
        self, transport: asyncio.Transport
    ) -> None:
        """Start the deadline for the first request's headers."""
        super().connection_made(transport)
        self._update_header_timer()

    def data_received(self, data: bytes) -> None:
        """Parse what arrived, then start or stop the deadline for the state it leaves."""
        super().data_received(data)
        self._update_header_timer()

    def on_response_complete(self) -> None:
        """After a response: no deadline while idle, one for the rest of an unread body."""
        super().on_response_complete()
        self._update_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _waiting_on_client(self) -> bool:
        """Whether request bytes are due that no application code is waiting for."""
        if self.transport is None or self.transport.is_closing():
            return False
        their_state = self.conn.their_state
        if their_state is h11.IDLE:
            # uvicorn arms its keep-alive timer when a response is done and cancels it when
            # bytes arrive: without it, the connection is new or a request is on its way.
            return self.timeout_keep_alive_task is None
        # A body nobody reads any more: the response already went out.
        return their_state is h11.SEND_BODY and self.conn.our_state is h11.DONE

    def _update_header_timer(self) -> None:
        if not self._waiting_on_client():
            self._cancel_header_timer()
        elif self._header_timer is None:
            self._header_timer = self.loop.call_later(
                self.header_timeout_s, self._header_timeout_expired
            )

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout_expired(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        partial, _ = self.conn.trailing_data
        if self.conn.their_state is h11.IDLE and partial:
            body = _json_error(
                f"the request headers did not arrive within {_seconds(self.header_timeout_s)} s;"
                " check the network connection and send the request again"
            )
            head = (
                "HTTP/1.1 408 Request Timeout\r\n"
                "content-type: application/json\r\n"
                f"content-length: {len(body)}\r\n"
                "connection: close\r\n\r\n"
            )
            self.transport.write(head.encode("ascii") + body)
        self.logger.debug(
            "closing a connection: no complete request within %s s", self.header_timeout_s
        )
        self.transport.close()


class _ProtocolsByTimeout:
    """Attribute ``ms<N>``: the protocol class with an N ms header deadline.

    The classes :func:`header_timeout_protocol` builds are reachable from this module under
    their ``__qualname__`` (``_by_timeout.ms500``): uvicorn's import strings name them, and
    pickle stores them by name, so another process finds the same class.
    """

    def __getattr__(self, name: str) -> type[HeaderTimeoutH11Protocol]:
        match = re.fullmatch(r"ms([1-9][0-9]*)", name)
        if match is None:
            raise AttributeError(name)
        return _protocol_for_ms(int(match[1]))


_by_timeout = _ProtocolsByTimeout()


@functools.cache
def _protocol_for_ms(milliseconds: int) -> type[HeaderTimeoutH11Protocol]:
    attribute = f"ms{milliseconds}"
    return type(
        f"HeaderTimeoutH11Protocol_{attribute}",
        (HeaderTimeoutH11Protocol,),
        {
            "header_timeout_s": milliseconds / 1000,
            "__module__": __name__,
            "__qualname__": f"_by_timeout.{attribute}",
            "__doc__": f"HeaderTimeoutH11Protocol with a {milliseconds} ms header deadline.",
        },
    )


def header_timeout_protocol(header_timeout_s: float) -> type[HeaderTimeoutH11Protocol]:
    """The h11 protocol class closing connections without a request in ``header_timeout_s``.

    For ``uvicorn.Config(app, http=...)``. The deadline is kept to the millisecond; calls with
    the same deadline return the same class, which pickles by name (uvicorn pickles its
    configuration for each worker process), though :func:`header_timeout_protocol_path` is the
    better form for ``uvicorn.run``.

    Raises:
        ValueError: ``header_timeout_s`` is not a positive finite number of seconds.
    """
    if not math.isfinite(header_timeout_s) or header_timeout_s <= 0:
        raise ValueError(f"header_timeout_s must be positive, not {header_timeout_s!r}")
    return _protocol_for_ms(max(1, round(header_timeout_s * 1000)))


def header_timeout_protocol_path(header_timeout_s: float) -> str:
    """The import string of :func:`header_timeout_protocol`'s class, for uvicorn's ``http``.

    ``"lamarena.arena.connections:_by_timeout.ms500"``: uvicorn imports it when a server
    starts serving. With ``workers > 1`` that is better than the class itself: the class would
    be unpickled, importing this module and with it the whole arena package, before a new
    worker answers uvicorn's health checks (``timeout_worker_healthcheck``, 5 s), and a worker
    slow to import is killed and replaced.

    Raises:
        ValueError: ``header_timeout_s`` is not a positive finite number of seconds.
    """
    protocol = header_timeout_protocol(header_timeout_s)
    return f"{protocol.__module__}:{protocol.__qualname__}"


# ---------------------------------------------------------------------------------------------
# Request bodies: an ASGI middleware.

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyTimeoutMiddleware:
    """408 for a request body that stops arriving, so no request waits on its client for ever.

    Applies to POST, PUT and PATCH requests, and only while their body is being read: once the
    last body chunk is in, ``receive`` passes through untouched (a streamed response waiting for
    the client to leave is not cut). Two limits, on the time spent waiting in ``receive``:

    - a pause: the next body chunk must come within ``body_timeout_s``;
    - a rate: all the waiting together may last ``body_timeout_s`` plus one second for every
      ``min_rate_bytes_s`` bytes received (so a body trickled in a byte at a time ends as surely
      as one that stalls); ``None`` for no rate limit.

    Past either, if no response has started, the client gets a 408 JSON error in the arena's
    shape with ``Connection: close``, and the application sees ``http.disconnect`` from then on
    (what it answers afterwards is dropped, and an exception it raises over the cut body is not
    propagated). If a response has started, the application only sees the disconnect.
    """

    def __init__(
        self,
        app: ASGIApp,
        body_timeout_s: float,
        *,
        min_rate_bytes_s: float | None = DEFAULT_MIN_BODY_RATE,
    ) -> None:
        if not math.isfinite(body_timeout_s) or body_timeout_s <= 0:
            raise ValueError(f"body_timeout_s must be positive, not {body_timeout_s!r}")
        if min_rate_bytes_s is not None and not min_rate_bytes_s > 0:
            raise ValueError(f"min_rate_bytes_s must be positive, not {min_rate_bytes_s!r}")
        self.app = app
        self.body_timeout_s = body_timeout_s
        self.min_rate_bytes_s = min_rate_bytes_s

    def message(self) -> str:
        """What the 408 says."""
        rate = (
            ""
            if self.min_rate_bytes_s is None
            else f" or came slower than {_seconds(self.min_rate_bytes_s)} bytes a second"
        )
        return (
            f"the request body paused for more than {_seconds(self.body_timeout_s)} s{rate};"
            " check the network connection and send the request again"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a ``receive`` that gives up on a stalled body."""
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        body = _TimedBody(self, receive, send)
        try:
            await self.app(scope, body.receive, body.send)
        except Exception:
            if not body.timed_out:
                raise


class _TimedBody:
    """One request's ``receive`` and ``send`` under :class:`BodyTimeoutMiddleware`'s limits."""

    def __init__(self, limits: BodyTimeoutMiddleware, receive: Receive, send: Send) -> None:
        self._limits = limits
        self._receive = receive
        self._send = send
        self._waited_s = 0.0
        self._received = 0
        self._body_done = False
        self._response_started = False
        self._answered = False
        self.timed_out = False

    def _allowance_s(self) -> float:
        """How long the next wait for a body chunk may last."""
        rate = self._limits.min_rate_bytes_s
        pause = self._limits.body_timeout_s
        if rate is None:
            return pause
        budget = pause + self._received / rate - self._waited_s
        return max(0.0, min(pause, budget))

    async def receive(self) -> Message:
        if self.timed_out:
            return {"type": "http.disconnect"}
        if self._body_done:
            return await self._receive()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(self._allowance_s()):
                message = await self._receive()
        except TimeoutError:
            return await self._time_out()
        finally:
            self._waited_s += loop.time() - started
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            self._body_done = not message.get("more_body", False)
        return message

    async def _time_out(self) -> Message:
        self.timed_out = True
        if not self._response_started:
            self._response_started = self._answered = True
            body = _json_error(self._limits.message())
            await self._send(
                {
                    "type": "http.response.start",
                    "status": 408,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await self._send({"type": "http.response.body", "body": body})
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self._answered:
            return  # the 408 went out; whatever the application answers now is dropped
        if message["type"] == "http.response.start":
            self._response_started = True
        await self._send(message)


# ---------------------------------------------------------------------------------------------
# The access log: no participant or battle ids.

_BATTLE_ID = re.compile(r"(/api/battles/)[^/]+", re.IGNORECASE)
_ID_LIKE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # a UUID
    r"|[0-9a-f]{16,}"  # a hex token
    r"|(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,}",  # a url-safe token
    re.IGNORECASE,
)
_QUERY_KEY = re.compile(r"[A-Za-z0-9_.\-\[\]]{1,64}")
_PATH_SAFE = "/:@!$&'()*+,;=-._~{}"


def _redact_segment(segment: str) -> str:
    return _ID if _ID_LIKE.fullmatch(segment) else segment


def redact_path(full_path: str) -> str:
    """``full_path`` (path and query string) without the ids it may carry.

    Every query value becomes ``...`` (keys are kept when they look like parameter names,
    ``?pid=abc`` -> ``?pid=...``); the segment after ``/api/battles/``, and any segment that
    looks like an id (a UUID, a long hex or url-safe token), becomes ``{id}``. The path is
    percent-decoded before it is matched, and percent-encoded again (ASCII only) after.
    """
    path, question, query = full_path.partition("?")
    decoded = _BATTLE_ID.sub(lambda match: match[1] + _ID, unquote(path, errors="replace"))
    redacted = quote("/".join(_redact_segment(part) for part in decoded.split("/")), _PATH_SAFE)
    if not question:
        return redacted
    pairs = []
    for pair in query.split("&"):
        key, equals, _value = pair.partition("=")
        if not equals:
            pairs.append(_REDACTED if pair else "")
        else:
            pairs.append(f"{key if _QUERY_KEY.fullmatch(key) else _REDACTED}={_REDACTED}")
    return f"{redacted}?{'&'.join(pairs)}"


class RedactIdsFilter(logging.Filter):
    """Rewrites the path of uvicorn's access log records with :func:`redact_path`.

    uvicorn logs each request as ``'%s - "%s %s HTTP/%s" %d'`` with the arguments
    ``(client_addr, method, full_path, http_version, status_code)`` (h11 and httptools alike);
    records of another shape pass unchanged. Never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the path in ``record.args`` in place; keep the record."""
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_path(args[2]), args[3], args[4])
        return True


_ACCESS_FILTER = RedactIdsFilter()


def redact_ids_filter() -> RedactIdsFilter:
    """The one :class:`RedactIdsFilter` of this process (``logging`` adds an object once)."""
    return _ACCESS_FILTER


def install_access_log_filter() -> None:
    """Add the redaction filter to the ``uvicorn.access`` logger of this process (idempotent).

    Call it in every process that serves: before ``uvicorn.run`` with one process, and in the
    app factory each worker process calls with ``workers > 1`` (uvicorn configures a worker's
    logging afresh, so a filter added in the parent does not reach it; a filter added here
    survives uvicorn's ``dictConfig``, which replaces a logger's handlers but keeps its filters).
    """
    logging.getLogger(ACCESS_LOGGER).addFilter(_ACCESS_FILTER)


def log_config() -> dict[str, Any]:
    """The default uvicorn logging configuration plus the redaction filter on its access logger.

    For ``uvicorn.run(log_config=...)`` or ``--log-config`` (as JSON): uvicorn applies it with
    ``logging.config.dictConfig`` in its own process and again in every worker, importing the
    filter by name. With ``workers > 1`` prefer :func:`install_access_log_filter` in the app
    factory: a worker applies its logging configuration before it answers uvicorn's health
    checks, and importing this module imports the whole arena package (seconds), so a worker
    may be taken for hung and replaced. A new dict each call (uvicorn may edit the one it gets).
    """
    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_ids"] = {"()": f"{__name__}.redact_ids_filter"}
    config["loggers"][ACCESS_LOGGER]["filters"] = ["redact_ids"]
    return config


# ---------------------------------------------------------------------------------------------
# Everything for uvicorn.run.


def server_options(header_timeout_s: float) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config`` that bound slow connections.

    The same for one process and for ``workers > 1``. Not the access log's redaction: call
    :func:`install_access_log_filter` in each serving process (see there).

    ``limit_concurrency`` is deliberately left unset: uvicorn counts every open connection
    against it, reply streams and idle keep-alive connections included, and answers 503 to
    any request past it, so a cap would turn real participants away at a busy moment while the
    deadlines here already bound what a slow client can hold. The hard cap on connections is
    the process's file descriptor limit (``ulimit -n``).
    """
    return {
        # h11 with the header deadline, as an import string (see header_timeout_protocol_path).
        # Not http="auto": that picks httptools when it is installed, without the deadline.
        "http": header_timeout_protocol_path(header_timeout_s),
        # Bounds an idle keep-alive connection, which the header deadline leaves alone.
        "timeout_keep_alive": KEEP_ALIVE_S,
        # What an unfinished request head may buffer: a 400 past it, before any application code.
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }
