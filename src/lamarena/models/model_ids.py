"""Whether a hosted model id still answers: the installed SDKs' own model lists and shutdown dates.

Hosted ids go away: the study's ``gpt-4o-audio-preview`` and ``gemini-1.5-pro`` no longer answer.
This module says so before a request is made, from what is installed, with no network call:

- **OpenAI.** The ``openai`` SDK is generated from OpenAI's API spec. Its model ``Literal`` types
  (``ChatModel``, ``AudioModel``, ``SpeechModel``, the Realtime session and transcription models)
  list the ids, and the docstring under each carries a "Deprecated values:" section with an
  "Announced shutdown date: YYYY-MM-DD" per group of ids. Both are read from the SDK's source
  files (a type alias's docstring does not exist at run time), so upgrading the SDK updates them.
- **Gemini.** ``google-genai`` lists current ids (its Interactions ``Model`` type) but no
  shutdown dates, so the ids Google has shut down are a small table here, :data:`GEMINI_SHUT_DOWN`,
  with the page each date was taken from.

:func:`lifecycle` answers for one id: :class:`Known`, :class:`Retiring` (a shutdown is announced),
:class:`Retired` (past its shutdown, or listed as not a supported id) or :class:`Unknown` (not in
any list: a vLLM path, a local checkpoint, a fine-tune; never an error). :func:`hosted_ids` picks
out the ids of a models.yaml entry that go to OpenAI's or Google's own API (no ``base_url``), the
only ones these lists speak for.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

__all__ = [
    "GEMINI_SHUT_DOWN",
    "RETIRING_SOON_DAYS",
    "Deprecation",
    "HostedId",
    "Known",
    "Lifecycle",
    "Provider",
    "Retired",
    "Retiring",
    "Unknown",
    "describe",
    "hosted_ids",
    "lifecycle",
    "parse_deprecations",
    "read_literal_ids",
    "sdk_model_ids",
]

Provider = Literal["openai", "gemini"]
"""Whose API serves the id."""

RETIRING_SOON_DAYS = 60
"""``models check`` warns about an id whose shutdown is this many days away or fewer."""

OPENAI_DEPRECATIONS_URL = "https://developers.openai.com/api/docs/deprecations"
GEMINI_DEPRECATIONS_URL = "https://ai.google.dev/gemini-api/docs/deprecations"

# The openai SDK's files that hold model Literals, and the name annotated in each (a module-level
# type alias, or a class field). Paths are relative to the installed ``openai`` package.
_OPENAI_LISTS: tuple[tuple[str, str], ...] = (
    ("types/shared/chat_model.py", "ChatModel"),
    ("types/audio_model.py", "AudioModel"),
    ("types/audio/speech_model.py", "SpeechModel"),
    ("types/realtime/realtime_session_create_request.py", "model"),
    ("types/realtime/audio_transcription.py", "model"),
)

# google-genai's list of current Gemini API ids (the Interactions API's ``Model`` type).
_GEMINI_LIST = ("_gaos/types/interactions/model.py", "Model")


@dataclass(frozen=True)
class GeminiShutdown:
    """A Gemini id that Google has shut down, and where the date comes from."""

    shutdown: date
    source: str
    note: str = ""


_GEMINI_PAGE = "the Gemini API deprecations page"

GEMINI_SHUT_DOWN: Mapping[str, GeminiShutdown] = {
    # Gemini 1.5: the -001 snapshots went on 2025-05-24, the rest on 2025-09-24 (Google's
    # announcements; the deprecations page now shows them only as shut down).
    "gemini-1.5-pro-001": GeminiShutdown(date(2025, 5, 24), _GEMINI_PAGE),
    "gemini-1.5-flash-001": GeminiShutdown(date(2025, 5, 24), _GEMINI_PAGE),
    "gemini-1.5-pro": GeminiShutdown(date(2025, 9, 24), _GEMINI_PAGE),
    "gemini-1.5-pro-002": GeminiShutdown(date(2025, 9, 24), _GEMINI_PAGE),
    "gemini-1.5-flash": GeminiShutdown(date(2025, 9, 24), _GEMINI_PAGE),
    "gemini-1.5-flash-002": GeminiShutdown(date(2025, 9, 24), _GEMINI_PAGE),
    "gemini-1.5-flash-8b": GeminiShutdown(date(2025, 9, 24), _GEMINI_PAGE),
    # Gemini 2.0 Flash: announced in the Gemini changelog of 2026-01-22 for 2026-03-31, moved to
    # 2026-06-01 (the deprecations page; Vertex AI's page: "As of June 1, 2026,
    # gemini-2.0-flash-001 and gemini-2.0-flash-lite-001 are discontinued").
    "gemini-2.0-flash": GeminiShutdown(date(2026, 6, 1), _GEMINI_PAGE),
    "gemini-2.0-flash-001": GeminiShutdown(date(2026, 6, 1), _GEMINI_PAGE),
    "gemini-2.0-flash-lite": GeminiShutdown(date(2026, 6, 1), _GEMINI_PAGE),
    "gemini-2.0-flash-lite-001": GeminiShutdown(date(2026, 6, 1), _GEMINI_PAGE),
    # Previews, from the same page.
    "gemini-2.5-pro-preview-03-25": GeminiShutdown(date(2025, 12, 2), _GEMINI_PAGE),
    "gemini-2.5-pro-preview-05-06": GeminiShutdown(date(2025, 12, 2), _GEMINI_PAGE),
    "gemini-2.5-pro-preview-06-05": GeminiShutdown(date(2025, 12, 2), _GEMINI_PAGE),
    "gemini-3-pro-preview": GeminiShutdown(date(2026, 3, 9), _GEMINI_PAGE),
    # Gemini 2.5 Pro and Flash (2.5 Flash-Lite is not deprecated): 2026-12-01 on the deprecations
    # page as read on 2026-11-10 (quoted by dev.to/aideprecations; the page earlier gave
    # 2026-06-17, then 2026-10-16). google-genai 3.6.1 still lists both; after the date Google
    # routes their requests to another model, so a study would silently evaluate that one.
    "gemini-2.5-pro": GeminiShutdown(
        date(2026, 12, 1), _GEMINI_PAGE, "requests are routed to gemini-3.8-flash"
    ),
    "gemini-2.5-flash": GeminiShutdown(
        date(2026, 12, 1), _GEMINI_PAGE, "requests are routed to gemini-3.5-flash-lite"
    ),
}
"""Gemini ids that no longer answer (or answer as another model), with their shutdown dates."""

# What to move to, for the families lamarena uses. Sources: gpt-audio-1.5 is "the best voice
# model for audio in, audio out with Chat Completions" (developers.openai.com/api/docs/models/
# gpt-audio-1.5) and the SDK lists it with no shutdown date; gpt-transcribe is the one
# AudioModel id without a shutdown date; gemini-3.8-flash is the deprecations page's
# replacement for gemini-2.5-pro and google-genai 3.6.1's own example model. OpenAI names no
# successor on /audio/speech for tts-1 and gpt-4o-mini-tts (its recommended gpt-realtime-2.1-mini
# is a Realtime model).
_SUCCESSORS: tuple[tuple[Provider, str, str], ...] = (
    (
        "openai",
        r"gpt-4o(-mini)?-audio-preview.*|gpt-audio(-mini)?(-\d{4}-\d\d-\d\d)?",
        "gpt-audio-1.5",
    ),
    ("openai", r"whisper-1|gpt-4o(-mini)?-transcribe.*", "gpt-transcribe"),
    (
        "openai",
        r"tts-1(-hd)?|gpt-4o-mini-tts.*",
        "a pipeline tts stage of kind espeak or another /audio/speech server",
    ),
    ("gemini", r"gemini-.*", "gemini-3.8-flash"),
)


@dataclass(frozen=True)
class Deprecation:
    """One id of an SDK's "Deprecated values" section."""

    model_id: str
    shutdown: date | None
    """The announced shutdown date; None for an id listed as not supported at all."""


