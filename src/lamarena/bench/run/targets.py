"""The models of a static run, resolved from settings: how to build each, and its cache identity.

A model's *spec* here is what identifies its replies: the models.yaml entry (or the built-in
offline model's description) without its name and without what cannot change a reply: timeouts,
retries, concurrency, the name of the key's variable, download permission, device, prices,
whether token usage is asked for, and the arena's system prompt (a static run sends the task's
prompt instead). It is the model part of
every cache key and is recorded in ``run.json``; it never holds a secret.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lamarena.errors import ConfigError
from lamarena.models.base import AudioModel
from lamarena.models.config import load_models_config
from lamarena.models.registry import ModelEntry, model_entries
from lamarena.settings import Settings, read_secret

__all__ = ["ModelHandle", "ModelTarget", "resolve_targets"]

_VOLATILE = frozenset(
    {
        "name",
        "timeout_s",
        "connect_timeout_s",
        "max_retries",
        "max_concurrency",
        "api_key_env",
        "allow_download",
        "device",
        "system_prompt",
        "report_usage",
        "price_per_million_input_tokens",
        "price_per_million_output_tokens",
        "price_per_million_input_audio_tokens",
        "price_per_million_output_audio_tokens",
    }
)


_ADDED_AT_DEFAULT: dict[str, Any] = {
    "audio_part": "input_audio",
    "token_limit_field": None,
    "thinking_budget": None,
    "max_audio_s": None,
    "audio_over_limit": "refuse",
    "language": None,
    "compute_type": None,
    "beam_size": None,
    "interface": "qwen2-audio",
    "trust_remote_code": False,
}
"""Options added to models.yaml after caches existed, with the value that asks for what every
earlier request was: left out of the identity at that value, so an entry that does not use them
keeps its cached replies (an option in use is part of the identity)."""


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _strip(item)
            for key, item in value.items()
            if key not in _VOLATILE
            and not (key in _ADDED_AT_DEFAULT and item == _ADDED_AT_DEFAULT[key])
        }
    if isinstance(value, list):
        return [_strip(item) for item in value]
    return value


@dataclass(frozen=True)
class ModelTarget:
    """One model to evaluate.

    Attributes:
        name: its name in models.yaml (or the built-in offline model's).
        spec: its identity for the cache (see the module docstring).
        max_concurrency: the model's own limit on concurrent calls, if it has one.
        entry: the registry entry that builds the adapter.
        resolved: the whole models.yaml entry as validated (for run.json; it holds the name of
            the key's variable, never the key).
    """

    name: str
    spec: dict[str, Any]
    max_concurrency: int | None
    entry: ModelEntry
    resolved: dict[str, Any] = field(default_factory=dict)

    def build(self) -> AudioModel:
        """A new adapter for this model.

        Raises:
            ConfigError: a missing key or a missing extra.
        """
        return self.entry.build()

    def concurrency(self, requested: int) -> int:
        """The concurrency to use: the run's, capped by the model's own limit."""
        return min(requested, self.max_concurrency or requested)

    @property
    def temperature(self) -> float | None:
        """The sampling temperature of the model's text generation, where the spec gives one."""
        llm = self.spec.get("llm")
        source = llm if isinstance(llm, dict) else self.spec
        value = source.get("temperature")
        return None if value is None else float(value)


class ModelHandle:
    """An adapter built on first use: a run whose calls all come from the cache builds none."""

    def __init__(self, build: Callable[[], AudioModel]) -> None:
        self._build = build
        self._model: AudioModel | None = None

    def get(self) -> AudioModel:
        """The adapter (built now if this is the first call)."""
        if self._model is None:
            self._model = self._build()
        return self._model

    async def aclose(self) -> None:
        """Close the adapter if it was built and holds connections."""
        close = getattr(self._model, "aclose", None)
        if close is not None:
            await close()
        self._model = None


def _specs(settings: Settings) -> dict[str, dict[str, Any]]:
    if settings.models_config is None:
        return {}
    config = load_models_config(settings.models_config)
    return {spec.name: spec.model_dump(mode="json") for spec in config.models}


def _check_keys(name: str, resolved: dict[str, Any]) -> None:
    """Fail now, before anything runs, when a key's environment variable is not set."""
    for part in (resolved, resolved.get("asr"), resolved.get("llm")):
        if not isinstance(part, dict):
            continue
        variable = part.get("api_key_env")
        if variable is None and part.get("kind") == "gemini":
            variable = "GEMINI_API_KEY"
        if variable and read_secret(str(variable)) is None:
            raise ConfigError(
                f"model '{name}' needs the environment variable {variable} (its API key)"
            )


def resolve_targets(settings: Settings, names: list[str]) -> list[ModelTarget]:
    """The named models (models.yaml, or the built-in offline models without one), in order.

    Raises:
        ConfigError: an unknown name (the message lists the known ones), a repeated name, an
            invalid models file, or an API key's environment variable that is not set.
    """
    if not names:
        raise ConfigError("--models is empty: name at least one model (lamarena models list)")
    if len(set(names)) != len(names):
        raise ConfigError(f"--models names a model twice: {', '.join(names)}")
    entries = {entry.name: entry for entry in model_entries(settings)}
    specs = _specs(settings)
    targets = []
    for name in names:
        entry = entries.get(name)
        if entry is None:
            raise ConfigError(f"no model named '{name}'; models: {', '.join(entries)}")
        raw = specs.get(name) or {
            "kind": entry.kind,
            "model": entry.model,
            "description": entry.description,
            "builtin": True,
        }
        _check_keys(name, raw)
        targets.append(
            ModelTarget(
                name=name,
                spec=_strip(raw),
                max_concurrency=entry.max_concurrency,
                entry=entry,
                resolved={"name": name, **raw},
            )
        )
    return targets
