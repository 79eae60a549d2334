"""One settings object: the only place that reads environment variables.

Precedence: defaults < ``.env`` < ``LAMARENA_*`` environment variables < CLI flags (applied by
``cli.py`` with :meth:`Settings.model_copy`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    """Build settings from the environment, then apply non-None overrides (CLI flags)."""
    settings = Settings()
    update = {key: value for key, value in overrides.items() if value is not None}
    return settings.model_copy(update=update) if update else settings