@dataclass(frozen=True)
class Known:
    """In the SDK's list, with no shutdown announced."""

    model_id: str
    source: str


@dataclass(frozen=True)
class Retiring:
    """In the SDK's list, with a shutdown announced for a later day."""

    model_id: str
    shutdown: date
    source: str
    replacement: str

    def days_left(self, today: date) -> int:
        """Days from ``today`` to the shutdown."""
        return (self.shutdown - today).days


@dataclass(frozen=True)
class Retired:
    """Past its shutdown date (or, with ``shutdown`` None, listed as not a supported id)."""

    model_id: str
    shutdown: date | None
    source: str
    replacement: str
    note: str = ""


@dataclass(frozen=True)
class Unknown:
    """In no list this module reads: allowed (a vLLM path, a local checkpoint, a fine-tune)."""

    model_id: str


Lifecycle = Known | Retiring | Retired | Unknown
"""What :func:`lifecycle` says about an id."""


@dataclass(frozen=True)
class HostedId:
    """A model id that goes to a provider's own API."""

    provider: Provider
    model_id: str


def lifecycle(model_id: str, provider: Provider, today: date) -> Lifecycle:
    """Whether ``model_id`` still answers on ``provider``'s own API on ``today``.

    Reads the installed SDKs only (once per process); makes no network call. An id in no list
    is :class:`Unknown`, never an error.

    Args:
        model_id: the id as models.yaml gives it.
        provider: ``openai`` (OpenAI's API) or ``gemini`` (the Gemini API).
        today: the day to judge shutdown dates against.
    """
    if provider == "gemini":
        shut = GEMINI_SHUT_DOWN.get(model_id)
        if shut is not None and shut.shutdown <= today:
            replacement = _successor(provider, model_id)
            return Retired(model_id, shut.shutdown, shut.source, replacement, shut.note)
        if shut is not None:
            return Retiring(model_id, shut.shutdown, shut.source, _successor(provider, model_id))
        if model_id in sdk_model_ids("gemini"):
            return Known(model_id, _sdk_source("google-genai"))
        return Unknown(model_id)
    deprecations = _openai_deprecations()
    if model_id in deprecations:
        when = deprecations[model_id].shutdown
        source = f"the {_sdk_source('openai')}'s deprecation list"
        replacement = _successor(provider, model_id)
        if when is None or when <= today:
            return Retired(model_id, when, source, replacement)
        return Retiring(model_id, when, source, replacement)
    if model_id in sdk_model_ids("openai"):
        return Known(model_id, _sdk_source("openai"))
    return Unknown(model_id)


