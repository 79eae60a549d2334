"""Audio files the store's rows name: reply WAVs by their sha256, kept queries by their path.

A spoken reply's WAV lives at ``<data_dir>/reply_audio/<sha256>.wav`` (:func:`reply_audio_path`)
and its ``replies`` row names the hash; a query kept with consent is ``battles.kept_audio_path``
(or ``turns.kept_audio_path``). :func:`export_audio` copies the files of the voted battles into
one folder, each named by its hash, so an export's records find their audio by the hashes they
carry (``reply_audio_*_sha256``, ``query_audio_sha256``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, exists, select

from lamarena.errors import InvalidInputError
from lamarena.store.db import database_errors, make_sessionmaker, reader
from lamarena.store.tables import Battle, Reply, Turn, Vote

__all__ = ["REPLY_AUDIO_FOLDER", "AudioExport", "export_audio", "reply_audio_path"]

logger = logging.getLogger(__name__)

REPLY_AUDIO_FOLDER = "reply_audio"
"""The folder under the data directory that holds reply WAVs, each named ``<sha256>.wav``."""

_SHA256 = re.compile(r"[0-9a-f]{64}")


def reply_audio_path(data_dir: Path, sha256: str) -> Path:
    """The kept WAV of the reply whose audio has this sha256.

    Raises:
        InvalidInputError: ``sha256`` is not a lowercase hex digest (never a path from outside).
    """
    if not _SHA256.fullmatch(sha256):
        raise InvalidInputError(f"not a sha256: {sha256!r}")
    return data_dir / REPLY_AUDIO_FOLDER / f"{sha256}.wav"


@dataclass(frozen=True)
class AudioExport:
    """What ``votes export --with-audio`` wrote.

    Attributes:
        reply_files: reply WAVs written (``<sha256>.wav``).
        query_files: kept queries written (``<sha256>.<ext>``).
        missing: files the store names that are no longer on disk (left out).
    """

    reply_files: int
    query_files: int
    missing: int

    def to_dict(self) -> dict[str, Any]:
        """The counts as a JSON-ready dict."""
        return asdict(self)


def _voted_audio(engine: Engine) -> tuple[set[str], set[tuple[str, str]]]:
    """Reply hashes and (query hash, kept path) pairs of every voted battle."""
    voted = exists().where(Vote.battle_id == Battle.id)
    with (
        database_errors(engine, "reading the audio of the votes", "nothing was written"),
        make_sessionmaker(reader(engine)).begin() as session,
    ):
        replies = {
            sha
            for sha in session.scalars(
                select(Reply.audio_sha256)
                .join(Battle, Battle.id == Reply.battle_id)
                .where(voted, Reply.audio_sha256.is_not(None))
            )
            if sha is not None
        }
        kept = [
            *session.execute(
                select(Battle.query_audio_sha256, Battle.kept_audio_path).where(voted)
            ),
            *session.execute(
                select(Turn.query_audio_sha256, Turn.kept_audio_path)
                .join(Battle, Battle.id == Turn.battle_id)
                .where(voted)
            ),
        ]
        queries = {(sha, path) for sha, path in kept if sha is not None and path is not None}
    return replies, queries


def _copy(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` through a temporary file: a target is whole or absent."""
    fd, temporary = tempfile.mkstemp(dir=target.parent, suffix=".part")
    os.close(fd)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def export_audio(engine: Engine, data_dir: Path, out_dir: Path) -> AudioExport:
    """Copy the reply audio and kept queries of every voted battle into ``out_dir``.

    Each file is named by its sha256 (a reply ``<sha256>.wav``, a query ``<sha256>.<ext>`` as
    kept); one already there with that name is the same content and is not copied again.

    Raises:
        InvalidInputError: ``out_dir`` cannot be made or written.
        DatabaseError: the store cannot be read; nothing was written.
    """
    replies, queries = _voted_audio(engine)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"{out_dir}: cannot write the audio there ({exc})") from exc
    sources: list[tuple[Path, Path, str]] = []
    for sha in sorted(replies):
        sources.append((reply_audio_path(data_dir, sha), out_dir / f"{sha}.wav", "reply"))
    for sha, stored in sorted(queries):
        kept = Path(stored)
        sources.append((kept, out_dir / f"{sha}{kept.suffix}", "query"))
    written = {"reply": 0, "query": 0}
    missing = 0
    for source, target, kind in sources:
        if not source.is_file():
            missing += 1
            continue
        if not target.exists():
            try:
                _copy(source, target)
            except OSError as exc:
                raise InvalidInputError(f"{target}: cannot write ({exc})") from exc
        written[kind] += 1
    if missing:
        logger.warning("%d audio files the store names are no longer on disk", missing)
    return AudioExport(reply_files=written["reply"], query_files=written["query"], missing=missing)
