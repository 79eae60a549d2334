"""An LLM judge for open answers, in AudioBench's manner: a separately named alternative metric.

The study scored its three open-ended sets with PEDANTS (:mod:`lamarena.bench.scoring.pedants`);
AudioBench scores the same sets by asking a text LLM to rate the model's answer against the
reference from 0 to 5. This module does the latter, reported as ``llm_judge`` and never under
PEDANTS' name:

- the prompt is pinned (:data:`JUDGE_SYSTEM` and :data:`JUDGE_TEMPLATE`, lamarena's own
  wording), and its sha256 (:data:`JUDGE_PROMPT_SHA256`) is stored in every judged row with the
  judge's name;
- the judge is a model of models.yaml (``settings.judge_model``) that answers text (an OpenAI or
  Gemini chat model, or a pipeline, whose LLM is then used alone) and samples at temperature 0
  (``temperature: 0`` in models.yaml; of the built-in offline models, the greedy one);
- the reply is parsed strictly (:func:`parse_rating`): it must begin with the rating, a digit
  from 0 to 5 (``Rating: 4`` or ``4``); anything else is an unparsed verdict, counted and left
  out of the mean, never guessed. A rating r counts as r / 5 (the score is in percent).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from time import perf_counter
from typing import cast

from lamarena.bench.data.prompts import prompt_sha256
from lamarena.bench.run.cache import CachedReply, CallCache, call_key
from lamarena.bench.run.targets import ModelHandle, ModelTarget
from lamarena.errors import ConfigError, ModelError
from lamarena.models.base import AudioModel, TextModel, TranscribingModel

__all__ = [
    "JUDGE_PROMPT_SHA256",
    "JUDGE_SYSTEM",
    "JUDGE_TEMPLATE",
    "Judge",
    "JudgeVerdict",
    "check_judge",
    "parse_rating",
]

JUDGE_SYSTEM = (
    "You grade answers. Compare a model's answer with the reference answer to the same request "
    "and rate how well the model's answer matches the reference in meaning and correctness, "
    "from 0 to 5:\n"
    "0: unrelated, wrong or no answer; 1: mostly wrong with a small correct part; "
    "2: partly correct, missing important parts; 3: mostly correct with noticeable gaps or "
    "errors; 4: correct with minor omissions; 5: fully correct and complete.\n"
    "Reply with the rating first, as `Rating: N`, then at most one sentence of explanation."
)
"""The judge's instructions (sent as its system prompt)."""

JUDGE_TEMPLATE = (
    "[Request]\n{question}\n\n[Reference answer]\n{reference}\n\n[Model answer]\n{answer}\n\n"
    "Rating:"
)
"""The judge's user message; ``{question}`` is empty when the request was only spoken."""

JUDGE_PROMPT_SHA256 = prompt_sha256(JUDGE_SYSTEM + "\n\n" + JUDGE_TEMPLATE)
"""Identifies the pinned prompt in every judged row."""

_GREEDY_OFFLINE = frozenset({"offline-whisper-smollm2"})
"""Built-in offline models whose LLM decodes greedily (temperature 0 in effect)."""

_RATING = re.compile(
    r"^\s*(?:\**\s*rating\s*\**\s*[:=]\s*\**\s*)?([0-5])\**(?:\s*/\s*5)?(?![\d.])", re.I
)


def parse_rating(reply: str) -> int | None:
    """The rating a judge's reply starts with (0 to 5), or None: nothing else is accepted."""
    match = _RATING.match(reply)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class JudgeVerdict:
    """One judged answer.

    Attributes:
        rating: 0 to 5, or None when the judge's reply was not a rating.
        reply: the judge's reply, as given.
        cached: whether the verdict came from the cache.
    """

    rating: int | None
    reply: str
    cached: bool

    @property
    def score(self) -> float | None:
        """The rating as a fraction (rating / 5), or None."""
        return None if self.rating is None else self.rating / 5


def check_judge(target: ModelTarget) -> None:
    """Refuse a judge that does not sample at temperature 0.

    Raises:
        ConfigError: the model's temperature is unset or not 0 (the message says what to set).
    """
    if target.spec.get("builtin"):
        if target.name not in _GREEDY_OFFLINE:
            raise ConfigError(
                f"judge '{target.name}' samples its replies; use offline-whisper-smollm2 or a "
                "models.yaml model with temperature: 0"
            )
        return
    if target.temperature != 0:
        raise ConfigError(
            f"judge '{target.name}' must decode at temperature 0: set `temperature: 0` on it in "
            "models.yaml (on its llm for a pipeline)"
        )


def _text_stream(model: AudioModel, system: str, user: str) -> AsyncIterator[str]:
    if isinstance(model, TranscribingModel):
        return model.stream_transcript(user, system)
    if isinstance(model, TextModel):
        return model.stream_text(user, system)
    raise ConfigError(f"judge '{model.name}' cannot answer text; choose a chat model or pipeline")


class Judge:
    """Rates open answers with one judge model, through the call cache."""

    def __init__(
        self,
        target: ModelTarget,
        model: ModelHandle,
        cache: CallCache,
        *,
        concurrency: int,
        timeout_s: float,
    ) -> None:
        self.target = target
        self.name = target.name
        self._model = model
        self._cache = cache
        self._semaphore = asyncio.Semaphore(target.concurrency(concurrency))
        self._timeout_s = timeout_s
        self.calls = 0

    async def rate(self, question: str, reference: str, answer: str) -> JudgeVerdict:
        """Rate ``answer`` against ``reference``.

        Raises:
            ModelError: the judge failed or took too long (the row records the error).
        """
        user = JUDGE_TEMPLATE.format(question=question, reference=reference, answer=answer)
        key = call_key(
            model=self.target.spec,
            prompt=JUDGE_SYSTEM + "\n\n" + user,
            generation={"role": "judge", "prompt_sha256": JUDGE_PROMPT_SHA256},
        )
        cached = self._cache.get(key)
        if cached is not None:
            return JudgeVerdict(parse_rating(cached.text), cached.text, True)
        async with self._semaphore:
            started = perf_counter()
            parts: list[str] = []
            try:
                async with asyncio.timeout(self._timeout_s):
                    stream = _text_stream(self._model.get(), JUDGE_SYSTEM, user)
                    generator = cast("AsyncGenerator[str, None]", stream)
                    async with aclosing(generator) as deltas:
                        async for delta in deltas:
                            parts.append(delta)
            except TimeoutError as exc:
                raise ModelError(
                    self.name, f"the judge took longer than {self._timeout_s:g} s"
                ) from exc
            self.calls += 1
        text = "".join(parts).strip()
        self._cache.put(key, CachedReply(text=text, total_s=perf_counter() - started))
        return JudgeVerdict(parse_rating(text), text, False)
