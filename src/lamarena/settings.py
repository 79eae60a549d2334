"""One settings object: the only place that reads environment variables.

Precedence: defaults < ``.env`` < ``LAMARENA_*`` environment variables < CLI flags (applied by
the ``lamarena.cli`` commands with :meth:`Settings.model_copy`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from lamarena.errors import ConfigError

__all__ = [
    "DEFAULT_DATABASE_URL",
    "Settings",
    "export_settings",
    "load_settings",
    "read_secret",
]

DEFAULT_DATABASE_URL = "sqlite:///lamarena.db"


class Settings(BaseSettings):
    """Configuration of every lamarena command, built once by a composition root."""

    model_config = SettingsConfigDict(
        env_prefix="LAMARENA_", env_file=".env", extra="ignore", frozen=True
    )

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://user@host/db.",
    )
    models_config: Path | None = Field(
        default=None, description="models.yaml; None means the built-in offline models."
    )
    data_dir: Path = Field(
        default=Path("lamarena-data"), description="Kept audio and caches live here."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=7860, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    bootstrap_rounds: int = Field(default=10_000, ge=0)
    min_battles: int = Field(default=10, ge=0)
    seed: int = 0
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "lamarena",
        description="Converted offline model weights and other caches.",
    )
    local_device: str = Field(default="cpu", description="torch device of in-process models.")
    local_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    model_first_token_timeout_s: float = Field(default=60.0, gt=0)
    model_total_timeout_s: float = Field(default=180.0, gt=0)
    sampling: Literal["uniform", "balanced", "active"] = Field(
        default="uniform",
        description=(
            "How the arena draws pairs: uniform, balanced (rare pairs first), or active (where a "
            "vote sharpens the top of the ranking most, with a floor for every pair)."
        ),
    )
    sampling_floor: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="Share of active draws spread uniformly over every pair (the exposure floor).",
    )
    sampling_focus: int = Field(
        default=3, ge=1, description="Top places whose ratings active sampling sharpens first."
    )
    sampling_refresh_battles: int = Field(
        default=100, ge=1, description="Battles after which active sampling refits its design."
    )
    sampling_refresh_s: float = Field(
        default=60.0, gt=0, description="Seconds after which active sampling refits its design."
    )
    leaderboard_refresh_s: float = Field(
        default=10.0,
        ge=0,
        description=(
            "Seconds between an arena process's checks for new votes: it refits the leaderboard "
            "in the background when the count changed, and requests get the last document at "
            "once (0: a request refits when the count changed, and waits for it)."
        ),
    )
    leaderboard_fit_at_start: bool = Field(
        default=True,
        description=(
            "Fit the leaderboard as soon as an arena process starts, so that no request waits "
            "for a first fit (false: a process fits only once a request asked for it)."
        ),
    )
    completion_votes: int = Field(
        default=0, ge=0, description="Votes after which a participant sees the completion code."
    )
    completion_code: str | None = Field(
        default=None, description="Code shown after completion_votes votes (e.g. Prolific's)."
    )
    equal_pace: bool = Field(
        default=False,
        description="Show both replies at one pace once both have started, so speed is hidden.",
    )
    pace_chars_per_s: float = Field(
        default=40.0, gt=0, le=10_000, description="The pace of --equal-pace, characters a second."
    )
    forwarded_allow_ips: str | None = Field(
        default=None,
        description=(
            "Comma-separated proxy addresses whose X-Forwarded-For names the client "
            "(default: none; the connection's address is the client)."
        ),
    )
    address_battles_per_minute: int = Field(
        default=60, ge=1, description="Battles one client address may start a minute."
    )
    address_votes_per_minute: int = Field(
        default=60, ge=1, description="Votes one client address may cast a minute."
    )
    address_transcriptions_per_minute: int = Field(
        default=20, ge=1, description="Spoken reasons one client address may have transcribed."
    )
    address_refusals_per_minute: int = Field(
        default=30, ge=1, description="Refused uploads after which an address must wait."
    )
    global_battles_per_minute: int = Field(
        default=1_200,
        ge=1,
        description="Battles (and later turns) the whole arena starts a minute, at most.",
    )
    max_turns: int = Field(
        default=5,
        ge=1,
        description="Turns a person may speak in one battle before voting (1: single-turn).",
    )
    mode: Literal["text", "speech"] = Field(
        default="text",
        description=(
            "What the models answer with: text, or speech (every model must then speak: "
            "output: audio; a mixed configuration is refused at start)."
        ),
    )
    hide_transcripts: bool = Field(
        default=False,
        description="In speech mode, never show a spoken reply's text before the vote.",
    )
    min_listen_s: float = Field(
        default=5.0,
        ge=0,
        le=600,
        description=(
            "In speech mode, seconds of each reply a person must hear (or all of a shorter "
            "one) before voting; the server refuses an earlier vote."
        ),
    )
    conversation_memory_s: float = Field(
        default=1800.0,
        gt=0,
        description=(
            "Seconds of earlier-turn audio one arena process holds for conversations still "
            "open; the oldest conversations past it can no longer be continued."
        ),
    )
    transcriptions_per_battle: int = Field(
        default=3, ge=0, description="Spoken reasons transcribed per battle, at most."
    )
    session_max_age_h: float = Field(
        default=24.0, gt=0, description="Hours after which a session cookie starts a new session."
    )
    streams_per_session: int = Field(
        default=4, ge=1, description="Reply streams one session may hold open at once."
    )
    battle_starts_at_once: int = Field(
        default=2,
        ge=1,
        description=(
            "Uploads a worker decodes and stores at once; the rest wait in arrival order, so "
            "under a burst the first to arrive are answered first."
        ),
    )
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="Seconds a connection may take to send request headers."
    )
    body_timeout_s: float = Field(
        default=30.0, gt=0, description="Seconds a request body may pause between chunks."
    )
    self_identification_terms: str | None = Field(
        default=None,
        description=(
            "Comma-separated names that mark a reply as naming its model, added to the built-in "
            "list and the configured model names."
        ),
    )
    server_run_id: str | None = Field(
        default=None,
        description="Set by `serve` for its workers; battles other runs left generating are lost.",
    )
    static_concurrency: int = Field(
        default=8, ge=1, description="Concurrent calls per model in a static run."
    )
    static_cache: Path | None = Field(
        default=None,
        description="SQLite cache of static model and judge calls (default: in cache_dir).",
    )
    pedants_model_dir: Path | None = Field(
        default=None,
        description="Directory holding qa-metrics' PEDANTS model files; None: the package's own.",
    )
    hub_dir: Path | None = Field(
        default=None,
        description=(
            "A local copy of the Hugging Face hub (DIR/OWNER/NAME per dataset repository); "
            "registry datasets then load from it and nothing goes to the network."
        ),
    )
    hub_endpoint: str | None = Field(
        default=None,
        description="The hub `static fetch` downloads from (default: HF_ENDPOINT or the hub).",
    )
    judge_model: str | None = Field(
        default=None, description="Name (in models.yaml) of the LLM judge for open answers."
    )
    debug: bool = Field(default=False, description="Show tracebacks instead of one-line errors.")


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, with non-None overrides (CLI flags) on top.

    Raises:
        ConfigError: a ``LAMARENA_*`` variable or an override has a value of the wrong kind.
    """
    update = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**update)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(_describe(error, update) for error in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from exc


def _describe(error: Any, overrides: dict[str, object]) -> str:
    """One validation problem, named as the user wrote it (a flag or an environment variable)."""
    field = str(error["loc"][0]) if error["loc"] else "?"
    where = f"--{field.replace('_', '-')}" if field in overrides else f"LAMARENA_{field.upper()}"
    return f"{where}={error.get('input')!r}: {error['msg']}"


def read_secret(env_var: str) -> str | None:
    """The value of the environment variable named in models.yaml (``api_key_env``), if set.

    Secrets are read here, at the moment an adapter is built, and never stored in settings,
    logs or exports.
    """
    value = os.environ.get(env_var)
    return value or None


def export_settings(settings: Settings) -> None:
    """Put ``settings`` into this process's ``LAMARENA_*`` environment variables.

    Worker processes started by uvicorn build their own settings from the environment; this is
    how CLI flags reach them.
    """
    for field, value in settings.model_dump(mode="json").items():
        if value is not None:
            os.environ[f"LAMARENA_{field.upper()}"] = str(value)
