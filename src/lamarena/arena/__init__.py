"""The interactive arena: an HTTP API where two anonymous models answer a spoken query.

:func:`create_app` builds the FastAPI app (no globals: each call is an independent arena on its
own database); :func:`run` serves one with uvicorn. Only ``lamarena.cli`` imports this package.
"""

from lamarena.arena.app import create_app, run
from lamarena.arena.state import ArenaOptions

__all__ = ["ArenaOptions", "create_app", "run"]
