"""Simulated battles from known strengths, to test that the ratings recover them.

Outcomes follow Bradley-Terry on the Elo scale (Bradley & Terry 1952; Chiang et al. 2024), with
optional style effects of reply length and latency on who wins, and ties drawn so that counting a
tie as half a win stays unbiased (see :func:`simulate_battles`). With ``study=True`` each battle
also gets a short spoken-style query drawn by topic in the proportions the study reports
(knowledge expansion about 50%, advice seeking 17%, chat 16%, task execution 10%, the rest other),
each topic with its own sub-topics; with ``feedback=True`` some votes come with a typed reason,
by theme in the study's proportions (level of detail 31%, helpfulness 24%, appropriateness of
language 12%, accuracy 11%, human-likeness 11%, the rest other).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.special import expit

from lamarena.analysis.ranking.bt_solver import ELO_CENTER, ELO_SCALE
from lamarena.analysis.ranking.pair_design import DESIGNS, Design, Pair
from lamarena.errors import InvalidInputError
from lamarena.simulation.adaptive import draw_adaptively
from lamarena.simulation.queries import draw_feedback, draw_queries

__all__ = ["DEFAULT_REFRESH_EVERY", "DEFAULT_SPREAD_ELO", "parse_strengths", "simulate_battles"]

DEFAULT_REFRESH_EVERY = 50
"""Battles between two refreshes of an adaptive design in :func:`simulate_battles`."""

DEFAULT_SPREAD_ELO = 400.0
"""Distance in Elo between the strongest and the weakest model of :func:`parse_strengths`."""


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
    feedback: bool = False,
    feedback_rate: float = 0.4,
    votes_per_participant: int | None = None,
    participant_sd: float = 0.0,
    sampling: Design = "uniform",
    refresh_every: int = DEFAULT_REFRESH_EVERY,
) -> pd.DataFrame:
    """Draw battles between models of known Elo strengths.

    With ``sampling="uniform"`` each battle pairs two different models uniformly at random
    (each ordered pair equally likely). ``balanced`` and ``active`` draw each pair from the
    design of :mod:`lamarena.analysis.ranking.pair_design` fitted to the votes drawn so far,
    refreshed
    every ``refresh_every`` battles as a server would, then the sides at random; each battle
    records its pair's probability (``sampling_probability``), which inverse-probability
    weighting needs. Every model gets a reply-style profile (typical length 150-1,500
    characters, time to first token 0.3-3 s, 40-160 characters per second) and each reply
    varies around it. Model A then wins with the Bradley-Terry probability on the Elo scale
    (Chiang et al. 2024)

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
        study: add ``topic`` and ``query_transcript`` columns (see ``queries.simulate_queries``).
        feedback: add ``feedback_theme`` and ``feedback_text`` columns: a share ``feedback_rate``
            of the votes comes with a reason, by theme in ``queries.FEEDBACK_SHARES`` (ties and
            both-bad votes with a reason of theme ``other``); None for the rest.
        feedback_rate: share of votes with a reason.
        votes_per_participant: simulate participants as the study ran them: each casts this
            many votes, all on one pair (pairs dealt in turn, so balanced), the sides drawn at
            random per battle, with a preference of their own: ``N(0, participant_sd)`` on the
            log-odds of the pair's first model (by name). Adds ``participant_id`` and
            ``session_id`` (one session each). None: every battle an independent draw of a
            pair and a voter.
        participant_sd: standard deviation of that preference (log-odds; the study's design
            review used 0.8).
        sampling: ``uniform``, ``balanced`` or ``active`` (see above). With participants, the
            design draws each participant's pair (``uniform`` keeps dealing them in turn).
        refresh_every: battles between two refreshes of an adaptive design (at least 1).

    Returns:
        One row per battle: ``model_a, model_b, winner, chars_a, chars_b, ttft_a_s, ttft_b_s,
        total_a_s, total_b_s, sampling_probability``; with ``study``, ``topic,
        query_transcript``; with ``feedback``, ``feedback_theme, feedback_text``. The feedback is
        drawn last, so adding it leaves the other columns as they are.

    Raises:
        InvalidInputError: fewer than two models, a non-finite strength, a negative count or rate,
            rates adding up to more than 1, a feedback rate outside [0, 1], an unknown sampling
            or ``refresh_every`` below 1.
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
    if not 0.0 <= feedback_rate <= 1.0:
        raise InvalidInputError(f"feedback_rate must be between 0 and 1, got {feedback_rate}")
    if votes_per_participant is not None and votes_per_participant < 1:
        raise InvalidInputError(
            f"votes_per_participant must be at least 1, got {votes_per_participant}"
        )
    if participant_sd < 0 or not np.isfinite(participant_sd):
        raise InvalidInputError(f"participant_sd must be 0 or more, got {participant_sd}")
    if sampling not in DESIGNS:
        raise InvalidInputError(f"unknown sampling {sampling!r}; use {', '.join(DESIGNS)}")
    if refresh_every < 1:
        raise InvalidInputError(f"refresh_every must be at least 1, got {refresh_every}")
    rng = np.random.default_rng(seed)
    count = len(names)
    mean_chars = np.exp(rng.uniform(np.log(150.0), np.log(1500.0), count))
    mean_ttft_s = np.exp(rng.uniform(np.log(0.3), np.log(3.0), count))
    chars_per_s = rng.uniform(40.0, 160.0, count)
    vote = _Voting(
        values, mean_chars, mean_ttft_s, chars_per_s, tie_rate, both_bad_rate, length_effect,
        latency_effect,
    )  # fmt: skip
    person: NDArray[np.int64] | None = None
    if votes_per_participant is not None:
        person = np.arange(n_battles) // votes_per_participant
    participants = int(person.max(initial=-1)) + 1 if person is not None else 0
    chance = np.full(n_battles, 2.0 / (count * (count - 1)))
    if sampling == "uniform":
        if person is None:
            a = rng.integers(0, count, n_battles)
            b = (a + rng.integers(1, count, n_battles)) % count
            taste = np.zeros(n_battles)
        else:  # pairs dealt in turn
            first, second = np.triu_indices(count, 1)
            pair = person % first.size
            swap = rng.random(n_battles) < 0.5
            a = np.where(swap, second[pair], first[pair])
            b = np.where(swap, first[pair], second[pair])
            preference = rng.normal(0.0, participant_sd, participants)
            taste = np.where(swap, -1.0, 1.0) * preference[person]  # towards the pair's first
        drawn = vote(rng, a, b, taste)
    else:
        preference = rng.normal(0.0, participant_sd, participants)
        a, b, drawn, chance = _adaptive_battles(
            rng,
            names,
            vote,
            n_battles,
            sampling=sampling,
            refresh_every=refresh_every,
            person=person,
            preference=preference,
        )
    frame = pd.DataFrame(
        {
            "model_a": pd.Series(np.array(names, dtype=object)[a], dtype=object),
            "model_b": pd.Series(np.array(names, dtype=object)[b], dtype=object),
            "winner": pd.Series(drawn.winner, dtype=object),
            "chars_a": drawn.chars_a.astype(np.int64),
            "chars_b": drawn.chars_b.astype(np.int64),
            "ttft_a_s": drawn.ttft_a,
            "ttft_b_s": drawn.ttft_b,
            "total_a_s": drawn.total_a,
            "total_b_s": drawn.total_b,
            "sampling_probability": chance,
        }
    )
    if person is not None:
        ids = pd.Series([f"participant-{index:05d}" for index in person], dtype=object)
        frame["participant_id"] = ids
        frame["session_id"] = "session-of-" + ids
    if study:
        queries = draw_queries(rng, n_battles)
        frame["topic"] = queries["topic"]
        frame["query_transcript"] = queries["query_transcript"]
    if feedback:
        theme, text = draw_feedback(rng, drawn.winner, feedback_rate)
        frame["feedback_theme"] = theme
        frame["feedback_text"] = text
    return frame


