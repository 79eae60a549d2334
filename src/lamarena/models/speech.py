"""Spoken replies: the interface of a model that answers with speech, and its PCM audio.

A model with ``output: audio`` in models.yaml is a :class:`SpeakingModel`:
``stream_speech(clip, prompt)`` yields the parts of its spoken reply in order, each a
:data:`SpeechDelta`:

- :class:`SpeechText`: a piece of the reply's text (an OpenAI audio model's streamed
  transcript, or the text a pipeline's LLM wrote and its ``tts`` stage speaks);
- :class:`SpeechAudio`: a chunk of the reply's audio as it arrives, signed 16-bit little-endian
  mono PCM at ``sample_rate_hz`` (every chunk of one reply has the same rate; the adapters here
  all use :data:`SPEECH_SAMPLE_RATE_HZ`, OpenAI's ``pcm16`` rate).

An adapter class can speak or not depending on its configuration, so whether a model speaks is
:func:`can_speak` (its ``speaks`` attribute), not only the protocol.
:func:`lamarena.models.runtime.run_model` collects both kinds into one
:class:`~lamarena.models.base.Reply` (``text``, ``audio``, ``ttfab_s``, ``audio_s``) and hands
each audio chunk to ``on_audio`` as it arrives. A pipeline turns text into speech with a
:class:`Synthesiser` (its ``tts`` stage).
"""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from lamarena.audio import AudioClip
from lamarena.models.base import AudioModel, EarlierTurn, TextTurn, TranscribingModel, UsageStream

__all__ = [
    "SPEECH_SAMPLE_RATE_HZ",
    "SpeakingModel",
    "SpeechAudio",
    "SpeechDelta",
    "SpeechStream",
    "SpeechText",
    "Synthesiser",
    "TranscribingSpeakingModel",
    "can_speak",
    "pcm16_wav",
]

SPEECH_SAMPLE_RATE_HZ = 24_000
"""The sample rate of spoken replies: OpenAI's ``pcm16`` (chat audio and ``/audio/speech``)."""


@dataclass(frozen=True)
class SpeechText:
    """A piece of a spoken reply's text, in order.

    Attributes:
        text: the next characters of the reply (never empty).
    """

    text: str


@dataclass(frozen=True)
class SpeechAudio:
    """A chunk of a spoken reply's audio, in order.

    Attributes:
        pcm16: signed 16-bit little-endian mono samples (an even number of bytes).
        sample_rate_hz: samples per second; the same for every chunk of one reply.
    """

    pcm16: bytes
    sample_rate_hz: int = SPEECH_SAMPLE_RATE_HZ

    @property
    def duration_s(self) -> float:
        """The chunk's duration in seconds."""
        return len(self.pcm16) / 2 / self.sample_rate_hz


SpeechDelta = SpeechText | SpeechAudio
"""One part of a spoken reply: text or audio."""


class SpeechStream(UsageStream[SpeechDelta]):
    """The parts of one spoken reply, and the token usage its service reported."""


@runtime_checkable
class SpeakingModel(AudioModel, Protocol):
    """A model that can answer a spoken query with speech (and its text)."""

    @property
    def speaks(self) -> bool:
        """Whether this instance is configured to answer with speech (``output: audio``)."""
        ...

    def stream_speech(
        self, clip: AudioClip, prompt: str, history: Sequence[EarlierTurn] = ()
    ) -> AsyncIterator[SpeechDelta]:
        """Yield the spoken reply's text and audio, each in order, as they arrive.

        Arguments as for :meth:`~lamarena.models.base.AudioModel.stream`.

        Raises:
            ConfigError: the model does not speak (``speaks`` is false).
            ModelError: the model failed; ModelTimeout or ModelUnavailable where they apply.
        """
        ...


@runtime_checkable
class TranscribingSpeakingModel(TranscribingModel, SpeakingModel, Protocol):
    """A pipeline that speaks: the runtime transcribes first and keeps the transcript."""

    def speak_transcript(
        self, transcript: str, prompt: str, history: Sequence[TextTurn] = ()
    ) -> AsyncIterator[SpeechDelta]:
        """Yield the spoken reply to an already made transcript (text and audio, in order)."""
        ...


@runtime_checkable
class Synthesiser(Protocol):
    """Text to speech: a pipeline's ``tts`` stage."""

    name: str

    async def synthesise(self, text: str) -> SpeechAudio:
        """``text`` spoken, as PCM16 at :data:`SPEECH_SAMPLE_RATE_HZ`.

        Raises:
            ModelError: the synthesiser failed or made no audio.
        """
        ...


def can_speak(model: object) -> bool:
    """Whether ``model`` answers with speech: a :class:`SpeakingModel` whose ``speaks`` is true."""
    return isinstance(model, SpeakingModel) and bool(model.speaks)


def pcm16_wav(pcm16: bytes, sample_rate_hz: int) -> bytes:
    """Mono PCM16 samples as a WAV file (to store or serve a whole spoken reply)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(sample_rate_hz)
        writer.writeframes(pcm16)
    return buffer.getvalue()
