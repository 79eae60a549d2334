"""Model ids against the installed SDKs' own lists: the parser, lifecycle, and every shipped id.

The shipped-ids test applies two rules to README.md, docs/*.md, examples/*.yaml, YAML shipped under
src/lamarena and every docstring (string statement) under src/lamarena:

1. Configuration: every YAML block (a markdown ```yaml fence, a docstring's
   ``.. code-block:: yaml``, a whole .yaml file) is parsed, and each id that :func:`hosted_ids`
   says goes to OpenAI's or Google's own API (kind openai, openai-transcription, openai-speech or
   gemini with no base_url) must be in the SDK's list and not past its shutdown date. vLLM paths
   and local models have a base_url or another kind, and are exempt.
2. Prose: every other ``gpt-*`` or ``gemini-*`` token (not a ``name:`` or ``model:`` value, not
   inside a URL path) must be an id some list knows, or a family prefix of one (``gpt-4o-audio``);
   one past its shutdown date may appear only on a line that says so ("shut down", "shutdown",
   "retired", "no longer").
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import typing
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from lamarena.models import model_ids
from lamarena.models.config import load_models_config
from lamarena.models.model_ids import (
    GEMINI_SHUT_DOWN,
    Deprecation,
    HostedId,
    Known,
    Retired,
    Retiring,
    Unknown,
    describe,
    hosted_ids,
    lifecycle,
    parse_deprecations,
    read_literal_ids,
    sdk_model_ids,
)
from lamarena.models.registry import check_models
from lamarena.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "lamarena"
DAY = date(2026, 12, 7)


def _openai_file(relative: str) -> Path:
    import openai

    return Path(openai.__file__).parent / relative


# --- the parser ----------------------------------------------------------------------------------

SYNTHETIC = """The model to use.

    Deprecated values:

    - "old-a", "old-a-2024-01-01": Announced shutdown date: 2025-01-31. See
      https://example.com for details.
    - "wrapped-1",
      "wrapped-2": Announced
      shutdown date: 2026-03-26. See https://example.com.
    - "never-was": Not a supported model ID. Retained for SDK compatibility.
    - "odd-one": Something else entirely.
