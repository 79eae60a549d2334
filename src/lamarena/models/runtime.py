"""Running any adapter once: time limits, timings measured here, failures kept on the Reply.

Adapters only stream text. :func:`run_model` adds what every caller needs, in one place: a limit
on the time to the first delta and on the whole reply, ``perf_counter`` timings (time to first
token, total) taken around the adapter (so rendering never counts), an optional semaphore, the
earlier turns of a conversation, the transcript of a pipeline, the token usage the adapter's
stream reported (see :class:`~lamarena.models.base.ReplyStream`), and a
:class:`~lamarena.models.base.Reply` that carries the error instead of raising, so one side of
an arena battle can fail while the other goes on.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from time import perf_counter
from typing import cast

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

__all__ = ["DeltaCallback", "run_model"]

logger = logging.getLogger(__name__)

DeltaCallback = Callable[[str], Awaitable[None] | None]
"""Called with each text delta as it arrives (e.g. to forward it to a browser)."""


async def run_model(
    model: AudioModel,
    clip: AudioClip,
    prompt: str,
    *,
    timeouts: ModelTimeouts | None = None,
    on_delta: DeltaCallback | None = None,
    semaphore: asyncio.Semaphore | None = None,
    history: Sequence[EarlierTurn] = (),
) -> Reply:
    """Ask ``model`` about ``clip`` and collect its reply with timings.

    Args:
        model: any adapter.
        clip: the spoken query.
        prompt: the text sent with the audio.
        timeouts: limits on the first delta and the whole reply (connect limits are the
            adapter's own).
        on_delta: called with each delta, in order, as it arrives.
        semaphore: limits how many requests this model serves at once; waiting for it does not
            count towards the timings.
        history: the conversation's earlier turns, oldest first, each with this model's own
            reply (and, for a pipeline, its own transcript; a missing one is made again, within
            the time limit of the first delta). Empty for a single-turn query, whose request is
            then unchanged.

    Returns:
        The reply; on failure ``error`` says what happened and ``text`` holds what arrived.
        ``usage`` is what the service reported for this request (None when it reported none).
    """
    timeouts = timeouts or ModelTimeouts()
    if semaphore is None:
        return await _run(model, clip, prompt, history, timeouts, on_delta)
    async with semaphore:
        return await _run(model, clip, prompt, history, timeouts, on_delta)


async def _run(
    model: AudioModel,
    clip: AudioClip,
    prompt: str,
    history: Sequence[EarlierTurn],
    timeouts: ModelTimeouts,
    on_delta: DeltaCallback | None,
) -> Reply:
    parts: list[str] = []
    transcript: str | None = None
    ttft_s: float | None = None
    error: str | None = None
    stream: AsyncIterator[str] | None = None
    started = perf_counter()
    try:
        async with asyncio.timeout(timeouts.total_s):
            async with asyncio.timeout(timeouts.first_token_s) as first_token_limit:
                # History goes only to a conversation's later turns: a single-turn call is the
                # same call as ever, so adapters written before conversations keep working.
                if isinstance(model, TranscribingModel):
                    transcript = await model.transcribe(clip)
                    earlier = await text_history(history, model.transcribe)
                    stream = (
                        model.stream_transcript(transcript, prompt, earlier)
                        if earlier
                        else model.stream_transcript(transcript, prompt)
                    )
                elif history:
                    stream = model.stream(clip, prompt, history)
                else:
                    stream = model.stream(clip, prompt)
                # aclosing: on a timeout or a cancelled caller the adapter's stream (and any
                # generation thread behind it) is closed now, not when garbage is collected.
                async with aclosing(cast("AsyncGenerator[str, None]", stream)) as deltas:
                    async for delta in deltas:
                        if not delta:
                            continue
                        if ttft_s is None:
                            ttft_s = perf_counter() - started
                            first_token_limit.reschedule(None)
                        parts.append(delta)
                        if on_delta is not None:
                            result = on_delta(delta)
                            if inspect.isawaitable(result):
                                await result
    except TimeoutError:
        if ttft_s is None:
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
    )
