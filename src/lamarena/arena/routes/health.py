"""``GET /healthz``: 200 when a write transaction commits on the database the arena opened."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from lamarena.arena.deps import ArenaDep
from lamarena.arena.schemas import Health
from lamarena.store.db import check_database_identity, database_errors
from lamarena.store.tables import HealthCheck

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(arena: ArenaDep) -> Health:
    """Check that the store takes writes: the file opened at start, and a write that commits.

    A ``SELECT 1`` answers on a read-only database, and on an SQLite file deleted while the
    arena runs; votes would then be acknowledged and lost. 503 in either case.
    """
    check_database_identity(arena.database_identity)
    with (
        database_errors(arena.engine, "checking health", "the database does not take writes"),
        arena.sessionmaker.begin() as session,
    ):
        session.merge(HealthCheck(id=1, checked_at=datetime.now(UTC)))
    return Health(status="ok")
