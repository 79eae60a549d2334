"""The one interface every Large Audio Model adapter implements, and what a reply records.

An adapter implements :class:`AudioModel`: ``stream(clip, prompt)`` yields text deltas for one
spoken query (``prompt`` is the text part sent with the audio: the arena's system prompt or a
benchmark's instruction). Parts of an ASR + LLM pipeline implement :class:`Transcriber` and
:class:`TextModel`.

A conversation of several turns passes its finished turns as ``history``: each side of an arena
battle keeps its own, so an :class:`EarlierTurn` holds the person's spoken query and *this*
model's reply to it (and its own transcript, for a pipeline); a text model gets
:data:`TextTurn` pairs. With no history (the default) every request is exactly the single-turn
one. Adapters raise only :class:`lamarena.errors.ModelError` subclasses. Timing,
timeouts and collecting a :class:`Reply` happen once, in :mod:`lamarena.models.runtime`.

An in-process model can also answer a closed question without generating: an
:class:`OptionScorer` scores each candidate answer (``"yes"``/``"no"``, option letters) by the
log-likelihood of its tokens after the prompt (lm-evaluation-harness's ``loglikelihood``
request) and returns one :class:`OptionScore` per candidate; :func:`can_score_options` says
whether a model can. A pipeline's text LLM does the same for a transcript as a
:class:`TextOptionScorer`.

Token usage travels with the stream of the request it belongs to: an adapter whose service
reports tokens returns a :class:`ReplyStream` (still an ``AsyncIterator[str]``) and reports the
:class:`Usage` on it; :func:`reported_usage` reads it once the stream ends. Nothing is kept on
the adapter, so any number of concurrent requests on one instance each get their own usage.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, Self, TypeVar, runtime_checkable

from lamarena.audio import AudioClip

_Item = TypeVar("_Item")

__all__ = [
    "AudioModel",
    "EarlierTurn",
    "ModelTimeouts",
    "OptionScore",
    "OptionScorer",
    "Reply",
    "ReplyStream",
    "TextModel",
    "TextOptionScorer",
    "TextTurn",
    "TokenPrices",
    "Transcriber",
    "TranscribingModel",
    "Usage",
    "UsageSink",
    "UsageStream",
    "can_score_options",
    "reported_usage",
    "text_history",
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


def _token_count(value: object) -> int | None:
    """``value`` as a token count: a non-negative int, else None (never a made-up number)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


