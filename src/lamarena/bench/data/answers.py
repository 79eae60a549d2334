"""A dataset's own answers: normalised text, and the option letter an answer column means.

Datasets write the right option in many ways: a letter (``B``), a letter in brackets (``(B)``),
the option's text, or both (``(B) In a hotel.``). :func:`reference_letter` turns each into the
letter; :func:`normalise` is the text folding every comparison of labels uses.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from lamarena.bench.data.spec import CHOICE_LETTERS

__all__ = ["LETTER_EXACT", "normalise", "reference_letter"]

LETTER_EXACT = re.compile(
    r"^\s*(?:(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:\-]?\s*)?"
    r"\(?([a-f])\)?\s*[.):]?\s*$",
    re.IGNORECASE,
)
"""A whole text that is one option letter: ``B``, ``(b)``, ``Answer: B.``, ``the option is C``."""


def normalise(text: str) -> str:
    """Lower case, NFKC, every non-alphanumeric character (``_`` too) a space, spaces collapsed."""
    folded = unicodedata.normalize("NFKC", text).lower().replace("_", " ")
    return " ".join(re.sub(r"[^\w\s]", " ", folded).split())


def reference_letter(value: str, options: Sequence[str]) -> str | None:
    """The letter a dataset's answer column means: a letter form (``B``, ``(B)``) or an option.

    Returns:
        The letter, or None when ``value`` is neither a valid letter nor an option's text.
    """
    valid = "".join(CHOICE_LETTERS[: len(options)])
    match = LETTER_EXACT.match(value)
    if match and match.group(1).upper() in valid:
        return match.group(1).upper()
    wanted = normalise(value)
    for letter, option in zip(valid, options, strict=False):
        if normalise(option) == wanted:
            return letter
    # "(B) In a hotel.": a letter followed by the option's own text
    lead = re.match(r"^\s*\(?([A-Fa-f])\)?[.):]?\s+(.+)$", value)
    if lead and lead.group(1).upper() in valid:
        letter = lead.group(1).upper()
        if normalise(lead.group(2)) == normalise(options[valid.index(letter)]):
            return letter
    return None
