"""One settings object: the only place that reads environment variables.

Precedence: defaults < ``.env`` < ``LAMARENA_*`` environment variables < CLI flags (applied by
``cli.py`` with :meth:`Settings.model_copy`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from lamarena.errors import ConfigError

__all__ = ["DEFAULT_DATABASE_URL", "Settings", "load_settings"]

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
