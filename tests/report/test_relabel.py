"""Topic names from a text LLM, against the loopback fake OpenAI-compatible server."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from helpers.fake_openai import FakeOpenAI, FakeOpenAIServer
from lamarena.errors import ConfigError
from lamarena.models.base import ModelTimeouts
from lamarena.models.openai_compat import OpenAIChatModel
from lamarena.report import render_report
from lamarena.report.relabel import LABEL_PROMPT, clean_label, relabel_topics, text_model


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI(deltas=("Topic: ", "Knowledge ", "questions.", "\nextra line"))


@pytest.fixture
def server(fake: FakeOpenAI) -> Iterator[FakeOpenAIServer]:
    with fake.serve() as server:
        yield server


def chat(server: FakeOpenAIServer, **options: Any) -> OpenAIChatModel:
    settings: dict[str, Any] = {
        "api_key": "sk-test",
        "timeouts": ModelTimeouts(connect_s=1.0, first_token_s=5.0),
        "retry_backoff_s": 0.01,
    }
    settings.update(options)
    return OpenAIChatModel("namer", "fake-text-model", base_url=server.base_url, **settings)


def count_topics(topics: dict[str, Any]) -> int:
    return len(topics["topics"]) + sum(len(t["subtopics"]) for t in topics["topics"])


async def test_every_topic_and_subtopic_is_named_by_the_model(
    study_document: dict[str, Any], fake: FakeOpenAI, server: FakeOpenAIServer
) -> None:
    model = chat(server)
    try:
        named = await relabel_topics(study_document["topics"], model)
    finally:
        await model.aclose()
    total = count_topics(study_document["topics"])
    assert len(fake.chat_requests) == total
    for topic in named["topics"]:
        assert topic["label"] == "Knowledge questions"
        assert topic["term_label"] == ", ".join(topic["terms"][:3])
        for sub in topic["subtopics"]:
            assert sub["label"] == "Knowledge questions" and sub["term_label"]
    assert {board["label"] for board in named["leaderboards"]} == {"Knowledge questions"}
    assert named["labelled_by"] == "namer" and named["label_failures"] == {}
    assert study_document["topics"]["topics"][0]["label"] != "Knowledge questions"  # a copy
    first = study_document["topics"]["topics"][0]
    asked = [request.json for request in fake.chat_requests if request.json]
    assert all(body["messages"][0] == {"role": "system", "content": LABEL_PROMPT} for body in asked)
    questions = [body["messages"][1]["content"] for body in asked]
    assert any(", ".join(first["terms"]) in q and first["examples"][0] in q for q in questions)
    document = copy.deepcopy(study_document)
    document["topics"] = named
    html = render_report(document)
    assert "Topic names by the model namer" in html and "Knowledge questions" in html


async def test_a_failing_model_leaves_the_term_labels(
    study_document: dict[str, Any], fake: FakeOpenAI, server: FakeOpenAIServer
) -> None:
    total = count_topics(study_document["topics"])
    fake.fail_next(500, times=total)
    model = chat(server, max_retries=0)
    try:
        named = await relabel_topics(study_document["topics"], model, concurrency=1)
    finally:
        await model.aclose()
    assert len(named["label_failures"]) == total
    assert [t["label"] for t in named["topics"]] == [
        t["label"] for t in study_document["topics"]["topics"]
    ]


@pytest.mark.parametrize(
    ("reply", "label"),
    [
        ("Advice seeking", "Advice seeking"),
        ('  "Small talk."  \nBecause...', "Small talk"),
        ("Topic name: task requests", "task requests"),
        ("\n\n**Knowledge**", "Knowledge"),
        ("   \n ", None),
        ("x" * 80, "x" * 60),
    ],
)
def test_replies_are_cleaned_into_labels(reply: str, label: str | None) -> None:
    assert clean_label(reply) == label


@dataclass
class Entry:
    name: str
    kind: str
    made: object

    def build(self) -> object:
        return self.made


async def test_the_label_model_must_exist_and_answer_text(server: FakeOpenAIServer) -> None:
    with pytest.raises(ConfigError, match=r"no such model in models\.yaml \(models: a\)"):
        text_model([Entry("a", "openai", object())], "b")
    with pytest.raises(ConfigError, match="a local model cannot answer text"):
        text_model([Entry("a", "local", object())], "a")
    model = chat(server)
    try:
        assert text_model([Entry("namer", "openai", model)], "namer") is model
    finally:
        await model.aclose()
