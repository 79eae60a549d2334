"""The arena's web pages: welcome (``/``), the battle page (``/arena``) and ``/leaderboard``.

Server-rendered Jinja2 templates (autoescaped) plus plain JavaScript from ``/static``; the
scripts talk to the JSON API only, so the pages hold no state of their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from lamarena.store.tables import ID_LENGTH

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "router"]

_HERE = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = _HERE / "templates"
"""The pages' Jinja2 templates."""
STATIC_DIR = _HERE / "static"
"""The stylesheet and scripts served under ``/static``."""

router = APIRouter(tags=["pages"], include_in_schema=False)
templates = Jinja2Templates(directory=TEMPLATES_DIR)

PidQuery = Annotated[str | None, Query(description="External participant id (Prolific).")]


def _clean_pid(pid: str | None) -> str:
    """The participant id to carry through, or "" (the API validates it when it is used)."""
    return (pid or "").strip()[:ID_LENGTH]


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes", "on")


@router.get("/", response_class=HTMLResponse)
def welcome(request: Request, pid: PidQuery = None) -> HTMLResponse:
    """Instructions, the consent checkbox and the Start button (carries ``pid``)."""
    return templates.TemplateResponse(request, "index.html", {"pid": _clean_pid(pid)})


@router.get("/arena", response_class=HTMLResponse)
def arena_page(
    request: Request,
    pid: PidQuery = None,
    consent: Annotated[str | None, Query(description="'true' to keep the recording.")] = None,
) -> HTMLResponse:
    """Record or upload a query, watch both replies stream in, vote, see who was who."""
    context = {"pid": _clean_pid(pid), "consent": _truthy(consent)}
    return templates.TemplateResponse(request, "arena.html", context)


@router.get("/leaderboard", response_class=HTMLResponse)
def leaderboard_page(request: Request) -> HTMLResponse:
    """The ratings table, filled from ``/api/leaderboard`` by a script."""
    return templates.TemplateResponse(request, "leaderboard.html", {})
