"""Local copies of Hugging Face hub dataset repositories: ``--hub-dir DIR``.

``DIR/OWNER/NAME/`` is a dataset repository as a hub download leaves it (``hf download
--repo-type dataset OWNER/NAME --local-dir DIR/OWNER/NAME``, or ``lamarena static fetch``): a
``README.md`` whose YAML header lists the ``configs`` (each with ``data_files``: a pattern per
split) and the data files under their repository paths. A dataset loads from such a copy with
its registry config and split and nothing goes to the network.

The config's files are found here, from the card, and handed to ``datasets``' packaged
``parquet`` (or json, csv, arrow) builder, rather than through ``load_dataset(DIR, CONFIG)``:
that call resolves the files of the card's *first* config before the one asked for, so a copy
holding only the config a run needs (Common Voice's ``en`` of fifty languages, AIR-Bench's
``Foundation/speech``) would not load. Features (``Audio``, ``ClassLabel`` names) come from the
parquet files' own schema, as they do on the hub.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml

from lamarena.bench.data.spec import DatasetSpec
from lamarena.errors import InvalidInputError, NotFound

if TYPE_CHECKING:
    import datasets  # type: ignore[import-untyped]

__all__ = [
    "CARD_FILE",
    "DATA_SUFFIXES",
    "HubConfig",
    "card_configs",
    "choose_config",
    "config_files",
    "default_config",
    "fetch_command",
    "load_hub_copy",
    "missing_copy",
    "repo_folder",
]

CARD_FILE = "README.md"
"""The dataset card: its YAML header names the configs and their data files."""

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*$")
_BUILDERS = {
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".jsonl": "json",
    ".json": "json",
    ".csv": "csv",
}
DATA_SUFFIXES = sorted(_BUILDERS)
"""The data files a copy's split may hold; anything else (a notes.md, a partial download) is not
one of its files."""


@dataclass(frozen=True)
class HubConfig:
    """One config of a dataset card.

    Attributes:
        name: the config name (``default`` when the card names none).
        data_files: split -> the file patterns of that split, relative to the repository;
            empty when the card gives only a ``data_dir`` (the layout inside it is inferred).
        data_dir: the folder the config's files are in, when the card names one.
        default: whether the card marks it as the default config.
    """

    name: str
    data_files: dict[str, list[str]]
    data_dir: str | None = None
    default: bool = False


def repo_folder(hub_dir: Path, hf_id: str) -> Path:
    """``DIR/OWNER/NAME``: where the copy of ``hf_id`` lives.

    Raises:
        InvalidInputError: ``hf_id`` is not an ``OWNER/NAME`` repository id.
    """
    if not _REPO_ID.match(hf_id) or ".." in hf_id:
        raise InvalidInputError(f"'{hf_id}' is not a hub repository id (OWNER/NAME)")
    owner, name = hf_id.split("/")
    return hub_dir / owner / name


def fetch_command(name: str, hub_dir: Path) -> str:
    """The command that fetches a registry dataset into ``hub_dir``."""
    return f"lamarena static fetch {name} --hub-dir {hub_dir}"


def missing_copy(spec: DatasetSpec, hub_dir: Path) -> NotFound:
    """The error for a registry dataset whose repository is not in ``hub_dir``."""
    folder = repo_folder(hub_dir, spec.hf_id or "")
    return NotFound(
        f"dataset '{spec.name}' ({spec.hf_id}) is not in the hub copy {hub_dir}: there is no "
        f"{folder}; on a machine that reaches the hub run `{fetch_command(spec.name, hub_dir)}`, "
        "then copy the folder here"
    )


def _front_matter(text: str) -> Any:
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    return yaml.safe_load(text[3:end]) or {}


def _patterns(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return list(value)
    raise InvalidInputError(f"{where}: a split's path must be a pattern or a list of patterns")


def _data_files(raw: Any, where: str) -> dict[str, list[str]]:
    """A card's ``data_files`` (a pattern, a list of patterns, or ``{split, path}`` entries)."""
    if isinstance(raw, str) or (
        isinstance(raw, list) and all(isinstance(item, str) for item in raw)
    ):
        return {"train": _patterns(raw, where)}
    if isinstance(raw, dict):
        return {str(split): _patterns(paths, where) for split, paths in raw.items()}
    if isinstance(raw, list):
        files: dict[str, list[str]] = {}
        for entry in raw:
            if not isinstance(entry, dict) or "path" not in entry:
                raise InvalidInputError(f"{where}: data_files entries need a split and a path")
            files.setdefault(str(entry.get("split", "train")), []).extend(
                _patterns(entry["path"], where)
            )
        return files
    raise InvalidInputError(f"{where}: data_files is neither a pattern, a list nor a mapping")


