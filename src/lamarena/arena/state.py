"""What one running arena holds: settings, database, built models, and in-process fast paths.

An :class:`Arena` is built by the app's lifespan (never at import) and stored on
``app.state.arena``; routes reach it through :data:`lamarena.arena.deps.ArenaDep`. Its in-memory
parts (live battles, the leaderboard document, the sampling generator) are caches and fast paths:
the database holds everything another worker would need.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Engine

from lamarena.arena.conversations import Conversations
from lamarena.arena.identification import SelfIdentification
from lamarena.arena.leaderboard import FitOptions, LeaderboardRefresher
from lamarena.arena.live import LiveBattles
from lamarena.arena.sampling import ActiveDesign, Strategy
from lamarena.audio import AudioLimits
from lamarena.models.base import AudioModel, ModelTimeouts, Transcriber
from lamarena.models.registry import ModelEntry
from lamarena.settings import Settings
from lamarena.store.db import (
    WriteSessions,
    database_errors,
    database_identity,
    make_sessionmaker,
    reader,
)
from lamarena.store.hashing import store_salt

__all__ = ["Arena", "ArenaModel", "ArenaOptions"]


@dataclass(frozen=True)
class ArenaOptions:
    """Arena behaviour that is not part of :class:`~lamarena.settings.Settings`.

    Attributes:
        sampling: how pairs are drawn: ``uniform``, ``balanced`` (towards rare pairs) or
            ``active`` (see :mod:`lamarena.arena.sampling`; tuned by the ``sampling_*``
            settings).
        seed: seed of the pair sampler; None draws one from the OS.
        battles_per_minute: battles one session may start per minute.
        leaderboard_resamples: bootstrap rounds of ``GET /api/leaderboard``.
        audio_limits: bounds on the uploaded query.
        reply_poll_s: how often a stream not served by the generating process polls the store.
        lost_reply_grace_s: how long after the total model timeout a missing reply counts as lost.
    """

    sampling: Strategy = "balanced"
    seed: int | None = None
    battles_per_minute: int = 10
    leaderboard_resamples: int = 1_000
    audio_limits: AudioLimits = field(default_factory=AudioLimits)
    reply_poll_s: float = 0.25
    lost_reply_grace_s: float = 30.0


@dataclass(frozen=True)
class ArenaModel:
    """A built model of the arena and the limit on its concurrent requests."""

    entry: ModelEntry
    adapter: AudioModel
    semaphore: asyncio.Semaphore | None


class Arena:
    """The state of one running arena app (one per process, built in the lifespan)."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        models: dict[str, ArenaModel],
        options: ArenaOptions,
        transcriber: Transcriber | None = None,
        *,
        server_run: str = "",
    ) -> None:
        self.settings = settings
        self.transcriber = transcriber
        self.engine = engine
        self.sessionmaker = WriteSessions(engine)
        """Write transactions (queued in this process on SQLite)."""
        self.read_sessionmaker = make_sessionmaker(reader(engine))
        self.database_identity = database_identity(engine)
        self.models = models
        self.options = options
        self.timeouts = ModelTimeouts(
            first_token_s=settings.model_first_token_timeout_s,
            total_s=settings.model_total_timeout_s,
        )
        self.live = LiveBattles()
        self.conversations = Conversations(settings.conversation_memory_s)
        """Earlier turns of the conversations this process serves (a later turn needs them)."""
        self.tasks: set[asyncio.Task[None]] = set()
        self._rng = random.Random(options.seed)
        self.rng_lock = threading.Lock()
        self.active_design: ActiveDesign | None = None
        """The cached active design (``sampling="active"`` only)."""
        if options.sampling == "active":
            self.active_design = ActiveDesign(
                list(models),
                floor=settings.sampling_floor,
                focus=settings.sampling_focus,
                refresh_battles=settings.sampling_refresh_battles,
                refresh_s=settings.sampling_refresh_s,
            )
        self.leaderboard = LeaderboardRefresher(
            engine,
            self.read_sessionmaker,
            FitOptions(
                n_resamples=options.leaderboard_resamples,
                seed=settings.seed,
                min_battles=settings.min_battles,
            ),
            refresh_s=settings.leaderboard_refresh_s,
            fit_at_start=settings.leaderboard_fit_at_start,
        )
        """The leaderboard document, refitted in the background (the lifespan runs it)."""
        self._salt: str | None = None
        self.server_run = server_run
        """This ``serve`` run (shared by its workers): battles it left generating are lost."""
        extra_terms = (settings.self_identification_terms or "").split(",")
        # a pipeline's id is "asr -> llm": each part names a model
        ids = [part for model in models.values() for part in model.entry.model.split("->")]
        self.identification = SelfIdentification.build([*models, *ids], extra_terms)
        self.open_streams: Counter[str] = Counter()
        """Reply streams open in this process, per session."""
        self.battle_starts = asyncio.Semaphore(settings.battle_starts_at_once)
        """Uploads being decoded and stored now; the rest queue in arrival order (FIFO)."""

    def load_salt(self) -> str:
        """The database's salt of client and session hashes, read once (blocking).

        Raises:
            DatabaseError: the database cannot be read.
        """
        if self._salt is None:
            with (
                database_errors(self.engine, "reading the store's salt", "try again"),
                self.sessionmaker.begin() as session,
            ):
                self._salt = store_salt(session)
        return self._salt

    @property
    def salt(self) -> str | None:
        """The salt once :meth:`load_salt` has read it, else None."""
        return self._salt

    @property
    def rng(self) -> random.Random:
        """The pair sampler's generator; use it under :attr:`rng_lock`."""
        return self._rng
