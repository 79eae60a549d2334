"""The arena's FastAPI app: :func:`create_app` builds it, its lifespan owns start-up and shut-down.

Nothing is built at import. The lifespan opens the database (``make_engine`` then
``migrate_to_head``) unless an engine is given, builds the model adapters and loads the weights of
those that have a ``load()`` (in-process models; one log line each), so the first battle does not
wait for them and a model that cannot load stops the start with its name; it runs the leaderboard's
background refresher (:mod:`lamarena.arena.leaderboard`) and gives its first fit up to
``FIRST_WAIT_S`` before it serves. At shut-down it cancels the refresher and the battles still
generating, closes the adapters and disposes of the engine it made. One exception handler turns
every :class:`~lamarena.errors.LamarenaError` into its HTTP status with the body ``{"error": code,
"message": ...}``; database and model failures get a generic message (the details, which name
servers and URLs, go to the log only).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from lamarena.arena.battles import mark_abandoned_battles, note_refused_upload
from lamarena.arena.connections import (
    BodyTimeoutMiddleware,
    install_access_log_filter,
    server_options,
)
from lamarena.arena.limits import client_hash
from lamarena.arena.routes import (
    battles_router,
    health_router,
    leaderboard_router,
    pages_router,
    votes_router,
)
from lamarena.arena.routes.pages import STATIC_DIR
from lamarena.arena.security import (
    FORM_OVERHEAD_BYTES,
    BodyLimitMiddleware,
    SameOriginMiddleware,
)
from lamarena.arena.state import Arena, ArenaModel, ArenaOptions
from lamarena.errors import (
    AlreadyVoted,
    ConfigError,
    ConversationClosed,
    DatabaseError,
    InvalidInputError,
    LamarenaError,
    ModelError,
    NotFound,
    RateLimited,
    RepliesPending,
    StorageFull,
    Unavailable,
)
from lamarena.models.base import Transcriber
from lamarena.models.registry import (
    ModelEntry,
    arena_transcriber,
    check_output_mode,
    model_entries,
)
from lamarena.settings import Settings, export_settings, load_settings
from lamarena.store.db import make_engine, migrate_to_head

__all__ = ["create_app", "run"]

logger = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[LamarenaError], int], ...] = (
    (NotFound, 404),
    (AlreadyVoted, 409),
    (RepliesPending, 409),
    (ConversationClosed, 409),
    (RateLimited, 429),
    (InvalidInputError, 422),
    (ConfigError, 422),
    (ModelError, 503),
    (DatabaseError, 503),
    (StorageFull, 503),
    (Unavailable, 503),
)
_PRIVATE_MESSAGES: dict[type[LamarenaError], str] = {
    DatabaseError: "the database is not available right now; try again in a moment",
    ModelError: "a model is not available right now; try again in a moment",
    ConfigError: "the arena is misconfigured; tell its operator",
}


def _status_of(exc: LamarenaError) -> int:
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def _public_message(exc: LamarenaError) -> str:
    for cls, message in _PRIVATE_MESSAGES.items():
        if isinstance(exc, cls):
            logger.error("%s: %s", exc.code, exc.message)
            return message
    return exc.message


async def _lamarena_error(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, LamarenaError):  # pragma: no cover - registered for LamarenaError
        raise exc
    body = {"error": exc.code, "message": _public_message(exc)}
    headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, RateLimited) else None
    return JSONResponse(body, status_code=_status_of(exc), headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    problems = []
    for error in getattr(exc, "errors", list)():
        where = ".".join(str(part) for part in error.get("loc", ())[1:]) or "request"
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    message = "; ".join(problems) or "the request is not valid"
    return JSONResponse({"error": InvalidInputError.code, "message": message}, status_code=422)


_HTTP_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    429: "rate_limited",
}


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    """The framework's own errors (unknown route, wrong method, unreadable form) in our shape."""
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover - registered for it
        raise exc
    status = exc.status_code
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else "request refused"
    if status == 404 and message == "Not Found":
        message = "no such page or resource"
    body = {"error": _HTTP_CODES.get(status, f"http_{status}"), "message": message}
    return JSONResponse(body, status_code=status, headers=exc.headers)


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    """A bug or an unforeseen failure: the arena's error shape, the details in the log only."""
    logger.error("unexpected error: %r", exc)
    body = {"error": "internal_error", "message": "something went wrong on the server; try again"}
    return JSONResponse(body, status_code=500)