def card_configs(folder: Path) -> dict[str, HubConfig] | None:
    """The configs a copy's ``README.md`` declares, or None when it declares none.

    Raises:
        InvalidInputError: the card's YAML header cannot be read, or a config is malformed.
    """
    card = folder / CARD_FILE
    if not card.is_file():
        return None
    where = str(card)
    try:
        header = _front_matter(card.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInputError(f"{where}: cannot read its YAML header ({exc})") from exc
    raw = header.get("configs") if isinstance(header, dict) else None
    if not raw:
        return None
    if not isinstance(raw, list):
        raise InvalidInputError(f"{where}: configs must be a list")
    configs: dict[str, HubConfig] = {}
    for entry in raw:
        if not isinstance(entry, dict) or not ("data_files" in entry or "data_dir" in entry):
            raise InvalidInputError(f"{where}: every config needs data_files or a data_dir")
        name = str(entry.get("config_name", "default"))
        data_dir = str(entry["data_dir"]).strip("/") if entry.get("data_dir") else None
        files: dict[str, list[str]] = {}
        if "data_files" in entry:
            files = _data_files(entry["data_files"], f"{where}: config '{name}'")
            if data_dir:
                files = {
                    split: [str(PurePosixPath(data_dir) / p) for p in patterns]
                    for split, patterns in files.items()
                }
        configs[name] = HubConfig(name, files, data_dir, bool(entry.get("default", False)))
    return configs


def default_config(configs: dict[str, HubConfig]) -> str:
    """The config a dataset without one reads, as ``datasets`` picks it.

    The one the card marks ``default: true``, else the one called ``default``, else the first.
    """
    marked = [name for name, config in configs.items() if config.default]
    if marked:
        return marked[0]
    return "default" if "default" in configs else next(iter(configs))


def _inferred_config(folder: Path, data_dir: str | None = None, name: str = "default") -> HubConfig:
    """A config laid out as ``datasets`` infers it (in ``data_dir`` when given)."""
    from datasets.data_files import get_data_patterns  # type: ignore[import-untyped]

    base = folder / data_dir if data_dir else folder
    try:
        patterns = get_data_patterns(str(base))
    except Exception as exc:  # datasets raises its own EmptyDatasetError and others
        raise InvalidInputError(
            f"{base}: no {CARD_FILE} with configs and no data files datasets recognises"
        ) from exc
    prefix = PurePosixPath(data_dir) if data_dir else None
    files = {
        str(split): [str(prefix / p) if prefix else p for p in found]
        for split, found in patterns.items()
    }
    return HubConfig(name, files, data_dir)


def _refetch(spec: DatasetSpec, folder: Path) -> str:
    return f"run `{fetch_command(spec.name, folder.parent.parent)}` again"


def choose_config(folder: Path, spec: DatasetSpec) -> HubConfig:
    """The config of the copy in ``folder`` that ``spec`` reads (its layout inferred if need be).

    Raises:
        InvalidInputError: the card has no such config, or a card-less copy is asked for one.
    """
    if spec.data_dir and card_configs(folder) is None:
        return _inferred_config(folder, spec.data_dir)
    configs = card_configs(folder)
    if configs is None:
        if spec.config not in (None, "default"):
            raise InvalidInputError(
                f"dataset '{spec.name}': {folder} has no {CARD_FILE} declaring configs, so no "
                f"config '{spec.config}' (an incomplete copy? {_refetch(spec, folder)})"
            )
        return _inferred_config(folder)
    wanted = spec.config or default_config(configs)
    if wanted not in configs:
        raise InvalidInputError(
            f"dataset '{spec.name}': {folder / CARD_FILE} has no config '{wanted}' "
            f"(configs: {', '.join(configs)})"
        )
    config = configs[wanted]
    if not config.data_files:
        return _inferred_config(folder, config.data_dir, config.name)
    return config


def config_files(folder: Path, spec: DatasetSpec) -> tuple[HubConfig, list[str]]:
    """The config ``spec`` reads and the local files of its split.

    Raises:
        InvalidInputError: no such config or split, or the split's files are not in the copy.
    """
    from datasets.data_files import resolve_pattern

    config = choose_config(folder, spec)
    if spec.split not in config.data_files:
        raise InvalidInputError(
            f"dataset '{spec.name}': config '{config.name}' of {folder} has no split "
            f"'{spec.split}' (splits: {', '.join(config.data_files)})"
        )
    patterns = config.data_files[spec.split]
    files: list[str] = []
    for pattern in patterns:
        try:
            found = resolve_pattern(
                pattern, base_path=str(folder), allowed_extensions=DATA_SUFFIXES
            )
        except FileNotFoundError:
            continue
        files.extend(file for file in found if Path(file).suffix.lower() in _BUILDERS)
    if not files:
        raise InvalidInputError(
            f"dataset '{spec.name}': the copy {folder} holds no files of config "
            f"'{config.name}', split '{spec.split}' ({', '.join(patterns)}): it is incomplete; "
            f"{_refetch(spec, folder)}"
        )
    return config, sorted(dict.fromkeys(files))


def _builder(files: list[str], where: str) -> str:
    kinds = {_BUILDERS.get(Path(file).suffix.lower()) for file in files}
    if len(kinds) != 1 or None in kinds:
        suffixes = sorted({Path(file).suffix or "(none)" for file in files})
        raise InvalidInputError(
            f"{where}: data files of kinds {', '.join(suffixes)}; lamarena reads one of "
            f"{', '.join(sorted(_BUILDERS))} per split"
        )
    return str(kinds.pop())


def load_hub_copy(
    folder: Path, spec: DatasetSpec, *, cache_dir: Path | None = None
) -> datasets.Dataset:
    """The split of ``spec`` from the repository copy in ``folder`` (no network).

    Raises:
        InvalidInputError: the config, the split or its files are missing, or unreadable.
    """
    import datasets

    _, files = config_files(folder, spec)
    where = f"dataset '{spec.name}' ({folder})"
    builder = _builder(files, where)
    try:
        return datasets.load_dataset(
            builder,
            data_files={spec.split: files},
            split=spec.split,
            cache_dir=None if cache_dir is None else str(cache_dir / "datasets"),
        )
    except Exception as exc:  # datasets raises many kinds for a bad file; all mean "unreadable"
        raise InvalidInputError(
            f"{where}: its {builder} files cannot be read: {' '.join(str(exc).split())[:300]}"
        ) from exc
