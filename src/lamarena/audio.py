"""Audio in: decode any common format, validate, and resample to mono 16 kHz float32.

Decoding goes through soundfile (libsndfile: WAV, FLAC, OGG/Vorbis, MP3) and falls back to PyAV
(FFmpeg: WebM/Opus from browsers, M4A, anything else); resampling uses soxr. Everything above this
module sees only :class:`AudioClip`, so a change of decoder stays here.
"""

from __future__ import annotations

import hashlib
import io
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from lamarena.errors import AudioError

__all__ = [
    "SAMPLE_RATE_HZ",
    "AudioClip",
    "AudioLimits",
    "decode_audio",
    "load_audio",
    "to_wav_bytes",
]

SAMPLE_RATE_HZ = 16_000
"""Every model receives audio at this rate, mono."""

_SILENCE_PEAK = 1e-3
"""A clip whose absolute peak stays below this (of full scale) is treated as silent."""


@dataclass(frozen=True)
class AudioLimits:
    """Bounds a clip must respect; ``None`` switches a bound off."""

    max_bytes: int | None = 10 * 1024 * 1024
    max_duration_s: float | None = 60.0
    min_duration_s: float = 0.1
    reject_silence: bool = True


@dataclass(frozen=True, eq=False)
class AudioClip:
    """Decoded audio: mono float32 samples in [-1, 1] at :data:`SAMPLE_RATE_HZ`.

    Attributes:
        samples: the waveform, shape ``(n,)``.
        sha256: hex digest of the bytes the clip was decoded from (identifies the query).
        sample_rate_hz: always :data:`SAMPLE_RATE_HZ`.
    """

    samples: NDArray[np.float32]
    sha256: str
    sample_rate_hz: int = SAMPLE_RATE_HZ

    @property
    def duration_s(self) -> float:
        """Length of the clip in seconds."""
        return float(self.samples.shape[0]) / self.sample_rate_hz

    @classmethod
    def from_samples(
        cls, samples: NDArray[np.floating], sample_rate_hz: int = SAMPLE_RATE_HZ
    ) -> AudioClip:
        """A clip from raw samples (mono or ``(n, channels)``), resampled to 16 kHz."""
        mono = _to_mono(np.asarray(samples, dtype=np.float32))
        resampled = _resample(mono, sample_rate_hz)
        digest = hashlib.sha256(resampled.tobytes()).hexdigest()
        return cls(samples=resampled, sha256=digest)


def _to_mono(samples: NDArray[np.float32]) -> NDArray[np.float32]:
    if samples.ndim == 2:
        return np.ascontiguousarray(samples.mean(axis=1, dtype=np.float32))
    if samples.ndim != 1:
        raise AudioError(f"audio has an unexpected shape {samples.shape}")
    return samples


def _resample(samples: NDArray[np.float32], rate_hz: int) -> NDArray[np.float32]:
    if rate_hz == SAMPLE_RATE_HZ:
        return samples
    if rate_hz <= 0:
        raise AudioError(f"audio has an invalid sample rate {rate_hz} Hz")
    import soxr

    return np.asarray(soxr.resample(samples, rate_hz, SAMPLE_RATE_HZ, quality="HQ"), np.float32)


