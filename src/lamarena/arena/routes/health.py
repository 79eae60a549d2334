"""``GET /healthz``: 200 when the database answers, 503 otherwise."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from lamarena.arena.deps import ArenaDep
from lamarena.arena.schemas import Health
from lamarena.store.db import database_errors

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(arena: ArenaDep) -> Health:
    """Check that the database answers a trivial query."""
    with (
        database_errors(arena.engine, "checking health", "try again"),
        arena.engine.connect() as connection,
    ):
        connection.execute(text("SELECT 1"))
    return Health(status="ok")
