"""One APIRouter per resource of the arena's HTTP API."""

from lamarena.arena.routes.battles import router as battles_router
from lamarena.arena.routes.health import router as health_router
from lamarena.arena.routes.leaderboard import router as leaderboard_router
from lamarena.arena.routes.pages import router as pages_router
from lamarena.arena.routes.votes import router as votes_router

__all__ = ["battles_router", "health_router", "leaderboard_router", "pages_router", "votes_router"]
