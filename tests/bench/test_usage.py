"""Tokens and cost of a static run: per row in samples.jsonl, per model and in total in run.json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.fake_openai import DEFAULT_DELTAS, DEFAULT_PROMPT_TOKENS, FakeOpenAI, FakeOpenAIServer
from lamarena.settings import Settings

from .test_runner import Fixture, read_rows, run

OUTPUT_TOKENS = len("".join(DEFAULT_DELTAS).split())
PRICE_IN, PRICE_OUT = 2.5, 10.0
CALL_COST = (DEFAULT_PROMPT_TOKENS * PRICE_IN + OUTPUT_TOKENS * PRICE_OUT) / 1e6
SAMPLES = 6  # the gender fixture's usable samples, one prompt variant


@pytest.fixture
def openai_fake() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
def openai_server(openai_fake: FakeOpenAI) -> Iterator[FakeOpenAIServer]:
    with openai_fake.serve() as server:
        yield server


def models_yaml(path: Path, base_url: str) -> Path:
    """Three models on one usage-reporting fake: priced, unpriced, and not asking for usage."""

    def entry(name: str, extra: str = "") -> str:
        # Distinct model ids: the cache identity leaves out names and prices.
        return (
            f"  - name: {name}\n    kind: openai\n    model: fake-{name}\n"
            f"    base_url: {base_url}\n    temperature: 0\n    max_retries: 0\n{extra}"
        )

    prices = (
        f"    price_per_million_input_tokens: {PRICE_IN}\n"
        f"    price_per_million_output_tokens: {PRICE_OUT}\n"
    )
    path.write_text(
        "models:\n"
        + entry("priced", prices)
        + entry("unpriced")
        + entry("silent", "    report_usage: false\n" + prices)
    )
    return path


@pytest.fixture
def usage_settings(settings: Settings, tmp_path: Path, openai_server: FakeOpenAIServer) -> Settings:
    config = models_yaml(tmp_path / "usage.yaml", openai_server.base_url)
    return settings.model_copy(update={"models_config": config})


def _rows_of(rows: list[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    return [row for row in rows if row["model"] == model]


async def test_a_run_records_tokens_and_cost_per_row_and_per_model(
    usage_settings: Settings, gender_set: Fixture, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    summary = await run(
        usage_settings,
        [str(gender_set[0])],
        out,
        models=("priced", "unpriced", "silent"),
        prompts=1,
    )

    rows = read_rows(out)
    assert len(rows) == 3 * SAMPLES
    for row in _rows_of(rows, "priced"):
        assert row["usage"] == {
            "input_tokens": DEFAULT_PROMPT_TOKENS,
            "output_tokens": OUTPUT_TOKENS,
            "cost_usd": pytest.approx(CALL_COST),
        }
    for row in _rows_of(rows, "unpriced"):
        assert row["usage"] == {
            "input_tokens": DEFAULT_PROMPT_TOKENS,
            "output_tokens": OUTPUT_TOKENS,
            "cost_usd": None,  # tokens known, no prices: no made-up cost
        }
    assert all(row["usage"] is None for row in _rows_of(rows, "silent"))

    run_json = json.loads((out / "run.json").read_text())
    by_model = run_json["usage_by_model"]
    assert by_model["priced"] == {
        "calls": SAMPLES,
        "calls_with_usage": SAMPLES,
        "input_tokens": SAMPLES * DEFAULT_PROMPT_TOKENS,
        "output_tokens": SAMPLES * OUTPUT_TOKENS,
        "priced_calls": SAMPLES,
        "cost_usd": pytest.approx(SAMPLES * CALL_COST),
    }
    assert by_model["unpriced"]["input_tokens"] == SAMPLES * DEFAULT_PROMPT_TOKENS
    assert by_model["unpriced"]["cost_usd"] is None
    assert by_model["silent"] == {
        "calls": SAMPLES,
        "calls_with_usage": 0,
        "input_tokens": None,
        "output_tokens": None,
        "priced_calls": 0,
        "cost_usd": None,  # priced, but the server was never asked for tokens
    }
    assert run_json["tokens"] == {
        "input_tokens": 2 * SAMPLES * DEFAULT_PROMPT_TOKENS,
        "output_tokens": 2 * SAMPLES * OUTPUT_TOKENS,
    }
    assert run_json["cost_usd"] == pytest.approx(SAMPLES * CALL_COST)
    assert summary.by_model["priced"].cost_usd == pytest.approx(SAMPLES * CALL_COST)
    assert summary.counters.usage_reported == 2 * SAMPLES
    assert summary.counters.priced_calls == SAMPLES

    priced = run_json["models"]["priced"]
    assert priced["resolved"]["price_per_million_input_tokens"] == PRICE_IN
    identity = priced["cache_identity"]
    assert not {"price_per_million_input_tokens", "report_usage"} & set(identity)


async def test_cached_rows_keep_the_original_usage_but_the_run_spends_nothing(
    usage_settings: Settings, openai_fake: FakeOpenAI, gender_set: Fixture, tmp_path: Path
) -> None:
    folder = str(gender_set[0])
    await run(usage_settings, [folder], tmp_path / "first", models=("priced",), prompts=1)
    calls = len(openai_fake.chat_requests)

    again = await run(usage_settings, [folder], tmp_path / "again", models=("priced",), prompts=1)

    assert len(openai_fake.chat_requests) == calls  # every call came from the cache
    rows = read_rows(tmp_path / "again")
    assert all(row["cached"] for row in rows)
    assert all(row["usage"]["cost_usd"] == pytest.approx(CALL_COST) for row in rows)
    run_json = json.loads((tmp_path / "again" / "run.json").read_text())
    assert run_json["tokens"] is None and run_json["cost_usd"] is None
    assert run_json["usage_by_model"]["priced"]["calls"] == 0
    assert again.counters.cost_usd == 0.0


async def test_a_model_without_usage_leaves_tokens_and_cost_null(
    settings: Settings, gender_set: Fixture, tmp_path: Path
) -> None:
    # The conftest's loopback model streams no usage at all.
    summary = await run(settings, [str(gender_set[0])], tmp_path / "out", prompts=1)

    assert all(row["usage"] is None for row in read_rows(tmp_path / "out"))
    run_json = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run_json["tokens"] is None and run_json["cost_usd"] is None
    assert run_json["usage_by_model"]["fake"]["calls"] == summary.counters.calls == SAMPLES
    assert run_json["usage_by_model"]["fake"]["input_tokens"] is None


async def test_a_row_records_audio_tokens_and_prices_them_apart(
    settings: Settings,
    openai_fake: FakeOpenAI,
    openai_server: FakeOpenAIServer,
    gender_set: Fixture,
    tmp_path: Path,
) -> None:
    openai_fake.usage_for = lambda body: (1000, 200)
    openai_fake.audio_usage = (800, 150)  # of the totals: audio tokens in and out
    config = tmp_path / "audio.yaml"
    config.write_text(
        "models:\n  - name: spoken\n    kind: openai\n    model: fake-spoken\n"
        f"    base_url: {openai_server.base_url}\n    max_retries: 0\n"
        "    price_per_million_input_tokens: 2.5\n    price_per_million_output_tokens: 10\n"
        "    price_per_million_input_audio_tokens: 40\n"
        "    price_per_million_output_audio_tokens: 80\n"
    )
    call_cost = (200 * 2.5 + 800 * 40 + 50 * 10 + 150 * 80) / 1e6
    out = tmp_path / "out"
    await run(
        settings.model_copy(update={"models_config": config}),
        [str(gender_set[0])],
        out,
        models=("spoken",),
        prompts=1,
    )

    rows = read_rows(out)
    assert len(rows) == SAMPLES
    for row in rows:
        assert row["usage"] == {
            "input_tokens": 1000,
            "output_tokens": 200,
            "input_audio_tokens": 800,
            "output_audio_tokens": 150,
            "cost_usd": pytest.approx(call_cost),
        }
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["cost_usd"] == pytest.approx(SAMPLES * call_cost)
    identity = run_json["models"]["spoken"]["cache_identity"]
    assert not any(key.startswith("price_per_million") for key in identity)
