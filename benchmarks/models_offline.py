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
contestant, warm.

``arena_round``: what a person waits for in the arena, both contestants answering the question
at once (as the arena asks them) until the later is done, with the built-in defaults (a prompt
asking for two or three short sentences, 72 and 48 new tokens) against the previous defaults in
the same run (the study's "respond conversationally" prompt, 256 and 96 tokens); target 10 s.
Prints one JSON document on stdout.

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
from lamarena.models.offline import OFFLINE_SYSTEM_PROMPT, builtin_offline_models
from lamarena.models.pipeline import PipelineModel
from lamarena.models.runtime import run_model

ROUND_TARGET_S = 10.0

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


def median_of_plain(runs: list[dict[str, Any]]) -> dict[str, float]:
    """The median of each number over the runs."""
    return {key: round(statistics.median(run[key] for run in runs), 3) for key in runs[0]}


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [key for key, value in runs[0].items() if isinstance(value, float | int)]
    summary: dict[str, Any] = {
        key: round(statistics.median(run[key] for run in runs), 3) for key in keys
    }
    summary["transcript"] = runs[-1]["transcript"]
    summary["reply"] = runs[-1]["reply"]
    return summary


async def arena_round(pair: list[PipelineModel], clip: AudioClip, prompt: str) -> dict[str, Any]:
    """Both contestants asked at once; seconds until the later one is done, and their lengths."""
    started = time.perf_counter()
    replies = await asyncio.gather(*(run_model(model, clip, prompt) for model in pair))
    for reply in replies:
        if not reply.ok:
            raise SystemExit(f"{reply.model}: {reply.error}")
    return {
        "round_s": round(time.perf_counter() - started, 3),
        "reply_chars_default": len(replies[0].text),
        "reply_chars_concise": len(replies[1].text),
    }


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

        # the arena's round: today's defaults, then the previous ones, on loaded weights
        now = builtin_offline_models(cache)
        await arena_round(now, clip, OFFLINE_SYSTEM_PROMPT)  # loads the weights
        rounds = [await arena_round(now, clip, OFFLINE_SYSTEM_PROMPT) for _ in range(repeats)]
        before = [builtin_offline_models(cache, max_new_tokens=256)[0]]
        before.append(builtin_offline_models(cache, max_new_tokens=96)[1])
        await arena_round(before, clip, DEFAULT_SYSTEM_PROMPT)
        previous = [await arena_round(before, clip, DEFAULT_SYSTEM_PROMPT) for _ in range(repeats)]
        round_now, round_before = median_of_plain(rounds), median_of_plain(previous)

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
        "arena_round": {
            "defaults": round_now,
            "previous_defaults": round_before,
            "ratio": round(round_now["round_s"] / round_before["round_s"], 3),
            "target_s": ROUND_TARGET_S,
            "under_target": round_now["round_s"] <= ROUND_TARGET_S,
        },
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.repeats, args.max_new_tokens)), indent=2))
