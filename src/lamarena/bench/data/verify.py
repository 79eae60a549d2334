"""Checking local copies of the hub against the registry: ``lamarena static verify``.

For each registry dataset, :func:`verify_dataset` checks its repository in ``--hub-dir`` as a
run would meet it and stops at the first problem: the copy exists; its card declares the
config and the split and the split's files are there; they load; every declared column is
present; the ``where`` filter keeps rows; every label value maps to a label or is deliberately
left out (every answer names an option); and the audio of the first usable rows decodes. It
reports the rows found against the study's size (a partial copy is reported, not refused).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lamarena.bench.data.loading import (
    iter_samples,
    open_dataset,
    plan_samples,
    resolve_dataset,
    sample_clip,
)
from lamarena.bench.data.registry import Registry
from lamarena.errors import InvalidInputError, LamarenaError

__all__ = ["AUDIO_CHECKS", "Verdict", "verify_dataset", "verify_hub"]

AUDIO_CHECKS = 3
"""How many usable rows' audio is decoded per dataset."""


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify_dataset` found for one dataset.

    Attributes:
        dataset: the registry name.
        hf_id: its hub repository.
        ok: whether every check passed.
        problem: the first problem, when one was found.
        rows: rows of the split after the filter (None when it did not load).
        usable: rows with a usable reference (before the subsample).
        size: the number the study evaluated, when known.
        skipped: rows left out, by reason.
        notes: facts worth knowing that are not problems (a partial copy).
    """

    dataset: str
    hf_id: str | None
    ok: bool
    problem: str | None = None
    rows: int | None = None
    usable: int | None = None
    size: int | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return asdict(self)

    def line(self) -> str:
        """One line for the terminal: ``ok NAME ...`` or ``FAIL NAME: problem``."""
        if not self.ok:
            return f"FAIL {self.dataset}: {self.problem}"
        size = f" (study: {self.size})" if self.size is not None else ""
        extra = f"; {'; '.join(self.notes)}" if self.notes else ""
        return f"ok   {self.dataset}: {self.usable} usable of {self.rows} rows{size}{extra}"


def verify_dataset(
    name: str, registry: Registry, hub_dir: Path, *, cache_dir: Path | None = None
) -> Verdict:
    """Check the copy of registry dataset ``name`` in ``hub_dir`` (see the module docstring)."""
    spec = registry.dataset(name)
    rows: int | None = None
    try:
        ref = resolve_dataset(name, registry, hub_dir=hub_dir)
        dataset = open_dataset(ref, cache_dir=cache_dir)
        rows = len(dataset)
        plan = plan_samples(spec, dataset, limit=None)
        if not plan.indices:
            raise InvalidInputError(f"no usable row: {plan.skipped or 'the split is empty'}")
        checked = plan.indices[:AUDIO_CHECKS]
        for sample in iter_samples(spec, dataset, checked):
            sample_clip(sample)
    except LamarenaError as exc:
        return Verdict(name, spec.hf_id, False, exc.message, rows=rows, size=spec.size)
    notes = []
    if spec.size is not None and plan.usable < spec.size:
        notes.append(
            f"{plan.usable} usable rows, fewer than the study's {spec.size} (a partial copy, or "
            "a smaller upload)"
        )
    return Verdict(
        name,
        spec.hf_id,
        True,
        size=spec.size,
        rows=rows,
        usable=plan.usable,
        skipped=plan.skipped,
        notes=notes,
    )


def verify_hub(
    names: list[str], registry: Registry, hub_dir: Path, *, cache_dir: Path | None = None
) -> list[Verdict]:
    """:func:`verify_dataset` for each of ``names`` (every registry dataset when empty).

    Raises:
        UnknownTask: a name not in the registry (before anything is checked).
    """
    chosen = names or list(registry.datasets)
    for name in chosen:
        registry.dataset(name)
    return [verify_dataset(name, registry, hub_dir, cache_dir=cache_dir) for name in chosen]