def describe(status: Lifecycle, today: date) -> str:
    """One sentence for a person: what happened (or will) to the id, and what to use instead."""
    if isinstance(status, Retired):
        if status.shutdown is None:
            said = f"{status.model_id} is not a supported model id ({status.source})"
        else:
            said = f"{status.model_id} was shut down on {status.shutdown} ({status.source})"
        if status.note:
            said += f"; {status.note}"
        return f"{said}; use {status.replacement}"
    if isinstance(status, Retiring):
        days = status.days_left(today)
        said = (
            f"{status.model_id} shuts down on {status.shutdown}, in {days} "
            f"day{'' if days == 1 else 's'} ({status.source})"
        )
        return f"{said}; move to {status.replacement}"
    if isinstance(status, Known):
        return f"{status.model_id} is current ({status.source})"
    return f"{status.model_id} is in no SDK list (a self-hosted or local model?)"


def hosted_ids(entry: Mapping[str, Any]) -> list[HostedId]:
    """The ids of a models.yaml entry (or any part of one) that go to OpenAI's or Google's API.

    The rule: a mapping whose ``kind`` is ``openai``, ``openai-transcription`` or
    ``openai-speech`` (OpenAI) or ``gemini`` (Google), with a ``model`` and no ``base_url`` (or
    one on ``api.openai.com`` / ``generativelanguage.googleapis.com``). A pipeline's ``asr``,
    ``llm`` and ``tts`` stages are looked into; anything served elsewhere (vLLM, a local path)
    is not hosted, and the SDK lists do not speak for it.
    """
    return list(_walk_hosted(entry))


