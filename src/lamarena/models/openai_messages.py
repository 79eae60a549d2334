"""The JSON of OpenAI chat completions: the messages lamarena sends and the chunks it reads.

Requests: a spoken query is a user message with a text part (the prompt) and an audio part (a
base64 WAV); earlier turns of a conversation are sent as this model's own replies, as text. The
audio part has one of three shapes (:data:`AudioPart`), because servers read different ones:

- ``input_audio`` (the default): ``{"type": "input_audio", "input_audio": {"data": <base64>,
  "format": "wav"}}``, OpenAI's (the installed SDK's ``ChatCompletionContentPartInputAudioParam``);
  vLLM reads it too (docs.vllm.ai, "OpenAI Chat Completion Client For Multimodal", v0.9.2).
- ``audio_url``: ``{"type": "audio_url", "audio_url": {"url": "data:audio/wav;base64,..."}}``,
  vLLM's own (docs.vllm.ai v0.6.4 "OpenAI Compatible Server": "We also support audio_url content
  type for audio files"; ``examples/openai_audio_api_client.py``).
- ``talk-arena``: ``{"type": "audio", "audio_url": "data:audio/wav;base64,..."}``, a string and
  not an object: what Talk Arena sent (SALT-NLP/talk-arena ``src/talk_arena/streaming_helpers.py``,
  ``api_streaming``) to the study's inference servers (SALT-NLP/audiolm-inference-server and
  scb-10x's fork, ``handler/huggingface_handler.py`` and ``handler/vllm_handler.py``), which
  collect only parts whose ``type`` is ``audio``: with any other shape the Hugging Face handler
  (DiVA, Typhoon) fails with HTTP 500 as it takes the first audio part, and the vLLM handler
  (Qwen2-Audio) answers the text alone. The Hugging Face handler answers that first audio part
  under a fixed prompt of its own (the text part is ignored), so in this mode only the current
  query is sent: an earlier turn's audio would be answered instead. These servers report
  ``prompt_tokens: 0, completion_tokens: 0`` on every chunk, which is no report.

Chunks are read as the JSON the server sent (a mapping each; the fields read here are checked
where they are read), not as the SDK's pydantic models: building a model for every chunk was
most of a request's CPU on a busy arena (see ``benchmarks/arena_load.py``).

Token usage: ``usage.prompt_tokens`` and ``usage.completion_tokens``, each split by
``prompt_tokens_details.audio_tokens`` and ``completion_tokens_details.audio_tokens`` where the
server sends them (the installed SDK's ``CompletionUsage``; the totals include the audio tokens).
A usage of 0 prompt tokens is no report at all (see
:meth:`~lamarena.models.base.Usage.from_service`).

Spoken replies: each chunk's ``choices[0].delta.audio`` may carry ``id``, ``data`` (base64 PCM16,
24 kHz mono little-endian), ``transcript`` (the next text of the reply) and, in the last audio
update, only ``expires_at``. Field names as in the installed SDK's
``openai.types.chat.chat_completion_chunk.ChoiceDeltaAudio`` (openai 3.63), which matches
openai/openai-openapi issue #577 and openai-python issue #2507; 24 kHz is ``pcm16``'s rate in
OpenAI's audio guides.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, cast

from openai.types.chat import (
    ChatCompletionAssistantMessageParam,
    ChatCompletionContentPartParam,
    ChatCompletionMessageParam,
    ChatCompletionUserMessageParam,
)

from lamarena.audio import AudioClip, to_wav_bytes
from lamarena.errors import ModelError
from lamarena.models.base import EarlierTurn, TextTurn, Usage
from lamarena.models.speech import SPEECH_SAMPLE_RATE_HZ, SpeechAudio, SpeechDelta, SpeechText

__all__ = [
    "AudioPart",
    "SpeechParser",
    "audio_message",
    "choices",
    "delta_texts",
    "mapping",
    "reply_message",
    "reported_usage",
    "spoken_messages",
    "text_length",
    "text_messages",
]


AudioPart = Literal["input_audio", "audio_url", "talk-arena"]
"""The shape of the audio part of a request (see the module docstring)."""


def _audio_part(wav_base64: str, shape: AudioPart) -> ChatCompletionContentPartParam:
    if shape == "input_audio":
        return {"type": "input_audio", "input_audio": {"data": wav_base64, "format": "wav"}}
    url = f"data:audio/wav;base64,{wav_base64}"
    if shape == "audio_url":
        part: dict[str, Any] = {"type": "audio_url", "audio_url": {"url": url}}
    else:
        part = {"type": "audio", "audio_url": url}
    return cast(ChatCompletionContentPartParam, part)  # shapes the OpenAI SDK does not type


def audio_message(
    clip: AudioClip, prompt: str, audio_part: AudioPart = "input_audio"
) -> ChatCompletionUserMessageParam:
    """One spoken query as a user message: the prompt as a text part (if any), then the clip.

    Shapes from the installed SDK: ``ChatCompletionUserMessageParam`` with
    ``ChatCompletionContentPartTextParam`` and the audio part ``audio_part`` names (see the
    module docstring).
    """
    audio = base64.b64encode(to_wav_bytes(clip)).decode("ascii")
    parts: list[ChatCompletionContentPartParam] = []
    if prompt:
        parts.append({"type": "text", "text": prompt})
    parts.append(_audio_part(audio, audio_part))
    return {"role": "user", "content": parts}


def reply_message(reply: str) -> ChatCompletionAssistantMessageParam:
    """An earlier reply of this model: ``ChatCompletionAssistantMessageParam`` with text content.

    A spoken reply (``modalities`` with audio) is sent back as its transcript; the SDK's other
    form, ``audio: {id}``, names audio the service keeps only until the reply's ``expires_at``
    (and lamarena keeps no such id).
    """
    return {"role": "assistant", "content": reply}


def spoken_messages(
    clip: AudioClip,
    prompt: str,
    history: Sequence[EarlierTurn],
    audio_part: AudioPart = "input_audio",
) -> list[ChatCompletionMessageParam]:
    """A spoken query: each earlier turn (its audio, this model's reply), then ``clip``.

    With ``audio_part="talk-arena"`` only ``clip``: those servers answer the first audio part of
    a request, which would be the oldest turn's.
    """
    chat: list[ChatCompletionMessageParam] = []
    if audio_part != "talk-arena":
        for turn in history:
            chat.append(audio_message(turn.clip, prompt, audio_part))
            chat.append(reply_message(turn.reply))
    chat.append(audio_message(clip, prompt, audio_part))
    return chat


def text_messages(
    text: str, prompt: str, history: Sequence[TextTurn]
) -> list[ChatCompletionMessageParam]:
    """A text chat: the system prompt (if any), the earlier turns, then the user message."""
    chat: list[ChatCompletionMessageParam] = []
    if prompt:
        chat.append({"role": "system", "content": prompt})
    for user, reply in history:
        chat.append({"role": "user", "content": user})
        chat.append(reply_message(reply))
    chat.append({"role": "user", "content": text})
    return chat


def mapping(value: object) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def delta_texts(chunk: Mapping[str, Any]) -> Iterator[str]:
    """The text of one streamed chunk: content, a spoken reply's transcript, or a refusal.

    The usage chunk that ends a stream asked for ``include_usage`` has no choices: no text.
    """
    for choice in choices(chunk):
        if choice.get("index", 0) != 0:
            continue
        delta = mapping(choice.get("delta"))
        for text in (
            delta.get("content"),
            mapping(delta.get("audio")).get("transcript"),
            delta.get("refusal"),
        ):
            if isinstance(text, str) and text:
                yield text


class SpeechParser:
    """The parts of a spoken reply in its chunks: transcript text and PCM16 audio.

    An odd trailing byte of one ``data`` chunk waits for the next, so every
    :class:`~lamarena.models.speech.SpeechAudio` holds whole samples.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._odd = b""

    def __call__(self, chunk: Mapping[str, Any]) -> Iterator[SpeechDelta]:
        """The text and audio parts of one chunk, in order."""
        for choice in choices(chunk):
            if choice.get("index", 0) != 0:
                continue
            delta = mapping(choice.get("delta"))
            audio = mapping(delta.get("audio"))
            for text in (delta.get("content"), audio.get("transcript"), delta.get("refusal")):
                if isinstance(text, str) and text:
                    yield SpeechText(text)
            data = audio.get("data")
            if isinstance(data, str) and data:
                pcm = self._odd + self._decode(data)
                whole = len(pcm) - len(pcm) % 2
                self._odd = pcm[whole:]
                if whole:
                    yield SpeechAudio(pcm[:whole], SPEECH_SAMPLE_RATE_HZ)

    def _decode(self, data: str) -> bytes:
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ModelError(
                self._name, "the server sent audio that is not base64 (delta.audio.data)"
            ) from None


def text_length(item: object) -> int:
    """The characters of a text delta or a spoken reply's text part (0 for audio)."""
    if isinstance(item, str):
        return len(item)
    return len(item.text) if isinstance(item, SpeechText) else 0


def choices(chunk: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The chunk's choices that are JSON objects."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return []
    return [choice for choice in choices if isinstance(choice, Mapping)]


def reported_usage(chunk: Mapping[str, Any]) -> Usage | None:
    """The tokens the chunk's ``usage`` reports, if it has one that counts anything.

    The audio parts come from ``prompt_tokens_details.audio_tokens`` and
    ``completion_tokens_details.audio_tokens`` where the server sends them.
    """
    usage = chunk.get("usage")
    if not isinstance(usage, Mapping):
        return None
    return Usage.from_service(
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
        input_audio_tokens=mapping(usage.get("prompt_tokens_details")).get("audio_tokens"),
        output_audio_tokens=mapping(usage.get("completion_tokens_details")).get("audio_tokens"),
    )
