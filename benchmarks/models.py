"""Model adapter benchmarks in one JSON document (issue "Model adapters").

Runs ``models_offline.py`` (the built-in offline default on a 5 s espeak-ng clip: time to first
token and total, cold and warm, with the ASR alone as the same-run baseline) and
``models_concurrency.py`` (32 concurrent requests through the OpenAI adapter to a loopback server
with 200 ms latency, against a sequential baseline), each in its own process so neither's
imports or threads colour the other's timings, and prints ``{"offline": ..., "concurrency": ...}``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def run(script: str, *args: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(HERE / script), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def main() -> None:
    document = {
        "benchmark": "models",
        "offline": run("models_offline.py"),
        "concurrency": run("models_concurrency.py"),
    }
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
