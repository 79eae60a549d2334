"""Text to speech for a pipeline's ``tts`` stage: espeak-ng offline, or OpenAI ``/audio/speech``.

Both are Synthesisers (:class:`~lamarena.models.speech.Synthesiser`) returning PCM16 mono at
:data:`~lamarena.models.speech.SPEECH_SAMPLE_RATE_HZ` (24 kHz), so every spoken reply has one
rate whatever made it.

- :class:`EspeakSynthesiser` runs the ``espeak-ng`` program (Debian package ``espeak-ng``) as an
  asyncio subprocess, the text on its stdin (never as an argument, so no text becomes an option),
  ``--stdout`` giving a 22,050 Hz WAV that is decoded with soundfile and resampled with soxr.
- :class:`OpenAISpeechSynthesiser` posts ``{model, input, voice, response_format: "pcm"}`` to
  ``/audio/speech`` through the SDK's ``audio.speech.create`` (openai 3.63
  ``SpeechCreateParams``); ``pcm`` is raw 24 kHz signed 16-bit little-endian samples with no
  header (OpenAI's text-to-speech guide, "Supported output formats").
"""

from __future__ import annotations

import asyncio
import io
import logging
import shutil

import numpy as np
import soundfile
import soxr
from openai import omit

from lamarena.errors import ConfigError, ModelError, ModelTimeout
from lamarena.models.base import ModelTimeouts
from lamarena.models.openai_service import DEFAULT_BASE_URL, OpenAIService
from lamarena.models.speech import SPEECH_SAMPLE_RATE_HZ, SpeechAudio

__all__ = [
    "ESPEAK_INSTALL_HINT",
    "ESPEAK_WORDS_PER_MINUTE",
    "EspeakSynthesiser",
    "OpenAISpeechSynthesiser",
]

logger = logging.getLogger(__name__)

ESPEAK_INSTALL_HINT = "install espeak-ng (apt-get install -y espeak-ng)"
ESPEAK_WORDS_PER_MINUTE = 175
"""espeak-ng's default speaking rate: ``speed`` 1.0."""


def _to_speech_rate(samples: np.ndarray, rate_hz: int) -> bytes:
    """Float samples in [-1, 1] at ``rate_hz`` as PCM16 at the speech rate."""
    if rate_hz != SPEECH_SAMPLE_RATE_HZ:
        samples = soxr.resample(samples, rate_hz, SPEECH_SAMPLE_RATE_HZ, quality="HQ")
    pcm = np.clip(np.asarray(samples, np.float32), -1.0, 1.0) * 32767.0
    return np.round(pcm).astype("<i2").tobytes()


def _decode_wav(data: bytes) -> tuple[np.ndarray, int]:
    samples, rate_hz = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return np.asarray(samples.mean(axis=1), np.float32), int(rate_hz)


