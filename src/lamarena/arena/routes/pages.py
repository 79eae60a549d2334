"""The arena's web pages: welcome (``/``), the battle page (``/arena``) and ``/leaderboard``.

Server-rendered Jinja2 templates (autoescaped) plus plain JavaScript from ``/static``; the
scripts talk to the JSON API only, so the pages hold no state of their own.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates

from lamarena.arena.deps import ArenaDep
from lamarena.store.tables import ID_LENGTH

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "router"]

_HERE = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = _HERE / "templates"
"""The pages' Jinja2 templates."""
STATIC_DIR = _HERE / "static"
"""The stylesheet and scripts served under ``/static``."""

router = APIRouter(tags=["pages"], include_in_schema=False)
templates = Jinja2Templates(directory=TEMPLATES_DIR)

_PLOTLY_JS = resources.files("plotly") / "package_data" / "plotly.min.js"
"""plotly.js as shipped inside the plotly Python package: the leaderboard needs no CDN."""

PidQuery = Annotated[str | None, Query(description="External participant id (Prolific).")]


def _clean_pid(pid: str | None) -> str:
    """The participant id to carry through, or "" (the API validates it when it is used)."""
    return (pid or "").strip()[:ID_LENGTH]


def _completion_votes(arena: ArenaDep) -> int:
    """Votes a participant casts before the completion code (0: no code configured)."""
    return arena.settings.completion_votes if arena.settings.completion_code else 0


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes", "on")


@router.get("/", response_class=HTMLResponse)
def welcome(request: Request, arena: ArenaDep, pid: PidQuery = None) -> HTMLResponse:
    """Instructions, the consent checkbox and the Start button (carries ``pid``)."""
    context = {"pid": _clean_pid(pid), "completion_votes": _completion_votes(arena)}
    return templates.TemplateResponse(request, "index.html", context)


@router.get("/arena", response_class=HTMLResponse)
def arena_page(
    request: Request,
    arena: ArenaDep,
    pid: PidQuery = None,
    consent: Annotated[str | None, Query(description="'true' to keep the recording.")] = None,
) -> HTMLResponse:
    """Record or upload a query, watch both replies stream in, speak again or vote, reveal."""
    context = {
        "pid": _clean_pid(pid),
        "consent": _truthy(consent),
        "completion_votes": _completion_votes(arena),
        "spoken_reasons": arena.transcriber is not None,
        "max_turns": arena.settings.max_turns,
        "mode": arena.settings.mode,
        "hide_transcripts": arena.settings.hide_transcripts,
        "min_listen_s": arena.settings.min_listen_s,
    }
    return templates.TemplateResponse(request, "arena.html", context)


@router.get("/leaderboard", response_class=HTMLResponse)
def leaderboard_page(request: Request) -> HTMLResponse:
    """Ratings with intervals and the win-rate matrix, drawn from ``/api/leaderboard``."""
    return templates.TemplateResponse(request, "leaderboard.html", {})


@router.get("/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    """plotly.js from the installed plotly package, so the leaderboard works offline."""
    return FileResponse(
        str(_PLOTLY_JS),
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )
