"""A model's cache identity: options added later leave it as it was until they are used."""

from __future__ import annotations

from pathlib import Path

from lamarena.bench.run.targets import resolve_targets
from lamarena.settings import load_settings

# The identity an openai entry and a local one had before audio_part, token_limit_field,
# max_audio_s, audio_over_limit, interface and trust_remote_code existed.
BEFORE = {
    "plain": {
        "kind": "openai",
        "model": "fake-audio",
        "base_url": "http://127.0.0.1:9/v1",
        "temperature": None,
        "max_tokens": None,
        "modalities": None,
        "output": "text",
        "voice": "alloy",
        "audio_format": "pcm16",
    },
}


def _identity(tmp_path: Path, entry: str) -> dict[str, object]:
    config = tmp_path / "models.yaml"
    config.write_text(f"models:\n  - {entry}\n", encoding="utf-8")
    settings = load_settings(models_config=config)
    (target,) = resolve_targets(settings, ["plain"])
    return dict(target.spec)


def test_an_entry_without_the_new_options_keeps_its_identity(tmp_path: Path) -> None:
    entry = "{name: plain, kind: openai, model: fake-audio, base_url: 'http://127.0.0.1:9/v1'}"
    assert _identity(tmp_path, entry) == BEFORE["plain"]


def test_a_new_option_in_use_is_part_of_the_identity(tmp_path: Path) -> None:
    entry = (
        "{name: plain, kind: openai, model: fake-audio, base_url: 'http://127.0.0.1:9/v1',"
        " audio_part: audio_url, max_audio_s: 20}"
    )
    identity = _identity(tmp_path, entry)
    assert identity["audio_part"] == "audio_url" and identity["max_audio_s"] == 20
    assert {key: value for key, value in identity.items() if key in BEFORE["plain"]} == BEFORE[
        "plain"
    ]
