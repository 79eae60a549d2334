"""Every bench module lists its public names in __all__, and they exist."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import lamarena.bench

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(lamarena.bench.__path__, prefix="lamarena.bench.")
)


@pytest.mark.parametrize("name", ["lamarena.bench", *MODULES])
def test_all_lists_every_public_class_and_function(name: str) -> None:
    module = importlib.import_module(name)
    defined_here = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == name
    }
    assert defined_here <= set(module.__all__)
    assert all(hasattr(module, attr) for attr in module.__all__)


def test_importing_bench_loads_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, lamarena.bench, lamarena.cli; "
        "print(sorted(m for m in ('datasets', 'sklearn', 'distributed', 'qa_metrics', 'jiwer') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[]", result.stderr
