"""The call cache: content-addressed keys, corrupt entries as misses, a bad file as one error."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from lamarena.bench.run.cache import CachedReply, CallCache, call_key
from lamarena.errors import ConfigError

SPEC = {"kind": "openai", "model": "gpt-4o-audio-preview", "base_url": None, "temperature": 0}


def test_keys_depend_on_spec_audio_prompt_and_settings_only() -> None:
    key = call_key(model=SPEC, prompt="Is it sarcastic?", audio_sha256="ab" * 32)
    assert key == call_key(model=dict(reversed(SPEC.items())), prompt="Is it sarcastic?",
                           audio_sha256="ab" * 32)  # fmt: skip
    assert len(key) == 64
    audio = "ab" * 32
    others = {
        call_key(model={**SPEC, "temperature": 1}, prompt="Is it sarcastic?", audio_sha256=audio),
        call_key(model=SPEC, prompt="Is it funny?", audio_sha256=audio),
        call_key(model=SPEC, prompt="Is it sarcastic?", audio_sha256="cd" * 32),
        call_key(
            model=SPEC, prompt="Is it sarcastic?", audio_sha256=audio, generation={"max_tokens": 5}
        ),
    }
    assert key not in others and len(others) == 4


def test_replies_round_trip_and_persist(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "deep" / "cache.sqlite")
    reply = CachedReply(text="yes", total_s=0.25, ttft_s=0.1, usage={"prompt_tokens": 7})
    assert cache.get("k") is None
    cache.put("k", reply)
    cache.close()
    reopened = CallCache(tmp_path / "deep" / "cache.sqlite")
    assert reopened.get("k") == reply
    assert reopened.stats.hits == 1 and len(reopened) == 1


def test_a_corrupt_entry_is_a_miss(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "cache.sqlite")
    cache.put("k", CachedReply(text="yes", total_s=1.0))
    with sqlite3.connect(tmp_path / "cache.sqlite") as raw:
        raw.execute("UPDATE calls SET value = '{\"no\": 1}' WHERE key = 'k'")
    raw.close()
    assert cache.get("k") is None
    assert cache.stats.corrupt == 1


def test_a_file_that_is_not_a_cache_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match=r"cannot be used .* LAMARENA_STATIC_CACHE"):
        CallCache(path)


def test_threads_share_one_file(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "cache.sqlite")

    def write(index: int) -> None:
        cache.put(f"k{index}", CachedReply(text=str(index), total_s=0.0))
        cache.close()

    threads = [threading.Thread(target=write, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 8 and cache.get("k5") == CachedReply(text="5", total_s=0.0)
