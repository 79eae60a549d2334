"""run_model, the registry and the model commands against a loopback OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from helpers.fake_openai import DEFAULT_DELTAS, FakeOpenAI, FakeOpenAIServer
from lamarena.audio import AudioClip
from lamarena.errors import ConfigError
from lamarena.models.base import ModelTimeouts
from lamarena.models.openai_compat import OpenAIChatModel
from lamarena.models.registry import ask_model, check_models, model_entries
from lamarena.models.runtime import run_model
from lamarena.settings import load_settings

PROMPT = "Respond conversationally to the speech provided."


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
def server(fake: FakeOpenAI) -> Iterator[FakeOpenAIServer]:
    with fake.serve() as server:
        yield server


@pytest.fixture
async def model(server: FakeOpenAIServer) -> AsyncIterator[OpenAIChatModel]:
    chat = OpenAIChatModel("fake-chat", "fake-model", base_url=server.base_url, api_key="k")
    try:
        yield chat
    finally:
        await chat.aclose()


async def test_reply_collects_deltas_in_order_with_timings(
    model: OpenAIChatModel, question_clip: AudioClip
) -> None:
    seen: list[str] = []
    reply = await run_model(model, question_clip, PROMPT, on_delta=seen.append)
    assert reply.ok
    assert seen == [delta for delta in DEFAULT_DELTAS if delta]
    assert reply.text == "".join(DEFAULT_DELTAS)
    assert reply.chars == len(reply.text)
    assert reply.ttft_s is not None
    assert 0 < reply.ttft_s <= reply.total_s


async def test_async_delta_callbacks_are_awaited(
    model: OpenAIChatModel, question_clip: AudioClip
) -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    reply = await run_model(model, question_clip, PROMPT, on_delta=queue.put)
    received = [queue.get_nowait() for _ in range(queue.qsize())]
    assert "".join(received) == reply.text


async def test_no_first_token_in_time_is_an_error_on_the_reply(
    fake: FakeOpenAI, model: OpenAIChatModel, question_clip: AudioClip
) -> None:
    fake.first_token_delay_s = 2.0
    reply = await run_model(
        model, question_clip, PROMPT, timeouts=ModelTimeouts(first_token_s=0.3, total_s=5.0)
    )
    assert reply.error == "model 'fake-chat': no reply after 0.3 s"
    assert reply.ttft_s is None
    assert reply.text == ""
    assert reply.total_s < 1.5


async def test_a_reply_that_takes_too_long_keeps_what_arrived(
    fake: FakeOpenAI, model: OpenAIChatModel, question_clip: AudioClip
) -> None:
    fake.delta_delay_s = 0.5
    reply = await run_model(
        model, question_clip, PROMPT, timeouts=ModelTimeouts(first_token_s=5.0, total_s=0.7)
    )
    assert reply.error == "model 'fake-chat': the reply took longer than 0.7 s"
    assert reply.ttft_s is not None
    assert 0 < len(reply.text) < len("".join(DEFAULT_DELTAS))


async def test_a_model_error_is_kept_on_the_reply(
    fake: FakeOpenAI, model: OpenAIChatModel, question_clip: AudioClip
) -> None:
    fake.fail_next(400, "audio too short for this model")
    reply = await run_model(model, question_clip, PROMPT)
    assert not reply.ok
    assert reply.error is not None
    assert "audio too short for this model" in reply.error
    assert reply.text == ""


async def test_a_semaphore_limits_requests_in_flight(
    fake: FakeOpenAI, model: OpenAIChatModel, question_clip: AudioClip
) -> None:
    fake.delta_delay_s = 0.02
    limit = asyncio.Semaphore(1)
    replies = await asyncio.gather(
        *(run_model(model, question_clip, PROMPT, semaphore=limit) for _ in range(3))
    )
    assert all(reply.ok for reply in replies)
    assert fake.max_in_flight == 1


def _models_yaml(tmp_path: Path, base_url: str) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n"
        "  - name: loopback\n"
        "    kind: openai\n"
        "    model: fake-model\n"
        f"    base_url: {base_url}\n"
        "    api_key_env: LAMARENA_TEST_KEY\n"
        "  - name: nowhere\n"
        "    kind: openai\n"
        "    model: fake-model\n"
        "    base_url: http://127.0.0.1:9/v1\n"
        "    timeout_s: 2\n"
        "    max_retries: 0\n"
    )
    return path


async def test_registry_builds_from_models_yaml_with_the_named_key(
    server: FakeOpenAIServer,
    fake: FakeOpenAI,
    tmp_path: Path,
    question_clip: AudioClip,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings(models_config=_models_yaml(tmp_path, server.base_url))
    entries = model_entries(settings)
    assert [(e.name, e.kind, e.offline) for e in entries] == [
        ("loopback", "openai", False),
        ("nowhere", "openai", False),
    ]
    with pytest.raises(ConfigError, match="needs the environment variable LAMARENA_TEST_KEY"):
        await ask_model(settings, "loopback", question_clip)
    monkeypatch.setenv("LAMARENA_TEST_KEY", "sk-secret-value")
    reply = await ask_model(settings, "loopback", question_clip)
    assert reply.text == "".join(DEFAULT_DELTAS)
    request = fake.chat_requests[-1]
    assert request.headers["authorization"] == "Bearer sk-secret-value"
    with pytest.raises(ConfigError, match="no model named 'gpt5'; models: loopback, nowhere"):
        await ask_model(settings, "gpt5", question_clip)


async def test_check_reports_each_model_and_does_not_hide_a_failure(
    server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMARENA_TEST_KEY", "k")
    settings = load_settings(models_config=_models_yaml(tmp_path, server.base_url))
    rows = {row["name"]: row for row in await check_models(settings)}
    assert rows["loopback"]["ok"] is True
    assert rows["loopback"]["ttft_s"] > 0
    assert rows["nowhere"]["ok"] is False
    assert "cannot reach" in rows["nowhere"]["error"]


def _cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lamarena", *map(str, args)],
        cwd=cwd,
        env={**os.environ, "LAMARENA_TEST_KEY": "k"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_ask_streams_to_stdout_and_times_to_stderr(
    server: FakeOpenAIServer, tmp_path: Path, question_wav: Path
) -> None:
    config = _models_yaml(tmp_path, server.base_url)
    result = _cli("ask", "loopback", question_wav, "--config", config, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "".join(DEFAULT_DELTAS).strip()
    assert "ttft " in result.stderr
    assert "total " in result.stderr
    failed = _cli("ask", "nowhere", question_wav, "--config", config, cwd=tmp_path)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith("error: model 'nowhere'")


def test_models_list_json_and_check_exit_status(server: FakeOpenAIServer, tmp_path: Path) -> None:
    config = _models_yaml(tmp_path, server.base_url)
    listed = _cli("models", "list", "--json", "--config", config, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == [
        {"name": "loopback", "kind": "openai", "model": "fake-model", "offline": False},
        {"name": "nowhere", "kind": "openai", "model": "fake-model", "offline": False},
    ]
    checked = _cli("models", "check", "--config", config, cwd=tmp_path)
    assert checked.returncode == 1
    assert "loopback" in checked.stdout
    assert "FAIL" in checked.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - name: x\n    kind: openai\n    modle: y\n")
    refused = _cli("models", "list", "--config", bad, cwd=tmp_path)
    assert refused.returncode == 1
    assert "model 'x' (entry 1): key 'modle': unknown key" in refused.stderr


async def test_a_hub_id_not_on_this_machine_is_never_downloaded(
    tmp_path: Path, question_clip: AudioClip
) -> None:
    config = tmp_path / "local.yaml"
    config.write_text(
        "models:\n"
        "  - name: qwen-hub\n"
        "    kind: local\n"
        "    model: Qwen/Qwen2-Audio-7B-Instruct\n"
        "  - name: qwen-fetch\n"
        "    kind: local\n"
        "    model: Qwen/Qwen2-Audio-7B-Instruct\n"
        "    allow_download: true\n"
    )
    settings = load_settings(models_config=config, cache_dir=tmp_path / "cache")
    offline = {entry.name: entry.offline for entry in model_entries(settings)}
    assert offline == {"qwen-hub": True, "qwen-fetch": False}
    reply = await ask_model(settings, "qwen-hub", question_clip)
    assert reply.error is not None
    assert "local Hugging Face cache" in reply.error
    assert reply.total_s < 30
