"""PEDANTS: model files from a configured folder, never downloaded, unavailable said plainly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers.static_fixtures import write_tiny_pedants_models
from lamarena.bench.scoring.pedants import (
    PEDANTS_FILES,
    PedantsScorer,
    PedantsUnavailable,
    load_pedants,
    package_model_dir,
)

# Run in a fresh interpreter: every socket connection is refused and recorded, then the
# package is imported and used. Nothing may try the network or print anything.
PROBE = """
import json, socket, sys
attempts = []
def refuse(self, address, *args):
    attempts.append(str(address))
    raise OSError("network disabled by the test")
socket.socket.connect = refuse
socket.create_connection = lambda address, *a, **k: refuse(None, address)
from pathlib import Path
from lamarena.bench.scoring.pedants import load_pedants
scorer = load_pedants(Path(sys.argv[1]))
verdicts = [scorer.judge("ten in the morning", "it opens at ten", "when does it open"),
            scorer.judge("jane austen", "charles dickens", "who wrote it")]
sys.stderr.flush()
print(json.dumps({"attempts": attempts, "verdicts": verdicts}))
"""


def test_missing_model_files_make_the_metric_unavailable_with_a_way_to_get_them(
    tmp_path: Path,
) -> None:
    (tmp_path / "lr_classifier.pkl").write_bytes(b"")
    result = load_pedants(tmp_path)
    assert isinstance(result, PedantsUnavailable)
    assert "tf-idf_vectorizer.pkl" in result.reason and "lr_classifier.pkl," not in result.reason
    assert "LAMARENA_PEDANTS_MODEL_DIR" in result.reason


def test_the_package_folder_is_used_when_no_folder_is_configured() -> None:
    folder = package_model_dir()
    assert folder is not None and folder.parent.name == "qa_metrics"
    result = load_pedants(None)
    has_files = all((folder / name).is_file() for name in PEDANTS_FILES)
    assert isinstance(result, PedantsScorer) == has_files
    if not has_files:
        assert isinstance(result, PedantsUnavailable) and str(folder) in result.reason


def test_unusable_files_are_reported_not_raised(tmp_path: Path) -> None:
    for name in PEDANTS_FILES:
        (tmp_path / name).write_bytes(b"not a pickle")
    result = load_pedants(tmp_path)
    assert isinstance(result, PedantsUnavailable)
    assert "cannot be loaded" in result.reason


def test_scoring_with_model_files_touches_no_network_and_prints_nothing(tmp_path: Path) -> None:
    folder = write_tiny_pedants_models(tmp_path / "pedants")
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", PROBE, str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    report = json.loads(result.stdout)
    assert report == {"attempts": [], "verdicts": [1.0, 0.0]}


def test_an_empty_answer_is_not_equivalent(tmp_path: Path) -> None:
    scorer = load_pedants(write_tiny_pedants_models(tmp_path))
    assert isinstance(scorer, PedantsScorer)
    assert scorer.judge("ten in the morning", "   ", "when") == 0.0
    assert scorer.judge("At ten in the morning.", "At ten in the morning, I think.") == 1.0