"""


def test_parser_reads_a_synthetic_section_with_wrapped_bullets() -> None:
    found = parse_deprecations(SYNTHETIC)
    assert found == {
        "old-a": Deprecation("old-a", date(2025, 1, 31)),
        "old-a-2024-01-01": Deprecation("old-a-2024-01-01", date(2025, 1, 31)),
        "wrapped-1": Deprecation("wrapped-1", date(2026, 3, 26)),
        "wrapped-2": Deprecation("wrapped-2", date(2026, 3, 26)),
        "never-was": Deprecation("never-was", None),
    }


def test_parser_without_a_section_finds_nothing() -> None:
    assert parse_deprecations("The model to use.\n\n- a list, but no header\n") == {}


def test_the_installed_chat_model_literal_is_read_whole_with_its_deprecations() -> None:
    from openai.types.shared.chat_model import ChatModel

    ids, doc = read_literal_ids(_openai_file("types/shared/chat_model.py"), "ChatModel")
    assert ids == list(typing.get_args(ChatModel))
    deprecated = parse_deprecations(doc)
    assert deprecated["gpt-4o-audio-preview"].shutdown == date(2026, 5, 7)
    assert deprecated["gpt-4o-audio-preview-2024-10-01"].shutdown == date(2025, 10, 10)
    assert deprecated["gpt-audio-mini"].shutdown == date(2027, 1, 20)
    assert deprecated["gpt-5.1-mini"].shutdown is None  # "Not a supported model ID"
    assert set(deprecated) <= set(ids)


def test_the_installed_audio_and_speech_literals_are_read() -> None:
    from openai.types.audio.speech_model import SpeechModel
    from openai.types.audio_model import AudioModel

    speech, speech_doc = read_literal_ids(
        _openai_file("types/audio/speech_model.py"), "SpeechModel"
    )
    audio, _ = read_literal_ids(_openai_file("types/audio_model.py"), "AudioModel")
    assert speech == list(typing.get_args(SpeechModel))
    assert audio == list(typing.get_args(AudioModel))
    assert parse_deprecations(speech_doc)["gpt-4o-mini-tts"].shutdown == date(2027, 1, 6)


def test_every_sdk_file_this_module_reads_is_still_there() -> None:
    # An SDK upgrade that moves a list would silently shrink what is known: fail here instead.
    for relative, name in model_ids._OPENAI_LISTS:
        ids, _ = read_literal_ids(_openai_file(relative), name)
        assert ids, relative
    assert {"gpt-audio-1.5", "gpt-transcribe", "gpt-4o-mini-tts"} <= sdk_model_ids("openai")
    assert "gemini-3.8-flash" in sdk_model_ids("gemini")


# --- lifecycle -----------------------------------------------------------------------------------


def test_lifecycle_of_openai_ids() -> None:
    retired = lifecycle("gpt-4o-audio-preview", "openai", DAY)
    assert isinstance(retired, Retired)
    assert retired.shutdown == date(2026, 5, 7)
    assert describe(retired, DAY).startswith(
        "gpt-4o-audio-preview was shut down on 2026-05-07 (the openai "
    )
    assert describe(retired, DAY).endswith("SDK's deprecation list); use gpt-audio-1.5")
    retiring = lifecycle("gpt-audio-mini", "openai", DAY)
    assert isinstance(retiring, Retiring)
    assert retiring.days_left(DAY) == 44
    assert "in 44 days" in describe(retiring, DAY)
    assert isinstance(lifecycle("gpt-audio-mini", "openai", date(2027, 1, 20)), Retired)
    assert isinstance(lifecycle("gpt-audio-1.5", "openai", DAY), Known)
    assert isinstance(lifecycle("gpt-transcribe", "openai", DAY), Known)
    unsupported = lifecycle("gpt-5.1-mini", "openai", DAY)
    assert isinstance(unsupported, Retired)
    assert "not a supported model id" in describe(unsupported, DAY)


def test_lifecycle_of_gemini_ids() -> None:
    assert lifecycle("gemini-1.5-pro", "gemini", DAY) == Retired(
        "gemini-1.5-pro",
        date(2025, 9, 24),
        "the Gemini API deprecations page",
        "gemini-3.8-flash",
    )
    assert isinstance(lifecycle("gemini-2.0-flash", "gemini", DAY), Retired)
    routed = lifecycle("gemini-2.5-pro", "gemini", DAY)
    assert isinstance(routed, Retired)
    assert "routed to gemini-3.8-flash" in describe(routed, DAY)
    assert isinstance(lifecycle("gemini-2.5-pro", "gemini", date(2026, 11, 1)), Retiring)
    assert isinstance(lifecycle("gemini-3.8-flash", "gemini", DAY), Known)


@pytest.mark.parametrize(
    ("model_id", "provider"),
    [
        ("Qwen/Qwen2-Audio-7B-Instruct", "openai"),
        ("/models/Qwen2-Audio-7B-Instruct", "openai"),
        ("meta-llama/Meta-Llama-3-8B-Instruct", "openai"),
        ("ft:gpt-4o-mini:acme::abc123", "openai"),
        ("gemini-next-internal", "gemini"),
    ],
)
def test_ids_in_no_list_are_unknown_and_allowed(model_id: str, provider: Any) -> None:
    status = lifecycle(model_id, provider, DAY)
    assert status == Unknown(model_id)
    assert "no SDK list" in describe(status, DAY)


def test_the_gemini_table_names_a_source_for_every_id() -> None:
    for model_id, shut in GEMINI_SHUT_DOWN.items():
        assert model_id.startswith("gemini-")
        assert "deprecations page" in shut.source


# --- which ids are hosted ------------------------------------------------------------------------


def test_hosted_ids_are_those_sent_to_the_providers_own_api() -> None:
    entry = {
        "name": "p",
        "kind": "pipeline",
        "asr": {"kind": "openai-transcription", "model": "gpt-transcribe"},
        "llm": {"kind": "openai", "model": "llama", "base_url": "http://127.0.0.1:8001/v1"},
        "tts": {"kind": "openai-speech", "model": "gpt-4o-mini-tts", "base_url": None},
    }
    assert hosted_ids(entry) == [
        HostedId("openai", "gpt-transcribe"),
        HostedId("openai", "gpt-4o-mini-tts"),
    ]
    assert hosted_ids({"kind": "gemini", "model": "gemini-3.8-flash"}) == [
        HostedId("gemini", "gemini-3.8-flash")
    ]
    official = {"kind": "openai", "model": "gpt-audio-1.5", "base_url": "https://api.openai.com/v1"}
    assert hosted_ids(official) == [HostedId("openai", "gpt-audio-1.5")]
    assert hosted_ids({"kind": "local", "model": "Qwen/Qwen2-Audio-7B-Instruct"}) == []
    assert hosted_ids({"kind": "local-whisper", "model": "large-v3"}) == []


# --- every id lamarena ships ---------------------------------------------------------------------

_TOKEN = re.compile(r"(?<![\w./-])(?:gpt|gemini)-[A-Za-z0-9.-]*[A-Za-z0-9]")
_SAYS_SHUT_DOWN = re.compile(r"shuts? down|shutdown|retired|no longer", re.IGNORECASE)
_FENCE = re.compile(r"```ya?ml\n(.*?)```", re.DOTALL)
_KEY_VALUE = re.compile(r"\b(name|model):\s*$")


def _docstring_texts(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ]


def _rst_yaml_blocks(text: str) -> list[str]:
    blocks: list[str] = []
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.strip() != ".. code-block:: yaml":
            continue
        indent = len(line) - len(line.lstrip())
        body: list[str] = []
        for following in lines[index + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
        blocks.append("\n".join(body))
    return blocks


def _shipped_texts() -> list[tuple[str, str, list[str]]]:
    """(where, text, YAML blocks) for every place lamarena names a model id."""
    texts: list[tuple[str, str, list[str]]] = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        texts.append((str(path.relative_to(ROOT)), text, _FENCE.findall(text)))
    yaml_files = sorted((ROOT / "examples").glob("*.yaml")) + sorted(SRC.rglob("*.yaml"))
    for path in yaml_files:
        text = path.read_text(encoding="utf-8")
        texts.append((str(path.relative_to(ROOT)), text, [text]))
    for path in sorted(SRC.rglob("*.py")):
        for doc in _docstring_texts(path):
            texts.append((str(path.relative_to(ROOT)), doc, _rst_yaml_blocks(doc)))
    return texts


def _known_family(token: str) -> bool:
    everything = sdk_model_ids("openai") | sdk_model_ids("gemini") | set(GEMINI_SHUT_DOWN)
    return any(model_id.startswith(token + "-") for model_id in everything)


def _problems(where: str, text: str, blocks: list[str], today: date) -> list[str]:
    problems: list[str] = []
    for block in blocks:
        try:
            parsed = yaml.safe_load(block)
        except yaml.YAMLError as exc:
            problems.append(f"{where}: a YAML block does not parse: {exc}")
            continue
        for hosted in hosted_ids({"root": parsed}):
            status = lifecycle(hosted.model_id, hosted.provider, today)
            if isinstance(status, Retired | Unknown):
                problems.append(f"{where}: models.yaml id {describe(status, today)}")
    for line in text.splitlines():
        for match in _TOKEN.finditer(line):
            if _KEY_VALUE.search(line[: match.start()]):
                continue  # a name, or a model: judged by the YAML rule, which sees base_url
            token = match.group()
            provider: Any = "gemini" if token.startswith("gemini-") else "openai"
            status = lifecycle(token, provider, today)
            if isinstance(status, Unknown) and not _known_family(token):
                problems.append(f"{where}: {token!r} is in no SDK list (a typo?): {line.strip()}")
            if isinstance(status, Retired) and not _SAYS_SHUT_DOWN.search(line):
                problems.append(f"{where}: {describe(status, today)}: {line.strip()}")
    return problems


def test_every_shipped_model_id_is_current_in_the_installed_sdks() -> None:
    today = datetime.now(UTC).date()
    texts = _shipped_texts()
    assert any(where == "examples/study-models.yaml" for where, _, _ in texts)
    problems = [p for where, text, blocks in texts for p in _problems(where, text, blocks, today)]
    assert problems == []


def test_the_id_rules_catch_a_retired_or_invented_id() -> None:
    readme = (
        "```yaml\nmodels:\n  - {name: a, kind: openai, model: gpt-4o-audio-preview}\n"
        "  - {name: b, kind: openai, model: gpt-4o-audio-preview, base_url: http://x/v1}\n"
        "  - {name: c, kind: gemini, model: gemini-9-imaginary}\n```\n"
        "Use ``gemini-1.5-pro`` for this.\n"
        "``gemini-1.5-pro`` was shut down long ago.\n"
        "The ``gpt-4o-audio`` family, ``gpt-4o-audioo``, and https://x.dev/gemini-api/docs.\n"
    )
    problems = _problems("README.md", readme, _FENCE.findall(readme), DAY)
    assert len(problems) == 4, problems
    assert "models.yaml id gpt-4o-audio-preview was shut down on 2026-05-07" in problems[0]
    assert "gemini-9-imaginary is in no SDK list" in problems[1]
    assert any("'gpt-4o-audioo' is in no SDK list" in p for p in problems)
    assert any("gemini-1.5-pro was shut down" in p and "Use" in p for p in problems)
    assert not any("shut down long ago" in p for p in problems)
    assert not any("'gemini-api' is" in p or "'gpt-4o-audio' is" in p for p in problems)


# --- models check --------------------------------------------------------------------------------


def _check_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(
        "models:\n"
        "  - {name: gpt4o, kind: openai, model: gpt-4o-audio-preview}\n"
        "  - {name: gemini-old, kind: gemini, model: gemini-1.5-pro}\n"
        "  - name: mini\n"
        "    kind: openai\n"
        "    model: gpt-audio-mini\n"
        "    api_key_env: LAMARENA_UNSET_KEY_FOR_TEST\n"
        "  - name: vllm\n"
        "    kind: openai\n"
        "    model: gpt-4o-audio-preview\n"
        "    base_url: http://127.0.0.1:9/v1\n"
        "    timeout_s: 2\n"
        "    max_retries: 0\n"
    )
    return path


async def test_check_names_a_retired_id_without_a_request_and_warns_of_a_retiring_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LAMARENA_UNSET_KEY_FOR_TEST", raising=False)
    settings = load_settings(models_config=_check_yaml(tmp_path))
    rows = {row["name"]: row for row in await check_models(settings, today=DAY)}
    assert rows["gpt4o"]["ok"] is False
    assert rows["gpt4o"]["error"].startswith(
        "model 'gpt4o': gpt-4o-audio-preview was shut down on 2026-05-07 (the openai "
    )
    assert rows["gpt4o"]["error"].endswith("; use gpt-audio-1.5")
    assert "ttft_s" not in rows["gpt4o"]  # no request was made
    assert "gemini-1.5-pro was shut down on 2025-09-24" in rows["gemini-old"]["error"]
    assert rows["mini"]["warnings"] == [describe(lifecycle("gpt-audio-mini", "openai", DAY), DAY)]
    assert "LAMARENA_UNSET_KEY_FOR_TEST" in rows["mini"]["error"]
    # Served elsewhere (a base_url): the SDK list does not speak for it; it is probed.
    assert rows["vllm"]["warnings"] == []
    assert "shut down" not in (rows["vllm"]["error"] or "")


def test_models_check_cli_prints_the_shutdown_and_the_warning(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lamarena", "models", "check", "--config", _check_yaml(tmp_path)],
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "LAMARENA_UNSET_KEY_FOR_TEST"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    gpt4o = next(line for line in lines if line.startswith("gpt4o "))
    assert "FAIL  model 'gpt4o': gpt-4o-audio-preview was shut down on 2026-05-07" in gpt4o
    assert any(
        line.lstrip().startswith("warn  gpt-audio-mini shuts down on 2027-01-20") for line in lines
    )
    as_json = subprocess.run(
        [
            sys.executable,
            "-m",
            "lamarena",
            "models",
            "check",
            "--json",
            "--config",
            _check_yaml(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rows = {row["name"]: row for row in json.loads(as_json.stdout)}
    assert rows["gemini-old"]["ok"] is False
    assert all("warnings" in row for row in rows.values())


# --- the study's six systems ---------------------------------------------------------------------


# Depends on the keys another change adds to models.yaml (audio_part, interface,
# trust_remote_code, max_audio_s and the audio token prices): run it once those have landed.
def test_the_study_models_example_loads() -> None:
    config = load_models_config(ROOT / "examples" / "study-models.yaml")
    assert [spec.name for spec in config.models] == [
        "gpt-audio",
        "gemini",
        "qwen2-audio",
        "typhoon-audio",
        "diva",
        "whisper-llama",
    ]
