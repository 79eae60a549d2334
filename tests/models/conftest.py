"""Fixtures for model adapter tests: real speech made with espeak-ng."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.speech import speak
from lamarena.audio import AudioClip, load_audio

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="session")
def question_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WAV file of espeak-ng asking :data:`QUESTION`."""
    return speak(QUESTION, tmp_path_factory.mktemp("speech") / "question.wav")


@pytest.fixture(scope="session")
def question_clip(question_wav: Path) -> AudioClip:
    """The question decoded to 16 kHz mono."""
    return load_audio(question_wav)
