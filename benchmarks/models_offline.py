"""The built-in offline models' latency on a ~5 s spoken question, cold and warm.

Speaks a question with espeak-ng, then asks the default offline pipeline (Whisper tiny.en ->
SmolLM2-135M-Instruct) about it:

- cold: a fresh cache directory, so the first request loads Whisper and converts the GGUF to
  safetensors (once ever) before its first token;
- cached: new adapters on the same cache directory, as a restarted server would: the
  safetensors load without conversion;
- warm: further requests on loaded weights (median of ``--repeats``).

Each request reports the ASR time, the LLM's time to first token and its total, and the
request's time to first token and total. Baselines from the same run: the ASR alone and the
LLM alone on the transcript, each as a share of the warm pipeline's total; and the concise
contestant, warm. Prints one JSON document on stdout.

    python benchmarks/models_offline.py [--repeats 3] [--max-new-tokens 256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from lamarena.audio import AudioClip, load_audio
from lamarena.models.config import DEFAULT_SYSTEM_PROMPT
from lamarena.models.local import FasterWhisperTranscriber, LocalTextLM
from lamarena.models.offline import builtin_offline_models
from lamarena.models.pipeline import PipelineModel

QUESTION = (
    "Could you tell me what the capital of France is, and name one famous museum in that city?"
)


def speak(text: str, path: Path) -> AudioClip:
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise SystemExit("espeak-ng is needed: apt-get install -y espeak-ng")
    subprocess.run([binary, "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    return load_audio(path)


async def timed_request(model: PipelineModel, clip: AudioClip) -> dict[str, Any]:
    """One request, timed by part: ASR, then the LLM's first delta and its end."""
    started = time.perf_counter()
    transcript = await model.transcribe(clip)
    asr_done = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    async for delta in model.stream_transcript(transcript, DEFAULT_SYSTEM_PROMPT):
        if first is None:
            first = time.perf_counter()
        parts.append(delta)
    ended = time.perf_counter()
    return {
        "asr_s": round(asr_done - started, 3),
        "llm_ttft_s": round((first or ended) - asr_done, 3),
        "llm_total_s": round(ended - asr_done, 3),
        "ttft_s": round((first or ended) - started, 3),
        "total_s": round(ended - started, 3),
        "reply_chars": len("".join(parts)),
        "transcript": transcript,
        "reply": "".join(parts)[:120],
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [key for key, value in runs[0].items() if isinstance(value, float | int)]
    summary: dict[str, Any] = {
        key: round(statistics.median(run[key] for run in runs), 3) for key in keys
    }
    summary["transcript"] = runs[-1]["transcript"]
    summary["reply"] = runs[-1]["reply"]
    return summary


async def asr_alone(transcriber: FasterWhisperTranscriber, clip: AudioClip, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await transcriber.transcribe(clip)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


async def main(repeats: int, max_new_tokens: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="lamarena-bench-") as scratch:
        scratch_dir = Path(scratch)
        clip = speak(QUESTION, scratch_dir / "question.wav")
        cache = scratch_dir / "cache"

        default, concise = builtin_offline_models(cache, max_new_tokens=max_new_tokens)
        cold = await timed_request(default, clip)
        assert isinstance(default.llm, LocalTextLM)
        assert isinstance(default.transcriber, FasterWhisperTranscriber)
        cold["llm_load_s"] = round(default.llm.load_s or 0.0, 3)
        cold["asr_load_s"] = round(default.transcriber.load_s or 0.0, 3)

        restarted, _ = builtin_offline_models(cache, max_new_tokens=max_new_tokens)
        cached = await timed_request(restarted, clip)
        assert isinstance(restarted.llm, LocalTextLM)
        cached["llm_load_s"] = round(restarted.llm.load_s or 0.0, 3)

        warm = median_of([await timed_request(default, clip) for _ in range(repeats)])
        warm_concise = median_of([await timed_request(concise, clip) for _ in range(repeats)])
        asr_only_s = await asr_alone(default.transcriber, clip, repeats)

    return {
        "benchmark": "models_offline",
        "model": default.name,
        "clip_s": round(clip.duration_s, 2),
        "question": QUESTION,
        "max_new_tokens": max_new_tokens,
        "repeats": repeats,
        "cold": cold,
        "cached": cached,
        "warm": warm,
        "warm_concise": {"model": concise.name, **warm_concise},
        "baseline": {
            "asr_only_s": asr_only_s,
            "asr_share_of_warm_total": round(asr_only_s / warm["total_s"], 3),
            "llm_share_of_warm_total": round(warm["llm_total_s"] / warm["total_s"], 3),
            "cold_over_warm_ttft": round(cold["ttft_s"] / warm["ttft_s"], 1),
            "cached_over_warm_ttft": round(cached["ttft_s"] / warm["ttft_s"], 1),
        },
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.repeats, args.max_new_tokens)), indent=2))
