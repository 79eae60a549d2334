"""Reading a label out of a model's free-text answer: deterministic, documented, never a guess.

A model asked "Is the speaker sarcastic? Answer yes or no." may reply "Yes.", "yes, clearly", "It
is not sarcastic" or "I cannot tell". :func:`parse_label` (label sets) and :func:`parse_choice`
(lettered options) turn such replies into a label by these rules, in order; the first that
applies decides:

1. **exact**: the whole answer, normalised (lower case, punctuation and underscores to spaces,
   whitespace collapsed; a leading "answer:" / "the answer is" dropped), is a label or one of its
   aliases (for choices: a letter, ``(B)``, ``Option B``, or an option's text).
2. **word**: the labels and aliases found in the answer as whole words, longest first (so "not
   sarcastic" is read before "sarcastic"). One distinct label: that label. Several: the label of
   the answer's first clause (up to the first ``. , ; : ! ?`` or line break) if exactly one label
   is named there ("No, it is not humorous."), otherwise the answer is **ambiguous**. For choices
   the words are option letters in the forms ``(B)``, ``answer B`` / ``option: b``, an upper-case
   ``B`` standing alone (``A`` only before ``) . :`` or at the end, since "A" is also an article),
   and the options' texts.
3. **closest**: nothing named at all: the label or alias most similar to the whole answer by
   ``difflib.SequenceMatcher`` ratio, if that ratio is at least :data:`CLOSEST_MIN_RATIO` and no
   other label ties with it (this reads misspellings such as "sarcastik" or "femail").
4. otherwise the answer is **unparsed**.

An ambiguous or unparsed answer has no label: it is scored as wrong and reported as unparsed,
never replaced by a random guess.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from lamarena.bench.spec import CHOICE_LETTERS

__all__ = [
    "CLOSEST_MIN_RATIO",
    "ParsedAnswer",
    "normalise",
    "parse_choice",
    "parse_label",
    "reference_letter",
]

CLOSEST_MIN_RATIO = 0.8
"""The least ``difflib`` similarity for rule 3 (closest label)."""

Rule = Literal["exact", "word", "closest", "ambiguous", "unparsed"]

_LEAD = re.compile(
    r"^(?:the\s+)?(?:correct\s+)?(?:final\s+)?(?:answer|label|response)(?:\s+is)?\s+"
)
_CLAUSE_END = re.compile(r"[.,;:!?\n]")
_LETTER_EXACT = re.compile(
    r"^\s*(?:(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:\-]?\s*)?"
    r"\(?([a-f])\)?\s*[.):]?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ParsedAnswer:
    """What an answer was read as.

    Attributes:
        label: the label (or option letter); None when the answer is ambiguous or unparsed.
        rule: which rule decided: exact, word, closest, ambiguous or unparsed.
    """

    label: str | None
    rule: Rule

    @property
    def parsed(self) -> bool:
        """Whether the answer was read as a label."""
        return self.label is not None


def normalise(text: str) -> str:
    """Lower case, NFKC, every non-alphanumeric character (``_`` too) a space, spaces collapsed."""
    folded = unicodedata.normalize("NFKC", text).lower().replace("_", " ")
    return " ".join(re.sub(r"[^\w\s]", " ", folded).split())


def _strip_lead(normalised: str) -> str:
    return _LEAD.sub("", normalised, count=1)


def _terms(labels: Sequence[str], aliases: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """(normalised term, label) pairs, longest term first, without empty or repeated terms."""
    key = (tuple(labels), tuple((label, tuple(aliases.get(label, ()))) for label in labels))
    return list(_cached_terms(key))


@functools.lru_cache(maxsize=256)
def _cached_terms(
    key: tuple[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]],
) -> tuple[tuple[str, str], ...]:
    labels, alias_items = key
    aliases = dict(alias_items)
    pairs: dict[str, str] = {}
    for label in labels:
        for term in (label, *aliases.get(label, ())):
            normalised = normalise(term)
            if normalised and normalised not in pairs:
                pairs[normalised] = label
    return tuple(sorted(pairs.items(), key=lambda item: (-len(item[0]), item[0])))


def _named(text: str, terms: list[tuple[str, str]]) -> list[str]:
    """The labels whose terms occur in ``text`` (normalised) as whole words, in order."""
    if not terms or not text:
        return []
    lookup = dict(terms)
    return [lookup[match.group(1)] for match in _pattern(tuple(terms)).finditer(text)]


@functools.lru_cache(maxsize=256)
def _pattern(terms: tuple[tuple[str, str], ...]) -> re.Pattern[str]:
    """One alternation of the terms (longest first), each a whole word."""
    return re.compile(r"(?<!\w)(" + "|".join(re.escape(term) for term, _ in terms) + r")(?!\w)")


def _closest(text: str, terms: list[tuple[str, str]]) -> str | None:
    if not text or not terms:
        return None
    longest = max(len(term) for term, _ in terms)
    if len(text) > 2 * longest + 4:
        return None  # a sentence, not a misspelt label
    best: dict[str, float] = {}
    for term, label in terms:
        ratio = difflib.SequenceMatcher(None, text, term).ratio()
        best[label] = max(best.get(label, 0.0), ratio)
    top = max(best.values())
    winners = [label for label, ratio in best.items() if ratio == top]
    return winners[0] if top >= CLOSEST_MIN_RATIO and len(winners) == 1 else None


def _decide(
    whole: list[str], first_clause: list[str], closest: str | None, *, had_terms: bool
) -> ParsedAnswer:
    distinct = set(whole)
    if len(distinct) == 1:
        return ParsedAnswer(whole[0], "word")
    if len(distinct) > 1:
        if len(set(first_clause)) == 1:
            return ParsedAnswer(first_clause[0], "word")
        return ParsedAnswer(None, "ambiguous")
    if closest is not None and had_terms:
        return ParsedAnswer(closest, "closest")
    return ParsedAnswer(None, "unparsed")


def _first_clause(answer: str) -> str:
    stripped = answer.strip()
    return _CLAUSE_END.split(stripped, maxsplit=1)[0] if stripped else ""


def parse_label(
    answer: str, labels: Sequence[str], aliases: Mapping[str, Sequence[str]] | None = None
) -> ParsedAnswer:
    """Read one of ``labels`` out of ``answer`` by the module's rules.

    Args:
        answer: the model's reply.
        labels: the label set.
        aliases: other words for a label (``{"male": ["man"]}``).

    Returns:
        The label and the rule that decided, or no label (ambiguous or unparsed).
    """
    terms = _terms(labels, aliases or {})
    text = _strip_lead(normalise(answer))
    lookup = dict(terms)
    if text in lookup:
        return ParsedAnswer(lookup[text], "exact")
    whole = _named(text, terms)
    first = _named(_strip_lead(normalise(_first_clause(answer))), terms)
    return _decide(whole, first, _closest(text, terms), had_terms=bool(terms))


def _letters_in(raw: str, valid: str) -> list[str]:
    """Option letters written as letters in ``raw`` (not normalised: case matters), in order."""
    patterns = (
        r"\(([A-F])\)",
        r"(?i:\b(?:answer|option|choice)(?:\s+is)?\s*[:\-]?\s*\(?)([A-Fa-f])\b",
        r"(?<![\w'(])([B-F])(?![\w')])",
        r"(?<![\w'(])(A)(?=\s*[).:]|\s*$)",
    )
    found: list[tuple[int, str]] = []
    for pattern in patterns:
        found.extend((m.start(1), m.group(1).upper()) for m in re.finditer(pattern, raw))
    seen_at: dict[int, str] = {}
    for position, letter in sorted(found):
        seen_at.setdefault(position, letter)
    return [letter for _, letter in sorted(seen_at.items()) if letter in valid]


def _option_terms(options: Sequence[str]) -> list[tuple[str, str]]:
    letters = CHOICE_LETTERS[: len(options)]
    return _terms(letters, {letter: [text] for letter, text in zip(letters, options, strict=True)})


def parse_choice(answer: str, options: Sequence[str]) -> ParsedAnswer:
    """Read an option letter (A, B, ...) out of ``answer`` by the module's rules.

    Args:
        answer: the model's reply.
        options: the options' texts, in letter order.

    Returns:
        The letter and the rule that decided, or no letter (ambiguous or unparsed).
    """
    valid = "".join(CHOICE_LETTERS[: len(options)])
    exact = _LETTER_EXACT.match(answer)
    if exact and exact.group(1).upper() in valid:
        return ParsedAnswer(exact.group(1).upper(), "exact")
    terms = [(term, letter) for term, letter in _option_terms(options) if len(term) > 1]
    text = _strip_lead(normalise(answer))
    lookup = dict(terms)
    if text in lookup:
        return ParsedAnswer(lookup[text], "exact")

    def named(raw: str) -> list[str]:
        by_text = _named(normalise(raw), terms)
        return _letters_in(raw, valid) + by_text

    return _decide(
        named(answer),
        named(_first_clause(answer)),
        _closest(text, terms),
        had_terms=bool(terms),
    )


def reference_letter(value: str, options: Sequence[str]) -> str | None:
    """The letter a dataset's answer column means: a letter form (``B``, ``(B)``) or an option.

    Returns:
        The letter, or None when ``value`` is neither a valid letter nor an option's text.
    """
    valid = "".join(CHOICE_LETTERS[: len(options)])
    match = _LETTER_EXACT.match(value)
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
