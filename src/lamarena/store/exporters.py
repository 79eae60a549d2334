"""Write battle records to JSONL or Parquet, atomically.

Both formats hold exactly the fields of :class:`~lamarena.store.records.BattleRecord`, in its
field order: JSONL as one JSON object per line (UTF-8, ``null`` for unknown values); Parquet
with :data:`PARQUET_SCHEMA` (``created_at`` as ``timestamp[us, UTC]``, latencies as structs,
``flags`` as ``list<string>``, ``turns`` as a list of structs). The records are written as
given: records loaded from the store already carry arena sessions as salted hashes
(:mod:`lamarena.store.hashing`).
A file is written under a temporary name beside its destination and renamed into place, so a
reader never sees half an export.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from lamarena.errors import InvalidInputError
from lamarena.store.records import BattleRecord

__all__ = [
    "EXPORT_SUFFIXES",
    "PARQUET_SCHEMA",
    "write_battle_records",
]

logger = logging.getLogger(__name__)

EXPORT_SUFFIXES = (".jsonl", ".parquet")

_LATENCY = pa.struct(
    [
        ("ttft_s", pa.float64()),
        ("total_s", pa.float64()),
        ("chars", pa.int64()),
        ("ttfab_s", pa.float64()),
        ("audio_s", pa.float64()),
    ]
)
_TURN = pa.struct(
    [
        ("query_audio_sha256", pa.string()),
        ("query_transcript", pa.string()),
        ("reply_a", pa.string()),
        ("reply_b", pa.string()),
        ("latency_a", _LATENCY),
        ("latency_b", _LATENCY),
        ("error_a", pa.string()),
        ("error_b", pa.string()),
        ("reply_audio_a_sha256", pa.string()),
        ("reply_audio_b_sha256", pa.string()),
        ("notice_a", pa.string()),
        ("notice_b", pa.string()),
    ]
)
PARQUET_SCHEMA = pa.schema(
    [
        ("battle_id", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("session_id", pa.string()),
        ("participant_id", pa.string()),
        ("model_a", pa.string()),
        ("model_b", pa.string()),
        ("winner", pa.string()),
        ("query_audio_sha256", pa.string()),
        ("query_transcript", pa.string()),
        ("reply_a", pa.string()),
        ("reply_b", pa.string()),
        ("latency_a", _LATENCY),
        ("latency_b", _LATENCY),
        ("error_a", pa.string()),
        ("error_b", pa.string()),
        ("reply_audio_a_sha256", pa.string()),
        ("reply_audio_b_sha256", pa.string()),
        ("notice_a", pa.string()),
        ("notice_b", pa.string()),
        ("feedback_text", pa.string()),
        ("audio_kept", pa.bool_()),
        ("source", pa.string()),
        ("counted", pa.bool_()),
        ("flags", pa.list_(pa.string())),
        ("equal_pace", pa.bool_()),
        ("sampling_probability", pa.float64()),
        ("turns", pa.list_(_TURN)),
        ("mode", pa.string()),
        ("n_turns", pa.int64()),
    ]
)
"""Columns of a Parquet export: one per BattleRecord field."""


def _write_jsonl(records: Sequence[BattleRecord], handle: IO[bytes]) -> None:
    for record in records:
        line = json.dumps(record.model_dump(mode="json"), ensure_ascii=False)
        handle.write(line.encode("utf-8") + b"\n")


def _write_parquet(records: Sequence[BattleRecord], handle: IO[bytes]) -> None:
    rows: list[dict[str, Any]] = []
    for record in records:
        row = record.model_dump(mode="python")
        row["winner"] = record.winner.value
        rows.append(row)
    table = pa.Table.from_pylist(rows, schema=PARQUET_SCHEMA)
    pq.write_table(table, handle)


def write_battle_records(records: Sequence[BattleRecord], path: str | Path) -> int:
    """Write battle records to ``path``, JSONL or Parquet by its suffix, atomically.

    Args:
        records: the battles to write.
        path: a ``.jsonl`` or ``.parquet`` file; an existing file is replaced.

    Returns:
        The number of records written.

    Raises:
        InvalidInputError: the suffix is neither ``.jsonl`` nor ``.parquet``, or the directory
            does not exist or cannot be written.
    """
    path = Path(path)
    writers: dict[str, Callable[[Sequence[BattleRecord], IO[bytes]], None]] = {
        ".jsonl": _write_jsonl,
        ".parquet": _write_parquet,
    }
    writer = writers.get(path.suffix.lower())
    if writer is None:
        raise InvalidInputError(
            f"{path}: cannot export to {path.suffix or 'a file without suffix'}; "
            "name the file .jsonl or .parquet"
        )
    directory = path.parent
    if not directory.is_dir():
        raise InvalidInputError(f"{path}: directory {directory} does not exist")
    try:
        descriptor, temporary = tempfile.mkstemp(
            dir=directory, prefix=f".{path.name}.", suffix=".tmp"
        )
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot write in {directory}: {exc.strerror}") from exc
    try:
        with os.fdopen(descriptor, "wb") as handle:
            writer(records, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    logger.info("wrote %d battles to %s", len(records), path)
    return len(records)
