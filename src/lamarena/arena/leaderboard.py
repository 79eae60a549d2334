"""The arena's leaderboard document, refitted in the background so that no request waits for it.

Votes on text replies (text-out) and on spoken replies (speech-out) are never pooled. The page's
main leaderboard ranks the votes of one mode: the text-out ones when there are both (``mode`` names
it, ``battles_by_mode`` counts each mode); ``by_mode`` then ranks each mode on its own votes, and
``by_turns`` ranks the main leaderboard's votes per conversation depth. Each grouped document (see
:mod:`lamarena.analysis.ranking.grouped`) is computed only when more than one of its groups has
battles, else it is None, so an arena of one mode and one-turn votes fits one leaderboard.

Refitting reads the counts the store keeps as votes arrive (``cluster_pair_counts``: one row per
cluster, pair, mode and depth; see :mod:`lamarena.store.vote_counts`), not the votes, and bootstraps
the ratings from them; only votes drawn with unequal pair probabilities, which the leaderboard
weights one by one, are read themselves (as integer columns). Clusters are numbered in key order
(counts do not know who voted first), so a bootstrap here and one of ``leaderboard --db`` draw
different, equally valid rounds. Each arena process keeps one :class:`LeaderboardRefresher`, whose
:meth:`~LeaderboardRefresher.run` the app's lifespan runs as a task. From the process's start
(``leaderboard_fit_at_start``, the default: the process serves once its first fit ended, or after
:data:`FIRST_WAIT_S`), or else once a request has asked for the leaderboard (a worker nobody asks
then never fits), it counts the votes (one ``COUNT``) every ``leaderboard_refresh_s`` seconds after
the last check ended, and refits in a worker thread only when the count changed. A request gets the
last document at once, never waiting for a fit, with ``status`` ("ready"), ``n_votes`` (the stored
votes when it was read), ``computed_at`` (UTC, when the fit ended), ``fit_s`` and ``age_s`` (seconds
since ``computed_at``). Only the first fit of a process is waited for, until :data:`FIRST_WAIT_S`
after the start (or, not fitting at start, after the first request); past that a request gets
``{"status": "computing", ...}`` (HTTP 200) and the page asks again shortly. A refresh that fails
(the database, too few votes, a bug) keeps the last good document and reports the failure as
``refresh_error`` (``{"error", "message"}``; logged once per distinct failure); with no document
yet, the failure itself is the answer (503 for the database). Several workers each keep their own
refresher and share only the database. ``leaderboard_refresh_s = 0`` turns the background off: a
request refits on a worker thread whenever the count changed, as before (it blocks that request).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from lamarena.analysis.encoded import (
    MODE_CODES,
    EncodedBattles,
    encode_columns,
    encode_counts,
    encode_frame,
)
from lamarena.analysis.ranking.grouped import (
    DEPTHS,
    depth_labels,
    leaderboards_by_depth,
    leaderboards_by_mode,
)
from lamarena.analysis.ranking.leaderboard import build_leaderboard
from lamarena.analysis.ranking.modes import MODES
from lamarena.errors import DatabaseError, LamarenaError
from lamarena.store.columnar_store import session_columns
from lamarena.store.db import database_errors
from lamarena.store.tables import Vote
from lamarena.store.vote_counts import OUTCOMES
from lamarena.store.vote_counts_read import read_cluster_pair_counts

__all__ = [
    "FIRST_WAIT_S",
    "FitOptions",
    "LeaderboardRefresher",
    "LeaderboardSnapshot",
    "count_votes",
    "encoded_counts",
    "fit_leaderboard",
    "leaderboard_document",
]

logger = logging.getLogger(__name__)

FIRST_WAIT_S = 5.0
"""Seconds the first request of a process waits for the first fit before it is told "computing"."""

_COMPUTING_MESSAGE = "the leaderboard is being computed; ask again in a few seconds"
_UNEXPECTED_MESSAGE = "refreshing the leaderboard failed; the ratings are from the last refresh"
_DATABASE_MESSAGE = "the votes could not be read; the ratings are from the last refresh"


def _empty(note: str | None = None) -> dict[str, Any]:
    """The document of no ranked battles."""
    document: dict[str, Any] = {"n_battles": 0, "models": [], "pairwise": [], "head_to_head": []}
    if note is not None:
        document["note"] = note
    return document


def leaderboard_document(
    battles: pd.DataFrame | EncodedBattles, *, n_resamples: int, seed: int | None, min_battles: int
) -> dict[str, Any]:
    """The ``/api/leaderboard`` document of the counted battles.

    Args:
        battles: the counted battles: a frame (``repo.battles_frame``; ``mode`` and ``n_turns``
            optional) or their integer columns or counts (:mod:`lamarena.analysis.encoded`).
        n_resamples: bootstrap rounds of every leaderboard.
        seed: bootstrap seed.
        min_battles: fewer battles than this make a model provisional.

    Returns:
        The ``leaderboard --json`` document of the main mode's votes plus ``mode``,
        ``battles_by_mode`` (``{"text", "speech"}`` counts), ``by_mode`` and ``by_turns`` (the
        ``leaderboard --by mode|turns --json`` documents, or None).
    """
    options: dict[str, Any] = {
        "n_resamples": n_resamples,
        "seed": seed,
        "min_battles": min_battles,
    }
    encoded = battles if isinstance(battles, EncodedBattles) else encode_frame(battles)
    counts = encoded.mode_counts()
    present = [mode for mode in MODES if counts[mode]]
    mode = present[0] if present else "text"
    by_mode: dict[str, Any] | None = None
    if encoded.n_battles == 0:
        document = _empty()
    elif len(present) > 1:
        by_mode = leaderboards_by_mode(encoded, **options)
        group = next(group for group in by_mode["groups"] if group["group"] == mode)
        document = dict(group["leaderboard"] or _empty(group["note"]))
    else:
        document = build_leaderboard(encoded, **options).to_dict()
    main = encoded.take(encoded.mode == MODE_CODES[mode])
    by_turns: dict[str, Any] | None = None
    if main.n_battles:
        depths = depth_labels(main.n_turns)
        if sum(1 for depth in DEPTHS if (depths == depth).any()) > 1:
            by_turns = leaderboards_by_depth(main, **options)
    document["mode"] = mode
    document["battles_by_mode"] = counts
    document["by_mode"] = by_mode
    document["by_turns"] = by_turns
    return document


@dataclass(frozen=True)
class FitOptions:
    """How the arena fits its leaderboard.

    Attributes:
        n_resamples: bootstrap rounds of every leaderboard.
        seed: bootstrap seed.
        min_battles: fewer battles than this make a model provisional.
    """

    n_resamples: int
    seed: int | None
    min_battles: int


@dataclass(frozen=True)
class LeaderboardSnapshot:
    """One fitted document and when it was made.

    Attributes:
        document: the :func:`leaderboard_document` of the counted votes.
        n_votes: the stored votes (counted or not) when they were read.
        computed_at: when the fit ended (UTC).
        computed_monotonic: the same on ``time.monotonic``'s clock (for ``age_s``).
        fit_s: seconds the read and the fit took.
    """

    document: dict[str, Any]
    n_votes: int
    computed_at: datetime
    computed_monotonic: float
    fit_s: float


def count_votes(engine: Engine, sessions: sessionmaker[Session]) -> int:
    """The number of stored votes (one ``COUNT``: how a refresher tells that votes arrived).

    Raises:
        DatabaseError: the votes cannot be counted.
    """
    with database_errors(engine, "counting the votes", "try again"), sessions() as session:
        return session.scalar(select(func.count(Vote.id))) or 0


def fit_leaderboard(
    engine: Engine, sessions: sessionmaker[Session], options: FitOptions
) -> LeaderboardSnapshot:
    """Read the stored votes and fit their :func:`leaderboard_document` (blocking: a thread).

    Raises:
        DatabaseError: the votes cannot be read.
        InsufficientData: a statistic of the document cannot be computed.
    """
    started = time.perf_counter()
    n_votes, frame = _read_votes(engine, sessions)
    return _fit_frame(frame, n_votes, options, started)


def _read_votes(engine: Engine, sessions: sessionmaker[Session]) -> tuple[int, EncodedBattles]:
    """The vote count and the counted battles, read in one session (the count first).

    The battles come from the counts the store keeps as votes arrive (``cluster_pair_counts``:
    one row per cluster, pair, mode and depth), unless the votes were drawn with unequal pair
    probabilities and every one has its probability: then the leaderboard weights each battle,
    and the votes themselves are read (as integer columns).
    """
    with database_errors(engine, "reading the votes", "try again"), sessions() as session:
        n_votes = session.scalar(select(func.count(Vote.id))) or 0
        counts = read_cluster_pair_counts(session, columns=_COUNT_COLUMNS)
        encoded = encoded_counts(counts)
        if encoded is None:
            encoded = encode_columns(session_columns(session))
        return n_votes, encoded


_COUNT_COLUMNS = (*OUTCOMES, "missing_probability", "min_probability", "max_probability")


def encoded_counts(counts: pd.DataFrame) -> EncodedBattles | None:
    """The battles of ``cluster_pair_counts`` rows, or None when only the votes will do.

    None when every battle has a sampling probability and they are not all equal: the
    leaderboard then weights each battle by its inverse (``weights="auto"``), which counts
    cannot do.
    """
    missing = counts["missing_probability"].to_numpy(np.int64)
    if len(counts) and int(missing.sum()) == 0:
        low = float(counts["min_probability"].min(skipna=True))
        high = float(counts["max_probability"].max(skipna=True))
        if not np.isclose(high, low, rtol=1e-9, atol=0.0):
            return None
    outcomes = counts[list(OUTCOMES)].to_numpy(np.int64)  # (R, 4): outcome codes 0..3
    rows = len(counts)
    # a row's battles without a probability go with its first outcome that has battles
    first_kept = np.argmax(outcomes > 0, axis=1) if rows else np.zeros(0, np.intp)
    missing_by_outcome = np.zeros_like(outcomes)
    missing_by_outcome[np.arange(rows), first_kept] = missing
    # one row per (counts row, outcome) with battles: take each column once, at those rows
    kept = outcomes.ravel() > 0
    row = np.repeat(np.arange(rows), 4)[kept]
    return encode_counts(
        model_a=counts["model_first"].to_numpy(object)[row],
        model_b=counts["model_second"].to_numpy(object)[row],
        outcome=np.tile(np.arange(4, dtype=np.int8), rows)[kept],
        count=outcomes.ravel()[kept],
        cluster_key=counts["cluster"].to_numpy(object)[row],
        mode=np.asarray(counts["mode"].map(MODE_CODES).to_numpy(np.int8)[row], dtype=np.int8),
        n_turns=counts["n_turns"].to_numpy(np.int64)[row],
        missing_probability=missing_by_outcome.ravel()[kept],
    )


def _fit_frame(
    frame: EncodedBattles, n_votes: int, options: FitOptions, started: float
) -> LeaderboardSnapshot:
    document = leaderboard_document(
        frame,
        n_resamples=options.n_resamples,
        seed=options.seed,
        min_battles=options.min_battles,
    )
    return LeaderboardSnapshot(
        document=document,
        n_votes=n_votes,
        computed_at=datetime.now(UTC),
        computed_monotonic=time.monotonic(),
        fit_s=time.perf_counter() - started,
    )


def _encode(document: dict[str, Any]) -> bytes:
    """JSON as Starlette's ``JSONResponse`` writes it."""
    text = json.dumps(document, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8")


def _public(error: BaseException) -> dict[str, str]:
    """``refresh_error``: the failure without details that name servers or paths."""
    if isinstance(error, DatabaseError):
        return {"error": error.code, "message": _DATABASE_MESSAGE}
    if isinstance(error, LamarenaError):
        return {"error": error.code, "message": error.message}
    return {"error": "internal_error", "message": _UNEXPECTED_MESSAGE}


@dataclass(frozen=True)
class _Published:
    """What requests are served: a snapshot and its JSON body (without ``age_s``)."""

    snapshot: LeaderboardSnapshot
    body: bytes


def _publish(snapshot: LeaderboardSnapshot, error: BaseException | None) -> _Published:
    """Encode ``snapshot`` once (a few ms at 50 models), so a request only adds its age."""
    document = {
        **snapshot.document,
        "status": "ready",
        "n_votes": snapshot.n_votes,
        "computed_at": snapshot.computed_at.isoformat(),
        "fit_s": round(snapshot.fit_s, 3),
        "refresh_error": None if error is None else _public(error),
    }
    return _Published(snapshot, _encode(document))


class LeaderboardRefresher:
    """The leaderboard of one arena process, kept fresh by :meth:`run` (see the module docstring).

    Args:
        engine: the arena's database.
        sessions: read-only sessions on it.
        options: how to fit.
        refresh_s: seconds between checks for new votes; 0 refits on the request instead.
        fit_at_start: fit as soon as :meth:`run` starts, not at the first request.
    """

    def __init__(
        self,
        engine: Engine,
        sessions: sessionmaker[Session],
        options: FitOptions,
        *,
        refresh_s: float,
        fit_at_start: bool = True,
    ) -> None:
        self.engine = engine
        self.fit_at_start = fit_at_start
        self.sessions = sessions
        self.options = options
        self.refresh_s = refresh_s
        self._published: _Published | None = None
        self._failure: BaseException | None = None
        self._logged: set[str] = set()
        """The failures logged since the last good refresh (each is logged once)."""
        self._wanted = asyncio.Event()
        self._attempted = asyncio.Event()
        self._first_deadline: float | None = None
        """When requests stop waiting for the first fit (:data:`FIRST_WAIT_S` after the first)."""
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # the blocking path (refresh_s == 0) only

    async def run(self) -> None:
        """Refresh the document until cancelled (the lifespan's task; returns at once at 0 s).

        Starts at once (``fit_at_start``) or at the first request, then checks every
        ``refresh_s`` seconds after the previous check (and fit) ended, so a fit of a minute
        leaves the worker thread idle between fits.
        """
        if self.refresh_s <= 0:
            return
        try:
            if not self.fit_at_start:
                await self._wanted.wait()
            while True:
                await self._refresh()
                self._attempted.set()
                await asyncio.sleep(self.refresh_s)
        finally:
            self._stopping.set()  # a fit still running in its thread stops at its next step

    async def first_fit(self) -> None:
        """At start-up, with ``fit_at_start``: give the first fit up to :data:`FIRST_WAIT_S`.

        The lifespan awaits this before the process serves, so that no request waits for a
        fit; a fit that takes longer goes on in the background, and requests get
        ``status: computing`` until it ends.
        """
        if self.refresh_s <= 0 or not self.fit_at_start:
            return
        self._first_deadline = time.monotonic() + FIRST_WAIT_S
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._attempted.wait(), FIRST_WAIT_S)

    async def response_body(self) -> bytes:
        """The JSON body of ``GET /api/leaderboard``, at once (see the module docstring).

        Raises:
            LamarenaError: there is no document yet and the last refresh failed (a
                ``DatabaseError`` when the votes cannot be read).
        """
        if self.refresh_s <= 0:
            await anyio.to_thread.run_sync(self._refresh_blocking)
        elif self._published is None and not self._attempted.is_set():
            self._wanted.set()
            if self._first_deadline is None:
                self._first_deadline = time.monotonic() + FIRST_WAIT_S
            wait_s = self._first_deadline - time.monotonic()
            if wait_s > 0:
                with contextlib.suppress(TimeoutError):  # then "computing"
                    await asyncio.wait_for(self._attempted.wait(), wait_s)
        published = self._published
        if published is None:
            if self._failure is not None:
                raise self._failure.with_traceback(None)
            return _encode(
                {
                    "status": "computing",
                    "message": _COMPUTING_MESSAGE,
                    "n_votes": None,
                    "computed_at": None,
                    "age_s": None,
                    "refresh_error": None,
                }
            )
        age_s = max(0.0, time.monotonic() - published.snapshot.computed_monotonic)
        return published.body[:-1] + b',"age_s":' + f"{age_s:.3f}".encode() + b"}"

    async def _refresh(self) -> None:
        """One check: count the votes, refit if the count changed; failures are kept, not raised."""
        try:
            published = self._published
            n_votes = await anyio.to_thread.run_sync(count_votes, self.engine, self.sessions)
            if published is not None and published.snapshot.n_votes == n_votes:
                if self._failure is not None:  # the document is current again
                    self._recovered()
                    self._published = await anyio.to_thread.run_sync(
                        _publish, published.snapshot, None
                    )
                return
            fitted = await anyio.to_thread.run_sync(self._fit, abandon_on_cancel=True)
        except LamarenaError as exc:
            await self._failed(exc, exc.message)
        except Exception as exc:  # a bug must not stop the refreshes: keep the last document
            await self._failed(exc, repr(exc))
        else:
            if fitted is not None:
                if self._failure is not None:
                    self._recovered()
                self._published = fitted

    def _fit(self) -> _Published | None:
        """:func:`fit_leaderboard`, given up between its steps once :meth:`run` was cancelled."""
        started = time.perf_counter()
        if self._stopping.is_set():
            return None
        n_votes, frame = _read_votes(self.engine, self.sessions)
        if self._stopping.is_set():
            return None
        return _publish(_fit_frame(frame, n_votes, self.options, started), None)

    async def _failed(self, error: BaseException, detail: str) -> None:
        self._failure = error
        text = f"{type(error).__name__}: {detail}"
        if text not in self._logged:
            logger.error("refreshing the leaderboard failed (served: the last one): %s", text)
            self._logged.add(text)
        published = self._published
        if published is not None:
            self._published = await anyio.to_thread.run_sync(_publish, published.snapshot, error)

    def _recovered(self) -> None:
        logger.info("refreshing the leaderboard works again")
        self._failure = None
        self._logged.clear()

    def _refresh_blocking(self) -> None:
        """Refit now if the count changed (``refresh_s == 0``; a worker thread).

        Raises:
            DatabaseError: the votes cannot be read.
        """
        with self._lock:
            published = self._published
            n_votes = count_votes(self.engine, self.sessions)
            if published is None or published.snapshot.n_votes != n_votes:
                self._published = _publish(
                    fit_leaderboard(self.engine, self.sessions, self.options), None
                )
