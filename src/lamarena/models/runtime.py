"""Running any adapter once: time limits, timings measured here, failures kept on the Reply.

Adapters only stream (text, or the text and audio of a spoken reply). :func:`run_model` adds
what every caller needs, in one place: a limit on the time to the first delta and on the whole
reply, ``perf_counter`` timings (time to first token, total) taken around the adapter (so
rendering never counts), an optional semaphore, the earlier turns of a conversation, the
transcript of a pipeline, the token usage the adapter's stream reported (see
:class:`~lamarena.models.base.ReplyStream`), and a :class:`~lamarena.models.base.Reply` that
carries the error instead of raising, so one side of an arena battle can fail while the other
goes on.

A model that speaks (:func:`~lamarena.models.speech.can_speak`) is asked for its spoken reply:
its text deltas go to ``on_delta`` as ever and make ``Reply.text``; its audio chunks go to
``on_audio`` as they arrive and make ``Reply.audio``, with the time to the first audio byte
(``ttfab_s``) measured like ``ttft_s``. Either kind of part counts as the first delta for the
first-token limit. A spoken reply that ends without audio is an error.

A model may take only so much audio (an :class:`AudioLimit`, from ``max_audio_s`` in
models.yaml, carried on the adapter by :func:`set_audio_limit`): a longer clip is refused (the
reply's error names both lengths, and the model is never called) or cut to the limit (the reply's
``notice`` says so), never cut silently. A conversation's earlier clips are held to the same
limit.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from time import perf_counter
from typing import Literal, TypeVar, cast

from lamarena.audio import AudioClip
from lamarena.errors import ModelError
from lamarena.models.base import (
    AudioModel,
    EarlierTurn,
    ModelTimeouts,
    Reply,
    TranscribingModel,
    reported_usage,
    text_history,
)
from lamarena.models.speech import (
    SpeakingModel,
    SpeechAudio,
    SpeechText,
    TranscribingSpeakingModel,
    can_speak,
)

__all__ = [
    "AudioCallback",
    "AudioLimit",
    "DeltaCallback",
    "audio_limit_of",
    "run_model",
    "set_audio_limit",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

DeltaCallback = Callable[[str], Awaitable[None] | None]
"""Called with each text delta as it arrives (e.g. to forward it to a browser)."""

AudioCallback = Callable[[SpeechAudio], Awaitable[None] | None]
"""Called with each audio chunk of a spoken reply as it arrives."""

_SAMPLE_SLACK_S = 1e-3
"""A clip this much over the limit still fits (rounding of a clip cut to the limit elsewhere)."""


@dataclass(frozen=True)
class AudioLimit:
    """The most audio a model takes in one clip, and what happens to a longer one.

    Attributes:
        max_s: the longest clip, in seconds.
        over_limit: ``refuse`` (an error reply naming both lengths) or ``cut`` (the first
            ``max_s`` seconds are sent and the reply's ``notice`` says so).
    """

    max_s: float
    over_limit: Literal["refuse", "cut"] = "refuse"

    def __post_init__(self) -> None:
        if not self.max_s > 0:
            raise ValueError(f"max_s must be positive, not {self.max_s}")
        if self.over_limit not in ("refuse", "cut"):
            raise ValueError(f"over_limit must be refuse or cut, not {self.over_limit!r}")

    def exceeded_by(self, clip: AudioClip) -> bool:
        """Whether ``clip`` is longer than the limit."""
        return clip.duration_s > self.max_s + _SAMPLE_SLACK_S

    def cut(self, clip: AudioClip) -> AudioClip:
        """The first ``max_s`` seconds of ``clip`` (the clip itself when it fits)."""
        if not self.exceeded_by(clip):
            return clip
        keep = round(self.max_s * clip.sample_rate_hz)
        return replace(clip, samples=clip.samples[:keep])


def set_audio_limit(model: object, limit: AudioLimit | None) -> None:
    """Give the adapter ``model`` its audio limit; :func:`run_model` then applies it."""
    setattr(model, "audio_limit", limit)  # noqa: B010 - any adapter class, set from outside


def audio_limit_of(model: object) -> AudioLimit | None:
    """The audio limit set on ``model`` (None: no limit)."""
    limit = getattr(model, "audio_limit", None)
    return limit if isinstance(limit, AudioLimit) else None


class _AudioRefused(Exception):
    """A clip is longer than the model takes (the message is the reply's error)."""


def _fit_audio(
    model: AudioModel,
    limit: AudioLimit | None,
    clip: AudioClip,
    history: Sequence[EarlierTurn],
) -> tuple[AudioClip, Sequence[EarlierTurn], str | None]:
    """``clip`` and ``history`` within ``limit``, and the notice of a cut (None if none).

    Raises:
        _AudioRefused: a clip is too long and the limit refuses it.
    """
    if limit is None:
        return clip, history, None
    long_earlier = [i for i, turn in enumerate(history, 1) if limit.exceeded_by(turn.clip)]
    if not limit.exceeded_by(clip) and not long_earlier:
        return clip, history, None
    if limit.over_limit == "refuse":
        if limit.exceeded_by(clip):
            raise _AudioRefused(
                f"model '{model.name}' takes at most {limit.max_s:g} s of audio (max_audio_s) "
                f"but the clip is {clip.duration_s:.1f} s long: send a shorter clip"
            )
        raise _AudioRefused(
            f"model '{model.name}' takes at most {limit.max_s:g} s of audio (max_audio_s) but "
            f"the clip of turn {long_earlier[0]} of this conversation is "
            f"{history[long_earlier[0] - 1].clip.duration_s:.1f} s long: start a new "
            "conversation"
        )
    notice = None
    if limit.exceeded_by(clip):
        notice = (
            f"the clip is {clip.duration_s:.1f} s long but model '{model.name}' takes at most "
            f"{limit.max_s:g} s (max_audio_s): it heard only the first {limit.max_s:g} s"
        )
    if long_earlier:  # each was cut, with its notice, at its own turn
        history = [replace(turn, clip=limit.cut(turn.clip)) for turn in history]
    return limit.cut(clip), history, notice


async def run_model(
    model: AudioModel,
    clip: AudioClip,
    prompt: str,
    *,
    timeouts: ModelTimeouts | None = None,
    on_delta: DeltaCallback | None = None,
    on_audio: AudioCallback | None = None,
    semaphore: asyncio.Semaphore | None = None,
    history: Sequence[EarlierTurn] = (),
    audio_limit: AudioLimit | None = None,
) -> Reply:
    """Ask ``model`` about ``clip`` and collect its reply with timings.

    Args:
        model: any adapter.
        clip: the spoken query.
        prompt: the text sent with the audio.
        timeouts: limits on the first delta and the whole reply (connect limits are the
            adapter's own).
        on_delta: called with each text delta, in order, as it arrives.
        on_audio: called with each audio chunk of a spoken reply, in order, as it arrives
            (never for a model that answers in text).
        semaphore: limits how many requests this model serves at once; waiting for it does not
            count towards the timings.
        history: the conversation's earlier turns, oldest first, each with this model's own
            reply (and, for a pipeline, its own transcript; a missing one is made again, within
            the time limit of the first delta). Empty for a single-turn query, whose request is
            then unchanged.
        audio_limit: the most audio the model takes; None: the limit set on the adapter
            (:func:`set_audio_limit`), if any.

    Returns:
        The reply; on failure ``error`` says what happened and ``text`` holds what arrived.
        ``usage`` is what the service reported for this request (None when it reported none).
        A spoken reply also has ``audio`` (PCM16 mono), ``audio_sample_rate_hz``, ``ttfab_s``
        and ``audio_s``. ``notice`` says when the clip was cut to the model's audio limit.
    """
    timeouts = timeouts or ModelTimeouts()
    limit = audio_limit if audio_limit is not None else audio_limit_of(model)
    try:
        clip, history, notice = _fit_audio(model, limit, clip, history)
    except _AudioRefused as exc:
        logger.warning("%s", exc)
        return Reply(model=model.name, text="", ttft_s=None, total_s=0.0, error=str(exc))
    if semaphore is None:
        reply = await _run(model, clip, prompt, history, timeouts, on_delta, on_audio)
    else:
        async with semaphore:
            reply = await _run(model, clip, prompt, history, timeouts, on_delta, on_audio)
    return reply if notice is None else replace(reply, notice=notice)


async def _call(callback: Callable[[_T], Awaitable[None] | None] | None, value: _T) -> None:
    if callback is not None:
        result = callback(value)
        if inspect.isawaitable(result):
            await result


async def _open_stream(
    model: AudioModel, clip: AudioClip, prompt: str, history: Sequence[EarlierTurn]
) -> tuple[AsyncIterator[object], str | None]:
    """The model's stream (text, or speech parts for a model that speaks) and its transcript."""
    # History goes only to a conversation's later turns: a single-turn call is the same call
    # as ever, so adapters written before conversations keep working.
    speaking = can_speak(model)
    if isinstance(model, TranscribingModel):
        transcript = await model.transcribe(clip)
        earlier = await text_history(history, model.transcribe)
        if speaking and isinstance(model, TranscribingSpeakingModel):
            if earlier:
                return model.speak_transcript(transcript, prompt, earlier), transcript
            return model.speak_transcript(transcript, prompt), transcript
        if earlier:
            return model.stream_transcript(transcript, prompt, earlier), transcript
        return model.stream_transcript(transcript, prompt), transcript
    if speaking and isinstance(model, SpeakingModel):
        if history:
            return model.stream_speech(clip, prompt, history), None
        return model.stream_speech(clip, prompt), None
    if history:
        return model.stream(clip, prompt, history), None
    return model.stream(clip, prompt), None


async def _run(
    model: AudioModel,
    clip: AudioClip,
    prompt: str,
    history: Sequence[EarlierTurn],
    timeouts: ModelTimeouts,
    on_delta: DeltaCallback | None,
    on_audio: AudioCallback | None,
) -> Reply:
    parts: list[str] = []
    audio: list[bytes] = []
    sample_rate_hz: int | None = None
    transcript: str | None = None
    ttft_s: float | None = None
    ttfab_s: float | None = None
    error: str | None = None
    stream: AsyncIterator[object] | None = None
    speaking = can_speak(model)
    started = perf_counter()
    try:
        async with asyncio.timeout(timeouts.total_s):
            async with asyncio.timeout(timeouts.first_token_s) as first_token_limit:
                stream, transcript = await _open_stream(model, clip, prompt, history)
                # aclosing: on a timeout or a cancelled caller the adapter's stream (and any
                # generation thread behind it) is closed now, not when garbage is collected.
                async with aclosing(cast("AsyncGenerator[object, None]", stream)) as items:
                    async for item in items:
                        if isinstance(item, SpeechAudio):
                            if not item.pcm16:
                                continue
                            if sample_rate_hz is None:
                                sample_rate_hz = item.sample_rate_hz
                                ttfab_s = perf_counter() - started
                                first_token_limit.reschedule(None)
                            elif item.sample_rate_hz != sample_rate_hz:
                                raise ModelError(
                                    model.name,
                                    f"sent audio at {item.sample_rate_hz} Hz after audio at "
                                    f"{sample_rate_hz} Hz in one reply",
                                )
                            audio.append(item.pcm16)
                            await _call(on_audio, item)
                            continue
                        delta = item.text if isinstance(item, SpeechText) else item
                        if not isinstance(delta, str) or not delta:
                            continue
                        if ttft_s is None:
                            ttft_s = perf_counter() - started
                            first_token_limit.reschedule(None)
                        parts.append(delta)
                        await _call(on_delta, delta)
    except TimeoutError:
        if ttft_s is None and ttfab_s is None:
            error = f"model '{model.name}': no reply after {timeouts.first_token_s:g} s"
        else:
            error = f"model '{model.name}': the reply took longer than {timeouts.total_s:g} s"
    except ModelError as exc:
        error = exc.message
    except Exception:  # an adapter bug must not take the other side of a battle down
        logger.exception("model %s failed unexpectedly", model.name)
        error = f"model '{model.name}' failed unexpectedly; see the server log"
    total_s = perf_counter() - started
    if error is None and not parts:
        error = f"model '{model.name}' returned an empty reply"
    if error is None and speaking and not audio:
        error = f"model '{model.name}' returned a reply without audio"
    if error is not None:
        logger.warning("%s", error)
    return Reply(
        model=model.name,
        text="".join(parts),
        ttft_s=ttft_s,
        total_s=total_s,
        error=error,
        transcript=transcript,
        usage=reported_usage(stream),
        audio=b"".join(audio) if speaking else None,
        audio_sample_rate_hz=sample_rate_hz,
        ttfab_s=ttfab_s,
    )
