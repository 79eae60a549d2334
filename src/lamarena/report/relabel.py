"""Optional topic names from a text LLM of models.yaml (``analyze --label-model NAME``).

The clustering names each topic by its most distinctive terms (c-TF-IDF), which reads like
``"advice, recommend, deal"``. An LLM given those terms and a few example queries can name it the
way the study did (``"advice seeking"``). Each topic and sub-topic gets one short request; the
term label stays in ``term_label`` and is kept as the label wherever the model fails.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
from collections.abc import Mapping
from typing import Any

from lamarena.errors import ConfigError, ModelError
from lamarena.models.base import TextModel

__all__ = ["LABEL_PROMPT", "clean_label", "relabel_topics", "text_model"]

logger = logging.getLogger(__name__)

LABEL_PROMPT = (
    "You name the topics of requests people spoke to a voice assistant. Given a topic's most "
    "distinctive words and example requests, answer with a short name for the topic: two to "
    "five words, lower case, no quotes, nothing else."
)
"""The system prompt of every naming request."""

_MAX_CHARS = 60
_PREFIX = re.compile(r"^(topic( name)?|name)\s*[:\-]\s*", re.IGNORECASE)


def text_model(entries: list[Any], name: str) -> TextModel:
    """Build the models.yaml entry ``name`` as a text model.

    Args:
        entries: from :func:`lamarena.models.registry.model_entries`.
        name: the entry to use.

    Raises:
        ConfigError: no such entry, or one that cannot answer text (a local audio model).
    """
    for entry in entries:
        if entry.name == name:
            model = entry.build()
            if not isinstance(model, TextModel):
                raise ConfigError(
                    f"--label-model {name}: a {entry.kind} model cannot answer text; name an "
                    "openai or gemini entry of models.yaml"
                )
            return model
    names = ", ".join(entry.name for entry in entries) or "none"
    raise ConfigError(f"--label-model {name}: no such model in models.yaml (models: {names})")


def clean_label(reply: str) -> str | None:
    """The first line of a reply as a label (prefix, quotes and end punctuation removed).

    Returns:
        At most 60 characters, or None for an empty reply.
    """
    for line in reply.splitlines():
        text = _PREFIX.sub("", line.strip()).strip(" \"'`*.").strip()
        if text:
            return text[:_MAX_CHARS].rstrip()
    return None


def _request(topic: Mapping[str, Any], parent: str | None) -> str:
    lines = [f"Distinctive words: {', '.join(topic['terms'])}"]
    if parent:
        lines.append(f"It is a sub-topic of: {parent}")
    lines.append("Example requests:")
    lines += [f"- {example}" for example in topic["examples"]]
    return "\n".join(lines)


async def _ask(model: TextModel, text: str, timeout_s: float) -> str:
    parts: list[str] = []
    async with asyncio.timeout(timeout_s):
        async for delta in model.stream_text(text, LABEL_PROMPT):
            parts.append(delta)
    return "".join(parts)


async def relabel_topics(
    topics: Mapping[str, Any],
    model: TextModel,
    *,
    timeout_s: float = 60.0,
    concurrency: int = 4,
) -> dict[str, Any]:
    """Name every topic and sub-topic of a ``numbers.json`` topics section with ``model``.

    Args:
        topics: the ``topics`` section of the report document.
        model: a text model (:func:`text_model`).
        timeout_s: time allowed for each request.
        concurrency: requests in flight at once.

    Returns:
        A copy where each topic and sub-topic's ``label`` is the model's name for it and
        ``term_label`` the terms label; per-topic leaderboards follow. ``labelled_by`` names the
        model, and ``label_failures`` says which topics kept their term label and why.
    """
    out: dict[str, Any] = copy.deepcopy(dict(topics))
    gate = asyncio.Semaphore(max(1, concurrency))
    failures: dict[str, str] = {}

    async def name(topic: dict[str, Any], parent: str | None) -> None:
        topic["term_label"] = topic["label"]
        async with gate:
            try:
                reply = await _ask(model, _request(topic, parent), timeout_s)
            except (ModelError, TimeoutError) as exc:
                failures[topic["id"]] = str(exc) or "timed out"
                logger.warning("topic %s keeps its term label: %s", topic["id"], exc)
                return
        label = clean_label(reply)
        if label is None:
            failures[topic["id"]] = "empty reply"
        else:
            topic["label"] = label

    async with asyncio.TaskGroup() as group:
        for topic in out["topics"]:
            group.create_task(name(topic, None))
            for sub in topic.get("subtopics") or []:
                group.create_task(name(sub, ", ".join(topic["terms"][:3])))
    labels = {topic["id"]: topic["label"] for topic in out["topics"]}
    for board in out.get("leaderboards") or []:
        board["label"] = labels.get(board["topic"], board["label"])
    out["labelled_by"] = getattr(model, "name", "llm")
    out["label_failures"] = failures
    return out
