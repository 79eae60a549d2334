"""``lamarena static ...`` run as a user runs it: a subprocess, real files, no hub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["static_cli"]


def static_cli(
    *args: str | Path, home: Path, timeout_s: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m lamarena static ARGS`` in ``home`` with its caches there.

    The hub is off (``HF_HUB_OFFLINE``) unless ``env`` says otherwise; ``env`` adds or overrides
    environment variables.
    """
    environment = {
        **os.environ,
        "LAMARENA_CACHE_DIR": str(home / "cache"),
        "LAMARENA_DATA_DIR": str(home / "data"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "lamarena", "static", *map(str, args)],
        cwd=home,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