@dataclass(frozen=True)
class _Drawn:
    """The replies and the vote of some battles."""

    chars_a: NDArray[np.float64]
    chars_b: NDArray[np.float64]
    ttft_a: NDArray[np.float64]
    ttft_b: NDArray[np.float64]
    total_a: NDArray[np.float64]
    total_b: NDArray[np.float64]
    winner: NDArray[np.str_]

    @staticmethod
    def join(parts: Sequence[_Drawn]) -> _Drawn:
        """The battles of ``parts``, in order."""
        return _Drawn(
            *(np.concatenate([getattr(part, f.name) for part in parts]) for f in fields(_Drawn))
        )


@dataclass(frozen=True)
class _Voting:
    """How simulated voters decide: strengths, reply-style profiles and the outcome rates."""

    values: NDArray[np.float64]
    mean_chars: NDArray[np.float64]
    mean_ttft_s: NDArray[np.float64]
    chars_per_s: NDArray[np.float64]
    tie_rate: float
    both_bad_rate: float
    length_effect: float
    latency_effect: float

    def __call__(
        self,
        rng: np.random.Generator,
        a: NDArray[np.int64],
        b: NDArray[np.int64],
        taste: NDArray[np.float64],
    ) -> _Drawn:
        """Replies of ``a`` and ``b`` and the vote (see :func:`simulate_battles`)."""
        chars_a, ttft_a, total_a = _replies(
            rng, a, self.mean_chars, self.mean_ttft_s, self.chars_per_s
        )
        chars_b, ttft_b, total_b = _replies(
            rng, b, self.mean_chars, self.mean_ttft_s, self.chars_per_s
        )
        length = (chars_a - chars_b) / (chars_a + chars_b)
        latency = (ttft_a - ttft_b) / (ttft_a + ttft_b)
        logit = (
            self.values[a]
            - self.values[b]
            + self.length_effect * length
            - self.latency_effect * latency
        ) / ELO_SCALE + taste
        prob = expit(logit)
        draw = 2.0 * np.minimum(prob, 1.0 - prob)
        a_wins = prob - 0.5 * (self.tie_rate + self.both_bad_rate) * draw
        tie_to = a_wins + self.tie_rate * draw
        bad_to = tie_to + self.both_bad_rate * draw
        u = rng.random(a.size)
        winner = np.select(
            [u < a_wins, u < tie_to, u < bad_to], ["model_a", "tie", "both_bad"], "model_b"
        )
        return _Drawn(chars_a, chars_b, ttft_a, ttft_b, total_a, total_b, winner)


