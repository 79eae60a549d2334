"""A reply is complete only when the service says so: broken streams fail, whole ones do not.

Both remote adapters run through :func:`lamarena.models.runtime.run_model` against real loopback
servers (:mod:`helpers.fake_openai`, :mod:`helpers.fake_gemini`) scripted to end a reply early
without its finishing marker (``truncate_after``), to drop the connection in the middle of the
body (``reset_after``), or to send no finish reason at all (``finish_reason = None``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from helpers.fake_gemini import DEFAULT_DELTAS as GEMINI_DELTAS
from helpers.fake_gemini import FakeGemini
from helpers.fake_openai import DEFAULT_DELTAS as OPENAI_DELTAS
from helpers.fake_openai import DEFAULT_PROMPT_TOKENS, FakeOpenAI
from helpers.servers import unused_port
from lamarena.audio import AudioClip
from lamarena.errors import ModelError, ModelTimeout, ModelUnavailable
from lamarena.models.base import AudioModel, ModelTimeouts, Reply
from lamarena.models.gemini import GeminiModel
from lamarena.models.openai_compat import OpenAIChatModel
from lamarena.models.runtime import run_model

PROMPT = "Respond conversationally to the speech provided."
TIMEOUTS = ModelTimeouts(connect_s=1.0, first_token_s=2.0, total_s=10.0)
BACKENDS = ["openai", "gemini"]


@dataclass
class Backend:
    """One adapter talking to its fake, and how the fake counts the events of a reply."""

    kind: str
    fake: FakeOpenAI | FakeGemini
    model: OpenAIChatModel | GeminiModel
    deltas: tuple[str, ...]

    def events_through(self, deltas: int) -> int:
        """How many events the fake has sent once ``deltas`` deltas are out.

        OpenAI's reply opens with a role chunk; Gemini's first event is the first delta.
        """
        return deltas + 1 if self.kind == "openai" else deltas

    @property
    def requests(self) -> int:
        if isinstance(self.fake, FakeOpenAI):
            return len(self.fake.chat_requests)
        return len(self.fake.requests)


def _model(kind: str, base_url: str) -> OpenAIChatModel | GeminiModel:
    if kind == "openai":
        return OpenAIChatModel(
            "fake-lam", "fake-audio-model", base_url=base_url, timeouts=TIMEOUTS, max_retries=2
        )
    return GeminiModel(
        "fake-gemini", "gemini-test", api_key="k", base_url=base_url, timeouts=TIMEOUTS
    )


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    kind: str = request.param
    fake: FakeOpenAI | FakeGemini = FakeOpenAI() if kind == "openai" else FakeGemini()
    with fake.serve() as server:
        model = _model(kind, server.base_url)
        deltas = OPENAI_DELTAS if kind == "openai" else GEMINI_DELTAS
        try:
            yield Backend(kind, fake, model, deltas)
        finally:
            await model.aclose()


async def _ask(model: AudioModel, clip: AudioClip) -> Reply:
    return await run_model(model, clip, PROMPT, timeouts=TIMEOUTS)


def _broke_off(reply: Reply, received: str) -> None:
    """``reply`` failed as broken off, keeping the ``received`` text, in one line."""
    assert not reply.ok
    assert reply.error is not None
    assert "broke off before the server said it was finished" in reply.error
    assert f"({len(received)} characters received" in reply.error
    assert "cannot reach" not in reply.error
    assert "\n" not in reply.error
    assert reply.text == received


# -- a stream that ends without its finishing marker ----------------------------------------------


@pytest.mark.parametrize("delivered", [0, 1, 2])
async def test_a_stream_cut_before_its_finish_fails_the_reply(
    backend: Backend, question_clip: AudioClip, delivered: int
) -> None:
    backend.fake.truncate_after = backend.events_through(delivered)

    reply = await _ask(backend.model, question_clip)

    _broke_off(reply, "".join(backend.deltas[:delivered]))
    assert backend.requests == 1


async def test_a_stream_with_every_delta_but_no_finish_reason_fails_the_reply(
    backend: Backend, question_clip: AudioClip
) -> None:
    # All the text, and for OpenAI the usage chunk and [DONE] too, but nothing said it was done.
    backend.fake.finish_reason = None

    reply = await _ask(backend.model, question_clip)

    _broke_off(reply, "".join(backend.deltas))
    assert backend.requests == 1


async def test_the_adapter_raises_a_model_error_not_unavailable(
    backend: Backend, question_clip: AudioClip
) -> None:
    backend.fake.truncate_after = backend.events_through(1)
    received: list[str] = []

    with pytest.raises(ModelError, match=r"broke off .*\(\d+ characters received\)") as caught:
        async for delta in backend.model.stream(question_clip, PROMPT):
            received.append(delta)

    assert type(caught.value) is ModelError  # not ModelUnavailable: the server was reached
    assert received == [backend.deltas[0]]


# -- a connection dropped in the middle of the body ------------------------------------------------


@pytest.mark.parametrize("delivered", [1, 2])
async def test_a_connection_dropped_mid_stream_broke_off_and_is_not_retried(
    backend: Backend, question_clip: AudioClip, delivered: int
) -> None:
    backend.fake.reset_after = backend.events_through(delivered)

    reply = await _ask(backend.model, question_clip)

    _broke_off(reply, "".join(backend.deltas[:delivered]))
    assert "Error" in (reply.error or "")  # names the connection failure, e.g. RemoteProtocolError
    assert backend.requests == 1  # max_retries is 2, but never after the first delta


async def test_a_connection_dropped_after_the_finish_reason_keeps_the_whole_reply(
    question_clip: AudioClip,
) -> None:
    # Only the usage chunk and [DONE] are lost: the reply itself was finished.
    fake = FakeOpenAI()
    fake.reset_after = 1 + len(OPENAI_DELTAS) + 1  # role, deltas, finish_reason
    with fake.serve() as server:
        model = _model("openai", server.base_url)
        try:
            reply = await _ask(model, question_clip)
        finally:
            await model.aclose()

    assert reply.ok, reply.error
    assert reply.text == "".join(OPENAI_DELTAS)
    assert reply.usage is None
    assert len(fake.chat_requests) == 1


@pytest.mark.parametrize("kind", BACKENDS)
async def test_a_server_that_is_not_listening_still_cannot_be_reached(
    kind: str, question_clip: AudioClip
) -> None:
    base_url = f"http://127.0.0.1:{unused_port()}" + ("/v1" if kind == "openai" else "")
    model = _model(kind, base_url)
    try:
        reply = await _ask(model, question_clip)
        with pytest.raises(ModelUnavailable):
            async for _ in model.stream(question_clip, PROMPT):
                pass
    finally:
        await model.aclose()

    assert not reply.ok
    assert reply.error is not None
    assert f"cannot reach {base_url}" in reply.error
    assert "check base_url" in reply.error
    assert "broke off" not in reply.error


async def test_a_read_timeout_mid_stream_is_still_a_timeout(question_clip: AudioClip) -> None:
    fake = FakeOpenAI()
    gate = fake.hold_after_first()  # never set: the server goes silent after the first delta
    fake.gate_timeout_s = 3.0
    with fake.serve() as server:
        model = OpenAIChatModel(
            "fake-lam",
            "fake-audio-model",
            base_url=server.base_url,
            timeouts=ModelTimeouts(connect_s=1.0, first_token_s=0.3),
        )
        try:
            with pytest.raises(ModelTimeout, match="read timeout"):
                async for _ in model.stream(question_clip, PROMPT):
                    pass
        finally:
            gate.set()
            await model.aclose()


# -- whole replies stay whole ---------------------------------------------------------------------


async def test_a_whole_stream_completes(backend: Backend, question_clip: AudioClip) -> None:
    reply = await _ask(backend.model, question_clip)

    assert reply.ok, reply.error
    assert reply.text == "".join(backend.deltas)
    assert reply.usage is not None
    assert reply.usage.input_tokens is not None


async def test_openai_finish_then_usage_chunk_then_done_completes(
    question_clip: AudioClip,
) -> None:
    # finish_reason on the last choice chunk, then a usage-only chunk (no choices), then [DONE].
    fake = FakeOpenAI()
    with fake.serve() as server:
        model = _model("openai", server.base_url)
        try:
            reply = await _ask(model, question_clip)
        finally:
            await model.aclose()

    assert reply.ok, reply.error
    assert reply.text == "".join(OPENAI_DELTAS)
    assert reply.usage is not None
    assert reply.usage.input_tokens == DEFAULT_PROMPT_TOKENS


@pytest.mark.parametrize(("kind", "reason"), [("openai", "length"), ("gemini", "MAX_TOKENS")])
async def test_a_reply_cut_by_max_tokens_is_complete(
    kind: str, reason: str, question_clip: AudioClip
) -> None:
    fake: FakeOpenAI | FakeGemini = FakeOpenAI() if kind == "openai" else FakeGemini()
    fake.finish_reason = reason
    with fake.serve() as server:
        model = _model(kind, server.base_url)
        try:
            reply = await _ask(model, question_clip)
        finally:
            await model.aclose()

    assert reply.ok, reply.error
    assert reply.text == "".join(OPENAI_DELTAS if kind == "openai" else GEMINI_DELTAS)


# -- one log line per failure ---------------------------------------------------------------------


@pytest.mark.parametrize("script", ["truncate_after", "reset_after"])
async def test_a_broken_stream_logs_one_warning_without_a_traceback(
    backend: Backend,
    question_clip: AudioClip,
    caplog: pytest.LogCaptureFixture,
    script: str,
) -> None:
    setattr(backend.fake, script, backend.events_through(1))
    caplog.set_level(logging.DEBUG, logger="lamarena")

    reply = await _ask(backend.model, question_clip)

    assert not reply.ok
    ours = [r for r in caplog.records if r.name.startswith("lamarena")]
    warnings = [r for r in ours if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    (record,) = warnings
    assert record.levelno == logging.WARNING
    assert record.exc_info is None
    assert record.getMessage() == reply.error
    assert "broke off" in record.getMessage()
