"""Loading benchmark datasets through Hugging Face ``datasets``, one sample at a time.

A registry dataset loads from a local copy of its hub repository when ``--hub-dir`` is given
(:mod:`lamarena.bench.data.hub`; nothing goes to the network), otherwise from the hub
(``load_dataset(hf_id, config, split=...)``, cached by ``datasets`` as usual). A local folder
with a ``task.yaml`` loads the same way as a hub copy when it holds a dataset card with configs,
else with ``load_dataset(folder)`` (an ``audiofolder``, or parquet files). The audio
column is cast to ``Audio(decode=False)``: ``datasets`` hands over the encoded bytes (or the
file's path) and :mod:`lamarena.audio` decodes one clip at a time, only when a model is
actually called, so memory stays flat however large the set.

:func:`open_dataset` keeps the rows of the declared ``where`` filter (one task of a multi-task
table). :func:`plan_samples` reads only the label, question, option and filter columns to pick
the rows to evaluate: a row with an empty label, a value in ``drop_values`` (or, with
``drop_unmapped``, any value that maps to no label) is left out and counted; any other value
that maps to no label is an error naming it, since the declaration does not account for it.
The declared ``subsample`` then keeps a seeded sample of the usable rows (see
:class:`~lamarena.bench.data.spec.Subsample`), and ``--limit`` the first of those.
:func:`iter_samples` yields the planned rows as :class:`Sample` objects.
"""

from __future__ import annotations

import hashlib
import logging
import re
import socket
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamarena.audio import AudioClip, AudioLimits, decode_audio
from lamarena.bench.data.answers import normalise, reference_letter
from lamarena.bench.data.hub import card_configs, load_hub_copy, missing_copy, repo_folder
from lamarena.bench.data.local import is_local_reference, read_local_spec
from lamarena.bench.data.registry import Registry
from lamarena.bench.data.spec import CHOICE_LETTERS, DatasetSpec
from lamarena.errors import AudioError, InvalidInputError, NotFound

if TYPE_CHECKING:
    import datasets  # type: ignore[import-untyped]

__all__ = [
    "BENCH_AUDIO_LIMITS",
    "DatasetRef",
    "Sample",
    "SamplePlan",
    "UnmappedLabels",
    "iter_samples",
    "open_dataset",
    "plan_samples",
    "resolve_dataset",
    "sample_clip",
]

logger = logging.getLogger(__name__)

BENCH_AUDIO_LIMITS = AudioLimits(
    max_bytes=None, max_duration_s=None, min_duration_s=0.0, reject_silence=False
)
"""Benchmark audio is taken as it is: no size, length or silence limits."""

_OPTION = re.compile(r"\(([A-F])\)\s*")
_BATCH_ROWS = 32


@dataclass(frozen=True)
class DatasetRef:
    """A dataset to evaluate and where its files are.

    Attributes:
        spec: the declaration (from the registry, or a local task.yaml).
        folder: the local folder, or None to load ``spec.hf_id`` from the hub.
        hub_copy: the registry dataset's repository in a ``--hub-dir`` copy of the hub.
    """

    spec: DatasetSpec
    folder: Path | None = None
    hub_copy: Path | None = None

    @property
    def reference(self) -> str:
        """How the user named it: the registry name, or the folder."""
        return str(self.folder) if self.folder is not None else self.spec.name

    @property
    def location(self) -> str:
        """Where its files are: the folder, the hub copy, or the hub id."""
        if self.folder is not None:
            return str(self.folder)
        if self.hub_copy is not None:
            return str(self.hub_copy)
        return f"hub:{self.spec.hf_id}"


@dataclass(frozen=True)
class Sample:
    """One evaluation item; its audio stays encoded until :func:`sample_clip`.

    Attributes:
        sample_id: stable within the dataset (its id column, or its row number).
        reference: the true label, option letter, or reference text.
        audio_bytes: the encoded audio file.
        question: the question shown in the prompt, if any.
        options: the multiple-choice options' texts, in letter order, if any.
    """

    sample_id: str
    reference: str
    audio_bytes: bytes = field(repr=False)
    question: str | None = None
    options: tuple[str, ...] | None = None

    @property
    def audio_sha256(self) -> str:
        """Digest of the encoded audio (the cache key's audio part)."""
        return hashlib.sha256(self.audio_bytes).hexdigest()


