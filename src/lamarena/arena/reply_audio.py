"""Spoken replies in the arena: their audio while it arrives, kept content-addressed, served.

A side's audio streams to the page while the model speaks (:class:`LiveAudio`, one per side and
turn of a battle this process generates) as a WAV whose header leaves the length open
(:func:`streaming_wav_header`), so the browser plays it as it arrives. Once the reply is done its
WAV is kept under the data folder by its sha256 (:func:`keep_reply_audio`) and the reply row names
that hash; any worker serves it from there (:func:`reply_audio_path`). Both forms carry nothing
about the model: the URL names the battle and the side, and the header only the sample rate.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import AsyncIterator
from pathlib import Path

from lamarena.arena.feed import Feed
from lamarena.arena.kept_files import stage_audio
from lamarena.models.speech import pcm16_wav
from lamarena.store.audio_files import REPLY_AUDIO_FOLDER, reply_audio_path

__all__ = [
    "REPLY_AUDIO_FOLDER",
    "LiveAudio",
    "audio_url",
    "keep_reply_audio",
    "reply_audio_path",
    "streaming_wav_header",
]

_OPEN_LENGTH = 0xFFFFFFFF
"""The RIFF and data sizes of a WAV still being written: "unknown", read to the stream's end."""


def audio_url(battle_id: str, side: str, turn: int) -> str:
    """Where the page fetches a side's audio of one turn."""
    return f"/api/battles/{battle_id}/audio/{side}?turn={turn}"


def streaming_wav_header(sample_rate_hz: int) -> bytes:
    """A 16-bit mono PCM WAV header whose sizes are left open (the audio follows as it comes)."""
    byte_rate = sample_rate_hz * 2
    return (
        b"RIFF"
        + struct.pack("<I", _OPEN_LENGTH)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate_hz, byte_rate, 2, 16)
        + b"data"
        + struct.pack("<I", _OPEN_LENGTH)
    )


def keep_reply_audio(data_dir: Path, pcm16: bytes, sample_rate_hz: int) -> tuple[str, Path]:
    """Write a reply's audio as a WAV named by its sha256 (once: the same audio is one file).

    Blocking; the caller stores the hash in the reply row after this returns, so a row never
    names a file that is not there.

    Returns:
        The WAV's sha256 and its path.

    Raises:
        StorageFull: the disk is full (nothing is left behind).
    """
    wav = pcm16_wav(pcm16, sample_rate_hz)
    sha256 = hashlib.sha256(wav).hexdigest()
    staged = stage_audio(data_dir / REPLY_AUDIO_FOLDER, sha256, "wav", wav)
    staged.publish()
    return sha256, staged.path


class LiveAudio(Feed[bytes]):
    """One side's audio of one turn while the model speaks, followed by any number of readers."""

    def __init__(self, sample_rate_hz: int) -> None:
        super().__init__()
        self.sample_rate_hz = sample_rate_hz

    async def wav(self) -> AsyncIterator[bytes]:
        """The WAV header, then every chunk from the first as it arrives, until the end."""
        yield streaming_wav_header(self.sample_rate_hz)
        async for chunk in self.follow():
            yield chunk