@dataclass(frozen=True)
class Usage:
    """The tokens one request used, as the service reported them.

    Where the service splits its counts by modality (OpenAI's ``prompt_tokens_details`` and
    ``completion_tokens_details``, Gemini's ``prompt_tokens_details`` and
    ``candidates_tokens_details``), the audio part is kept too; the rest of each count is text.

    Attributes:
        input_tokens: tokens of the request (text, audio and system prompt); None when the
            service did not say.
        output_tokens: tokens generated, reasoning or thinking tokens included where the service
            bills them as output; None when the service did not say.
        input_audio_tokens: how many of ``input_tokens`` were audio; None when the service did
            not split its count (all of it is then priced as text).
        output_audio_tokens: how many of ``output_tokens`` were audio (a spoken reply); None
            when the service did not split its count.
    """

    input_tokens: int | None
    output_tokens: int | None
    input_audio_tokens: int | None = None
    output_audio_tokens: int | None = None

    @classmethod
    def reported(
        cls,
        input_tokens: object,
        output_tokens: object,
        *,
        input_audio_tokens: object = None,
        output_audio_tokens: object = None,
    ) -> Usage:
        """The usage from a service's raw counts; anything not a non-negative int becomes None.

        An audio count is kept only beside a known total it fits in (never more than it).
        """
        total_in, total_out = _token_count(input_tokens), _token_count(output_tokens)
        return cls(
            total_in,
            total_out,
            _part_of(_token_count(input_audio_tokens), total_in),
            _part_of(_token_count(output_audio_tokens), total_out),
        )

    @classmethod
    def from_service(
        cls,
        input_tokens: object,
        output_tokens: object,
        *,
        input_audio_tokens: object = None,
        output_audio_tokens: object = None,
    ) -> Usage | None:
        """The usage a service reported, or None where it reported nothing that is a count.

        None when neither total is a count, and when the input is 0 tokens: every request
        lamarena sends has input (a spoken query, or a user message), so a service that says it
        read none is not counting (the study's inference servers, SALT-NLP and scb-10x's
        audiolm-inference-server, send ``prompt_tokens: 0, completion_tokens: 0`` on every
        chunk). Such a reply is recorded as "no usage reported", never as 0 tokens and $0.
        """
        usage = cls.reported(
            input_tokens,
            output_tokens,
            input_audio_tokens=input_audio_tokens,
            output_audio_tokens=output_audio_tokens,
        )
        if usage.input_tokens is None and usage.output_tokens is None:
            return None
        if usage.input_tokens == 0:
            return None
        return usage

    @classmethod
    def from_dict(cls, value: object) -> Usage | None:
        """The usage stored by :meth:`as_dict`, or None for anything else."""
        if not isinstance(value, dict):
            return None
        usage = cls.reported(
            value.get("input_tokens"),
            value.get("output_tokens"),
            input_audio_tokens=value.get("input_audio_tokens"),
            output_audio_tokens=value.get("output_audio_tokens"),
        )
        return None if usage.input_tokens is None and usage.output_tokens is None else usage

    @property
    def total_tokens(self) -> int | None:
        """Input plus output tokens; None unless both are known."""
        if self.input_tokens is None or self.output_tokens is None:
            return None
        return self.input_tokens + self.output_tokens

    @property
    def input_text_tokens(self) -> int | None:
        """The input tokens that were not audio (all of them when the count was not split)."""
        return _rest(self.input_tokens, self.input_audio_tokens)

    @property
    def output_text_tokens(self) -> int | None:
        """The output tokens that were not audio (all of them when the count was not split)."""
        return _rest(self.output_tokens, self.output_audio_tokens)

    def as_dict(self) -> dict[str, int | None]:
        """``{"input_tokens", "output_tokens"}``, for JSON files and the call cache.

        ``input_audio_tokens`` and ``output_audio_tokens`` are added when the service split its
        count by modality (so a row of a service that does not split looks as it always did).
        """
        row = {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens}
        if self.input_audio_tokens is not None or self.output_audio_tokens is not None:
            row["input_audio_tokens"] = self.input_audio_tokens
            row["output_audio_tokens"] = self.output_audio_tokens
        return row


def _part_of(part: int | None, total: int | None) -> int | None:
    """``part`` if it fits in a known ``total``, else None."""
    if part is None or total is None or part > total:
        return None
    return part


def _rest(total: int | None, audio: int | None) -> int | None:
    if total is None:
        return None
    return total - (audio or 0)


@dataclass(frozen=True)
class TokenPrices:
    """What a model's service charges, in US dollars per million tokens.

    The audio prices apply to the tokens a service reports as audio (:class:`Usage`'s
    ``input_audio_tokens`` and ``output_audio_tokens``); without an audio price, or when the
    service does not split its count, every token of that side costs the text price.

    Attributes:
        input_per_million: the price of a million input (text) tokens.
        output_per_million: the price of a million output (text) tokens.
        input_audio_per_million: the price of a million input audio tokens; None: the text price.
        output_audio_per_million: the price of a million output audio tokens; None: the text
            price.
    """

    input_per_million: float
    output_per_million: float
    input_audio_per_million: float | None = None
    output_audio_per_million: float | None = None

    def cost_usd(self, usage: Usage | None) -> float | None:
        """The cost of one request in US dollars; None unless both token counts are known."""
        if usage is None or usage.input_tokens is None or usage.output_tokens is None:
            return None
        audio_in = usage.input_audio_tokens or 0
        audio_out = usage.output_audio_tokens or 0
        audio_in_price = self.input_audio_per_million
        audio_out_price = self.output_audio_per_million
        return (
            (usage.input_tokens - audio_in) * self.input_per_million
            + audio_in * (self.input_per_million if audio_in_price is None else audio_in_price)
            + (usage.output_tokens - audio_out) * self.output_per_million
            + audio_out * (self.output_per_million if audio_out_price is None else audio_out_price)
        ) / 1_000_000