@dataclass(frozen=True)
class SamplePlan:
    """The rows of a dataset to evaluate.

    Attributes:
        indices: row numbers, in order.
        skipped: why other rows were left out, with counts.
        available: rows in the split (after the filter and the holdout).
        usable: rows with a usable reference (before the subsample and the limit).
    """

    indices: list[int]
    skipped: dict[str, int]
    available: int
    usable: int = 0


class UnmappedLabels(InvalidInputError):
    """Label values that the declaration neither maps to a label nor leaves out."""


def resolve_dataset(
    reference: str, registry: Registry, *, hub_dir: Path | None = None
) -> DatasetRef:
    """A ``--datasets`` item: a registry name, or a local folder with a task.yaml.

    Args:
        reference: the name or folder.
        registry: the registry.
        hub_dir: a local copy of the hub; registry datasets must then be in it.

    Raises:
        UnknownTask: not a registry name (the message suggests the closest).
        InvalidInputError: a folder without a valid task.yaml.
        NotFound: ``hub_dir`` is given and the dataset's repository is not in it (the message
            names the ``static fetch`` command).
    """
    if is_local_reference(reference):
        folder = Path(reference)
        return DatasetRef(spec=read_local_spec(folder, registry), folder=folder)
    spec = registry.dataset(reference)
    if hub_dir is None or spec.hf_id is None:
        return DatasetRef(spec=spec)
    copy = repo_folder(hub_dir, spec.hf_id)
    if not copy.is_dir():
        raise missing_copy(spec, hub_dir)
    return DatasetRef(spec=spec, hub_copy=copy)


def _quiet_datasets() -> Any:
    import datasets

    datasets.disable_progress_bars()
    datasets.utils.logging.set_verbosity_error()
    return datasets


def _unreachable(ref: DatasetRef, exc: Exception) -> NotFound:
    spec = ref.spec
    text = " ".join(str(exc).split())
    offline = any(
        marker in text
        for marker in ("OfflineModeIsEnabled", "Couldn't reach", "connection", "Connection")
    )
    reason = "no network access to the Hugging Face hub" if offline else text[:300]
    return NotFound(
        f"dataset '{spec.name}' ({spec.hf_id}) could not be loaded: {reason}; where the hub is "
        f"reachable run `lamarena static fetch {spec.name} --hub-dir DIR`, copy DIR here and "
        f"pass --hub-dir DIR (or give a folder with a task.yaml saying `dataset: {spec.name}`; "
        "see README: getting the datasets)"
    )


_HUB_HOST = ("huggingface.co", 443)
_HUB_PROBE_S = 3.0


def _hub_reachable() -> bool:
    """Whether a TCP connection to the Hugging Face hub opens within a few seconds."""
    try:
        with socket.create_connection(_HUB_HOST, timeout=_HUB_PROBE_S):
            return True
    except OSError:
        return False


