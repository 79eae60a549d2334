"""The one interface every Large Audio Model adapter implements, and what a reply records.

An adapter implements :class:`AudioModel`: ``stream(clip, prompt)`` yields text deltas for one
spoken query (``prompt`` is the text part sent with the audio: the arena's system prompt or a
benchmark's instruction). Parts of an ASR + LLM pipeline implement :class:`Transcriber` and
:class:`TextModel`. Adapters raise only :class:`lamarena.errors.ModelError` subclasses. Timing,
timeouts and collecting a :class:`Reply` happen once, in :mod:`lamarena.models.runtime`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from lamarena.audio import AudioClip

__all__ = [
    "AudioModel",
    "ModelTimeouts",
    "Reply",
    "TextModel",
    "Transcriber",
    "TranscribingModel",
]


@dataclass(frozen=True)
class ModelTimeouts:
    """Time limits of one request, in seconds.

    Attributes:
        connect_s: to open a connection to a remote service.
        first_token_s: from the request to the first text delta.
        total_s: from the request to the end of the reply.
    """

    connect_s: float = 10.0
    first_token_s: float = 60.0
    total_s: float = 180.0


@dataclass(frozen=True)
class Reply:
    """One model's complete answer to one query, with server-side timings.

    Attributes:
        model: the model's name (as in models.yaml).
        text: the reply text (possibly partial when ``error`` is set).
        ttft_s: seconds from the request to the first delta; None if none arrived.
        total_s: seconds from the request to the end (or to the failure).
        error: a message a user can act on, or None when the reply is complete.
        transcript: what an ASR front end heard (pipelines only).
    """

    model: str
    text: str
    ttft_s: float | None
    total_s: float
    error: str | None = None
    transcript: str | None = None

    @property
    def chars(self) -> int:
        """Length of the reply in characters."""
        return len(self.text)

    @property
    def ok(self) -> bool:
        """Whether the reply completed without an error."""
        return self.error is None


@runtime_checkable
class AudioModel(Protocol):
    """A model that answers a spoken query with streamed text."""

    name: str

    def stream(self, clip: AudioClip, prompt: str) -> AsyncIterator[str]:
        """Yield the reply's text deltas, in order.

        Args:
            clip: the query, mono 16 kHz.
            prompt: the text sent with the audio (system prompt or task instruction).

        Raises:
            ModelError: the model failed; ModelTimeout or ModelUnavailable where they apply.
        """
        ...


@runtime_checkable
class Transcriber(Protocol):
    """An ASR front end: speech to text."""

    name: str

    async def transcribe(self, clip: AudioClip) -> str:
        """The transcript of ``clip``.

        Raises:
            ModelError: the ASR failed.
        """
        ...


@runtime_checkable
class TextModel(Protocol):
    """A text LLM: the second half of an ASR + LLM pipeline."""

    name: str

    def stream_text(self, text: str, prompt: str) -> AsyncIterator[str]:
        """Yield the reply's deltas to the user message ``text`` under system prompt ``prompt``.

        Raises:
            ModelError: the model failed.
        """
        ...


@runtime_checkable
class TranscribingModel(AudioModel, Protocol):
    """An audio model that first transcribes (a pipeline); the runtime keeps its transcript."""

    async def transcribe(self, clip: AudioClip) -> str:
        """The transcript its LLM will answer."""
        ...

    def stream_transcript(self, transcript: str, prompt: str) -> AsyncIterator[str]:
        """Yield the LLM's deltas for an already made transcript."""
        ...
