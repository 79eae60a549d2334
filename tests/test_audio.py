"""Audio decoding on real files: espeak-ng speech converted to several formats."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from helpers.speech import speak
from lamarena.audio import SAMPLE_RATE_HZ, AudioClip, AudioLimits, decode_audio, to_wav_bytes
from lamarena.errors import AudioError


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speak("Hello there, how are you today?", tmp_path_factory.mktemp("a") / "s.wav")


def _encode_with_pyav(samples: np.ndarray, rate: int, fmt: str, codec: str) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=48_000 if codec == "libopus" else rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            samples.astype(np.float32).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def test_wav_is_resampled_to_16k_mono_with_its_length_kept(speech: Path) -> None:
    data = speech.read_bytes()
    original, rate = soundfile.read(speech)
    clip = decode_audio(data)
    assert clip.sample_rate_hz == SAMPLE_RATE_HZ
    assert clip.samples.dtype == np.float32
    assert clip.samples.ndim == 1
    assert abs(clip.duration_s - len(original) / rate) < 0.01
    assert len(clip.sha256) == 64


@pytest.mark.parametrize(("fmt", "codec"), [("webm", "libopus"), ("mp3", "libmp3lame")])
def test_browser_and_compressed_formats_decode_through_pyav(
    speech: Path, fmt: str, codec: str
) -> None:
    samples, rate = soundfile.read(speech, dtype="float32")
    data = _encode_with_pyav(samples, rate, fmt, codec)
    clip = decode_audio(data)
    assert abs(clip.duration_s - len(samples) / rate) < 0.15
    assert float(np.abs(clip.samples).max()) > 0.05


def test_flac_and_stereo_become_mono(tmp_path: Path, speech: Path) -> None:
    samples, rate = soundfile.read(speech, dtype="float32")
    stereo = np.stack([samples, samples * 0.5], axis=1)
    path = tmp_path / "s.flac"
    soundfile.write(path, stereo, rate)
    clip = decode_audio(path.read_bytes())
    assert clip.samples.ndim == 1
    assert abs(clip.duration_s - len(samples) / rate) < 0.01


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not audio at all" * 10, "could not be decoded"),
    ],
)
def test_bad_bytes_are_refused_with_a_clear_message(data: bytes, message: str) -> None:
    with pytest.raises(AudioError, match=message):
        decode_audio(data)


def test_silence_too_long_and_too_large_are_refused() -> None:
    silent = to_wav_bytes(AudioClip.from_samples(np.zeros(SAMPLE_RATE_HZ, np.float32)))
    with pytest.raises(AudioError, match="silent"):
        decode_audio(silent)
    tone = np.sin(np.linspace(0, 2000 * np.pi, SAMPLE_RATE_HZ * 3)).astype(np.float32) * 0.3
    long_clip = to_wav_bytes(AudioClip.from_samples(tone))
    with pytest.raises(AudioError, match="limit is 2 s"):
        decode_audio(long_clip, limits=AudioLimits(max_duration_s=2.0))
    with pytest.raises(AudioError, match="MB"):
        decode_audio(long_clip, limits=AudioLimits(max_bytes=1000))


def test_wav_encoding_round_trips(speech: Path) -> None:
    clip = decode_audio(speech.read_bytes())
    data = to_wav_bytes(clip)
    with wave.open(io.BytesIO(data)) as reader:
        assert reader.getframerate() == SAMPLE_RATE_HZ
        assert reader.getnchannels() == 1
        assert reader.getnframes() == clip.samples.shape[0]
    again = decode_audio(data)
    np.testing.assert_allclose(again.samples, clip.samples, atol=1 / 16384)