@contextmanager
def _offline(datasets: Any, *, when: bool = True) -> Iterator[None]:
    """``datasets`` and ``huggingface_hub`` use only local files inside (restored after).

    Only for the call that loads a dataset: a model loaded later in the same process may still
    fetch its weights where that is allowed.
    """
    if not when:
        yield
        return
    import huggingface_hub.constants

    before = (datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = True
    huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = before


def _load(ref: DatasetRef, cache_dir: Path | None) -> datasets.Dataset:
    datasets = _quiet_datasets()
    spec = ref.spec
    if ref.hub_copy is not None:
        with _offline(datasets):
            return load_hub_copy(ref.hub_copy, spec, cache_dir=cache_dir)
    if ref.folder is not None and card_configs(ref.folder) is not None:
        with _offline(datasets):
            return load_hub_copy(ref.folder, spec, cache_dir=cache_dir)
    if ref.folder is None:
        # Unreachable: a dataset already in the local cache still loads; anything else fails
        # at once, instead of after half a minute of retried requests.
        with _offline(datasets, when=not _hub_reachable()):
            try:
                loaded = datasets.load_dataset(
                    spec.hf_id, spec.config, data_dir=spec.data_dir, split=spec.split
                )
            except Exception as exc:  # datasets raises many kinds; each means "not reachable"
                raise _unreachable(ref, exc) from exc
        return loaded
    local_cache = str(cache_dir / "datasets") if cache_dir is not None else None
    try:
        splits = datasets.load_dataset(str(ref.folder), cache_dir=local_cache)
    except Exception as exc:  # a folder datasets cannot read, in whatever way
        raise InvalidInputError(
            f"{ref.folder}: not a dataset folder `datasets` can read (an audiofolder with "
            f"metadata.jsonl, or parquet files): {' '.join(str(exc).split())[:300]}"
        ) from exc
    if spec.split in splits:
        return splits[spec.split]
    if len(splits) == 1:
        return next(iter(splits.values()))
    raise InvalidInputError(
        f"{ref.folder}: no split '{spec.split}'; it has {', '.join(splits)}: set split in task.yaml"
    )


def _audio_column(ref: DatasetRef, dataset: datasets.Dataset) -> str:
    from datasets import Audio

    if ref.spec.audio_column in dataset.column_names:
        return ref.spec.audio_column
    audio = [name for name, kind in dataset.features.items() if isinstance(kind, Audio)]
    if len(audio) == 1:
        return str(audio[0])
    raise InvalidInputError(
        f"dataset '{ref.spec.name}' ({ref.reference}): no audio column '{ref.spec.audio_column}'"
        f"; columns: {', '.join(dataset.column_names)}"
    )


def open_dataset(ref: DatasetRef, *, cache_dir: Path | None = None) -> datasets.Dataset:
    """The dataset's evaluated split, audio undecoded, holdout applied, columns checked.

    Args:
        ref: the dataset and where it is.
        cache_dir: where ``datasets`` keeps its Arrow copy of a local folder (hub datasets use
            the usual Hugging Face cache, so a set fetched before is found).

    Raises:
        NotFound: a hub dataset that cannot be reached (the message says how to give it locally).
        InvalidInputError: a local folder that cannot be read, or a declared column missing.
    """
    from datasets import Audio

    dataset = _load(ref, cache_dir)
    audio_column = _audio_column(ref, dataset)
    dataset = dataset.cast_column(audio_column, Audio(decode=False))
    if audio_column != "audio":
        if "audio" in dataset.column_names:
            raise InvalidInputError(
                f"dataset '{ref.spec.name}' ({ref.reference}): its audio is in "
                f"'{audio_column}' and another column is called 'audio'; rename that column"
            )
        dataset = dataset.rename_column(audio_column, "audio")
    spec = ref.spec
    declared = [*spec.read_columns, spec.id_column]
    missing = [column for column in declared if column and column not in dataset.column_names]
    if missing:
        raise InvalidInputError(
            f"dataset '{spec.name}' ({ref.reference}) has no column "
            f"{', '.join(repr(c) for c in missing)}; columns: {', '.join(dataset.column_names)}"
        )
    if spec.where:
        dataset = _keep_where(spec, dataset)
        if len(dataset) == 0:
            raise InvalidInputError(
                f"dataset '{spec.name}' ({ref.location}): no row has {_describe_where(spec)}"
            )
    if spec.holdout is not None:
        size = spec.holdout.test_size
        if isinstance(size, int) and size >= len(dataset):
            return dataset
        dataset = dataset.train_test_split(test_size=size, seed=spec.holdout.seed)["test"]
    return dataset


def _describe_where(spec: DatasetSpec) -> str:
    return " and ".join(f"{column} = {value!r}" for column, value in spec.where.items())


def _keep_where(spec: DatasetSpec, dataset: datasets.Dataset) -> datasets.Dataset:
    """The rows whose filter columns hold the declared values (compared as text)."""
    columns = list(spec.where)
    wanted = [
        {_raw_text(item) for item in (value if isinstance(value, list) else [value])}
        for value in spec.where.values()
    ]

    def keep(*values: Any) -> bool:
        return all(
            _raw_text(value) in allowed for value, allowed in zip(values, wanted, strict=True)
        )

    return dataset.filter(keep, input_columns=columns, keep_in_memory=True)


def _raw_text(raw: Any) -> str:
    if raw is True or raw is False:
        return "true" if raw else "false"
    return "" if raw is None else str(raw).strip()


def _label_of(spec: DatasetSpec, raw: Any, names: Sequence[str] | None) -> str | None:
    candidates = [_raw_text(raw)]
    if names is not None and isinstance(raw, int) and 0 <= raw < len(names):
        candidates.append(names[raw])
    for candidate in candidates:
        if candidate in spec.label_map:
            return spec.label_map[candidate]
    labels = spec.labels or []
    for candidate in candidates:
        if normalise(candidate) in labels:
            return normalise(candidate)
        if candidate.lower() in labels:
            return candidate.lower()
    return None


def _split_options(question: str) -> tuple[str, tuple[str, ...]] | None:
    """``"Why? (A) x (B) y"`` -> ``("Why?", ("x", "y"))``; None unless letters run A, B, ..."""
    parts = _OPTION.split(question)
    letters = parts[1::2]
    if len(letters) < 2 or tuple(letters) != CHOICE_LETTERS[: len(letters)]:
        return None
    return parts[0].strip(), tuple(part.strip() for part in parts[2::2])


def _options_value(value: Any) -> tuple[str, ...] | None:
    r"""One column's options: ``(A) x\n(B) y`` text, or a list (``(A)`` prefixes dropped)."""
    if isinstance(value, list):
        texts = [str(item or "").strip() for item in value]
        split = _split_options(" ".join(texts))
        return split[1] if split is not None and not split[0] else tuple(t for t in texts if t)
    split = _split_options(str(value or ""))
    return None if split is None else split[1]


def _question_and_options(
    spec: DatasetSpec, row: dict[str, Any]
) -> tuple[str | None, tuple[str, ...] | None]:
    question = None if spec.question_column is None else str(row[spec.question_column] or "")
    if spec.option_columns is not None:
        options = tuple(str(row[column] or "").strip() for column in spec.option_columns)
        return question, tuple(option for option in options if option) or None
    if spec.options_column is not None:
        return question, _options_value(row[spec.options_column])
    if spec.options_in_question and question is not None:
        split = _split_options(question)
        if split is None:
            return question, None
        return split
    return question, None


UNMAPPED = "unmapped"
"""The reason :func:`_reference` gives for a value nothing accounts for (an error in a plan)."""


def _reference(
    spec: DatasetSpec, row: dict[str, Any], names: Sequence[str] | None
) -> tuple[str | None, str]:
    """The sample's reference, or None and why the row is left out (:data:`UNMAPPED`: error)."""
    raw = row[spec.answer_column]
    if spec.is_choice:
        _, options = _question_and_options(spec, row)
        if options is None or len(options) < 2:
            return None, "no options"
        if not _raw_text(raw):
            return None, "empty answer"
        letter = reference_letter(str(raw), options)
        return (letter, "") if letter else (None, UNMAPPED)
    if spec.metric.is_classification:
        if names is not None and raw == -1:  # a ClassLabel's missing value
            return None, "empty label"
        label = _label_of(spec, raw, names)
        if label is not None:
            return label, ""
        text = _raw_text(raw)
        if not text:
            return None, "empty label"
        named = _raw_name(raw, names) if names is not None else None
        if text in spec.drop_values or named in spec.drop_values:
            return None, f"left out: {named or text}"
        return (None, "other value (drop_unmapped)") if spec.drop_unmapped else (None, UNMAPPED)
    text = _raw_text(raw)
    return (text, "") if text else (None, "empty reference")


def _raw_name(raw: Any, names: Sequence[str] | None) -> str:
    if names is not None and isinstance(raw, int) and 0 <= raw < len(names):
        return names[raw]
    return _raw_text(raw)[:80]


def _class_names(spec: DatasetSpec, dataset: datasets.Dataset) -> list[str] | None:
    from datasets import ClassLabel

    feature = dataset.features.get(spec.answer_column)
    return list(feature.names) if isinstance(feature, ClassLabel) else None


def plan_samples(spec: DatasetSpec, dataset: datasets.Dataset, *, limit: int | None) -> SamplePlan:
    """The rows to evaluate: those with a usable reference, subsampled, the first ``limit``.

    Reads only the label, question, option and filter columns (no audio).

    Raises:
        UnmappedLabels: a label value (or an answer matching no option) that the declaration
            neither maps nor leaves out; the message names the values and their counts.
        InvalidInputError: an id column that repeats a value.
    """
    light = dataset.select_columns(spec.read_columns)
    names = _class_names(spec, dataset)
    indices: list[int] = []
    skipped: Counter[str] = Counter()
    unmapped: Counter[str] = Counter()
    for index, row in enumerate(light):  # every row, so no value goes unchecked under --limit
        reference, why = _reference(spec, row, names)
        if reference is not None:
            indices.append(index)
        elif why == UNMAPPED:
            unmapped[_raw_name(row[spec.answer_column], names)] += 1
        else:
            skipped[why] += 1
    if unmapped:
        raise _unmapped_error(spec, unmapped)
    usable = len(indices)
    if spec.subsample is not None:
        indices = _subsample(spec, dataset, indices)
        if usable > len(indices):
            skipped["not in the seeded subsample"] = usable - len(indices)
    if limit is not None and len(indices) > limit:
        skipped["past --limit"] = len(indices) - limit
        indices = indices[:limit]
    if skipped:
        logger.info("dataset %s: left out %s", spec.name, dict(skipped))
    if spec.id_column:
        _check_unique_ids(spec, dataset, indices)
    return SamplePlan(indices=indices, skipped=dict(skipped), available=len(dataset), usable=usable)


def _unmapped_error(spec: DatasetSpec, unmapped: Counter[str]) -> UnmappedLabels:
    shown = ", ".join(f"{value!r} ({count} rows)" for value, count in unmapped.most_common(5))
    more = f" and {len(unmapped) - 5} more" if len(unmapped) > 5 else ""
    if spec.is_choice:
        return UnmappedLabels(
            f"dataset '{spec.name}': answers in '{spec.answer_column}' match no option: "
            f"{shown}{more}"
        )
    return UnmappedLabels(
        f"dataset '{spec.name}': values of '{spec.answer_column}' map to no label: {shown}{more}; "
        "add them to label_map or drop_values (or set drop_unmapped for a free-text column)"
    )


def _subsample(spec: DatasetSpec, dataset: datasets.Dataset, indices: list[int]) -> list[int]:
    """The declared seeded sample of ``indices`` (see :class:`Subsample`), in row order."""
    subsample = spec.subsample
    if subsample is None or len(indices) <= subsample.size:
        return indices
    if spec.id_column:
        column = dataset.select_columns([spec.id_column])[spec.id_column]
        keys = [str(column[index]) for index in indices]
    else:
        keys = [str(index) for index in indices]

    def rank(item: tuple[int, str]) -> bytes:
        return hashlib.sha256(f"{subsample.seed}:{item[1]}".encode()).digest()

    chosen = sorted(zip(indices, keys, strict=True), key=rank)[: subsample.size]
    return sorted(index for index, _ in chosen)


def _check_unique_ids(spec: DatasetSpec, dataset: datasets.Dataset, indices: list[int]) -> None:
    """Refuse an id column that names two samples alike (results and resume key on it)."""
    column = dataset.select_columns([spec.id_column])[spec.id_column]
    counts = Counter(str(column[index]) for index in indices)
    repeated = sorted(value for value, count in counts.items() if count > 1)
    if repeated:
        shown = ", ".join(repr(value) for value in repeated[:3])
        raise InvalidInputError(
            f"dataset '{spec.name}': id_column '{spec.id_column}' repeats {shown}"
            f"{' and more' if len(repeated) > 3 else ''}; each sample needs its own id "
            "(choose another column, or drop id_column to use row numbers)"
        )


def _audio_bytes(audio: Any) -> bytes | None:
    if not isinstance(audio, dict):
        return None
    data = audio.get("bytes")
    if data:
        return bytes(data)
    path = audio.get("path")
    if path:
        try:
            return Path(path).read_bytes()
        except OSError:
            return None
    return None


def _rows(dataset: datasets.Dataset) -> Iterator[dict[str, Any]]:
    """The rows, read :data:`_BATCH_ROWS` at a time (Arrow batches; memory stays bounded)."""
    for batch in dataset.iter(batch_size=_BATCH_ROWS):
        columns = list(batch)
        for values in zip(*(batch[column] for column in columns), strict=True):
            yield dict(zip(columns, values, strict=True))


def iter_samples(
    spec: DatasetSpec, dataset: datasets.Dataset, indices: Sequence[int]
) -> Iterator[Sample]:
    """The planned rows as samples, one at a time (the audio read per row, not decoded).

    Raises:
        InvalidInputError: a planned row has no readable audio.
    """
    names = _class_names(spec, dataset)
    whole = len(indices) == len(dataset) and list(indices) == list(range(len(dataset)))
    subset = dataset if whole else dataset.select(indices)
    for index, row in zip(indices, _rows(subset), strict=True):
        reference, _ = _reference(spec, row, names)
        if reference is None:  # the plan was made from the same rows
            continue
        audio = _audio_bytes(row["audio"])
        if audio is None:
            raise InvalidInputError(
                f"dataset '{spec.name}': row {index} has no readable audio ({row['audio']!r:.80})"
            )
        question, options = _question_and_options(spec, row)
        sample_id = str(row[spec.id_column]) if spec.id_column else str(index)
        yield Sample(sample_id, reference, audio, question, options)


def sample_clip(sample: Sample) -> AudioClip:
    """Decode a sample's audio to 16 kHz mono (no size, length or silence limits).

    Raises:
        AudioError: the bytes are not decodable audio (the message names the sample).
    """
    try:
        return decode_audio(sample.audio_bytes, limits=BENCH_AUDIO_LIMITS)
    except AudioError as exc:
        raise AudioError(f"sample {sample.sample_id}: {exc.message}") from exc