async def _count_refusal(scope: Scope) -> None:
    """Count a 413 toward the address's battle budget (the body-limit middleware calls it)."""
    arena = getattr(scope["app"].state, "arena", None)
    if arena is None:
        return
    client = scope.get("client")
    try:
        salt = await anyio.to_thread.run_sync(arena.load_salt)
    except DatabaseError:
        return
    await anyio.to_thread.run_sync(
        note_refused_upload, arena, client_hash(salt, client[0] if client else None)
    )


async def _close(adapter: object) -> None:
    close = getattr(adapter, "aclose", None)
    if close is not None:
        try:
            await close()
        except Exception:  # one adapter failing to close must not keep the others open
            logger.exception("closing a model adapter failed")


def _build_models(entries: Sequence[ModelEntry]) -> dict[str, ArenaModel]:
    names = [entry.name for entry in entries]
    if len(set(names)) < 2 or len(set(names)) != len(names):
        raise ConfigError(
            f"the arena needs at least two models with different names; configured: {names}"
        )
    models: dict[str, ArenaModel] = {}
    for entry in entries:
        semaphore = (
            asyncio.Semaphore(entry.max_concurrency) if entry.max_concurrency is not None else None
        )
        models[entry.name] = ArenaModel(entry=entry, adapter=entry.build(), semaphore=semaphore)
    return models


async def _load_models(
    models: dict[str, ArenaModel], transcriber: Transcriber | None = None
) -> None:
    """Load every adapter that has a ``load()`` (and the arena's own recogniser), one by one.

    Raises:
        ModelError: one cannot load; the message names the model.
    """
    adapters: list[tuple[str, object]] = [(name, m.adapter) for name, m in models.items()]
    if transcriber is not None and not any(transcriber is a for _, a in adapters):
        adapters.append((getattr(transcriber, "name", "the arena's transcriber"), transcriber))
    for name, adapter in adapters:
        load = getattr(adapter, "load", None)
        if load is None:
            continue
        logger.info("loading %s ...", name)
        started = time.perf_counter()
        try:
            await load()
        except ModelError as exc:
            logger.error("loading %s failed: %s", name, exc.message)
            raise
        logger.info("loading %s ... done in %.1f s", name, time.perf_counter() - started)


