"""The ``lamarena`` command run as a user runs it: a real subprocess in a given folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["ok", "run_cli"]


def run_cli(
    *args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m lamarena ARGS`` in ``cwd`` with this environment plus ``env``; never raises."""
    return subprocess.run(
        [sys.executable, "-m", "lamarena", *map(str, args)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """The result, once its exit code is 0 (else the test fails with its stderr)."""
    assert result.returncode == 0, result.stderr
    return result
