"""Static benchmark scores: the model x benchmark table, its orientation, and its PCA.

A :class:`StaticTable` holds one row per model and one column per benchmark (the layout of the
study's Table 1, ``data/study/paper_table1_static.csv``); :meth:`StaticTable.oriented` negates the
lower-is-better columns (WER) so that higher is better everywhere, which is what every analysis in
``correlation`` uses. :func:`static_pca` is the study's PCA of that matrix (scikit-learn). The
public names are re-exported by :mod:`lamarena.analysis.gap`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype
from sklearn.decomposition import PCA  # type: ignore[import-untyped]

from lamarena.analysis.jsonable import json_float
from lamarena.errors import InsufficientData, InvalidInputError

__all__ = [
    "MissingScores",
    "PcaResult",
    "StaticTable",
    "is_lower_better",
    "load_static_table",
    "require_static_table",
    "static_pca",
    "static_table_from_frame",
]

_WER = re.compile(r"(?<![a-z])wer(?![a-z])")


def is_lower_better(benchmark: str) -> bool:
    """Whether a benchmark column is an error rate: its name has ``wer`` as a word part.

    ``asr_wer``, ``WER`` and ``librispeech-wer`` qualify; ``answer_f1`` and ``power`` do not (a
    bare substring test would flip them).
    """
    return _WER.search(benchmark.lower()) is not None


@dataclass(frozen=True, eq=False)
class StaticTable:
    """Static benchmark scores, one row per model.

    Build it with :func:`load_static_table` or :func:`static_table_from_frame` to have WER
    columns found by name; the constructor takes ``lower_is_better`` as given.

    Attributes:
        scores: index ``model``, one float column per benchmark, NaN where not scored.
        lower_is_better: benchmarks where a lower score is better (WER).
    """

    scores: pd.DataFrame
    lower_is_better: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.scores.index.is_unique or not self.scores.columns.is_unique:
            raise InvalidInputError("a static table needs unique model names and benchmarks")
        unknown = sorted(self.lower_is_better - {str(c) for c in self.scores.columns})
        if unknown:
            raise InvalidInputError(f"lower_is_better names unknown benchmark(s) {unknown}")
        text = [str(c) for c in self.scores.columns if not is_numeric_dtype(self.scores[c])]
        if text:
            raise InvalidInputError(f"static scores must be numbers; not in {', '.join(text)}")

    @property
    def models(self) -> tuple[str, ...]:
        """Model names, in table order."""
        return tuple(str(m) for m in self.scores.index)

    @property
    def benchmarks(self) -> tuple[str, ...]:
        """Benchmark names, in table order."""
        return tuple(str(c) for c in self.scores.columns)

    def oriented(self) -> pd.DataFrame:
        """The scores with higher better in every column (lower-is-better columns negated)."""
        out = self.scores.astype(np.float64)
        for column in self.lower_is_better:
            out[column] = -out[column]
        return out


def static_table_from_frame(
    frame: pd.DataFrame,
    *,
    lower_is_better: Iterable[str] | None = None,
    source: str = "static table",
) -> StaticTable:
    """Build a :class:`StaticTable` from a frame with a ``model`` column (the CSV layout).

    Numeric columns are benchmarks; other columns (such as the study's ``group``) are ignored.

    Args:
        frame: a ``model`` column and one numeric column per benchmark.
        lower_is_better: lower-is-better benchmarks; by default those :func:`is_lower_better`
            picks by name.
        source: what to call the input in error messages (a file name).

    Returns:
        The table.

    Raises:
        InvalidInputError: no ``model`` column, a missing or repeated model name, no numeric
            column, an infinite score, or an unknown ``lower_is_better`` name.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(f"{source}: expected a DataFrame, got {type(frame).__name__}")
    columns = [str(c).strip() for c in frame.columns]
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise InvalidInputError(f"{source}: column(s) named more than once: {', '.join(twice)}")
    frame = frame.set_axis(columns, axis=1)
    if "model" not in columns:
        raise InvalidInputError(
            f"{source}: no 'model' column (columns: {', '.join(columns) or 'none'}); the table "
            "needs a 'model' column and one numeric column per benchmark"
        )
    if frame.empty:
        raise InvalidInputError(f"{source}: no rows; the table needs one row per model")
    names = [None if pd.isna(v) else str(v).strip() for v in frame["model"]]
    blank = [i + 1 for i, name in enumerate(names) if not name]
    if blank:
        raise InvalidInputError(f"{source}: empty model name in data row(s) {blank}")
    repeated = sorted({n for n in names if names.count(n) > 1 and n is not None})
    if repeated:
        raise InvalidInputError(
            f"{source}: model(s) listed more than once: {', '.join(repeated)}; give each model "
            "one row"
        )
    benchmarks = [
        c
        for c in columns
        if c != "model" and is_numeric_dtype(frame[c]) and not is_bool_dtype(frame[c])
    ]
    if not benchmarks:
        raise InvalidInputError(
            f"{source}: no numeric benchmark column (columns: {', '.join(columns)}); scores "
            "must be numbers, with empty cells for missing ones"
        )
    scores = frame[benchmarks].astype(np.float64)
    scores.index = pd.Index(names, dtype=object, name="model")
    scores.columns = pd.Index(benchmarks, dtype=object, name="benchmark")
    infinite = [c for c in benchmarks if np.isinf(scores[c].to_numpy()).any()]
    if infinite:
        raise InvalidInputError(f"{source}: infinite score(s) in {', '.join(infinite)}")
    if lower_is_better is None:
        lower = frozenset(c for c in benchmarks if is_lower_better(c))
    else:
        lower = frozenset(str(c) for c in lower_is_better)
    return StaticTable(scores=scores, lower_is_better=lower)


def load_static_table(path: Path, *, lower_is_better: Iterable[str] | None = None) -> StaticTable:
    """Read a static score table from CSV (the layout of ``data/study/paper_table1_static.csv``).

    Args:
        path: a CSV with a ``model`` column and one numeric column per benchmark; empty cells are
            missing scores; non-numeric columns are ignored.
        lower_is_better: as :func:`static_table_from_frame` (by default, WER columns).

    Returns:
        The table.

    Raises:
        InvalidInputError: an unreadable or malformed file (see :func:`static_table_from_frame`).
    """
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise InvalidInputError(f"{path}: the file is empty; expected a CSV with a header") from exc
    except pd.errors.ParserError as exc:
        raise InvalidInputError(f"{path}: not a valid CSV ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return static_table_from_frame(frame, lower_is_better=lower_is_better, source=str(path))


def require_static_table(static: StaticTable) -> StaticTable:
    """Return ``static`` if it is a :class:`StaticTable`, else raise InvalidInputError."""
    if not isinstance(static, StaticTable):
        raise InvalidInputError(
            f"static must be a StaticTable (see load_static_table), got {type(static).__name__}"
        )
    return static


MissingScores = Literal["drop_models", "drop_benchmarks", "impute_mean"]


@dataclass(frozen=True, eq=False)
class PcaResult:
    """Principal components of the model x benchmark matrix.

    Attributes:
        explained_variance_ratio: share of the total variance per component, largest first.
        loadings: index benchmark, columns ``PC1..``: the unit-length component directions
            (scikit-learn's ``components_`` transposed), each signed so its loadings sum to 0
            or more (PC1 then points towards "better on most benchmarks").
        scores: index model, columns ``PC1..``: each model's coordinates.
        dropped_models: models left out for missing scores.
        dropped_benchmarks: benchmarks left out (no scores, missing scores, or constant when
            standardising).
        standardised: whether each benchmark was scaled to unit variance (else only centred).
    """

    explained_variance_ratio: tuple[float, ...]
    loadings: pd.DataFrame
    scores: pd.DataFrame
    dropped_models: tuple[str, ...] = ()
    dropped_benchmarks: tuple[str, ...] = ()
    standardised: bool = True

    def components_for(self, share: float = 0.95) -> int:
        """Fewest leading components whose explained variance reaches ``share``."""
        cumulative = np.cumsum(self.explained_variance_ratio)
        reached = np.flatnonzero(cumulative >= share - 1e-12)
        return int(reached[0]) + 1 if reached.size else len(cumulative)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document (non-finite numbers become None)."""
        return {
            "explained_variance_ratio": [json_float(v) for v in self.explained_variance_ratio],
            "loadings": {
                str(k): [json_float(v) for v in row] for k, row in self.loadings.iterrows()
            },
            "scores": {str(k): [json_float(v) for v in row] for k, row in self.scores.iterrows()},
            "dropped_models": list(self.dropped_models),
            "dropped_benchmarks": list(self.dropped_benchmarks),
            "standardised": self.standardised,
            "components_for_95": self.components_for(0.95),
        }


def static_pca(
    static: StaticTable, *, standardise: bool = True, missing: MissingScores = "drop_models"
) -> PcaResult:
    """PCA of the oriented model x benchmark scores (scikit-learn, full SVD).

    Missing scores: benchmarks with no score at all are dropped first; then by default models
    with any missing score are dropped (complete cases: in the study's Table 1 that is the
    random baseline, which has no QA, instruction or ASR score), or with ``drop_benchmarks`` the
    benchmarks with any missing score, or with ``impute_mean`` a missing score becomes its
    benchmark's mean (which shrinks that benchmark's variance). With ``standardise``, benchmarks
    are z-scored (they are on different scales: percent and WER fractions) and a constant one is
    dropped; otherwise they are only centred.

    Args:
        static: the static scores.
        standardise: scale every benchmark to unit variance.
        missing: ``drop_models``, ``drop_benchmarks`` or ``impute_mean`` (above).

    Returns:
        Explained variance ratios, loadings and scores of ``min(models, benchmarks)``
        components.

    Raises:
        InvalidInputError: an unknown ``missing``.
        InsufficientData: fewer than 2 models or no benchmark left.
    """
    static = require_static_table(static)
    if missing not in ("drop_models", "drop_benchmarks", "impute_mean"):
        raise InvalidInputError(
            f"missing must be drop_models, drop_benchmarks or impute_mean, got {missing!r}"
        )
    matrix = static.oriented()
    empty = [str(c) for c in matrix.columns if matrix[c].isna().all()]
    matrix = matrix.drop(columns=empty)
    dropped_models: list[str] = []
    gaps: list[str] = []
    if missing == "drop_models":
        incomplete = matrix.isna().any(axis=1)
        dropped_models = [str(m) for m in matrix.index[incomplete]]
        matrix = matrix[~incomplete]
    elif missing == "drop_benchmarks":
        gaps = [str(c) for c in matrix.columns if matrix[c].isna().any()]
        matrix = matrix.drop(columns=gaps)
    else:
        matrix = matrix.fillna(matrix.mean())
    constant: list[str] = []
    if standardise and len(matrix) > 0:
        constant = [str(c) for c in matrix.columns if np.ptp(matrix[c].to_numpy()) == 0.0]
        matrix = matrix.drop(columns=constant)
    if len(matrix) < 2 or matrix.shape[1] == 0:
        raise InsufficientData(
            f"PCA needs at least 2 models and 1 benchmark with complete scores; "
            f"{len(matrix)} model(s) and {matrix.shape[1]} benchmark(s) remain"
        )
    values = matrix.to_numpy(dtype=np.float64)
    values = values - values.mean(axis=0)
    if standardise:
        values = values / values.std(axis=0)
    count = min(values.shape)
    pca = PCA(n_components=count, svd_solver="full").fit(values)
    components = np.asarray(pca.components_, dtype=np.float64)
    signs = np.where(components.sum(axis=1) < 0, -1.0, 1.0)
    components = components * signs[:, None]
    names = pd.Index([f"PC{k + 1}" for k in range(count)], dtype=object)
    return PcaResult(
        explained_variance_ratio=tuple(float(v) for v in pca.explained_variance_ratio_),
        loadings=pd.DataFrame(
            components.T, index=pd.Index(matrix.columns, name="benchmark"), columns=names
        ),
        scores=pd.DataFrame(
            values @ components.T, index=pd.Index(matrix.index, name="model"), columns=names
        ),
        dropped_models=tuple(dropped_models),
        dropped_benchmarks=tuple(empty + gaps + constant),
        standardised=standardise,
    )