def create_app(
    settings: Settings,
    *,
    entries: list[ModelEntry] | None = None,
    engine: Engine | None = None,
    options: ArenaOptions | None = None,
    transcriber: Transcriber | None = None,
) -> FastAPI:
    """Build the arena app; its lifespan connects the database and builds the models.

    Args:
        settings: where the database and kept audio live, time limits, leaderboard options.
        entries: the models to pit against each other; ``model_entries(settings)`` when None.
        engine: a database engine to use as it is (not migrated, not disposed of); when None
            the lifespan makes one from ``settings.database_url`` and migrates it to head.
        options: sampling, rate limit and other arena behaviour.
        transcriber: the speech recogniser for query transcripts and spoken reasons (the app
            closes it at shut-down); when None, models.yaml's ``transcriber`` or a pipeline
            model's ASR (see :func:`~lamarena.models.registry.arena_transcriber`).

    Returns:
        The app, ready for uvicorn (its lifespan must run).
    """
    arena_options = options or ArenaOptions()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_engine = engine is None
        db = make_engine(settings.database_url) if engine is None else engine
        models: dict[str, ArenaModel] = {}
        built_transcriber: Transcriber | None = None
        try:
            if own_engine:
                await anyio.to_thread.run_sync(migrate_to_head, db)
            chosen = list(entries) if entries is not None else model_entries(settings)
            check_output_mode(chosen, settings.mode)
            # Building a local model loads its weights: keep that off the event loop.
            models = await anyio.to_thread.run_sync(_build_models, chosen)
            adapters = [model.adapter for model in models.values()]
            recogniser = transcriber or arena_transcriber(settings, adapters)
            if not any(recogniser is getattr(a, "transcriber", None) for a in adapters):
                built_transcriber = recogniser  # not a model's own ASR: closed at shut-down
            await _load_models(models, built_transcriber)
            run_id = settings.server_run_id or secrets.token_hex(16)
            arena = Arena(
                settings, db, models, arena_options, transcriber=recogniser, server_run=run_id
            )
            try:
                await anyio.to_thread.run_sync(arena.load_salt)
                await anyio.to_thread.run_sync(mark_abandoned_battles, arena)
            except DatabaseError as exc:  # the arena still starts: /healthz says what is wrong
                logger.error("the database is not available at start: %s", exc.message)
            app.state.arena = arena
            refresher = asyncio.create_task(arena.leaderboard.run(), name="leaderboard")
            try:
                await arena.leaderboard.first_fit()  # so that no request waits for it
                logger.info("arena ready with %d models", len(models))
                yield
            finally:  # a fit still running in its thread is abandoned, not waited for
                refresher.cancel()
                await asyncio.gather(refresher, return_exceptions=True)
            tasks = list(arena.tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for model in models.values():
                await _close(model.adapter)
            if built_transcriber is not None:
                await _close(built_transcriber)
            if own_engine:
                db.dispose()

    app = FastAPI(title="lamarena arena", lifespan=lifespan)
    app.add_exception_handler(LamarenaError, _lamarena_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    max_audio = arena_options.audio_limits.max_bytes
    if max_audio is not None:
        app.add_middleware(
            BodyLimitMiddleware,
            max_bytes=max_audio + FORM_OVERHEAD_BYTES,
            on_refused=_count_refusal,
        )
    app.add_middleware(SameOriginMiddleware)
    # the outermost: a body that stalls or trickles is cut before anything else waits on it
    app.add_middleware(BodyTimeoutMiddleware, body_timeout_s=settings.body_timeout_s)
    for router in (battles_router, votes_router, leaderboard_router, health_router, pages_router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def create_app_from_environment() -> FastAPI:
    """The app for settings read from ``LAMARENA_*`` variables (uvicorn's worker processes)."""
    install_access_log_filter()  # each worker process configures its own logging
    settings = load_settings()
    return create_app(settings, options=ArenaOptions(sampling=settings.sampling))


def _proxy_options(settings: Settings) -> dict[str, Any]:
    """Trust ``X-Forwarded-For`` only from the proxies ``--forwarded-allow-ips`` names.

    uvicorn trusts 127.0.0.1 by default, so on loopback any script could name itself a new
    address per request and escape the limits per address.
    """
    allowed = settings.forwarded_allow_ips
    return {"proxy_headers": bool(allowed), "forwarded_allow_ips": allowed or ""}


def run(settings: Settings, *, entries: list[ModelEntry] | None = None) -> None:
    """Serve the arena with uvicorn on ``settings.host:settings.port`` (blocks until stopped).

    With ``settings.workers`` above 1, uvicorn starts that many processes, each building its
    app from the environment (:func:`create_app_from_environment`); they share nothing but the
    database, so use PostgreSQL for several workers. All workers of one call share one
    ``server_run_id``, so none marks another's battles lost when it starts.
    """
    settings = settings.model_copy(update={"server_run_id": secrets.token_hex(16)})
    # header read deadline, keep-alive and header size bounds (see arena.connections)
    options = {**server_options(settings.header_timeout_s), **_proxy_options(settings)}
    if settings.workers > 1:
        if entries is not None:
            raise ConfigError("several workers build their models from models.yaml, not a list")
        export_settings(settings)
        uvicorn.run(
            "lamarena.arena.app:create_app_from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level="info",
            **options,
        )
        return
    install_access_log_filter()
    uvicorn.run(
        create_app(settings, entries=entries, options=ArenaOptions(sampling=settings.sampling)),
        host=settings.host,
        port=settings.port,
        log_level="info",
        **options,
    )
