"""Replies that name a model or its maker, which would tell the voter who is who.

Chatbot Arena leaves battles whose replies name a model out of its anonymous leaderboard; so
does lamarena (the battle is stored with the flag ``self_identified`` and ``counted`` false).

What counts as naming: a *term* as a whole word. Terms are the built-in vendor and family names
(:data:`DEFAULT_TERMS`, matched with their capitals as written, so "google it" or "a llama" in
lower case do not count while "Google" and "Llama" do), the configured extra terms
(``self_identification_terms``, same rule), and the names and model ids of the arena's own
models (matched in any case, as they are distinctive: ``gpt-4o-audio``, ``qwen2-audio``).
A capitalised common word at the start of a sentence ("Meta-analyses show…") is a false positive
the flag accepts: flagged battles are kept, and ``leaderboard --include-flagged`` counts them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["DEFAULT_TERMS", "SELF_IDENTIFIED", "SelfIdentification"]

SELF_IDENTIFIED = "self_identified"
"""The battle flag of a reply that names a model or vendor."""

DEFAULT_TERMS = (
    "OpenAI",
    "ChatGPT",
    "GPT",
    "Gemini",
    "Bard",
    "Google",
    "DeepMind",
    "Qwen",
    "Alibaba",
    "Tongyi",
    "Llama",
    "LLaMA",
    "Meta",
    "Claude",
    "Anthropic",
    "DiVA",
    "Typhoon",
    "SCB",
    "Whisper",
    "Mistral",
    "Microsoft",
    "Phi",
)
"""Vendor and model-family names matched as whole words with their capitals."""


def _whole_word(term: str) -> str:
    # \b fails next to a non-word character at a term's edge ("gpt-4o-"); look around instead.
    return rf"(?<![\w]){re.escape(term)}(?![\w])"


@dataclass(frozen=True)
class SelfIdentification:
    """Finds replies that name a model: :meth:`build` it once per arena, call :meth:`names`."""

    _exact: re.Pattern[str] | None
    _any_case: re.Pattern[str] | None

    @classmethod
    def build(
        cls, model_names: Iterable[str], extra_terms: Iterable[str] = ()
    ) -> SelfIdentification:
        """The matcher for the arena's model names/ids and the extra configured terms."""
        exact = sorted({*DEFAULT_TERMS, *(t.strip() for t in extra_terms if t.strip())}, key=len)
        any_case = sorted({name.strip() for name in model_names if len(name.strip()) >= 3}, key=len)
        return cls(
            re.compile("|".join(_whole_word(t) for t in reversed(exact))) if exact else None,
            re.compile("|".join(_whole_word(t) for t in reversed(any_case)), re.IGNORECASE)
            if any_case
            else None,
        )

    def names(self, text: str) -> str | None:
        """The first model or vendor name ``text`` contains, or None."""
        for pattern in (self._any_case, self._exact):
            if pattern is not None and (found := pattern.search(text)) is not None:
                return found.group(0)
        return None
