import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import lamarena.store

STORE_DIR = Path(lamarena.store.__file__).parent
MODULES = ["lamarena.store"] + [
    info.name
    for info in pkgutil.iter_modules(lamarena.store.__path__, "lamarena.store.")
    if not info.name.endswith(".migrations")
]


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_every_public_class_and_function(name):
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


def test_package_exports_the_cli_services():
    for attr in ("import_votes", "export_votes", "load_battles_frame", "migrate_to_head"):
        assert attr in lamarena.store.__all__


def _lamarena_imports(paths: list[Path]) -> set[str]:
    imported: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    return {name for name in imported if name.split(".")[0] == "lamarena"}


LEAVES = ("codes", "threads")
"""Modules of the bottom layer that import nothing of lamarena (shared with the analysis)."""


def test_store_imports_nothing_of_lamarena_but_errors_and_leaves():
    lamarena_modules = _lamarena_imports(list(STORE_DIR.rglob("*.py")))
    outside = {name for name in lamarena_modules if not name.startswith("lamarena.store")}
    assert "lamarena.store.records" in lamarena_modules  # the scan sees our own imports
    assert "lamarena.errors" in outside
    assert outside <= {"lamarena.errors", *(f"lamarena.{leaf}" for leaf in LEAVES)}
    leaves = [STORE_DIR.parent / f"{leaf}.py" for leaf in LEAVES]
    assert all(path.is_file() for path in leaves) and _lamarena_imports(leaves) == set()


def test_migrations_ship_inside_the_package():
    versions = sorted(p.name for p in (STORE_DIR / "migrations" / "versions").glob("*.py"))
    assert versions == [
        "0001_initial.py",
        "0002_health_checks.py",
        "0003_integrity.py",
        "0004_sampling_probability.py",
        "0005_turns.py",
        "0006_spoken_replies.py",
        "0007_vote_counts.py",
    ]
    assert (STORE_DIR / "migrations" / "env.py").is_file()
    assert (STORE_DIR / "migrations" / "script.py.mako").is_file()