UsageSink = Callable[[Usage], None]
"""Receives the usage of one request (called again when the service revises it)."""


class UsageStream(AsyncIterator[_Item]):
    """The items of one request, and the token usage its service reported.

    ``deltas`` is called at once with a sink and returns the generator, which calls the sink
    when the service reports usage (typically after the last item). Reading :attr:`usage` after
    the stream ends gives that request's usage, or None. Like an async generator it does
    nothing until iterated, and :meth:`aclose` stops it. :class:`ReplyStream` yields text;
    :class:`lamarena.models.speech.SpeechStream` the parts of a spoken reply.
    """

    def __init__(self, deltas: Callable[[UsageSink], AsyncGenerator[_Item, None]]) -> None:
        """Wrap the generator ``deltas(sink)`` of one request."""
        self.usage: Usage | None = None
        self._deltas = deltas(self._report)

    def _report(self, usage: Usage) -> None:
        self.usage = usage

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> _Item:
        return await anext(self._deltas)

    async def aclose(self) -> None:
        """Stop the request (its generator's cleanup runs now)."""
        await self._deltas.aclose()


class ReplyStream(UsageStream[str]):
    """The text deltas of one request, and the token usage its service reported.

    An adapter returns one from ``stream`` (or ``stream_text``, ``stream_transcript``) instead
    of a bare async generator (see :class:`UsageStream`).
    """


def reported_usage(stream: object) -> Usage | None:
    """The usage a stream reported: a :class:`ReplyStream`'s, else None (e.g. local models)."""
    usage = getattr(stream, "usage", None)
    return usage if isinstance(usage, Usage) else None


@dataclass(frozen=True)
class Reply:
    """One model's complete answer to one query, with server-side timings.

    Attributes:
        model: the model's name (as in models.yaml).
        text: the reply text (possibly partial when ``error`` is set); a spoken reply's
            transcript.
        ttft_s: seconds from the request to the first delta; None if none arrived.
        total_s: seconds from the request to the end (or to the failure).
        error: a message a user can act on, or None when the reply is complete.
        transcript: what an ASR front end heard (pipelines only).
        usage: the tokens the service reported for this request; None when it reported none
            (local models, servers without usage, a stream cut short).
        audio: a spoken reply's audio, signed 16-bit little-endian mono PCM (possibly partial
            when ``error`` is set); None for a model that answers in text.
        audio_sample_rate_hz: the sample rate of ``audio``; None without audio.
        ttfab_s: seconds from the request to the first audio byte; None if none arrived.
        notice: something the model was not given as sent, e.g. a clip cut to its
            ``max_audio_s`` (see :func:`lamarena.models.runtime.run_model`); None otherwise.
    """

    model: str
    text: str
    ttft_s: float | None
    total_s: float
    error: str | None = None
    transcript: str | None = None
    usage: Usage | None = None
    audio: bytes | None = None
    audio_sample_rate_hz: int | None = None
    ttfab_s: float | None = None
    notice: str | None = None

    @property
    def chars(self) -> int:
        """Length of the reply in characters."""
        return len(self.text)

    @property
    def ok(self) -> bool:
        """Whether the reply completed without an error."""
        return self.error is None

    @property
    def audio_s(self) -> float | None:
        """The duration of ``audio`` in seconds; None without audio."""
        if self.audio is None or not self.audio_sample_rate_hz:
            return None
        return len(self.audio) / 2 / self.audio_sample_rate_hz


@dataclass(frozen=True)
class EarlierTurn:
    """One finished turn of a conversation, as one side of a battle saw it.

    Attributes:
        clip: the person's spoken query of that turn, mono 16 kHz.
        reply: this model's own reply to it (what it streamed, possibly cut short), never the
            other side's.
        transcript: this model's own transcript of the query when it made one (a pipeline's
            ASR); None otherwise, and a pipeline then transcribes ``clip`` again.
    """

    clip: AudioClip
    reply: str
    transcript: str | None = None


TextTurn = tuple[str, str]
"""One finished turn of a text conversation: (the user's message, the model's reply)."""


