"""ASR then a text LLM: the study's "ASR pipeline" baseline, built from two adapters.

:class:`PipelineModel` transcribes the query with any :class:`~lamarena.models.base.Transcriber`
and answers the transcript with any :class:`~lamarena.models.base.TextModel`, the transcript as
the user message and the prompt as the system prompt; in a conversation the LLM first gets the
earlier turns as text, each turn's transcript as a user message and the pipeline's own reply as
the assistant's. It is a
:class:`~lamarena.models.base.TranscribingModel`, so :func:`lamarena.models.runtime.run_model`
keeps the transcript on the reply. A failure of either part is re-raised as the same
:class:`~lamarena.errors.ModelError` subclass under the pipeline's name, naming the part. The
pipeline's token usage is its LLM's, where the LLM's stream reports one (the ASR's is not
counted); otherwise None.

With a ``tts`` stage (a :class:`~lamarena.models.speech.Synthesiser`) the pipeline speaks
(``speaks`` is true, :meth:`PipelineModel.stream_speech`): the LLM's text streams as
:class:`~lamarena.models.speech.SpeechText` as it arrives, and each whole sentence is spoken as
soon as it is complete (:func:`split_sentences`), so the first audio
comes after the first sentence rather than after the whole reply. A failure of the stage is
re-raised under the pipeline's name, naming the TTS.

With an in-process LLM (a :class:`~lamarena.models.base.TextOptionScorer`, such as
:class:`~lamarena.models.local.LocalTextLM`) the pipeline is also an
:class:`~lamarena.models.base.OptionScorer`: it transcribes, then has its LLM score the options
as replies to the transcript under the same system prompt as :meth:`PipelineModel.stream`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import cast

from lamarena.audio import AudioClip
from lamarena.errors import ConfigError, ModelError, ModelTimeout, ModelUnavailable
from lamarena.models.base import (
    EarlierTurn,
    OptionScore,
    ReplyStream,
    TextModel,
    TextOptionScorer,
    TextTurn,
    Transcriber,
    UsageSink,
    reported_usage,
    text_history,
)
from lamarena.models.loglik import check_options
from lamarena.models.speech import SpeechDelta, SpeechStream, SpeechText, Synthesiser

__all__ = ["PipelineModel", "split_sentences"]

logger = logging.getLogger(__name__)

_SENTENCE_END = re.compile(r"(?<=[.!?;:])[\"')\]]*\s+|\n+")
_MIN_SENTENCE_CHARS = 12
"""A shorter piece waits for the next sentence ("Hi." or "Dr." alone would sound clipped)."""


def split_sentences(text: str) -> tuple[list[str], str]:
    """The whole sentences at the start of ``text``, and the rest (not yet a sentence).

    A sentence ends at ``.``, ``!``, ``?``, ``;`` or ``:`` followed by white space, or at a line
    break; pieces shorter than a few characters join the next one.
    """
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        piece = text[start : match.end()].strip()
        if len(piece) >= _MIN_SENTENCE_CHARS:
            sentences.append(piece)
            start = match.end()
    return sentences, text[start:]


class PipelineModel:
    """Speech recognition, then a text LLM on the transcript (a TranscribingModel)."""

    name: str

    def __init__(
        self,
        name: str,
        transcriber: Transcriber,
        llm: TextModel,
        tts: Synthesiser | None = None,
    ) -> None:
        """Join two adapters (three, with speech) into one model.

        Args:
            name: the pipeline's name in models.yaml.
            transcriber: the ASR front end.
            llm: the text model that answers the transcript.
            tts: speaks the LLM's reply (``output: audio``); None for a pipeline that answers
                in text.
        """
        self.name = name
        self.transcriber = transcriber
        self.llm = llm
        self.tts = tts

    @property
    def speaks(self) -> bool:
        """Whether the pipeline answers with speech: it has a tts stage."""
        return self.tts is not None

    def __repr__(self) -> str:
        return (
            f"PipelineModel(name={self.name!r}, transcriber={self.transcriber.name!r}, "
            f"llm={self.llm.name!r})"
        )

    def _wrap(self, part: str, part_name: str, exc: ModelError) -> ModelError:
        """``exc`` under the pipeline's name, of the same kind, naming the part that failed."""
        message = f"{part} '{part_name}' failed: {exc.message}"
        if isinstance(exc, ModelTimeout):
            return ModelTimeout(self.name, message)
        if isinstance(exc, ModelUnavailable):
            return ModelUnavailable(self.name, message)
        return ModelError(self.name, message)

    async def transcribe(self, clip: AudioClip) -> str:
        """The transcript the LLM will answer.

        Raises:
            ModelError: the ASR failed (same subclass, naming the ASR), or heard no speech.
        """
        try:
            transcript = (await self.transcriber.transcribe(clip)).strip()
        except ModelError as exc:
            raise self._wrap("the ASR", self.transcriber.name, exc) from exc
        if not transcript:
            raise ModelError(
                self.name,
                f"heard no speech: the ASR '{self.transcriber.name}' returned an empty "
                "transcript; speak closer to the microphone and try again",
            )
        logger.debug("pipeline %s: transcript of %d characters", self.name, len(transcript))
        return transcript

    def stream_transcript(
        self, transcript: str, prompt: str, history: Sequence[TextTurn] = ()
    ) -> ReplyStream:
        """Yield the LLM's deltas to ``transcript`` under system prompt ``prompt``.

        ``history`` holds the earlier turns' (transcript, reply) pairs, oldest first: the LLM
        gets them as user and assistant messages before ``transcript``.

        Returns:
            The deltas; its ``usage`` is the LLM's, where the LLM reports one.

        Raises:
            ModelError: the LLM failed (same subclass, naming the LLM; while iterating).
        """
        return ReplyStream(lambda report: self._answer(transcript, prompt, history, report))

    async def _answer(
        self, transcript: str, prompt: str, history: Sequence[TextTurn], report: UsageSink
    ) -> AsyncGenerator[str, None]:
        # A single turn calls the LLM exactly as before conversations (any TextModel works).
        stream = (
            self.llm.stream_text(transcript, prompt, history)
            if history
            else self.llm.stream_text(transcript, prompt)
        )
        # aclosing: when our reader stops early, the LLM's stream (and its generation) stops now,
        # not whenever the garbage collector gets to it.
        deltas = cast("AsyncGenerator[str, None]", stream)
        try:
            async with aclosing(deltas):
                async for delta in deltas:
                    yield delta
        except ModelError as exc:
            raise self._wrap("the LLM", self.llm.name, exc) from exc
        usage = reported_usage(stream)
        if usage is not None:
            report(usage)

    def stream(
        self, clip: AudioClip, prompt: str, history: Sequence[EarlierTurn] = ()
    ) -> ReplyStream:
        """Transcribe ``clip``, then yield the LLM's deltas to the transcript.

        ``history`` holds the earlier turns, oldest first; each one's own transcript is used
        (an earlier clip is transcribed again only where the turn has none), with its reply.

        Returns:
            The deltas; its ``usage`` is the LLM's, where the LLM reports one.

        Raises:
            ModelError: either part failed, or the ASR heard no speech (while iterating).
        """
        return ReplyStream(
            lambda report: self._transcribe_and_answer(clip, prompt, history, report)
        )

    async def _transcribe_and_answer(
        self,
        clip: AudioClip,
        prompt: str,
        history: Sequence[EarlierTurn],
        report: UsageSink,
    ) -> AsyncGenerator[str, None]:
        transcript = await self.transcribe(clip)
        earlier = await text_history(history, self.transcribe)
        answer = self.stream_transcript(transcript, prompt, earlier)
        async with aclosing(answer):
            async for delta in answer:
                yield delta
        if answer.usage is not None:
            report(answer.usage)

    def stream_speech(
        self, clip: AudioClip, prompt: str, history: Sequence[EarlierTurn] = ()
    ) -> SpeechStream:
        """Transcribe ``clip``, then yield the LLM's text and its speech, sentence by sentence.

        Returns:
            The parts; its ``usage`` is the LLM's, where the LLM reports one.

        Raises:
            ConfigError: the pipeline has no tts stage.
            ModelError: a part failed, or the ASR heard no speech (while iterating).
        """
        tts = self._tts()

        async def parts(report: UsageSink) -> AsyncGenerator[SpeechDelta, None]:
            transcript = await self.transcribe(clip)
            earlier = await text_history(history, self.transcribe)
            answer = self.stream_transcript(transcript, prompt, earlier)
            async with aclosing(self._speak(tts, answer)) as spoken:
                async for part in spoken:
                    yield part
            if answer.usage is not None:
                report(answer.usage)

        return SpeechStream(parts)

    def speak_transcript(
        self, transcript: str, prompt: str, history: Sequence[TextTurn] = ()
    ) -> SpeechStream:
        """Yield the LLM's text to ``transcript`` and its speech, sentence by sentence.

        Raises:
            ConfigError: the pipeline has no tts stage.
            ModelError: the LLM or the TTS failed (while iterating).
        """
        tts = self._tts()

        async def parts(report: UsageSink) -> AsyncGenerator[SpeechDelta, None]:
            answer = self.stream_transcript(transcript, prompt, history)
            async with aclosing(self._speak(tts, answer)) as spoken:
                async for part in spoken:
                    yield part
            if answer.usage is not None:
                report(answer.usage)

        return SpeechStream(parts)

    def _tts(self) -> Synthesiser:
        if self.tts is None:
            raise ConfigError(
                f"model '{self.name}' answers in text: give it output: audio and a tts stage "
                "in models.yaml for spoken replies"
            )
        return self.tts

    async def _speak(
        self, tts: Synthesiser, answer: ReplyStream
    ) -> AsyncGenerator[SpeechDelta, None]:
        """The LLM's deltas as they arrive, each whole sentence's audio once it is complete."""
        pending = ""
        async with aclosing(answer):
            async for delta in answer:
                yield SpeechText(delta)
                sentences, pending = split_sentences(pending + delta)
                for sentence in sentences:
                    yield await self._synthesise(tts, sentence)
        if pending.strip():
            yield await self._synthesise(tts, pending.strip())

    async def _synthesise(self, tts: Synthesiser, text: str) -> SpeechDelta:
        try:
            return await tts.synthesise(text)
        except ModelError as exc:
            raise self._wrap("the TTS", tts.name, exc) from exc

    @property
    def scores_options(self) -> bool:
        """Whether :meth:`score_options` works: the LLM is in-process (a TextOptionScorer)."""
        return isinstance(self.llm, TextOptionScorer)

    async def score_options(
        self, clip: AudioClip, prompt: str, options: Sequence[str]
    ) -> list[OptionScore]:
        """Transcribe ``clip``, then have the LLM score each option as its reply.

        The transcript is the user message and ``prompt`` the system prompt, as in
        :meth:`stream`.

        Returns:
            One score per option, in the order given.

        Raises:
            ConfigError: the LLM cannot score options (it is not in-process); checked, like
                an empty ``options``, before anything is transcribed.
            ModelError: either part failed (same subclass, naming the part), the ASR heard no
                speech, or the options cannot be scored (none, or one that is no tokens).
        """
        llm = self.llm
        if not isinstance(llm, TextOptionScorer):
            raise ConfigError(
                f"model '{self.name}': constrained decoding scores options with an in-process "
                f"LLM, and this pipeline's LLM '{llm.name}' ({type(llm).__name__}) is not one; "
                "use free decoding for it, or an LLM of kind 'local'"
            )
        listed = check_options(self.name, options)
        transcript = await self.transcribe(clip)
        try:
            return await llm.score_text_options(transcript, prompt, listed)
        except ModelError as exc:
            raise self._wrap("the LLM", llm.name, exc) from exc

    async def load(self) -> None:
        """Load the in-process parts now (those with a ``load``), e.g. when ``serve`` starts.

        Parts that share weights (the built-in offline models' variants) load them once.

        Raises:
            ModelError: a part cannot load, under the pipeline's name, naming the part.
        """
        for part, label in ((self.transcriber, "the ASR"), (self.llm, "the LLM")):
            load = getattr(part, "load", None)
            if load is None:
                continue
            try:
                await load()
            except ModelError as exc:
                raise self._wrap(label, part.name, exc) from exc

    async def aclose(self) -> None:
        """Close every part (those that hold connections have an ``aclose``)."""
        for part in (self.transcriber, self.llm, self.tts):
            close = getattr(part, "aclose", None)
            if close is not None:
                await close()
