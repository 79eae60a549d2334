"""The loopback hub (tests/helpers/fake_hub.py) answers huggingface_hub 2.x as the real hub does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers.fake_hub import FakeHub, serve_hub

REPO_ID = "tiny-org/tiny-set"

README = """---
configs:
- config_name: cfg1
  data_files:
  - split: test
    path: cfg1/*.jsonl
- config_name: cfg2
  data_files:
  - split: test
    path: cfg2/*.jsonl
---

# Tiny set
"""

FILES = {
    "README.md": README.encode(),
    "cfg1/part-0.jsonl": b'{"id": 1, "text": "one"}\n',
    "cfg1/part-1.jsonl": b'{"id": 2, "text": "two"}\n',
    "cfg2/part-0.jsonl": b'{"id": 3, "text": "three"}\n',
    "cfg2/deep/extra.bin": bytes(range(256)),
    ".cache/huggingface/download/README.md.metadata": b"not served\n",
}


@pytest.fixture
def hub_root(tmp_path: Path) -> Path:
    root = tmp_path / "hub"
    for relative, data in FILES.items():
        path = root / REPO_ID / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.fixture
def hub(hub_root: Path) -> Iterator[FakeHub]:
    with serve_hub(hub_root) as served:
        yield served


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch, hub: FakeHub, tmp_path: Path) -> None:
    """Undo the offline switch for huggingface_hub; requests then name ``endpoint=`` explicitly.

    huggingface_hub fetches its agent-harness registry from ``constants.ENDPOINT`` (the real hub
    in process) unless a fresh cached copy exists: a fresh empty one keeps it off the network.
    """
    import huggingface_hub.constants as constants

    registry = tmp_path / "agent_harnesses.json"
    registry.write_text(json.dumps({"standardEnvVars": [], "harnesses": {}}), encoding="utf-8")
    monkeypatch.setattr(constants, "AGENT_HARNESSES_PATH", str(registry))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)


def _resolve_calls(hub: FakeHub) -> list[tuple[str, str]]:
    return [call for call in hub.requests if "/resolve/" in call[1]]


def _served_tree(tmp: Path) -> dict[str, bytes]:
    return {
        path.relative_to(tmp).as_posix(): path.read_bytes()
        for path in sorted(tmp.rglob("*"))
        if path.is_file() and path.relative_to(tmp).parts[0] != ".cache"
    }


@pytest.mark.usefixtures("online")
def test_snapshot_download_fetches_only_the_allowed_files(hub: FakeHub, tmp_path: Path) -> None:
    from huggingface_hub import snapshot_download

    dest = tmp_path / "dest"
    result = snapshot_download(
        REPO_ID,
        repo_type="dataset",
        local_dir=dest,
        allow_patterns=["README.md", "cfg1/*"],
        endpoint=hub.base_url,
    )

    assert Path(result) == dest
    wanted = ["README.md", "cfg1/part-0.jsonl", "cfg1/part-1.jsonl"]
    assert _served_tree(dest) == {path: FILES[path] for path in wanted}
    assert hub.downloaded_files(REPO_ID) == sorted(wanted)
    sha = hub.commit_sha(REPO_ID)
    # Exactly the calls the research notes list, and nothing else.
    calls = hub.requests
    assert calls[:2] == [
        ("GET", f"/api/datasets/{REPO_ID}/revision/main"),
        ("GET", f"/api/datasets/{REPO_ID}/tree/{sha}"),
    ]
    assert sorted(calls[2:]) == sorted(
        (method, f"/datasets/{REPO_ID}/resolve/{sha}/{path}")
        for path in wanted
        for method in ("HEAD", "GET")
    )
    assert f"/api/datasets/{REPO_ID}/tree/{sha}" in {entry.path for entry in hub.log}
    assert any("recursive=true" in entry.query for entry in hub.log if "/tree/" in entry.path)


@pytest.mark.usefixtures("online")
def test_hf_hub_download_of_the_readme(hub: FakeHub, tmp_path: Path) -> None:
    from huggingface_hub import hf_hub_download

    path = hf_hub_download(
        REPO_ID, "README.md", repo_type="dataset", local_dir=tmp_path / "d", endpoint=hub.base_url
    )

    assert Path(path).read_bytes() == FILES["README.md"]
    assert hub.downloaded_files(REPO_ID) == ["README.md"]
    assert ("HEAD", f"/datasets/{REPO_ID}/resolve/main/README.md") in _resolve_calls(hub)


@pytest.mark.usefixtures("online")
def test_unknown_repo_is_repository_not_found(hub: FakeHub, tmp_path: Path) -> None:
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError

    with pytest.raises(RepositoryNotFoundError):
        snapshot_download(
            "tiny-org/missing", repo_type="dataset", local_dir=tmp_path / "a", endpoint=hub.base_url
        )
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(
            "nobody/missing",
            "README.md",
            repo_type="dataset",
            local_dir=tmp_path / "b",
            endpoint=hub.base_url,
        )
    assert hub.downloaded_files("tiny-org/missing") == []


@pytest.mark.usefixtures("online")
def test_missing_file_is_entry_not_found(hub: FakeHub, tmp_path: Path) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RemoteEntryNotFoundError

    assert issubclass(RemoteEntryNotFoundError, EntryNotFoundError)
    for name in ("nope.txt", ".cache/huggingface/download/README.md.metadata"):
        with pytest.raises(RemoteEntryNotFoundError):
            hf_hub_download(
                REPO_ID, name, repo_type="dataset", local_dir=tmp_path / "d", endpoint=hub.base_url
            )
    assert hub.downloaded_files(REPO_ID) == []


@pytest.mark.usefixtures("online")
def test_unknown_revision_is_revision_not_found(hub: FakeHub, tmp_path: Path) -> None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RevisionNotFoundError

    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(
            REPO_ID,
            "README.md",
            repo_type="dataset",
            revision="refs/pr/1",
            local_dir=tmp_path / "d",
            endpoint=hub.base_url,
        )
    assert ("HEAD", f"/datasets/{REPO_ID}/resolve/refs/pr/1/README.md") in hub.requests


def test_raw_endpoints(hub: FakeHub, hub_root: Path) -> None:
    sha = hub.commit_sha(REPO_ID)
    assert len(sha) == 40 and int(sha, 16) >= 0
    with httpx.Client(base_url=hub.base_url) as client:
        info = client.get(f"/api/datasets/{REPO_ID}/revision/{sha}").json()
        assert (info["id"], info["sha"]) == (REPO_ID, sha)
        assert ".cache" not in json.dumps(info)

        top = client.get(f"/api/datasets/{REPO_ID}/tree/main", params={"recursive": False})
        assert [(e["type"], e["path"]) for e in top.json()] == [
            ("file", "README.md"),
            ("directory", "cfg1"),
            ("directory", "cfg2"),
        ]
        sub = client.get(f"/api/datasets/{REPO_ID}/tree/main/cfg2%2Fdeep?recursive=false")
        assert sub.json() == [
            {
                "type": "file",
                "path": "cfg2/deep/extra.bin",
                "size": 256,
                "oid": sub.json()[0]["oid"],
            }
        ]
        everything = client.get(f"/api/datasets/{REPO_ID}/tree/{sha}?recursive=true").json()
        assert [e["path"] for e in everything if e["type"] == "directory"] == [
            "cfg1",
            "cfg2",
            "cfg2/deep",
        ]
        assert sorted(e["path"] for e in everything if e["type"] == "file") == sorted(
            path for path in FILES if not path.startswith(".cache")
        )
        assert "xetHash" not in json.dumps(everything)

        head = client.head(f"/datasets/{REPO_ID}/resolve/main/cfg2/deep/extra.bin")
        assert head.status_code == 200
        assert head.headers["x-repo-commit"] == sha
        assert head.headers["content-length"] == "256"
        assert head.headers["etag"].startswith('"')
        partial = client.get(
            f"/datasets/{REPO_ID}/resolve/main/cfg2/deep/extra.bin", headers={"Range": "bytes=250-"}
        )
        assert (partial.status_code, partial.content) == (206, bytes(range(250, 256)))

        def error_code(url: str) -> tuple[int, str | None]:
            response = client.get(url)
            return response.status_code, response.headers.get("x-error-code")

        assert error_code("/api/datasets/x/y/revision/main") == (404, "RepoNotFound")
        assert error_code(f"/api/datasets/{REPO_ID}/revision/v2") == (404, "RevisionNotFound")
        assert error_code(f"/api/datasets/{REPO_ID}/revision/refs%2Fpr%2F1") == (
            404,
            "RevisionNotFound",
        )
        assert error_code(f"/api/datasets/{REPO_ID}/tree/main/nope") == (404, "EntryNotFound")
        assert error_code(f"/datasets/{REPO_ID}/resolve/main/cfg1") == (404, "EntryNotFound")
        assert error_code(f"/datasets/{REPO_ID}/resolve/main/../{REPO_ID}/README.md")[0] == 404
        assert error_code("/api/agent-harnesses") == (404, None)
        assert error_code(f"/api/models/{REPO_ID}/revision/main") == (404, None)

    # The commit follows the contents.
    (hub_root / REPO_ID / "cfg1" / "part-0.jsonl").write_bytes(b'{"id": 1, "text": "uno"}\n')
    assert hub.commit_sha(REPO_ID) != sha
    assert ("GET", "/api/agent-harnesses") in hub.requests
    hub.reset()
    assert hub.requests == []


def test_env_route_in_a_subprocess(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    code = (
        "import sys\n"
        "from huggingface_hub import snapshot_download\n"
        "snapshot_download(sys.argv[1], repo_type='dataset', local_dir=sys.argv[2],\n"
        "                  allow_patterns=['README.md', 'cfg2/**'])\n"
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "HUGGINGFACE_")) and key not in ("http_proxy", "https_proxy")
    }
    env |= {"HF_ENDPOINT": hub.base_url, "HF_HOME": str(tmp_path / "hf-home")}
    subprocess.run(
        [sys.executable, "-c", code, REPO_ID, str(dest)], env=env, check=True, timeout=120
    )

    wanted = ["README.md", "cfg2/deep/extra.bin", "cfg2/part-0.jsonl"]
    assert _served_tree(dest) == {path: FILES[path] for path in wanted}
    assert hub.downloaded_files(REPO_ID) == wanted
    # The child asked the fake (HF_ENDPOINT also moves the agent-harness registry lookup here).
    sha = hub.commit_sha(REPO_ID)
    assert sorted(hub.requests) == sorted(
        [
            ("GET", "/api/agent-harnesses"),
            ("GET", f"/api/datasets/{REPO_ID}/revision/main"),
            ("GET", f"/api/datasets/{REPO_ID}/tree/{sha}"),
        ]
        + [
            (method, f"/datasets/{REPO_ID}/resolve/{sha}/{path}")
            for path in wanted
            for method in ("HEAD", "GET")
        ]
    )
