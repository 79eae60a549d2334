"""Package-level contracts: public names, the error tree, settings precedence."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import lamarena
from lamarena import errors
from lamarena.settings import DEFAULT_DATABASE_URL, Settings, load_settings


def _public_modules() -> list[str]:
    names = ["lamarena"]
    for info in pkgutil.walk_packages(lamarena.__path__, "lamarena."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return names


@pytest.mark.parametrize("module_name", _public_modules())
def test_every_name_in_all_exists_once(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{module_name} has no __all__"
    for name in exported:
        assert hasattr(module, name), f"{module_name}.__all__ names missing {name}"
    assert len(set(exported)) == len(exported), f"{module_name}.__all__ repeats a name"


def test_every_error_is_a_lamarena_error_with_its_own_code() -> None:
    classes = [getattr(errors, name) for name in errors.__all__]
    assert all(issubclass(cls, errors.LamarenaError) for cls in classes)
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes))


def test_record_error_names_file_record_and_field() -> None:
    error = errors.RecordError("votes.json", "17", "outcome", "0.7 is not one of 0, 0.5, 1")
    assert str(error) == "votes.json: record 17: field 'outcome': 0.7 is not one of 0, 0.5, 1"
    assert isinstance(error, ValueError)
    assert error.field == "outcome"


def test_model_error_carries_the_model() -> None:
    error = errors.ModelTimeout("gpt4o", "no first token after 30 s")
    assert error.model == "gpt4o"
    assert "gpt4o" in str(error)
    assert isinstance(error, errors.ModelError)


def test_settings_defaults_env_and_flags_in_that_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LAMARENA_DATABASE_URL", raising=False)
    assert Settings().database_url == DEFAULT_DATABASE_URL
    monkeypatch.setenv("LAMARENA_DATABASE_URL", "sqlite:///from-env.db")
    monkeypatch.setenv("LAMARENA_MIN_BATTLES", "25")
    assert load_settings().database_url == "sqlite:///from-env.db"
    assert load_settings().min_battles == 25
    flagged = load_settings(database_url="sqlite:///from-flag.db", min_battles=None)
    assert flagged.database_url == "sqlite:///from-flag.db"
    assert flagged.min_battles == 25


def test_settings_are_frozen_and_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]
    monkeypatch.setenv("LAMARENA_PORT", "70000")
    with pytest.raises(ValueError, match="port"):
        Settings()


def test_load_settings_turns_bad_values_into_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LAMARENA_WORKERS", "zero")
    with pytest.raises(errors.ConfigError, match="LAMARENA_WORKERS='zero'"):
        load_settings()
    monkeypatch.delenv("LAMARENA_WORKERS")
    with pytest.raises(errors.ConfigError, match="--min-battles=-2"):
        load_settings(min_battles=-2)
