"""Real speech for tests, spoken by espeak-ng (Debian package ``espeak-ng``)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

__all__ = ["speak"]

INSTALL_HINT = "espeak-ng is needed to make test speech: apt-get install -y espeak-ng"


def speak(text: str, path: Path, *, words_per_minute: int = 150, voice: str = "en-us") -> Path:
    """Write ``text`` spoken by espeak-ng to the WAV file ``path`` (22,050 Hz mono) and return it.

    Fails the test (never skips) with the install command when espeak-ng is missing.
    """
    binary = shutil.which("espeak-ng")
    if binary is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    subprocess.run(
        [binary, "-v", voice, "-s", str(words_per_minute), "-w", str(path), text],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return path
