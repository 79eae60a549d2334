"""``static run --decoding constrained``: in-process models score each label instead of generating.

A tiny random-weight Qwen2-Audio (built from a config, saved like a real checkpoint) answers
MUStARD's copy (:mod:`helpers.hub_fixtures`) through the real CLI: free decoding gives random
words that name no label, constrained decoding gives the label whose tokens the model finds
likeliest, checked against the adapter's own scores computed here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from helpers.hub_fixtures import EntryFixture, build_hub
from helpers.static_cli import static_cli as cli
from helpers.tiny_models import build_tiny_qwen2_audio
from lamarena.bench.data.loading import (
    iter_samples,
    open_dataset,
    plan_samples,
    resolve_dataset,
    sample_clip,
)
from lamarena.bench.data.prompts import render_prompt
from lamarena.bench.data.registry import load_registry
from lamarena.models.local import LocalAudioLM

REGISTRY = load_registry()


def rows_of(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, EntryFixture]]:
    home = tmp_path_factory.mktemp("constrained")
    hub = home / "hub"
    entries = build_hub(hub, only={"mustard"})
    model_dir = build_tiny_qwen2_audio(home / "tiny-qwen2-audio")
    (home / "models.yaml").write_text(
        "models:\n"
        f"  - {{name: tiny, kind: local, model: '{model_dir}', max_tokens: 6}}\n"
        "  - {name: remote, kind: openai, model: m, base_url: 'http://127.0.0.1:9/v1'}\n"
    )
    return home, hub, entries


def run(setup: tuple[Path, Path, dict[str, EntryFixture]], out: str, *extra: str) -> Path:
    home, hub, _ = setup
    result = cli(
        "run", "--config", home / "models.yaml", "--models", "tiny", "--datasets", "mustard",
        "--hub-dir", hub, "--prompts", "1", "--out", home / out, *extra, home=home,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return home / out


async def test_constrained_answers_are_the_likeliest_label_where_free_ones_name_none(
    setup: tuple[Path, Path, dict[str, EntryFixture]],
) -> None:
    home, hub, _ = setup
    free = {row["sample_id"]: row for row in rows_of(run(setup, "free"))}
    constrained_out = run(setup, "constrained", "--decoding", "constrained")
    constrained = {row["sample_id"]: row for row in rows_of(constrained_out)}
    assert set(free) == set(constrained) == {"0", "1", "2"}
    # Free: the random model's words name no label, so every answer is unparsed and wrong.
    assert all(row["decoding"] == "free" and row["parsed"] is None for row in free.values())
    # Constrained: nothing is parsed; each answer is a label with both labels' log-likelihoods.
    for row in constrained.values():
        assert row["decoding"] == "constrained" and row["rule"] == "constrained"
        assert set(row["option_logprobs"]) == {"yes", "no"}
        best = max(("yes", "no"), key=lambda label: row["option_logprobs"][label])
        assert row["parsed"] == row["prediction"] == best
    # The same scores from the adapter itself, on the same audio and prompt.
    spec = REGISTRY.dataset("mustard")
    dataset = open_dataset(resolve_dataset("mustard", REGISTRY, hub_dir=hub), cache_dir=home)
    samples = list(iter_samples(spec, dataset, plan_samples(spec, dataset, limit=None).indices))
    model = LocalAudioLM("tiny", home / "tiny-qwen2-audio", max_new_tokens=6)
    template = REGISTRY.prompts_for(spec)[0]
    for sample in samples:
        scores = await model.score_options(
            sample_clip(sample), render_prompt(template, spec, sample), ["yes", "no"]
        )
        logged = constrained[sample.sample_id]["option_logprobs"]
        assert {score.text: score.logprob for score in scores} == pytest.approx(logged, abs=1e-4)
    scores = json.loads((constrained_out / "scores.json").read_text())
    assert [entry["n_unparsed"] for entry in scores] == [0]
    free_scores = json.loads((home / "free" / "scores.json").read_text())
    assert [entry["n_unparsed"] for entry in free_scores] == [3]
    assert [entry["score"] for entry in free_scores] == [0.0]
    run_json = json.loads((constrained_out / "run.json").read_text())
    assert run_json["options"]["decoding"] == "constrained"


def test_a_constrained_rerun_is_answered_by_the_cache_apart_from_free_answers(
    setup: tuple[Path, Path, dict[str, EntryFixture]],
) -> None:
    home, _, _ = setup
    run(setup, "warm", "--decoding", "constrained")
    result = cli(
        "run", "--config", home / "models.yaml", "--models", "tiny", "--datasets", "mustard",
        "--hub-dir", setup[1], "--prompts", "1", "--out", home / "again",
        "--decoding", "constrained", "--json", home=home,
    )  # fmt: skip
    again = json.loads(result.stdout)
    assert again["counts"]["calls"] == 0 and again["counts"]["cached"] == 3
    rows = rows_of(home / "again")
    assert all(row["decoding"] == "constrained" and row["option_logprobs"] for row in rows)


def test_constrained_decoding_refuses_a_remote_model_before_anything_runs(
    setup: tuple[Path, Path, dict[str, EntryFixture]],
) -> None:
    home, hub, _ = setup
    result = cli(
        "run", "--config", home / "models.yaml", "--models", "remote", "--datasets", "mustard",
        "--hub-dir", hub, "--out", home / "remote", "--decoding", "constrained", home=home,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: model 'remote' (openai) cannot score options: --decoding constrained needs an "
        "in-process model (kind: local, or a pipeline whose llm is local); use --decoding free "
        "for remote models"
    )
    assert not (home / "remote").exists()


def test_a_folder_of_free_answers_is_not_resumed_with_constrained_decoding(
    setup: tuple[Path, Path, dict[str, EntryFixture]],
) -> None:
    home, hub, _ = setup
    out = run(setup, "mixed")
    before = (out / "samples.jsonl").read_bytes()
    result = cli(
        "run", "--config", home / "models.yaml", "--models", "tiny", "--datasets", "mustard",
        "--hub-dir", hub, "--prompts", "1", "--out", out, "--decoding", "constrained", home=home,
    )  # fmt: skip
    assert result.returncode == 1
    assert "holds a run with --decoding free" in result.stderr
    assert "give another --out" in result.stderr
    assert (out / "samples.jsonl").read_bytes() == before
