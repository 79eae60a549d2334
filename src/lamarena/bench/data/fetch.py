"""Downloading registry datasets into a local copy of the hub: ``lamarena static fetch``.

For each repository the named datasets live in, :func:`fetch_datasets` downloads its
``README.md`` first, reads the configs it declares, lists the repository's files and picks those
of the config and split each dataset reads, matching the card's patterns as ``datasets`` does
(fsspec glob semantics: ``en/test/**/*.parquet`` also matches ``en/test/a.parquet``, which
``huggingface_hub``'s own ``allow_patterns`` matching would miss), and downloads exactly those
(``huggingface_hub.snapshot_download``) into ``DIR/OWNER/NAME`` as ``hf download --local-dir``
lays it out. Common Voice's
English test split is then a few hundred megabytes of a repository of terabytes, and AIR-Bench's
speech split leaves its sound and music splits behind. A repository whose card declares no
configs is downloaded whole.

The hub is ``settings.hub_endpoint``, else ``HF_ENDPOINT`` (read by ``huggingface_hub``), else
huggingface.co; a token, where a dataset is gated, comes from ``HF_TOKEN`` or ``hf auth login``
as usual. Common Voice 17 is read from ``fixie-ai``'s public parquet copy, not from Mozilla's
gated repository, which no longer serves data.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lamarena.bench.data.hub import (
    CARD_FILE,
    DATA_SUFFIXES,
    card_configs,
    default_config,
    repo_folder,
)
from lamarena.bench.data.registry import Registry
from lamarena.bench.data.spec import DatasetSpec
from lamarena.errors import InvalidInputError, NotFound

__all__ = [
    "HUB_PROBE_S",
    "FetchedRepo",
    "check_hub_reachable",
    "fetch_datasets",
    "repo_patterns",
    "select_files",
]


@dataclass(frozen=True)
class FetchedRepo:
    """One repository downloaded.

    Attributes:
        hf_id: the repository.
        folder: where it now is.
        datasets: the registry datasets it holds.
        patterns: the card's patterns of the splits read (None: the whole repository).
        files: how many files were downloaded (the card included).
    """

    hf_id: str
    folder: Path
    datasets: list[str]
    patterns: list[str] | None
    files: int


def repo_patterns(folder: Path, specs: list[DatasetSpec]) -> list[str] | None:
    """The file patterns the datasets ``specs`` read, from the card in ``folder``.

    Returns:
        The patterns (the card first), or None when the card declares no configs.

    Raises:
        InvalidInputError: the card lacks a config or split a dataset reads.
    """
    configs = card_configs(folder)
    if configs is None:
        return None
    patterns = [CARD_FILE]
    for spec in specs:
        name = spec.config or default_config(configs)
        config = configs.get(name)
        if config is None:
            raise InvalidInputError(
                f"dataset '{spec.name}': {spec.hf_id} has no config '{name}' "
                f"(configs: {', '.join(configs)}); correct the registry"
            )
        if not config.data_files:  # the card gives only a data_dir: everything in it
            patterns.append(f"{config.data_dir}/**")
            continue
        if spec.split not in config.data_files:
            raise InvalidInputError(
                f"dataset '{spec.name}': config '{name}' of {spec.hf_id} has no split "
                f"'{spec.split}' (splits: {', '.join(config.data_files)}); correct the registry"
            )
        patterns.extend(config.data_files[spec.split])
    return list(dict.fromkeys(patterns))


def select_files(repo_files: list[str], patterns: list[str]) -> list[str]:
    """The card and the data files among ``repo_files`` that ``patterns`` match.

    Patterns are matched as ``datasets`` resolves a card's ``data_files`` (fsspec glob, ``**``
    for any depth), and only data files (:data:`~lamarena.bench.data.hub.DATA_SUFFIXES`) count.
    """
    import re

    from fsspec.utils import glob_translate  # type: ignore[import-untyped]

    matchers = [re.compile(glob_translate(pattern)) for pattern in patterns if pattern != CARD_FILE]
    return [
        path
        for path in repo_files
        if path == CARD_FILE
        or (
            PurePosixPath(path).suffix.lower() in DATA_SUFFIXES
            and any(matcher.match(path) for matcher in matchers)
        )
    ]


def _download_error(hf_id: str, exc: Exception) -> NotFound:
    from huggingface_hub import errors

    text = " ".join(str(exc).split())[:300]
    if isinstance(exc, errors.GatedRepoError):
        reason = "it is gated: accept its terms on the hub and log in (hf auth login)"
    elif isinstance(exc, errors.RepositoryNotFoundError):
        reason = "the hub has no such dataset repository"
    else:
        reason = text
    return NotFound(f"could not download {hf_id}: {reason}")


HUB_PROBE_S = 3.0
"""How long ``fetch`` waits for a TCP connection to the hub before saying it is unreachable."""


def check_hub_reachable(endpoint: str | None) -> None:
    """Fail at once, before any folder is made, when the hub cannot be reached.

    ``huggingface_hub`` itself retries an unreachable host for half a minute and then may
    return a local folder as though it had been downloaded.

    Raises:
        NotFound: no TCP connection to the hub's host within :data:`HUB_PROBE_S` seconds.
    """
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    url = endpoint or constants.ENDPOINT
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=HUB_PROBE_S):
            return
    except OSError as exc:
        raise NotFound(
            f"the hub at {url} cannot be reached ({exc.strerror or exc}): run `lamarena static "
            "fetch` on a machine that reaches it, then copy the folder (or point HF_ENDPOINT or "
            "LAMARENA_HUB_ENDPOINT at a mirror)"
        ) from exc


def _fetch_repo(
    hf_id: str, folder: Path, specs: list[DatasetSpec], endpoint: str | None
) -> FetchedRepo:
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    try:
        listed = list(HfApi(endpoint=endpoint).list_repo_files(hf_id, repo_type="dataset"))
        folder.mkdir(parents=True, exist_ok=True)
        if CARD_FILE in listed:
            hf_hub_download(
                hf_id, CARD_FILE, repo_type="dataset", local_dir=folder, endpoint=endpoint
            )
        patterns = repo_patterns(folder, specs) if CARD_FILE in listed else None
        wanted = listed if patterns is None else select_files(listed, patterns)
        if patterns is not None and len(wanted) <= 1:
            raise NotFound(
                f"{hf_id} holds no data files matching {', '.join(patterns[1:])}, which "
                f"{', '.join(spec.name for spec in specs)} read; correct the registry"
            )
        snapshot_download(
            hf_id,
            repo_type="dataset",
            local_dir=folder,
            allow_patterns=wanted,
            endpoint=endpoint,
        )
    except (NotFound, InvalidInputError):
        raise
    except Exception as exc:  # huggingface_hub raises many kinds; all mean "not fetched"
        raise _download_error(hf_id, exc) from exc
    missing = [path for path in wanted if not (folder / path).is_file()]
    if missing:  # huggingface_hub may return a local folder it could not fill
        raise NotFound(
            f"could not download {hf_id}: {len(missing)} of {len(wanted)} files did not arrive "
            f"(first: {missing[0]}); run the same command again"
        )
    return FetchedRepo(hf_id, folder, [spec.name for spec in specs], patterns, len(wanted))


def fetch_datasets(
    names: list[str], registry: Registry, hub_dir: Path, *, endpoint: str | None = None
) -> list[FetchedRepo]:
    """Download the files the registry datasets ``names`` read into ``hub_dir``.

    Args:
        names: registry dataset names.
        registry: the registry.
        hub_dir: the local copy of the hub (created).
        endpoint: the hub's address; None for ``HF_ENDPOINT`` or huggingface.co.

    Raises:
        UnknownTask: a name not in the registry (before anything is downloaded).
        InvalidInputError: no names, or a card without the config or split a dataset reads.
        NotFound: the hub cannot be reached (in a few seconds, before anything is written), or
            a repository cannot be downloaded (gated, missing, cut short).
    """
    if not names:
        raise InvalidInputError("name at least one registry dataset (lamarena static list)")
    by_repo: dict[str, list[DatasetSpec]] = defaultdict(list)
    for name in names:
        spec = registry.dataset(name)
        if spec.hf_id is None:
            raise InvalidInputError(f"dataset '{name}' has no hub id to fetch")
        by_repo[spec.hf_id].append(spec)
    check_hub_reachable(endpoint)
    return [
        _fetch_repo(hf_id, repo_folder(hub_dir, hf_id), specs, endpoint)
        for hf_id, specs in by_repo.items()
    ]
