"""The whole path with the built-in offline model (Whisper tiny.en + SmolLM2), also as judge."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lamarena.bench.run.judge import JUDGE_PROMPT_SHA256
from lamarena.bench.run.plan import RunOptions, RunPlan, prepare_run
from lamarena.bench.run.runner import run_static
from lamarena.bench.run.targets import ModelTarget
from lamarena.models.offline import builtin_offline_models
from lamarena.models.pipeline import PipelineModel
from lamarena.settings import Settings

from .test_runner import Fixture, read_rows

OFFLINE = "offline-whisper-smollm2"
MAX_NEW_TOKENS = 24
"""Replies are cut short to keep the test quick on two CPU cores; nothing else changes."""


def _short(target: ModelTarget, model: PipelineModel) -> ModelTarget:
    return dataclasses.replace(target, entry=dataclasses.replace(target.entry, build=lambda: model))


def plan_with_short_replies(settings: Settings, datasets: list[str], out: Path) -> RunPlan:
    plan = prepare_run(
        settings,
        models=[OFFLINE],
        datasets=datasets,
        options=RunOptions(out_dir=out, prompts=1, limit=1, n_resamples=100),
    )
    model = builtin_offline_models(settings.cache_dir, max_new_tokens=MAX_NEW_TOKENS)[0]
    assert model.name == OFFLINE and plan.judge is not None
    return dataclasses.replace(
        plan, targets=[_short(plan.targets[0], model)], judge=_short(plan.judge, model)
    )


@pytest.mark.slow
async def test_the_offline_model_runs_asr_and_judges_open_answers(
    asr_set: Fixture, open_qa_set: Fixture, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    # The SmolLM2 weights convert once into pytest's cache folder (about 30 s on two cores);
    # the call cache is this test's own, so every run really calls the model.
    settings = Settings(
        models_config=None,
        cache_dir=pytestconfig.cache.mkdir("lamarena-offline-weights"),
        static_cache=tmp_path / "static-cache.sqlite",
        judge_model=OFFLINE,
        pedants_model_dir=tmp_path / "no-pedants",
        model_first_token_timeout_s=300,
        model_total_timeout_s=600,
    )
    datasets = [str(asr_set[0]), str(open_qa_set[0])]
    summary = await run_static(plan_with_short_replies(settings, datasets, tmp_path / "out"))

    assert summary.counters.errors == 0
    assert summary.counters.calls == 2 and summary.counters.judge_calls == 1
    rows = read_rows(tmp_path / "out")
    assert all(row["prediction"] for row in rows)
    wer = next(e for e in summary.scores if e["metric"] == "wer")
    assert wer["n"] == 1 and wer["score"] >= 0
    judged = next(row for row in rows if row["dataset"] == "public_sg_speech")
    assert judged["judge_model"] == OFFLINE
    assert judged["judge_prompt_sha256"] == JUDGE_PROMPT_SHA256
    assert judged["judge_reply"]
    assert judged["judge_rating"] is None or 0 <= judged["judge_rating"] <= 5
    assert {e["metric"] for e in summary.scores} == {"wer", "pedants", "cfmatch", "llm_judge"}
    run_json = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run_json["judge"]["model"] == OFFLINE

    again = await run_static(plan_with_short_replies(settings, datasets, tmp_path / "again"))
    assert again.counters.calls == 0 and again.counters.judge_calls == 0
    assert again.counters.cached == 2
