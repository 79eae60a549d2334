"""Files the arena keeps by their content: a query's audio (with consent), a reply's audio.

A file is written beside its place (``<sha256>.<ext>`` in its folder) and moved into place in
one step, so a reader never sees half a file; the same content is one file.
"""

from __future__ import annotations

import errno
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lamarena.errors import StorageFull

__all__ = ["DISK_FULL_MESSAGE", "StagedAudio", "stage_audio"]

DISK_FULL_MESSAGE = "the server's disk is full, so nothing was stored; tell the arena's operator"


@dataclass(frozen=True)
class StagedAudio:
    """A kept query written beside its place; it takes its place only after the commit."""

    path: Path
    temporary: Path | None

    def publish(self) -> None:
        """Move the file into place (after the battle's commit)."""
        if self.temporary is not None:
            os.replace(self.temporary, self.path)

    def discard(self) -> None:
        """Remove the staged file (the commit failed: nothing refers to it)."""
        if self.temporary is not None:
            self.temporary.unlink(missing_ok=True)


def stage_audio(directory: Path, sha256: str, extension: str, data: bytes) -> StagedAudio:
    """Write the query to a temporary file beside its content-addressed path.

    Raises:
        StorageFull: the disk is full (nothing is left behind).
    """
    path = (directory / f"{sha256}.{extension}").resolve()
    if path.exists():  # the same audio is kept already (content-addressed)
        return StagedAudio(path, None)
    temporary: str | None = None
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=directory, suffix=".part")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull(DISK_FULL_MESSAGE) from exc
        raise
    return StagedAudio(path, Path(temporary))
