"""models.yaml validation: a good file loads, every kind of mistake names the entry and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from lamarena.errors import ConfigError
from lamarena.models.config import (
    DEFAULT_SYSTEM_PROMPT,
    LocalSpec,
    OpenAISpec,
    PipelineSpec,
    load_models_config,
    parse_models_config,
)

GOOD = """\
models:
  - name: gpt4o
    kind: openai
    model: gpt-4o-audio-preview
    api_key_env: OPENAI_API_KEY
    modalities: [text, audio]
  - name: whisper-llama
    kind: pipeline
    asr: {kind: openai-transcription, model: whisper-1}
    llm: {kind: openai, model: meta-llama/Meta-Llama-3-8B-Instruct, base_url: http://127.0.0.1:8001/v1}
  - name: qwen2-audio-local
    kind: local
    model: Qwen/Qwen2-Audio-7B-Instruct
  - name: gemini
    kind: gemini
    model: gemini-1.5-pro
    api_key_env: GEMINI_API_KEY
    system_prompt: Answer briefly.
"""


def test_a_good_file_loads_every_kind(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(GOOD)
    config = load_models_config(path)
    assert [spec.name for spec in config.models] == [
        "gpt4o",
        "whisper-llama",
        "qwen2-audio-local",
        "gemini",
    ]
    gpt = config.get("gpt4o")
    assert isinstance(gpt, OpenAISpec)
    assert gpt.modalities == ["text", "audio"]
    assert gpt.system_prompt == DEFAULT_SYSTEM_PROMPT
    pipeline = config.get("whisper-llama")
    assert isinstance(pipeline, PipelineSpec)
    assert pipeline.llm.base_url == "http://127.0.0.1:8001/v1"
    assert isinstance(config.get("qwen2-audio-local"), LocalSpec)
    assert config.get("gemini").system_prompt == "Answer briefly."


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("api_key_env: OPENAI", "api_key_nev: OPENAI"),
            "model 'gpt4o' (entry 1): key 'api_key_nev': unknown key",
        ),
        (("kind: local", "kind: locale"), "model 'qwen2-audio-local' (entry 3): key 'kind'"),
        (("name: gemini", "name: gpt4o"), "model name 'gpt4o' is used twice"),
        (
            ("{kind: openai-transcription, model: whisper-1}", "{kind: openai-transcription}"),
            "model 'whisper-llama' (entry 2): key 'asr.model': is missing",
        ),
        (("base_url: http://127.0.0.1:8001/v1", "base_url: 127.0.0.1:8001"), "key 'llm.base_url'"),
        (
            (
                "    model: gpt-4o-audio-preview\n",
                "    model: gpt-4o-audio-preview\n    model: x\n",
            ),
            "line 5: key 'model' appears twice",
        ),
        (("api_key_env: OPENAI_API_KEY", "api_key_env: sk-live-123"), "key 'api_key_env'"),
    ],
)
def test_mistakes_name_the_entry_and_the_key(change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(ConfigError) as caught:
        parse_models_config(GOOD.replace(old, new, 1), source="my.yaml")
    message = str(caught.value)
    assert message.startswith("my.yaml: ")
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("models: [", "not valid YAML"),
        ("- just a list\n", "'models:' list"),
        ("models: []\n", "list is empty"),
        ("models:\n  - name: x\n    model: y\n", "key 'kind': is missing"),
    ],
)
def test_files_that_are_not_a_models_list_are_refused(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_models_config(text)


def test_unknown_name_lists_the_models_there_are() -> None:
    config = parse_models_config(GOOD)
    with pytest.raises(ConfigError, match="no model named 'gpt5'; models: gpt4o, whisper-llama"):
        config.get("gpt5")


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the models file"):
        load_models_config(tmp_path / "nope.yaml")