class _TooLong(Exception):
    """The audio holds more than the limit (found while decoding, before it was all read)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


_UNKNOWN_FRAMES = 2**62
"""libsndfile reports a length its header leaves unknown (a FLAC written as a stream) as
SF_COUNT_MAX frames; such a file is decoded up to the limit instead of refused."""


def _decode_soundfile(data: bytes, max_s: float | None) -> tuple[NDArray[np.float32], int] | None:
    """Decode with libsndfile, reading at most ``max_s`` seconds (plus one frame)."""
    import soundfile

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as source:
            rate = int(source.samplerate)
            if max_s is not None and rate > 0:
                limit = int(max_s * rate) + 1
                known = 0 <= source.frames < _UNKNOWN_FRAMES  # libsndfile: SF_COUNT_MAX
                if known and source.frames > limit:  # the header says so: refuse before decoding
                    raise _TooLong(source.frames / rate)
                samples = source.read(frames=limit, dtype="float32", always_2d=False)
                if len(samples) >= limit:  # the header said less than the file holds
                    raise _TooLong(len(samples) / rate)
            else:
                samples = source.read(dtype="float32", always_2d=False)
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError):
        return None
    return np.asarray(samples, dtype=np.float32), rate


def _decode_pyav(data: bytes, max_s: float | None) -> tuple[NDArray[np.float32], int] | None:
    """Decode with FFmpeg in frames, stopping as soon as ``max_s`` seconds are passed."""
    import av

    limit = None if max_s is None else int(max_s * SAMPLE_RATE_HZ) + 1
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                return None
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE_HZ)
            chunks: list[NDArray[np.float32]] = []
            total = 0
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1).astype(np.float32)
                    chunks.append(chunk)
                    total += chunk.shape[0]
                if limit is not None and total >= limit:
                    raise _TooLong(total / SAMPLE_RATE_HZ)
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.float32))
    except (av.FFmpegError, ValueError, IndexError):
        return None
    if not chunks:
        return np.zeros(0, dtype=np.float32), SAMPLE_RATE_HZ
    return np.concatenate(chunks), SAMPLE_RATE_HZ


def decode_audio(data: bytes, *, limits: AudioLimits | None = None) -> AudioClip:
    """Decode audio bytes of any common format into a validated 16 kHz mono clip.

    Args:
        data: the file's bytes (WAV, FLAC, OGG, MP3, WebM/Opus, M4A, ...).
        limits: size, duration and silence bounds; the defaults suit the arena.

    Returns:
        The clip, whose ``sha256`` is the digest of ``data``.

    Raises:
        AudioError: empty, too large, not decodable, too short, too long or silent. A clip over
            the duration limit is refused from its header, or as soon as decoding passes the
            limit, so a small file holding hours of audio costs no more than the limit.
    """
    limits = limits or AudioLimits()
    if not data:
        raise AudioError("the audio is empty: record or upload a clip of speech")
    if limits.max_bytes is not None and len(data) > limits.max_bytes:
        raise AudioError(
            f"the audio is {len(data) / 1e6:.1f} MB; the limit is {limits.max_bytes / 1e6:.0f} MB"
        )
    max_s = limits.max_duration_s
    try:
        decoded = _decode_soundfile(data, max_s) or _decode_pyav(data, max_s)
    except _TooLong as too_long:  # found before the rest was decoded: memory stays bounded
        raise AudioError(
            f"the audio is over {max_s:.0f} s long (at least {too_long.seconds:.0f} s); "
            f"the limit is {max_s:.0f} s"
        ) from None
    if decoded is None:
        raise AudioError(
            "the audio could not be decoded: use WAV, FLAC, OGG, MP3, WebM/Opus or M4A"
        )
    samples, rate = decoded
    samples = _resample(_to_mono(samples), rate)
    clip = AudioClip(samples=samples, sha256=hashlib.sha256(data).hexdigest())
    if clip.duration_s < limits.min_duration_s:
        raise AudioError(f"the audio is {clip.duration_s:.2f} s long: too short to hold speech")
    if limits.max_duration_s is not None and clip.duration_s > limits.max_duration_s:
        raise AudioError(
            f"the audio is {clip.duration_s:.0f} s long; the limit is {limits.max_duration_s:.0f} s"
        )
    if limits.reject_silence and float(np.abs(clip.samples).max()) < _SILENCE_PEAK:
        raise AudioError("the audio is silent: check the microphone and record again")
    return clip


def load_audio(path: str | Path, *, limits: AudioLimits | None = None) -> AudioClip:
    """Read and decode an audio file (see :func:`decode_audio`).

    Raises:
        AudioError: the file is missing, unreadable or not valid audio.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AudioError(f"{path}: cannot read the audio file ({exc.strerror})") from exc
    try:
        return decode_audio(data, limits=limits)
    except AudioError as exc:
        raise AudioError(f"{path}: {exc.message}") from exc


def to_wav_bytes(clip: AudioClip) -> bytes:
    """Encode a clip as 16-bit PCM mono WAV at 16 kHz (what most audio APIs accept)."""
    pcm = (np.clip(clip.samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(clip.sample_rate_hz)
        writer.writeframes(pcm.tobytes())
    return buffer.getvalue()
