"""Real HTTP servers for tests: an ASGI app under uvicorn on 127.0.0.1, in a background thread.

The socket is bound here (port 0, so the kernel picks a free port) before uvicorn starts, so the
URL is known and connectable as soon as :class:`ServerThread` is entered. Leaving the context asks
uvicorn to exit and joins the thread; a request still running then is cancelled after a short
grace period, so a stalled fake never holds a test up.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Self

import uvicorn
from starlette.types import ASGIApp

__all__ = ["ServerThread", "unused_port"]

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 10.0


def unused_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class ServerThread:
    """Run ``app`` under real uvicorn on 127.0.0.1 while the context is open.

    Example::

        with ServerThread(app) as server:
            httpx.get(f"{server.url}/healthz")
    """

    def __init__(self, app: ASGIApp, *, graceful_shutdown_s: float = 1.0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            http="h11",
            timeout_graceful_shutdown=max(1, round(graceful_shutdown_s)),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``, without a trailing slash."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start serving and wait until uvicorn accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._sock.close()
                raise RuntimeError("the test server did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        """Ask uvicorn to exit, wait for the thread, and release the socket."""
        self._server.should_exit = True
        self._thread.join(_STOP_TIMEOUT_S)
        self._sock.close()
        if self._thread.is_alive():
            raise RuntimeError("the test server did not stop")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
