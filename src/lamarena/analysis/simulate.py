"""Simulated battles from known strengths, to test that the ratings recover them.

Outcomes follow Bradley-Terry on the Elo scale (Bradley & Terry 1952; Chiang et al. 2024), with
optional style effects of reply length and latency on who wins, and ties drawn so that counting a
tie as half a win stays unbiased (see :func:`simulate_battles`). With ``study=True`` each battle
also gets a short spoken-style query drawn by topic in the proportions the study reports
(knowledge expansion about 50%, advice seeking 17%, chat 16%, task execution 10%, the rest other).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit

from lamarena.analysis.bt_solver import ELO_CENTER, ELO_SCALE
from lamarena.errors import InvalidInputError

__all__ = [
    "DEFAULT_SPREAD_ELO",
    "TOPIC_SHARES",
    "parse_strengths",
    "simulate_battles",
]

DEFAULT_SPREAD_ELO = 400.0
"""Distance in Elo between the strongest and the weakest model of :func:`parse_strengths`."""

TOPIC_SHARES: dict[str, float] = {
    "knowledge_expansion": 0.50,
    "advice_seeking": 0.17,
    "chat": 0.16,
    "task_execution": 0.10,
    "other": 0.07,
}
"""Share of queries per topic (the study's four main topics; the remainder is ``other``)."""

_TEMPLATES: dict[str, tuple[str, ...]] = {
    "knowledge_expansion": (
        "What is the capital of {country}?",
        "How does {thing} work?",
        "Can you explain why {phenomenon}?",
        "Who invented {thing}?",
        "Tell me some facts about {animal}.",
        "What is the difference between {thing} and {other_thing}?",
        "When did {event} happen?",
    ),
    "advice_seeking": (
        "How can I {goal}?",
        "What should I do if {problem}?",
        "Do you have any tips to {goal}?",
        "Is it a good idea to {plan}?",
        "What's the best way to {goal}?",
    ),
    "chat": (
        "Hey, how is your day going?",
        "I just got back from {place}, it was {feeling}.",
        "Do you like {hobby}?",
        "Tell me a joke about {animal}.",
        "I'm feeling {feeling} today.",
    ),
    "task_execution": (
        "Write a short poem about {animal}.",
        "Give me a recipe for {dish}.",
        "Translate '{phrase}' into {language}.",
        "Make a packing list for a trip to {place}.",
        "Summarise the plot of {book} in two sentences.",
    ),
    "other": (
        "Can you hear me?",
        "What language am I speaking?",
        "Repeat after me: {phrase}.",
        "Testing, testing, one two three.",
    ),
}

_FILLERS: dict[str, tuple[str, ...]] = {
    "country": ("Australia", "Canada", "Kenya", "Peru", "Norway", "Thailand", "Portugal"),
    "thing": ("a heat pump", "the internet", "a vaccine", "GPS", "a solar panel", "a microwave"),
    "other_thing": ("a furnace", "radio", "an antibiotic", "a compass", "a battery"),
    "phenomenon": (
        "the sky is blue",
        "leaves change colour in autumn",
        "we have leap years",
        "bread rises",
    ),
    "animal": ("octopuses", "cats", "penguins", "honey bees", "owls", "dolphins"),
    "event": ("the moon landing", "the fall of the Berlin Wall", "the first Olympic Games"),
    "goal": (
        "sleep better",
        "save money on groceries",
        "learn Spanish faster",
        "prepare for a job interview",
        "stop procrastinating",
    ),
    "problem": ("my plant's leaves turn yellow", "my laptop overheats", "I can't fall asleep"),
    "plan": ("run every day", "buy a used car", "learn to code at forty", "adopt a dog"),
    "place": ("Chicago", "the beach", "my grandmother's house", "Tokyo", "a hiking trip"),
    "feeling": ("great", "exhausting", "a bit stressful", "really relaxing"),
    "hobby": ("jazz", "board games", "gardening", "science fiction"),
    "dish": ("vegetable curry", "banana bread", "a quick pasta", "lentil soup"),
    "phrase": ("good morning", "where is the train station", "thank you very much"),
    "language": ("French", "Japanese", "German", "Spanish"),
    "book": ("Pride and Prejudice", "The Hobbit", "Moby Dick"),
}

_SLOT = re.compile(r"{(\w+)}")


def parse_strengths(
    spec: str, *, seed: int | None = 0, spread_elo: float = DEFAULT_SPREAD_ELO
) -> dict[str, float]:
    """Strengths for ``simulate --models``: ``"N"`` or ``"NAME,NAME,..."``.

    The strengths are evenly spaced over ``spread_elo`` Elo points around 1000. Given names get
    them in the order listed, strongest first; ``"N"`` names the models ``model-1`` ... and shuffles
    the strengths among them with ``seed``, so a name does not give away the rank.

    Args:
        spec: a model count (at least 2) or comma-separated distinct names.
        seed: seed of the shuffle for ``"N"`` (unused for names).
        spread_elo: Elo points between the strongest and the weakest model.

    Returns:
        Elo strength by model name, in the listed (or numbered) order.

    Raises:
        InvalidInputError: fewer than two models, an empty or repeated name, or a negative spread.
    """
    text = spec.strip()
    if spread_elo < 0 or not np.isfinite(spread_elo):
        raise InvalidInputError(f"spread_elo must be a finite number >= 0, got {spread_elo}")
    if text.isdigit():
        count = int(text)
        if count < 2:
            raise InvalidInputError(f"--models {spec!r}: a simulation needs at least 2 models")
        width = len(str(count))
        names = [f"model-{i:0{width}d}" for i in range(1, count + 1)]
        levels = _levels(count, spread_elo)
        return dict(zip(names, np.random.default_rng(seed).permutation(levels), strict=True))
    names = [part.strip() for part in text.split(",")]
    if any(not name for name in names):
        raise InvalidInputError(f"--models {spec!r}: empty model name; use NAME,NAME,... or N")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidInputError(f"--models {spec!r}: repeated name(s) {', '.join(repeated)}")
    if len(names) < 2:
        raise InvalidInputError(f"--models {spec!r}: a simulation needs at least 2 models")
    return dict(zip(names, _levels(len(names), spread_elo), strict=True))


def _levels(count: int, spread_elo: float) -> list[float]:
    """``count`` evenly spaced Elo values, highest first, averaging 1000."""
    return [float(v) for v in np.linspace(spread_elo / 2, -spread_elo / 2, count) + ELO_CENTER]


def simulate_battles(
    strengths: Mapping[str, float],
    n_battles: int,
    *,
    seed: int | None = None,
    tie_rate: float = 0.1,
    both_bad_rate: float = 0.0,
    length_effect: float = 0.0,
    latency_effect: float = 0.0,
    study: bool = False,
) -> pd.DataFrame:
    """Draw battles between models of known Elo strengths.

    Each battle pairs two different models uniformly at random (each ordered pair equally
    likely). Every model gets a reply-style profile (typical length 150-1,500 characters, time to
    first token 0.3-3 s, 40-160 characters per second) and each reply varies around it. Model A
    then wins with the Bradley-Terry probability on the Elo scale (Chiang et al. 2024)

        p = 1 / (1 + 10 ** -((r_a - r_b + length_effect * L - latency_effect * T) / 400)),

    with ``L = (chars_a - chars_b) / (chars_a + chars_b)`` and ``T`` the same for ``ttft``, the
    features style control adjusts for. Ties and both-bad votes take probability
    ``(tie_rate + both_bad_rate) * 2 * min(p, 1 - p)`` out of both sides equally, so for evenly
    matched models they occur at exactly the given rates, and the expected score of A (a tie
    counting half) stays ``p``: the half-win Bradley-Terry estimate is unbiased for the strengths.

    Args:
        strengths: Elo strength by model name (at least two models).
        n_battles: number of battles.
        seed: seed of the ``numpy.random.Generator``.
        tie_rate: tie rate between evenly matched models.
        both_bad_rate: both-bad rate between evenly matched models.
        length_effect: Elo points gained per unit of ``L`` (the longer reply's advantage).
        latency_effect: Elo points lost per unit of ``T`` (the slower first token's penalty).
        study: add ``topic`` and ``query_transcript`` columns.

    Returns:
        One row per battle: ``model_a, model_b, winner, chars_a, chars_b, ttft_a_s, ttft_b_s,
        total_a_s, total_b_s`` and, with ``study``, ``topic, query_transcript``.

    Raises:
        InvalidInputError: fewer than two models, a non-finite strength, a negative count or rate,
            or rates adding up to more than 1.
    """
    names = [str(name) for name in strengths]
    values = np.array([float(strengths[name]) for name in strengths])
    if len(names) < 2:
        raise InvalidInputError("strengths: a simulation needs at least 2 models")
    if not np.isfinite(values).all():
        raise InvalidInputError("strengths: every strength must be a finite Elo value")
    if n_battles < 0:
        raise InvalidInputError(f"n_battles must be 0 or more, got {n_battles}")
    if tie_rate < 0 or both_bad_rate < 0 or tie_rate + both_bad_rate > 1:
        raise InvalidInputError(
            f"tie_rate ({tie_rate}) and both_bad_rate ({both_bad_rate}) must be >= 0 and add up "
            "to at most 1"
        )
    rng = np.random.default_rng(seed)
    count = len(names)
    mean_chars = np.exp(rng.uniform(np.log(150.0), np.log(1500.0), count))
    mean_ttft_s = np.exp(rng.uniform(np.log(0.3), np.log(3.0), count))
    chars_per_s = rng.uniform(40.0, 160.0, count)
    a = rng.integers(0, count, n_battles)
    b = (a + rng.integers(1, count, n_battles)) % count
    chars_a, ttft_a, total_a = _replies(rng, a, mean_chars, mean_ttft_s, chars_per_s)
    chars_b, ttft_b, total_b = _replies(rng, b, mean_chars, mean_ttft_s, chars_per_s)
    length = (chars_a - chars_b) / (chars_a + chars_b)
    latency = (ttft_a - ttft_b) / (ttft_a + ttft_b)
    logit = (values[a] - values[b] + length_effect * length - latency_effect * latency) / ELO_SCALE
    prob = expit(logit)
    draw = 2.0 * np.minimum(prob, 1.0 - prob)
    a_wins = prob - 0.5 * (tie_rate + both_bad_rate) * draw
    tie_to = a_wins + tie_rate * draw
    bad_to = tie_to + both_bad_rate * draw
    u = rng.random(n_battles)
    winner = np.select(
        [u < a_wins, u < tie_to, u < bad_to], ["model_a", "tie", "both_bad"], "model_b"
    )
    frame = pd.DataFrame(
        {
            "model_a": pd.Series(np.array(names, dtype=object)[a], dtype=object),
            "model_b": pd.Series(np.array(names, dtype=object)[b], dtype=object),
            "winner": pd.Series(winner, dtype=object),
            "chars_a": chars_a.astype(np.int64),
            "chars_b": chars_b.astype(np.int64),
            "ttft_a_s": ttft_a,
            "ttft_b_s": ttft_b,
            "total_a_s": total_a,
            "total_b_s": total_b,
        }
    )
    if study:
        topics = list(TOPIC_SHARES)
        shares = np.array([TOPIC_SHARES[t] for t in topics])
        drawn = rng.choice(len(topics), size=n_battles, p=shares / shares.sum())
        frame["topic"] = pd.Series([topics[i] for i in drawn], dtype=object)
        frame["query_transcript"] = pd.Series([_query(rng, topics[i]) for i in drawn], dtype=object)
    return frame


def _replies(
    rng: np.random.Generator,
    model: NDArray[np.int64],
    mean_chars: NDArray[np.float64],
    mean_ttft_s: NDArray[np.float64],
    chars_per_s: NDArray[np.float64],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Reply length (chars), time to first token and total time (s, rounded to ms)."""
    chars = np.maximum(1.0, np.round(mean_chars[model] * rng.lognormal(0.0, 0.35, model.size)))
    ttft_s = np.round(mean_ttft_s[model] * rng.lognormal(0.0, 0.3, model.size), 3)
    ttft_s = np.maximum(ttft_s, 0.001)
    total_s = np.round(ttft_s + chars / chars_per_s[model], 3)
    return chars, ttft_s, total_s


def _query(rng: np.random.Generator, topic: str) -> str:
    """One templated query of ``topic`` with its slots filled at random."""
    templates = _TEMPLATES[topic]
    template = templates[int(rng.integers(len(templates)))]

    def fill(match: re.Match[str]) -> str:
        options = _FILLERS[match.group(1)]
        return options[int(rng.integers(len(options)))]

    return _SLOT.sub(fill, template)
