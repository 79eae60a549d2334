"""Reading a label out of a model's free-text answer: deterministic, documented, never a guess.

A model asked "Is the speaker sarcastic? Answer yes or no." may reply "Yes.", "yes, clearly", "It
is not sarcastic" or "I cannot tell". :func:`parse_label` (label sets) and :func:`parse_choice`
(lettered options) turn such replies into a label by these rules, in order; the first that
applies decides:

1. **exact**: the whole answer, normalised (lower case, punctuation and underscores to spaces,
   whitespace collapsed; a leading "answer:" / "the answer is" dropped), is a label or one of its
   aliases (for choices: a letter, ``(B)``, ``Option B``, or an option's text).
2. **word**: the labels and aliases found in the answer as whole words, longest first (so "not
   sarcastic" is read before "sarcastic"). For choices the words are option letters in the forms
   ``(B)``, ``answer B`` / ``option: b``, an upper-case ``B`` standing alone (``A`` only before
   ``) . :`` or at the end, since "A" is also an article), and the options' texts; an explicit
   "the answer is X" / "answer: X" / "it is X" / "it's option X" naming one letter decides first.

   **Negation**: a term (or letter) is *negated* when a negator (:data:`NEGATORS`: not, no,
   never, neither, nor, ``n't`` as in isn't / wasn't / don't, ...) is among the
   :data:`NEGATION_WINDOW` words before it in the same clause (a clause ends at ``. , ; : ! ?``
   or a line break, or at but / however / though / although / yet / rather / instead), or when
   the term is followed by ``?``, ``:`` or a dash and then "no" / "not" / "nope" ("Sarcastic?
   No."). "no doubt", "no question", "no matter" and "not only" are not negators. Negated terms
   are dropped, and the rest decide: one distinct label: that label. Several: the label of the
   answer's first clause if exactly one label is named there ("No, it is not humorous."),
   otherwise the answer is **ambiguous**. Only negated terms: for a yes/no label set a negated
   "yes" (or one of its aliases) reads as "no" ("It isn't sarcastic."); otherwise the answer is
   **unparsed** ("Not angry" names no label), never a guess.
3. **closest**: nothing named at all (not even negated): the label or alias most similar to the
   whole answer by ``difflib.SequenceMatcher`` ratio, if that ratio is at least
   :data:`CLOSEST_MIN_RATIO` and no other label ties with it (this reads misspellings such as
   "sarcastik" or "femail").
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

from lamarena.bench.data.answers import LETTER_EXACT, normalise
from lamarena.bench.data.spec import CHOICE_LETTERS

__all__ = [
    "CLOSEST_MIN_RATIO",
    "NEGATION_WINDOW",
    "NEGATORS",
    "ParsedAnswer",
    "parse_choice",
    "parse_label",
]

CLOSEST_MIN_RATIO = 0.8
"""The least ``difflib`` similarity for rule 3 (closest label)."""

NEGATION_WINDOW = 4
"""How many words before a term a negator may stand and still negate it."""

NEGATORS = frozenset(
    {
        "not", "no", "never", "neither", "nor", "nope", "t",  # "t": the n't of isn't, don't
        "isnt", "wasnt", "arent", "werent", "dont", "doesnt", "didnt", "cannot", "cant",
        "wont", "hasnt", "havent", "hadnt", "shouldnt", "wouldnt", "couldnt", "aint",
    }
)  # fmt: skip
"""Words that negate a following term (text lower-cased, apostrophes split words)."""

_NOT_NEGATING_BEFORE = frozenset({"doubt", "question", "matter", "only", "wonder"})
_CONTRAST = frozenset({"but", "however", "though", "although", "yet", "rather", "instead"})
_WORD = re.compile(r"[^\W_]+")
_TRAILING_NO = re.compile(r"^\s*[?:\-\u2013\u2014]\s*(?:no|not|nope)(?![^\W_])", re.IGNORECASE)
_EXPLICIT_LETTER = re.compile(
    r"(?i:\banswer(?:\s+(?:is|would\s+be|should\s+be|must\s+be|will\s+be))?\s*[:=\-]?\s*"
    r"|\b(?:it|this|that)(?:\s+is|\s*['\u2019]s)\s+)"
    r"(?i:(?:option|choice)\s+)?"
    r"(?:\(([A-Fa-f])\)|([B-F])(?![\w'\u2019])|([A-Fa-f])(?=\s*(?:[).:;,!?]|$)))"
)

Rule = Literal["exact", "word", "closest", "ambiguous", "unparsed", "constrained"]

_LEAD = re.compile(
    r"^(?:the\s+)?(?:correct\s+)?(?:final\s+)?(?:answer|label|response)(?:\s+is)?\s+"
)
_CLAUSE_END = re.compile(r"[.,;:!?\n]")


@dataclass(frozen=True)
class ParsedAnswer:
    """What an answer was read as.

    Attributes:
        label: the label (or option letter); None when the answer is ambiguous or unparsed.
        rule: which rule decided: exact, word, closest, ambiguous or unparsed (``constrained``:
            no text was parsed; the model scored the candidates).
    """

    label: str | None
    rule: Rule

    @property
    def parsed(self) -> bool:
        """Whether the answer was read as a label."""
        return self.label is not None


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


@dataclass(frozen=True)
class _Hit:
    """A label (or letter) named in an answer, where (``start``/``end`` in the text searched)."""

    label: str
    start: int
    end: int
    negated: bool


def _negated(text: str, start: int, end: int) -> bool:
    """Whether the term at ``text[start:end]`` is negated (see the module docstring)."""
    before = text[:start]
    cut = max((m.end() for m in _CLAUSE_END.finditer(before)), default=0)
    words = [word.lower() for word in _WORD.findall(before[cut:])]
    for index in range(len(words) - 1, -1, -1):
        if words[index] in _CONTRAST:
            words = words[index + 1 :]
            break
    following = [*words[1:], ""] if words else []
    window = list(zip(words, following, strict=True))[-NEGATION_WINDOW:]
    if any(word in NEGATORS and after not in _NOT_NEGATING_BEFORE for word, after in window):
        return True
    return bool(_TRAILING_NO.match(text[end:]))


def _named(text: str, terms: list[tuple[str, str]]) -> list[_Hit]:
    """The labels whose terms occur in ``text`` as whole words (after normalising), in order."""
    if not terms or not text:
        return []
    spans = [match.span() for match in _WORD.finditer(text)]
    joined = " ".join(text[start:end].lower() for start, end in spans)
    lookup = dict(terms)
    hits = []
    for match in _pattern(tuple(terms)).finditer(joined):
        first = joined.count(" ", 0, match.start())
        last = first + match.group(1).count(" ")
        start, end = spans[first][0], spans[last][1]
        hits.append(_Hit(lookup[match.group(1)], start, end, _negated(text, start, end)))
    return hits


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
    hits: list[_Hit],
    first_clause_end: int,
    closest: str | None,
    *,
    had_terms: bool,
    complement: Mapping[str, str] | None = None,
) -> ParsedAnswer:
    kept = [hit for hit in hits if not hit.negated]
    distinct = {hit.label for hit in kept}
    if len(distinct) == 1:
        return ParsedAnswer(kept[0].label, "word")
    if len(distinct) > 1:
        first = {hit.label for hit in kept if hit.end <= first_clause_end}
        if len(first) == 1:
            return ParsedAnswer(first.pop(), "word")
        return ParsedAnswer(None, "ambiguous")
    if hits:  # every term named is negated
        negated = {hit.label for hit in hits}
        if complement and len(negated) == 1 and (other := complement.get(negated.pop())):
            return ParsedAnswer(other, "word")
        return ParsedAnswer(None, "unparsed")
    if closest is not None and had_terms:
        return ParsedAnswer(closest, "closest")
    return ParsedAnswer(None, "unparsed")


def _first_clause_end(text: str) -> int:
    """Where the first clause of ``text`` ends (leading whitespace skipped), as an index."""
    lead = len(text) - len(text.lstrip())
    match = _CLAUSE_END.search(text, lead)
    return match.start() if match else len(text)


def _complement(labels: Sequence[str]) -> dict[str, str]:
    """For a yes/no label set, what a negated "yes" means: "no". Empty for any other set."""
    if len(labels) == 2 and {label.lower() for label in labels} == {"yes", "no"}:
        by_lower = {label.lower(): label for label in labels}
        return {by_lower["yes"]: by_lower["no"]}
    return {}


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
    base = unicodedata.normalize("NFKC", answer).replace("_", " ")
    return _decide(
        _named(base, terms),
        _first_clause_end(base),
        _closest(text, terms),
        had_terms=bool(terms),
        complement=_complement(labels),
    )


def _letters_in(raw: str, valid: str) -> list[_Hit]:
    """Option letters written as letters in ``raw`` (case matters), in order."""
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
    return [
        _Hit(letter, position, position + 1, _negated(raw, position, position + 1))
        for position, letter in sorted(seen_at.items())
        if letter in valid
    ]


def _explicit_letter(raw: str, valid: str) -> str | None:
    """The one letter an explicit "the answer is X" / "it is X" form names, if exactly one."""
    letters = set()
    for match in _EXPLICIT_LETTER.finditer(raw):
        group = next(index for index in (1, 2, 3) if match.group(index) is not None)
        letter = match.group(group).upper()
        if letter in valid and not _negated(raw, match.start(group), match.end(group)):
            letters.add(letter)
    return letters.pop() if len(letters) == 1 else None


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
    exact = LETTER_EXACT.match(answer)
    if exact and exact.group(1).upper() in valid:
        return ParsedAnswer(exact.group(1).upper(), "exact")
    terms = [(term, letter) for term, letter in _option_terms(options) if len(term) > 1]
    text = _strip_lead(normalise(answer))
    lookup = dict(terms)
    if text in lookup:
        return ParsedAnswer(lookup[text], "exact")

    base = unicodedata.normalize("NFKC", answer)
    explicit = _explicit_letter(base, valid)
    if explicit is not None:
        return ParsedAnswer(explicit, "word")
    hits = sorted(_letters_in(base, valid) + _named(base, terms), key=lambda hit: hit.start)
    return _decide(hits, _first_clause_end(base), _closest(text, terms), had_terms=bool(terms))
