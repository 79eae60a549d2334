"""Audio decoding on real files: espeak-ng speech converted to several formats."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from helpers.audio_files import flac_without_length
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


def _tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate), dtype=np.float32) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_an_hour_of_flac_in_a_small_file_is_refused_from_its_header_in_flat_memory() -> None:
    import time
    import tracemalloc

    import soundfile

    buffer = io.BytesIO()
    # an hour of a constant level: FLAC stores it in a few hundred kilobytes
    soundfile.write(buffer, np.full(3600 * 8000, 0.3, np.float32), 8000, format="FLAC")
    data = buffer.getvalue()
    assert len(data) < 1024 * 1024  # far under the size limit: only its length gives it away
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(AudioError, match=r"over 60 s long \(at least 3600 s\)"):
        decode_audio(data)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5 * 1024 * 1024  # the whole hour would be 115 MB of float32 at 8 kHz
    assert elapsed < 1.0


def test_a_header_claiming_less_than_the_file_holds_stops_at_the_limit() -> None:
    samples = np.clip(_tone(5, 8000) * 32767, -32768, 32767).astype(np.int16)
    wav = io.BytesIO()
    with wave.open(wav, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(samples.tobytes())
    data = bytearray(wav.getvalue())
    data[40:44] = (2 * 8000).to_bytes(4, "little")  # the data chunk claims one second
    clip = decode_audio(bytes(data), limits=AudioLimits(max_duration_s=2.0))
    assert clip.duration_s == pytest.approx(1.0, abs=0.01)  # read as the header says
    data[40:44] = (0xFFFFFFFF).to_bytes(4, "little")  # "until the end of the file"
    with pytest.raises(AudioError, match="over 2 s long"):
        decode_audio(bytes(data), limits=AudioLimits(max_duration_s=2.0))


def test_ffmpeg_decoding_stops_once_past_the_limit() -> None:
    import tracemalloc

    import av

    out = io.BytesIO()
    rate = 16000
    audio = _tone(120, rate)
    with av.open(out, "w", format="webm") as container:
        stream = container.add_stream("libopus", rate=48000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    data = out.getvalue()
    tracemalloc.start()
    with pytest.raises(AudioError, match="over 2 s long"):
        decode_audio(data, limits=AudioLimits(max_duration_s=2.0))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2 * 1024 * 1024  # all 120 s would be 7.7 MB of float32 at 16 kHz
    whole = decode_audio(data, limits=AudioLimits(max_duration_s=None))
    assert whole.duration_s == pytest.approx(120, abs=0.1)


def test_a_flac_of_unknown_length_is_decoded_up_to_the_limit_not_refused_from_its_header() -> None:
    short, long_ = io.BytesIO(), io.BytesIO()
    soundfile.write(short, _tone(3, 16000), 16000, format="FLAC")
    soundfile.write(long_, _tone(90, 16000), 16000, format="FLAC")
    clip = decode_audio(flac_without_length(short.getvalue()))
    assert clip.duration_s == pytest.approx(3.0, abs=0.01)
    with pytest.raises(AudioError, match=r"over 60 s long \(at least 60 s\)"):
        decode_audio(flac_without_length(long_.getvalue()))