def _walk_hosted(node: Any) -> Iterator[HostedId]:
    if isinstance(node, Mapping):
        provider = _provider_of(node)
        if provider is not None:
            yield HostedId(provider, str(node["model"]))
        for value in node.values():
            yield from _walk_hosted(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk_hosted(item)


_OFFICIAL_HOSTS: Mapping[Provider, str] = {
    "openai": "api.openai.com",
    "gemini": "generativelanguage.googleapis.com",
}


def _provider_of(node: Mapping[Any, Any]) -> Provider | None:
    kind, model = node.get("kind"), node.get("model")
    if not isinstance(model, str) or not model:
        return None
    provider: Provider
    if kind in ("openai", "openai-transcription", "openai-speech"):
        provider = "openai"
    elif kind == "gemini":
        provider = "gemini"
    else:
        return None
    base_url = node.get("base_url")
    if base_url is None:
        return provider
    host = urlsplit(str(base_url)).hostname
    return provider if host == _OFFICIAL_HOSTS[provider] else None


def sdk_model_ids(provider: Provider) -> frozenset[str]:
    """Every id the installed SDK lists for ``provider`` (empty when the SDK is absent)."""
    if provider == "gemini":
        return _gemini_ids()
    return _openai_ids()


_DEPRECATED_HEADER = re.compile(r"^\s*Deprecated values:\s*$", re.MULTILINE)
_SHUTDOWN = re.compile(r"Announced\s+shutdown\s+date:\s*(\d{4}-\d{2}-\d{2})")
_NOT_SUPPORTED = re.compile(r"Not\s+a\s+supported\s+model\s+ID", re.IGNORECASE)
_QUOTED = re.compile(r'"([^"]+)"')


def parse_deprecations(docstring: str) -> dict[str, Deprecation]:
    """The ids of a docstring's "Deprecated values:" section, with their shutdown dates.

    The section is a bullet list; each bullet (which may wrap over several lines) names ids in
    double quotes, then a colon, then either "Announced shutdown date: YYYY-MM-DD" or "Not a
    supported model ID". A bullet in neither form is skipped. No section: an empty dict.
    """
    header = _DEPRECATED_HEADER.search(docstring)
    if header is None:
        return {}
    found: dict[str, Deprecation] = {}
    for bullet in _bullets(docstring[header.end() :]):
        ids, _, text = bullet.partition('":')
        text = " ".join(text.split())
        when = _SHUTDOWN.search(text)
        if when is not None:
            shutdown: date | None = date.fromisoformat(when.group(1))
        elif _NOT_SUPPORTED.search(text):
            shutdown = None
        else:
            continue
        for model_id in _QUOTED.findall(ids + '"'):
            found[model_id] = Deprecation(model_id, shutdown)
    return found


def _bullets(section: str) -> list[str]:
    """The section's bullets, each joined into one line (a bullet wraps onto indented lines)."""
    bullets: list[str] = []
    for line in section.splitlines():
        stripped = line.strip()
        if stripped.startswith("- "):
            bullets.append(stripped[2:])
        elif stripped and bullets:
            bullets[-1] += " " + stripped
    return bullets


def read_literal_ids(path: Path, name: str) -> tuple[list[str], str]:
    """The string ids of the ``Literal`` given for ``name`` in ``path``, and its docstring.

    ``name`` is a module-level type alias (``ChatModel: TypeAlias = Literal[...]`` or
    ``Model = Union[Literal[...], ...]``) or a class field (``model: Union[str, Literal[...]]``);
    the docstring is the string statement right
    after it (empty if none). Read with :mod:`ast`, so nothing is imported.

    Raises:
        LookupError: ``path`` has no annotation for ``name`` with a string ``Literal``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for body in _bodies(tree):
        for index, node in enumerate(body):
            if not _annotates(node, name):
                continue
            ids = _literal_strings(node)
            if not ids:
                continue
            after = body[index + 1] if index + 1 < len(body) else None
            doc = ""
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                doc = str(after.value.value)
            return ids, doc
    raise LookupError(f"{path}: no string Literal annotated for {name!r}")


def _bodies(tree: ast.Module) -> Iterator[list[ast.stmt]]:
    yield tree.body
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            yield node.body


def _annotates(node: ast.stmt, name: str) -> bool:
    """``name: ... = ...`` (a type alias or a field) or ``name = ...`` (a plain alias)."""
    if isinstance(node, ast.AnnAssign):
        return isinstance(node.target, ast.Name) and node.target.id == name
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        return isinstance(target, ast.Name) and target.id == name
    return False


def _literal_strings(node: ast.stmt) -> list[str]:
    ids: list[str] = []
    for part in ast.walk(node):
        if (
            isinstance(part, ast.Subscript)
            and isinstance(part.value, ast.Name)
            and part.value.id == "Literal"
        ):
            for const in ast.walk(part.slice):
                if isinstance(const, ast.Constant) and isinstance(const.value, str):
                    ids.append(const.value)
    return ids


def _package_dir(package: str) -> Path | None:
    """Where an installed package lives, found without importing it (None if absent)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _sdk_source(distribution: str) -> str:
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    return f"{distribution} {version} SDK"


def _read_lists(package: str, lists: tuple[tuple[str, str], ...]) -> list[tuple[list[str], str]]:
    root = _package_dir(package)
    if root is None:
        return []
    found: list[tuple[list[str], str]] = []
    for relative, name in lists:
        path = root / relative
        try:
            found.append(read_literal_ids(path, name))
        except (OSError, SyntaxError, LookupError):
            continue  # the SDK moved this list: fewer known ids, never a failure
    return found


@functools.cache
def _openai_ids() -> frozenset[str]:
    return frozenset(i for ids, _doc in _read_lists("openai", _OPENAI_LISTS) for i in ids)


@functools.cache
def _openai_deprecations() -> Mapping[str, Deprecation]:
    merged: dict[str, Deprecation] = {}
    for _ids, doc in _read_lists("openai", _OPENAI_LISTS):
        for model_id, found in parse_deprecations(doc).items():
            before = merged.get(model_id)
            merged[model_id] = found if before is None else _earlier(before, found)
    return merged


def _earlier(first: Deprecation, second: Deprecation) -> Deprecation:
    if first.shutdown is None or second.shutdown is None:
        return first if first.shutdown is None else second
    return first if first.shutdown <= second.shutdown else second


@functools.cache
def _gemini_ids() -> frozenset[str]:
    root = _package_dir("google.genai")
    if root is None:
        return frozenset()
    try:
        ids, _doc = read_literal_ids(root / _GEMINI_LIST[0], _GEMINI_LIST[1])
    except (OSError, SyntaxError, LookupError):
        return frozenset()
    return frozenset(ids)


def _successor(provider: Provider, model_id: str) -> str:
    for owner, pattern, successor in _SUCCESSORS:
        if owner == provider and re.fullmatch(pattern, model_id):
            return successor
    page = OPENAI_DEPRECATIONS_URL if provider == "openai" else GEMINI_DEPRECATIONS_URL
    return f"the replacement named on {page}"