async def text_history(
    history: Sequence[EarlierTurn], transcribe: Callable[[AudioClip], Awaitable[str]]
) -> list[TextTurn]:
    """The turns of ``history`` as (transcript, reply) pairs, for a model that answers text.

    A turn's own transcript is used where it has one; ``transcribe`` makes the missing ones, in
    order.
    """
    turns: list[TextTurn] = []
    for turn in history:
        transcript = turn.transcript if turn.transcript is not None else await transcribe(turn.clip)
        turns.append((transcript, turn.reply))
    return turns


@runtime_checkable
class AudioModel(Protocol):
    """A model that answers a spoken query with streamed text."""

    name: str

    def stream(
        self, clip: AudioClip, prompt: str, history: Sequence[EarlierTurn] = ()
    ) -> AsyncIterator[str]:
        """Yield the reply's text deltas, in order.

        Args:
            clip: the query, mono 16 kHz.
            prompt: the text sent with the audio (system prompt or task instruction).
            history: the conversation's earlier turns, oldest first, each with this model's
                own reply; empty for a single-turn query (the request is then unchanged).

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

    def stream_text(
        self, text: str, prompt: str, history: Sequence[TextTurn] = ()
    ) -> AsyncIterator[str]:
        """Yield the reply's deltas to the user message ``text`` under system prompt ``prompt``.

        ``history`` holds the earlier (user message, reply) pairs, oldest first.

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

    def stream_transcript(
        self, transcript: str, prompt: str, history: Sequence[TextTurn] = ()
    ) -> AsyncIterator[str]:
        """Yield the LLM's deltas for an already made transcript.

        ``history`` holds the earlier turns' (transcript, reply) pairs, oldest first.
        """
        ...


@dataclass(frozen=True)
class OptionScore:
    """How likely a model finds one candidate answer as the whole start of its reply.

    Attributes:
        text: the candidate, exactly as given.
        logprob: the sum over the candidate's tokens of the natural-log probability of each
            token given the prompt and the candidate's tokens before it (higher is likelier).
        n_tokens: how many tokens the candidate is in the model's tokenizer (at least 1); divide
            ``logprob`` by it for a per-token score.
        greedy: whether greedy decoding would produce exactly these tokens (each one is the
            model's most likely next token), as lm-evaluation-harness's ``is_greedy``.
    """

    text: str
    logprob: float
    n_tokens: int
    greedy: bool


@runtime_checkable
class OptionScorer(Protocol):
    """A model that scores candidate answers to a spoken query instead of generating one."""

    name: str

    async def score_options(
        self, clip: AudioClip, prompt: str, options: Sequence[str]
    ) -> list[OptionScore]:
        """Score each of ``options`` as the reply to ``clip`` with ``prompt``.

        Args:
            clip: the query, mono 16 kHz.
            prompt: the text sent with the audio, as for :meth:`AudioModel.stream`.
            options: the candidate replies, e.g. ``["yes", "no"]`` or ``["A", "B", "C"]``.

        Returns:
            One score per option, in the order given; the answer is the one with the highest
            ``logprob``.

        Raises:
            ModelError: no options, an option that is no tokens, or the model failed.
            ConfigError: the model cannot score options at all (a pipeline whose LLM is
                remote); see :func:`can_score_options`.
        """
        ...


@runtime_checkable
class TextOptionScorer(Protocol):
    """A text LLM that scores candidate replies to a user message (a pipeline's second half)."""

    name: str

    async def score_text_options(
        self, text: str, prompt: str, options: Sequence[str]
    ) -> list[OptionScore]:
        """Score each of ``options`` as the reply to the user message ``text`` under ``prompt``.

        Raises:
            ModelError: no options, an option that is no tokens, or the model failed.
        """
        ...


def can_score_options(model: object) -> bool:
    """Whether ``model`` can score options: an :class:`OptionScorer` that does not say otherwise.

    A model that implements the protocol but cannot always use it (a pipeline, whose LLM may be
    a remote service) has a ``scores_options`` attribute saying whether it can.
    """
    return isinstance(model, OptionScorer) and bool(getattr(model, "scores_options", True))
