"""What the simulated participants say: spoken-style queries by topic and reasons by theme.

Queries are drawn by topic in the proportions the study reports (knowledge expansion about 50%,
advice seeking 17%, chat 16%, task execution 10%, the rest other), each topic with its own
sub-topics; reasons for a vote by theme in the study's proportions (level of detail 31%,
helpfulness 24%, appropriateness of language 12%, accuracy 11%, human-likeness 11%, the rest
other). :func:`lamarena.simulation.battles.simulate_battles` uses both with ``study=True``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from lamarena.errors import InvalidInputError

__all__ = ["FEEDBACK_SHARES", "TOPIC_SHARES", "draw_feedback", "draw_queries", "simulate_queries"]

TOPIC_SHARES: dict[str, float] = {
    "knowledge_expansion": 0.50,
    "advice_seeking": 0.17,
    "chat": 0.16,
    "task_execution": 0.10,
    "other": 0.07,
}
"""Share of queries per topic (the study's four main topics; the remainder is ``other``)."""

_QUERIES: dict[str, tuple[tuple[str, ...], dict[str, tuple[str, ...]]]] = {
    # topic: (templates with one ``{x}`` slot, {sub-topic: what fills the slot})
    "knowledge_expansion": (
        (
            "What are some interesting facts about {x}?",
            "Can you tell me about {x}?",
            "Explain {x} to me.",
            "I've always wondered about {x}, what is it?",
            "What should everyone know about {x}?",
            "Give me a short history of {x}.",
            "How does {x} work exactly?",
            "What is the science behind {x}?",
        ),
        {
            "science": (
                "black holes",
                "photosynthesis",
                "quantum computing",
                "the immune system",
                "DNA",
                "gravity",
                "volcanoes",
                "the northern lights",
                "solar panels",
                "vaccines",
            ),
            "history": (
                "the French Revolution",
                "the Roman Empire",
                "the moon landing",
                "the printing press",
                "the Berlin Wall",
                "ancient Egypt",
                "the Silk Road",
                "the Renaissance",
            ),
            "geography": (
                "the Amazon rainforest",
                "Mount Everest",
                "Iceland",
                "the Sahara desert",
                "Tokyo",
                "the Great Barrier Reef",
                "the Nile",
                "Patagonia",
            ),
            "nature": (
                "octopuses",
                "honey bees",
                "penguins",
                "sea turtles",
                "wolves",
                "elephants",
                "owls",
                "dolphins",
            ),
        },
    ),
    "advice_seeking": (
        (
            "What should I do about {x}?",
            "Do you have any advice for {x}?",
            "How can I deal with {x}?",
            "I need some tips on {x}.",
            "What would you recommend for {x}?",
            "Is there a good way to handle {x}?",
        ),
        {
            "health": (
                "my trouble sleeping",
                "losing weight",
                "stress at work",
                "my back pain",
                "eating healthier",
                "starting to run",
            ),
            "money": (
                "my credit card debt",
                "saving for a house",
                "sticking to a budget",
                "buying a used car",
                "investing my savings",
            ),
            "career": (
                "my job interview tomorrow",
                "asking my boss for a raise",
                "switching careers",
                "a difficult coworker",
                "my first day at a new job",
            ),
            "relationships": (
                "an argument with my best friend",
                "meeting my partner's parents",
                "a long distance relationship",
                "my roommate who never cleans",
            ),
        },
    ),
    "chat": (
        (
            "Hey, {x}.",
            "Honestly, {x} today.",
            "You know what, {x}.",
            "Hi there! So, {x}.",
            "Guess what, {x}!",
            "Just chatting, {x}.",
        ),
        {
            "feelings": (
                "I'm feeling kind of lonely",
                "I feel really happy",
                "I'm so tired",
                "I'm a bit bored",
                "I feel great",
            ),
            "small_talk": (
                "how has your day been",
                "do you like jazz",
                "what's your favourite movie",
                "do you ever get bored",
                "what do you do for fun",
            ),
            "sharing": (
                "I just got back from the beach",
                "my dog did the funniest thing",
                "I finally finished my book",
                "I saw a great concert",
                "I baked cookies",
            ),
        },
    ),
    "task_execution": (
        (
            "Please write {x}.",
            "Can you write {x} for me?",
            "I need you to draft {x}.",
            "Generate {x}.",
            "Help me compose {x}.",
            "Create {x}, please.",
        ),
        {
            "creative_writing": (
                "a short poem about autumn",
                "a haiku about the ocean",
                "a bedtime story about a dragon",
                "song lyrics about summer",
            ),
            "messages": (
                "an email to my landlord about the broken heater",
                "a thank you note to my teacher",
                "a cover letter for a barista job",
                "a text message inviting my friends to dinner",
            ),
            "lists": (
                "a packing list for a camping trip",
                "a grocery list for the week",
                "a workout plan for beginners",
                "a study schedule for my exams",
            ),
            "translation": (
                "a French translation of my email",
                "a Spanish translation of this menu",
                "a German version of my cover letter",
            ),
        },
    ),
    "other": (
        ("{x}",),
        {
            "microphone_check": (
                "Can you hear me?",
                "Testing the microphone, one two three.",
                "Is this microphone on?",
                "Hello, can you hear my voice?",
                "Is the microphone working?",
                "Mic check, is the audio coming through?",
            ),
            "recording_trouble": (
                "Sorry, I pressed the record button by accident.",
                "Let me try recording that again.",
                "Oops, the recording cut off.",
                "Wait, is this recording already?",
                "Hold on, I need to restart the recording.",
            ),
        },
    ),
}
"""Spoken-style queries per topic: each topic frames its requests its own way, and each of its
sub-topics fills the frame from its own subject matter, so the planted clusters have two levels."""

_OPENINGS: tuple[str, ...] = ("", "", "", "Um, ", "Okay so ", "So, ", "Uh, ")
"""Spoken openings put before some queries (not before the ``other`` fragments)."""

FEEDBACK_SHARES: dict[str, float] = {
    "level_of_detail": 0.31,
    "helpfulness": 0.24,
    "language": 0.12,
    "accuracy": 0.11,
    "human_likeness": 0.11,
    "other": 0.11,
}
"""Share of vote reasons per theme (the study's 100 coded reasons; the rest is ``other``)."""

_FEEDBACK: dict[str, tuple[str, ...]] = {
    # ``{side}`` is the winning reply: "Model A" or "Model B".
    "level_of_detail": (
        "{side} explained it in much more detail.",
        "It was more thorough and detailed.",
        "The other answer was too short and vague.",
        "It went into depth with specific details and examples.",
        "A more detailed and comprehensive explanation.",
        "It covered every part of the question in detail.",
        "Much more in-depth, the other one lacked detail.",
    ),
    "helpfulness": (
        "{side} was more helpful for what I needed.",
        "It was more helpful and actually solved my problem.",
        "The other one was not helpful at all.",
        "More helpful, practical suggestions I can use.",
        "It helped me more with what I asked for.",
        "Simply the more helpful and useful reply.",
        "Genuinely helpful advice, the other was useless.",
    ),
    "language": (
        "{side} used simpler, clearer language.",
        "The other one used too much jargon and complicated words.",
        "The wording was more polite and the language more appropriate.",
        "Plain, easy language that was simple to understand.",
        "The tone and choice of words suited me better.",
        "Its language was appropriate, the other was rude.",
        "Clear wording without confusing technical terms.",
    ),
    "accuracy": (
        "{side} got the facts right.",
        "The other answer had a factual error.",
        "It was correct, the other one was factually wrong.",
        "More accurate information, no mistakes.",
        "The other one made up facts that are false.",
        "Factually accurate and correct.",
        "The other answer contained incorrect facts.",
    ),
    "human_likeness": (
        "{side} sounded more natural and human.",
        "It felt like talking to a real person.",
        "The other one sounded robotic, like a machine.",
        "More human, natural and conversational.",
        "It sounded like a human friend would talk.",
        "Warm and natural, not robotic.",
        "A more humanlike, natural way of speaking.",
    ),
    "other": (
        "No particular reason.",
        "Just a gut feeling.",
        "Hard to say, I just liked it more.",
        "I'm not sure why.",
    ),
}
"""Reasons a voter gives for a decisive vote, per theme."""

_TIE_FEEDBACK: tuple[str, ...] = (
    "Both answers were about the same.",
    "They were equally good.",
    "Neither answered my question.",
    "Both were wrong.",
)
"""Reasons given with a tie or a both-bad vote (theme ``other``)."""


def simulate_queries(n_queries: int, *, seed: int | None = None) -> pd.DataFrame:
    """Draw spoken-style queries with their planted topic and sub-topic.

    Topics follow :data:`TOPIC_SHARES`; each topic frames its requests its own way and each of its
    sub-topics (equally likely) fills the frame from its own subject matter, so topic discovery
    can be checked against a known two-level tree.

    Args:
        n_queries: how many queries.
        seed: seed of the ``numpy.random.Generator``.

    Returns:
        One row per query: ``topic, subtopic, query_transcript``.

    Raises:
        InvalidInputError: a negative count.
    """
    if n_queries < 0:
        raise InvalidInputError(f"n_queries must be 0 or more, got {n_queries}")
    return draw_queries(np.random.default_rng(seed), n_queries)


def draw_queries(rng: np.random.Generator, count: int) -> pd.DataFrame:
    """``count`` queries: topic by :data:`TOPIC_SHARES`, then sub-topic, frame and filler."""
    topics = list(TOPIC_SHARES)
    shares = np.array([TOPIC_SHARES[t] for t in topics])
    drawn = rng.choice(len(topics), size=count, p=shares / shares.sum())
    rows = [_query(rng, topics[i]) for i in drawn]
    return pd.DataFrame(
        {
            "topic": pd.Series([topics[i] for i in drawn], dtype=object),
            "subtopic": pd.Series([sub for sub, _ in rows], dtype=object),
            "query_transcript": pd.Series([text for _, text in rows], dtype=object),
        }
    )


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _query(rng: np.random.Generator, topic: str) -> tuple[str, str]:
    """One query of ``topic``: its sub-topic and its text (a frame filled, maybe an opening)."""
    templates, subtopics = _QUERIES[topic]
    subtopic = _pick(rng, list(subtopics))
    text = _pick(rng, templates).replace("{x}", _pick(rng, subtopics[subtopic]))
    opening = _pick(rng, _OPENINGS)
    if opening and topic != "other":
        text = opening + text[0].lower() + text[1:]
    return subtopic, text


def draw_feedback(
    rng: np.random.Generator, winner: NDArray[np.str_], rate: float
) -> tuple[pd.Series, pd.Series]:
    """A reason (theme and text) for a share ``rate`` of the votes; None for the others.

    Decisive votes get a theme by :data:`FEEDBACK_SHARES` and a reason naming the winning side;
    ties and both-bad votes get a reason of theme ``other``.
    """
    themes = list(FEEDBACK_SHARES)
    shares = np.array([FEEDBACK_SHARES[t] for t in themes])
    given = rng.random(winner.size) < rate
    drawn = rng.choice(len(themes), size=winner.size, p=shares / shares.sum())
    theme: list[str | None] = []
    text: list[str | None] = []
    for gives, choice, outcome in zip(given, drawn, winner, strict=True):
        if not gives:
            theme.append(None)
            text.append(None)
        elif outcome in ("model_a", "model_b"):
            side = "Model A" if outcome == "model_a" else "Model B"
            theme.append(themes[choice])
            text.append(_pick(rng, _FEEDBACK[themes[choice]]).replace("{side}", side))
        else:
            theme.append("other")
            text.append(_pick(rng, _TIE_FEEDBACK))
    return pd.Series(theme, dtype=object), pd.Series(text, dtype=object)
