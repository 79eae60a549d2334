"""A static run killed halfway (SIGKILL) and started again asks only for what is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.fake_static_model import FakeStaticModel
from lamarena.settings import Settings

from .conftest import write_models_yaml
from .test_runner import GENDER_ANSWERS, HAND_MACRO_F1, Fixture, read_rows, run, script

TOTAL = 18  # 6 samples x 3 prompt variants


def _lines(path: Path) -> int:
    try:
        return path.read_text().count("\n")
    except FileNotFoundError:
        return 0


async def test_a_killed_run_resumes_with_only_the_missing_calls_and_the_same_scores(
    settings: Settings, gender_set: Fixture, tmp_path: Path
) -> None:
    folder, samples = gender_set
    slow = FakeStaticModel(latency_s=0.15)
    script(slow, samples, GENDER_ANSWERS)
    out = tmp_path / "out"
    with slow.serve() as server:
        config = write_models_yaml(tmp_path / "slow.yaml", server.base_url)
        env = {
            **os.environ,
            "LAMARENA_CACHE_DIR": str(settings.cache_dir),
            "LAMARENA_DATA_DIR": str(settings.data_dir),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
        }
        command = [
            sys.executable, "-m", "lamarena", "static", "run", "--config", str(config),
            "--models", "fake", "--datasets", str(folder), "--concurrency", "2", "--out", str(out),
        ]  # fmt: skip
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 60
        while _lines(out / "samples.jsonl") < TOTAL // 2:
            if process.poll() is not None:
                pytest.fail(f"the run ended before it was killed: {process.stderr.read()}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("the run wrote too few rows in 60 s")
            time.sleep(0.01)
        process.kill()
        process.wait(10)
        process.stderr.close()  # type: ignore[union-attr]
        done = len(read_rows(out))
        assert TOTAL // 2 <= done < TOTAL
        assert not (out / "scores.json").exists()  # killed before the end
        calls_before = slow.audio_requests

        slow.reset()
        resumed_settings = settings.model_copy(update={"models_config": config})
        summary = await run(resumed_settings, [str(folder)], out)

    assert slow.audio_requests == TOTAL - done  # only the missing calls
    assert calls_before >= done
    assert summary.counters.resumed == done
    rows = read_rows(out)
    assert len(rows) == TOTAL
    assert len({(row["prompt_id"], row["sample_id"]) for row in rows}) == TOTAL
    scores = json.loads((out / "scores.json").read_text())
    assert [entry["score"] for entry in scores] == pytest.approx([HAND_MACRO_F1] * 3)