def _adaptive_battles(
    rng: np.random.Generator,
    names: Sequence[str],
    vote: _Voting,
    n_battles: int,
    *,
    sampling: Design,
    refresh_every: int,
    person: NDArray[np.int64] | None,
    preference: NDArray[np.float64],
) -> tuple[NDArray[np.int64], NDArray[np.int64], _Drawn, NDArray[np.float64]]:
    """Battles whose pairs follow a design fitted to the votes so far (see :mod:`.adaptive`).

    Without participants each battle is one draw; with them each participant's pair is one
    draw, refreshed every block of whole participants holding about ``refresh_every`` votes.
    Returns ``a, b``, the replies and votes, and each battle's pair probability.
    """
    unit = np.arange(n_battles) if person is None else person
    n_units = int(unit.max(initial=-1)) + 1
    per_unit = 1 if person is None else max(1, int(np.bincount(unit).max(initial=1)))
    position = {name: i for i, name in enumerate(names)}
    parts: list[tuple[NDArray[np.int64], NDArray[np.int64], _Drawn]] = []

    def play(start: int, pairs: Sequence[Pair]) -> NDArray[np.float64]:
        rows = np.flatnonzero((unit >= start) & (unit < start + len(pairs)))
        first = np.array([position[pair[0]] for pair in pairs], dtype=np.int64)[unit[rows] - start]
        second = np.array([position[pair[1]] for pair in pairs], dtype=np.int64)[unit[rows] - start]
        swap = rng.random(rows.size) < 0.5
        a = np.where(swap, second, first)
        b = np.where(swap, first, second)
        taste = np.zeros(rows.size)
        if person is not None:
            taste = np.where(swap, -1.0, 1.0) * preference[person[rows]]
        block = vote(rng, a, b, taste)
        parts.append((a, b, block))
        a_score = np.where(
            block.winner == "model_a", 1.0, np.where(block.winner == "model_b", 0.0, 0.5)
        )
        first_score = np.where(swap, 1.0 - a_score, a_score)
        scores = np.bincount(unit[rows] - start, weights=first_score, minlength=len(pairs))
        return scores.astype(np.float64)

    _, chance = draw_adaptively(
        rng,
        names,
        n_units,
        play,
        sampling=sampling,
        refresh_every=max(1, refresh_every // per_unit),
        unit_battles=np.bincount(unit, minlength=n_units).astype(np.float64),
    )
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, vote(rng, empty, empty, np.zeros(0)), np.zeros(0)
    return (
        np.concatenate([a for a, _, _ in parts]),
        np.concatenate([b for _, b, _ in parts]),
        _Drawn.join([block for _, _, block in parts]),
        chance[unit],
    )


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
