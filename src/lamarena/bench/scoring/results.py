"""The result files of a static run (DESIGN.md: static results).

``DIR/samples.jsonl`` gets one row per model, dataset, prompt variant and sample, appended as
each finishes (so a killed run loses at most the calls in flight); the row fields are
:data:`SAMPLE_FIELDS` and a few more (metric, error, parse rule, judge fields). A row with an
``error`` is not *done*: the next run tries it again and appends a new row, and the last row of a
key wins. A line cut short by a kill is ignored. ``scores.json``, ``baselines.json`` and
``run.json`` are written whole, atomically (a temporary file renamed into place).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from lamarena.errors import InvalidInputError

__all__ = [
    "BASELINES_FILE",
    "RUN_FILE",
    "SAMPLES_FILE",
    "SAMPLE_FIELDS",
    "SCORES_FILE",
    "SCORE_FIELDS",
    "SamplesLog",
    "latest_rows",
    "read_json",
    "row_key",
    "write_json",
]

logger = logging.getLogger(__name__)

SAMPLES_FILE = "samples.jsonl"
SCORES_FILE = "scores.json"
BASELINES_FILE = "baselines.json"
RUN_FILE = "run.json"

SAMPLE_FIELDS = (
    "model",
    "dataset",
    "task",
    "prompt_id",
    "sample_id",
    "reference",
    "prediction",
    "parsed",
    "score",
    "cached",
    "latency_s",
)
"""The fields every ``samples.jsonl`` row has (DESIGN.md)."""

SCORE_FIELDS = (
    "model",
    "dataset",
    "task",
    "metric",
    "prompt_id",
    "n",
    "score",
    "ci_low",
    "ci_high",
)
"""The fields every ``scores.json`` entry has (DESIGN.md)."""

RowKey = tuple[str, str, int, str]


def row_key(row: dict[str, Any]) -> RowKey:
    """(model, dataset, prompt_id, sample_id): what identifies one evaluation."""
    return (str(row["model"]), str(row["dataset"]), int(row["prompt_id"]), str(row["sample_id"]))


class SamplesLog:
    """``samples.jsonl`` of one output folder: read what is there, append as rows finish."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / SAMPLES_FILE
        self._handle: TextIO | None = None

    def rows(self) -> Iterator[dict[str, Any]]:
        """Every complete row, in file order (a cut-short or foreign line is skipped).

        Read as bytes: a kill may cut the last line inside a multi-byte character.
        """
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return
        with handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.endswith(b"\n"):
                    logger.warning("%s: line %d was cut short; ignoring it", self.path, number)
                    continue
                try:
                    row = json.loads(raw.decode("utf-8"))
                    row_key(row)
                except (ValueError, KeyError, TypeError):
                    logger.warning(
                        "%s: line %d is not a sample row; ignoring it", self.path, number
                    )
                    continue
                yield row

    def done(self) -> set[RowKey]:
        """Keys whose latest row has no error (these are not asked again)."""
        return {key for key, row in latest_rows(self.rows()).items() if not row.get("error")}

    def open(self) -> TextIO:
        """Open for appending, first ending a line a killed run left unfinished."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        unfinished = False
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.path.open("rb") as existing:  # bytes: the cut may split a character
                existing.seek(-1, os.SEEK_END)
                unfinished = existing.read(1) != b"\n"
        handle = self.path.open("a", encoding="utf-8")
        if unfinished:
            handle.write("\n")
        self._handle = handle
        return handle

    def append(self, row: dict[str, Any]) -> None:
        """Write one row and flush it to the operating system."""
        handle = self._handle or self.open()
        handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        handle.flush()

    def close(self) -> None:
        """Close the file (appending again reopens it)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def latest_rows(rows: Iterable[dict[str, Any]]) -> dict[RowKey, dict[str, Any]]:
    """The last row of each key (a retried evaluation replaces the failed one)."""
    latest: dict[RowKey, dict[str, Any]] = {}
    for row in rows:
        latest[row_key(row)] = row
    return latest


def write_json(path: Path, document: Any) -> None:
    """Write ``document`` as indented JSON, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
    os.replace(temporary, path)


def read_json(path: Path, *, what: str) -> Any:
    """Read a JSON result file.

    Raises:
        InvalidInputError: the file is missing or is not JSON (the message says what to run).
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InvalidInputError(
            f"{path} does not exist: run `lamarena static run --out {path.parent}` first ({what})"
        ) from exc
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"{path} cannot be read as JSON ({what}): {exc}") from exc
