"""Typed dependencies of the arena's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Cookie, Depends, Request

from lamarena.arena.state import Arena

__all__ = ["SESSION_COOKIE", "ArenaDep", "SessionIdDep", "get_arena"]

SESSION_COOKIE = "lamarena_session"
"""The cookie holding the arena session id (HttpOnly, SameSite=Lax)."""


def get_arena(request: Request) -> Arena:
    """The arena of the app serving ``request`` (built by the lifespan)."""
    arena: Arena = request.app.state.arena
    return arena


ArenaDep = Annotated[Arena, Depends(get_arena)]
SessionIdDep = Annotated[str | None, Cookie(alias=SESSION_COOKIE)]
