"""Topics at scale: the sampled mode's time and peak memory as the transcripts grow.

Synthetic transcripts are the study simulation's planted queries (``simulate_queries``) with one
to three noise words each, so nearly all are distinct and each is embedded. Every case runs in
a fresh process (so ``ru_maxrss`` is its own): ``find_topics_at_scale`` (1,000 sampled, the rest
assigned in chunks) at each size, beside the full clustering (``find_topics``) at 2,000 (the
same-run baseline) and ``sampling_agreement`` at 2,000 (ARI and NMI against that full
clustering). ``embed_s`` is the time inside the embedder; the rest is clustering and assignment.
``tracemalloc_peak_mb`` counts Python and numpy allocations (not torch's), ``max_rss_mb`` the
whole process (model included). Prints one JSON document.

    python benchmarks/topics_scale.py [--sizes 2000 20000] [--embedder minilm|hashed]

With the packaged MiniLM on two CPU cores embedding runs at about 250 transcripts a second, so
200,000 takes some 13 minutes of embedding alone; ``--embedder hashed`` (hashed word counts)
measures everything but the model at any size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from lamarena.analysis.text.embeddings import Embedder, sentence_embedder
from lamarena.analysis.text.topics import find_topics
from lamarena.analysis.text.topics_scale import find_topics_at_scale, sampling_agreement
from lamarena.simulation import simulate_queries

NOISE = ("really", "actually", "basically", "just", "like", "today", "please", "quickly")
NOISE += ("honestly", "maybe", "right", "now", "again", "so", "um", "you", "know", "kind", "of")


def transcripts(n: int, seed: int) -> pd.Series:
    """``n`` planted queries, each with one to three noise words at random places."""
    queries = simulate_queries(n, seed=seed)["query_transcript"]
    rng = np.random.default_rng(seed + 1)
    out = []
    for text in queries:
        words = text.split()
        for _ in range(int(rng.integers(1, 4))):
            words.insert(int(rng.integers(0, len(words) + 1)), NOISE[rng.integers(len(NOISE))])
        out.append(" ".join(words))
    return pd.Series(out, name="query_transcript")


def hashed(texts: Sequence[str]) -> NDArray[np.float32]:
    """Hashed word counts (256 wide): an embedder that costs next to nothing."""
    out = np.zeros((len(texts), 256), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in text.lower().split():
            out[row, zlib.crc32(word.encode()) % 256] += 1.0
    return out


class Timed:
    """An embedder that adds up the time spent in it."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.texts = 0

    def __call__(self, texts: Sequence[str]) -> NDArray[np.float32]:
        start = time.perf_counter()
        try:
            return self.inner(texts)
        finally:
            self.seconds += time.perf_counter() - start
            self.texts += len(texts)


def case(kind: str, n: int, embedder_name: str, seed: int) -> dict[str, Any]:
    """One measurement, in this process."""
    texts = transcripts(n, seed)
    inner: Embedder = hashed if embedder_name == "hashed" else sentence_embedder()
    inner(["warm up the model"])  # the load is not the method's cost
    embed = Timed(inner)
    tracemalloc.start()
    start = time.perf_counter()
    extra: dict[str, Any] = {}
    if kind == "full":
        result = find_topics(texts, embedder=embed, seed=seed)
        extra["k"] = len(result.topics)
    elif kind == "sampled":
        result = find_topics_at_scale(texts, embedder=embed, seed=seed)
        extra["k"] = len(result.topics)
        extra["sampled"] = result.sampling is not None
    else:
        agreement = sampling_agreement(texts, embedder=embed, seed=seed)
        extra.update(agreement.to_dict())
        extra.pop("method")
    elapsed = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "case": kind,
        "n": n,
        "seconds": round(elapsed, 2),
        "embed_s": round(embed.seconds, 2),
        "texts_embedded": embed.texts,
        "tracemalloc_peak_mb": round(peak / 2**20, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--embedder", choices=("minilm", "hashed"), default="minilm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--case", choices=("full", "sampled", "agreement"), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case is not None:  # a child: one case, one JSON line
        print(json.dumps(case(args.case, args.n, args.embedder, args.seed)))
        return
    plan = [("full", 2000), ("agreement", 2000)] + [("sampled", n) for n in args.sizes]
    results = []
    for kind, n in plan:
        options = ["--embedder", args.embedder, "--seed", str(args.seed)]
        child = subprocess.run(
            [sys.executable, __file__, "--case", kind, "--n", str(n), *options],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), file=sys.stderr)
    print(
        json.dumps(
            {
                "benchmark": "topics_scale",
                "embedder": args.embedder,
                "sample_size": 1000,
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
