"""Typed dependencies of the arena's routes."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import Cookie, Depends, Request

from lamarena.arena.limits import client_hash
from lamarena.arena.state import Arena

__all__ = ["SESSION_COOKIE", "ArenaDep", "ClientDep", "SessionIdDep", "get_arena", "get_client"]

SESSION_COOKIE = "lamarena_session"
"""The cookie holding the arena session id (HttpOnly, SameSite=Lax)."""


async def get_arena(request: Request) -> Arena:
    """The arena of the app serving ``request`` (built by the lifespan).

    Dependencies are ``async`` so FastAPI calls them on the event loop: a plain ``def`` costs
    every request a round trip through the thread pool.
    """
    arena: Arena = request.app.state.arena
    return arena


async def get_client(request: Request) -> str:
    """The salted hash of the client's address (see :mod:`lamarena.arena.limits`).

    Raises:
        DatabaseError: the salt cannot be read (the first time only).
    """
    arena: Arena = request.app.state.arena
    salt = arena.salt
    if salt is None:  # the first request reads it from the database
        salt = await anyio.to_thread.run_sync(arena.load_salt)
    return client_hash(salt, request.client.host if request.client else None)


ArenaDep = Annotated[Arena, Depends(get_arena)]
ClientDep = Annotated[str, Depends(get_client)]
"""The requesting client, as the salted hash of its address."""
SessionIdDep = Annotated[str | None, Cookie(alias=SESSION_COOKIE)]
