"""Request and response bodies of the arena's HTTP API (DESIGN.md "Arena HTTP API")."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from lamarena.store import Winner

__all__ = [
    "MAX_FEEDBACK_CHARS",
    "BattleCreated",
    "ErrorOut",
    "FeedbackTranscript",
    "Health",
    "LatencyOut",
    "Reveal",
    "VoteIn",
]

MAX_FEEDBACK_CHARS = 5_000


class BattleCreated(BaseModel):
    """``POST /api/battles``: the new battle."""

    battle_id: str


class VoteIn(BaseModel):
    """``POST /api/battles/{id}/vote``: the voter's judgement."""

    model_config = ConfigDict(extra="forbid")

    winner: Winner
    feedback_text: str | None = Field(default=None, max_length=MAX_FEEDBACK_CHARS)


class LatencyOut(BaseModel):
    """Server-side timings and length of one reply (a spoken one's audio timings too)."""

    ttft_s: float | None
    total_s: float | None
    chars: int | None
    ttfab_s: float | None = None
    audio_s: float | None = None


class Reveal(BaseModel):
    """The answer to a vote: who was behind A and B, and how fast each was."""

    model_a: str
    model_b: str
    latency_a: LatencyOut
    latency_b: LatencyOut
    votes_cast: int = Field(description="Votes this session has cast, this one included.")
    completion_code: str | None = Field(
        default=None, description="The study's completion code once enough votes are cast."
    )
    counted: bool = Field(
        default=True, description="Whether this vote enters the leaderboard (false if flagged)."
    )
    flag: str | None = Field(
        default=None, description="Why it does not count: self_identified, duplicate_audio."
    )
    flags: list[str] = Field(default_factory=list, description="Every flag of the battle.")
    equal_pace: bool = Field(
        default=False, description="Whether both replies were shown at one pace."
    )
    turns: int = Field(default=1, description="Turns the person spoke before voting.")


class TurnCreated(BaseModel):
    """``POST /api/battles/{id}/turns``: the number of the turn whose replies have started."""

    turn: int


class FeedbackTranscript(BaseModel):
    """``POST /api/battles/{id}/feedback-audio``: a spoken reason as text, for the vote."""

    text: str


class Health(BaseModel):
    """``GET /healthz``."""

    status: str


class ErrorOut(BaseModel):
    """The body of every error answer."""

    error: str
    message: str
