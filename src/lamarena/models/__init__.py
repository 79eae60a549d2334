"""Adapters for Large Audio Models: one async streaming interface for every kind.

Imports only :mod:`lamarena.audio`, :mod:`lamarena.errors` and third-party SDKs, each lazily, so
the package loads without any optional extra installed.
"""

from lamarena.models.base import (
    AudioModel,
    EarlierTurn,
    ModelTimeouts,
    Reply,
    TextModel,
    Transcriber,
    TranscribingModel,
)
from lamarena.models.speech import (
    SpeakingModel,
    SpeechAudio,
    SpeechDelta,
    SpeechText,
    can_speak,
)

__all__ = [
    "AudioModel",
    "EarlierTurn",
    "ModelTimeouts",
    "Reply",
    "SpeakingModel",
    "SpeechAudio",
    "SpeechDelta",
    "SpeechText",
    "TextModel",
    "Transcriber",
    "TranscribingModel",
    "can_speak",
]