class EspeakSynthesiser:
    """Speech from the espeak-ng program (offline; a Synthesiser)."""

    def __init__(
        self, name: str, *, voice: str = "en", speed: float = 1.0, timeout_s: float = 30.0
    ) -> None:
        """Find espeak-ng; nothing is spoken here.

        Args:
            name: the name used in messages (the registry uses ``<pipeline>/tts``).
            voice: an espeak-ng voice (``en``, ``en-us``, ``en+f3``; ``espeak-ng --voices``).
            speed: 1.0 is :data:`ESPEAK_WORDS_PER_MINUTE`.
            timeout_s: the longest one piece of text may take to speak.

        Raises:
            ConfigError: espeak-ng is not installed, or the voice starts with ``-``.
        """
        binary = shutil.which("espeak-ng")
        if binary is None:
            raise ConfigError(
                f"model '{name}': its tts stage needs espeak-ng: {ESPEAK_INSTALL_HINT}"
            )
        if not voice or voice.startswith("-"):
            raise ConfigError(f"model '{name}': '{voice}' is not an espeak-ng voice")
        self.name = name
        self.voice = voice
        self.words_per_minute = max(80, min(450, round(ESPEAK_WORDS_PER_MINUTE * speed)))
        self.timeout_s = timeout_s
        self._binary = binary

    def __repr__(self) -> str:
        return f"EspeakSynthesiser(name={self.name!r}, voice={self.voice!r})"

    async def synthesise(self, text: str) -> SpeechAudio:
        """``text`` spoken by espeak-ng, as PCM16 mono at 24 kHz.

        Raises:
            ModelTimeout: espeak-ng took longer than ``timeout_s`` (it is killed).
            ModelError: espeak-ng failed (an unknown voice) or made no audio.
        """
        process = await asyncio.create_subprocess_exec(
            self._binary,
            "--stdout",
            "--stdin",
            "-v",
            self.voice,
            "-s",
            str(self.words_per_minute),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                wav, errors = await process.communicate(text.encode("utf-8"))
        except TimeoutError:
            raise ModelTimeout(
                self.name, f"espeak-ng took longer than {self.timeout_s:g} s"
            ) from None
        finally:
            if process.returncode is None:  # timed out or cancelled: no orphan process
                process.kill()
                await process.wait()
        message = " ".join(errors.decode("utf-8", "replace").split())[:300]
        if process.returncode != 0 or len(wav) <= 44:
            raise ModelError(
                self.name,
                f"espeak-ng made no audio with voice '{self.voice}'"
                + (f": {message}" if message else "")
                + " (list voices with espeak-ng --voices)",
            )
        try:
            samples, rate_hz = await asyncio.to_thread(_decode_wav, wav)
        except (soundfile.LibsndfileError, RuntimeError) as exc:
            raise ModelError(self.name, f"espeak-ng's audio cannot be decoded ({exc})") from None
        pcm = await asyncio.to_thread(_to_speech_rate, samples, rate_hz)
        return SpeechAudio(pcm, SPEECH_SAMPLE_RATE_HZ)


class OpenAISpeechSynthesiser(OpenAIService):
    """Speech from an OpenAI-compatible ``/audio/speech`` endpoint (a Synthesiser)."""

    def __init__(
        self,
        name: str,
        model: str,
        *,
        voice: str = "alloy",
        speed: float | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        api_key_env: str | None = None,
        timeouts: ModelTimeouts | None = None,
        max_retries: int = 2,
        retry_backoff_s: float = 0.5,
    ) -> None:
        """Configure the synthesiser; no request is made here.

        Args:
            name: the name used in messages (the registry uses ``<pipeline>/tts``).
            model: the server's speech model (``gpt-4o-mini-tts``, ``tts-1``, ...).
            voice: the voice (``alloy``, ``verse``, ...).
            speed: 0.25 to 4.0; the server's default (1.0) when None.
            base_url: the API root, ending in ``/v1``; OpenAI's when None.
            api_key: the key itself; None for servers without auth.
            api_key_env: the variable's name, only to say which one to check in messages.
            timeouts: ``connect_s`` and ``first_token_s`` become the connect and read limits.
            max_retries: how often a 429 or 5xx is retried.
            retry_backoff_s: the first retry's delay; each next one doubles (at most 8 s).

        Raises:
            ConfigError: a negative ``max_retries``.
        """
        super().__init__(
            name,
            model,
            base_url=base_url or DEFAULT_BASE_URL,
            api_key=api_key,
            api_key_env=api_key_env,
            timeouts=timeouts,
            max_retries=max_retries,
            retry_backoff_s=retry_backoff_s,
            max_connections=16,
            http_client=None,
        )
        self.voice = voice
        self.speed = speed

    async def synthesise(self, text: str) -> SpeechAudio:
        """``text`` spoken by the service, as PCM16 mono at 24 kHz (``response_format: pcm``).

        Raises:
            ModelError: the server refused or failed, or sent no audio; ModelTimeout and
                ModelUnavailable where they apply.
        """
        response = await self._with_retries(
            lambda: self._client.audio.speech.create(
                model=self.model,
                input=text,
                voice=self.voice,
                response_format="pcm",
                speed=omit if self.speed is None else self.speed,
            )
        )
        pcm = response.content
        if len(pcm) < 2:
            raise ModelError(self.name, f"{self.base_url}/audio/speech sent no audio")
        return SpeechAudio(pcm[: len(pcm) - len(pcm) % 2], SPEECH_SAMPLE_RATE_HZ)
