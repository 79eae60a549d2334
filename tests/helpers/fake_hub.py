"""A loopback Hugging Face hub that serves dataset repositories from a local folder.

The served folder ``root`` holds repositories as ``root/OWNER/NAME/<files>``, as
``hf download --repo-type dataset OWNER/NAME --local-dir root/OWNER/NAME`` leaves them (its
``.cache`` folder, and any ``.git`` folder, at the top of a repository are not served). Each
repository has one branch, ``main``, whose commit sha is a deterministic hash of the repository's
file paths and contents.

It answers what ``huggingface_hub`` 2.4 asks for ``snapshot_download`` and ``hf_hub_download`` of
a dataset repository (and what ``datasets.load_dataset`` asks through them):

- ``GET /api/datasets/{repo_id}/revision/{revision}``: ``{"id", "sha", "private", "siblings"}``.
- ``GET /api/datasets/{repo_id}/tree/{revision}[/{path}]?recursive=...``: one page of
  ``{"type": "file", "path", "size", "oid"}`` and ``{"type": "directory", "path", "oid"}``
  (no ``xetHash``, so the client downloads over plain HTTP).
- ``HEAD``/``GET /datasets/{repo_id}/resolve/{revision}/{path}``: ``X-Repo-Commit``, a quoted
  sha256 ``ETag`` and ``Content-Length``; ``GET`` sends the bytes (a ``Range: bytes=N-`` resume
  is answered 206).

An unknown repository is a 404 with ``X-Error-Code: RepoNotFound``, an unknown revision (not
``main`` nor the commit sha) ``RevisionNotFound``, an unknown file or folder ``EntryNotFound``;
anything else (``/api/agent-harnesses``, model repositories, other methods) is a bare 404. Every
request is recorded, so a test can assert what was fetched and that nothing else was asked.

Example::

    with serve_hub(root) as hub:
        snapshot_download("org/set", repo_type="dataset", local_dir=dest, endpoint=hub.base_url)
        assert hub.downloaded_files("org/set") == ["README.md", ...]

``huggingface_hub`` reads ``HF_ENDPOINT`` when it is imported, so a subprocess is pointed at the
fake with ``env={..., "HF_ENDPOINT": hub.base_url}``; in process, pass ``endpoint=hub.base_url``.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from helpers.servers import ServerThread

__all__ = ["FakeHub", "HubRequest", "serve_hub"]

_BRANCH = "main"
_HIDDEN_TOP_DIRS = frozenset({".cache", ".git"})
_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass(frozen=True)
class HubRequest:
    """One request the fake received: method, decoded URL path, raw query string."""

    method: str
    path: str
    query: str = ""


class _HubError(Exception):
    """A 404 answer, with the hub's ``X-Error-Code`` (``None`` for a bare 404)."""

    def __init__(self, code: str | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FakeHub:
    """The fake hub over ``root``; ``app`` is its ASGI app, :meth:`serve` runs it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._log: list[HubRequest] = []
        self._sent: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._digests: dict[tuple[str, int, int], tuple[str, str]] = {}
        self._server: ServerThread | None = None

    # -- what tests read ------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` while serving (the value for ``HF_ENDPOINT``)."""
        if self._server is None:
            raise RuntimeError("the fake hub is not serving; use serve_hub(root)")
        return self._server.url

    @property
    def requests(self) -> list[tuple[str, str]]:
        """Every request so far as ``(method, decoded path)``, in arrival order (a copy)."""
        with self._lock:
            return [(entry.method, entry.path) for entry in self._log]

    @property
    def log(self) -> list[HubRequest]:
        """Every request so far with its query string (a copy)."""
        with self._lock:
            return list(self._log)

    def downloaded_files(self, repo_id: str) -> list[str]:
        """Paths in ``repo_id`` whose bytes were sent (a ``GET`` on resolve that found the file).

        Sorted and unique. A file huggingface_hub reuses from its cache (same sha256 ``ETag``)
        is only ``HEAD``-ed, so it is not listed.
        """
        with self._lock:
            return sorted({path for repo, path in self._sent if repo == repo_id})

    def reset(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._log.clear()
            self._sent.clear()

    def commit_sha(self, repo_id: str) -> str:
        """The 40-hex commit sha the fake reports for ``repo_id``'s ``main``."""
        return self._commit(self._repo_dir(repo_id))

    def serve(self) -> ServerThread:
        """A server for this fake (a context manager); :func:`serve_hub` wraps it."""
        server = ServerThread(self.app)
        self._server = server
        return server

    # -- ASGI ------------------------------------------------------------------------------

    @property
    def app(self) -> ASGIApp:
        """The ASGI app (an object, so uvicorn sees an ASGI 3 callable)."""
        return _App(self)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one ASGI request: record it, then :meth:`_respond`."""
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        raw_path = scope.get("raw_path") or scope["path"].encode()
        raw = raw_path.decode("latin-1").split("?", 1)[0]
        with self._lock:
            self._log.append(
                HubRequest(request.method, unquote(raw), scope.get("query_string", b"").decode())
            )
        try:
            response = self._respond(request, raw)
        except _HubError as error:
            headers = {"X-Error-Message": error.message}
            if error.code is not None:
                headers["X-Error-Code"] = error.code
            body = b"" if request.method == "HEAD" else error.message.encode()
            response = Response(body, status_code=404, headers=headers)
        await response(scope, receive, send)

    def _respond(self, request: Request, raw_path: str) -> Response:
        # Split the raw path, then unquote each segment: a revision or a tree path arrives
        # quoted with safe="", so an encoded slash in it must not split it.
        segments = raw_path.split("/")[1:]
        method = request.method
        if method in ("GET", "HEAD") and len(segments) >= 6 and segments[:2] == ["api", "datasets"]:
            repo_id = f"{unquote(segments[2])}/{unquote(segments[3])}"
            action, revision = segments[4], unquote(segments[5])
            sub_path = unquote("/".join(segments[6:])).strip("/")
            if action == "revision" and not sub_path:
                return self._revision(repo_id, revision)
            if action == "tree":
                return self._tree(repo_id, revision, sub_path, request)
        if (
            method in ("GET", "HEAD")
            and len(segments) >= 6
            and segments[0] == "datasets"
            and segments[3] == "resolve"
        ):
            repo_id = f"{unquote(segments[1])}/{unquote(segments[2])}"
            revision = unquote(segments[4])
            file_path = unquote("/".join(segments[5:]))
            return self._resolve(repo_id, revision, file_path, request)
        raise _HubError(None, f"no such endpoint: {method} {unquote(raw_path)}")

    # -- endpoints -------------------------------------------------------------------------

    def _revision(self, repo_id: str, revision: str) -> Response:
        repo = self._repo_dir(repo_id)
        sha = self._checked_revision(repo, revision)
        body = {
            "id": repo_id,
            "sha": sha,
            "private": False,
            "gated": False,
            "disabled": False,
            "siblings": [{"rfilename": path} for path in self._files(repo)],
        }
        return _json(body)

    def _tree(self, repo_id: str, revision: str, sub_path: str, request: Request) -> Response:
        repo = self._repo_dir(repo_id)
        self._checked_revision(repo, revision)
        recursive = request.query_params.get("recursive", "false").lower() == "true"
        files = self._files(repo)
        if sub_path:
            _check_safe(sub_path)
            if not (repo / sub_path).is_dir() or not any(
                path.startswith(f"{sub_path}/") for path in files
            ):
                raise _HubError("EntryNotFound", f"{sub_path} is not a folder of {repo_id}")
        prefix = f"{sub_path}/" if sub_path else ""
        entries: dict[str, dict[str, Any]] = {}
        for path in files:
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split("/")
            depth = len(parts) if recursive else 1
            for level in range(1, min(depth, len(parts) - 1) + 1):
                folder = prefix + "/".join(parts[:level])
                entries.setdefault(
                    folder,
                    {"type": "directory", "path": folder, "oid": self._folder_oid(repo, folder)},
                )
            if recursive or len(parts) == 1:
                size, oid = self._file_meta(repo, path)
                entries[path] = {"type": "file", "path": path, "size": size, "oid": oid}
        return _json(sorted(entries.values(), key=lambda entry: entry["path"]))

    def _resolve(self, repo_id: str, revision: str, file_path: str, request: Request) -> Response:
        repo = self._repo_dir(repo_id)
        sha = self._checked_revision(repo, revision)
        if file_path not in self._files(repo):
            raise _HubError("EntryNotFound", f"{file_path} is not in {repo_id}")
        data = (repo / file_path).read_bytes()
        headers = {
            "X-Repo-Commit": sha,
            "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        status = 200
        match = _RANGE.match(request.headers.get("range", "").strip())
        if match and request.method == "GET":
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(data) - 1
            end = min(end, len(data) - 1)
            if start <= end:
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                data = data[start : end + 1]
                status = 206
        headers["Content-Length"] = str(len(data))
        body = b"" if request.method == "HEAD" else data
        if request.method == "GET":
            with self._lock:
                self._sent.append((repo_id, file_path))
        return Response(body, status_code=status, headers=headers)

    # -- the repositories on disk ----------------------------------------------------------

    def _repo_dir(self, repo_id: str) -> Path:
        parts = repo_id.split("/")
        if len(parts) != 2 or any(not part or part.startswith(".") for part in parts):
            raise _HubError("RepoNotFound", f"no dataset repository {repo_id}")
        repo = self.root / parts[0] / parts[1]
        if not repo.is_dir():
            raise _HubError("RepoNotFound", f"no dataset repository {repo_id}")
        return repo

    def _checked_revision(self, repo: Path, revision: str) -> str:
        sha = self._commit(repo)
        if revision not in (_BRANCH, sha):
            raise _HubError("RevisionNotFound", f"no revision {revision}")
        return sha

    def _files(self, repo: Path) -> list[str]:
        """The repository's file paths (POSIX, relative), sorted, hidden top folders left out."""
        found = []
        for path in repo.rglob("*"):
            relative = path.relative_to(repo)
            if relative.parts[0] in _HIDDEN_TOP_DIRS or not path.is_file():
                continue
            found.append(relative.as_posix())
        return sorted(found)

    def _file_meta(self, repo: Path, path: str) -> tuple[int, str]:
        """``(size, git blob sha1)`` of a file."""
        size, blob, _sha256 = self._digest(repo / path)
        return size, blob

    def _digest(self, file: Path) -> tuple[int, str, str]:
        stat = file.stat()
        key = (str(file), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            cached = self._digests.get(key)
        if cached is None:
            data = file.read_bytes()
            blob = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False)
            cached = (blob.hexdigest(), hashlib.sha256(data).hexdigest())
            with self._lock:
                self._digests[key] = cached
        return stat.st_size, cached[0], cached[1]

    def _commit(self, repo: Path) -> str:
        digest = hashlib.sha1(usedforsecurity=False)
        for path in self._files(repo):
            _size, _blob, sha256 = self._digest(repo / path)
            digest.update(f"{path}\0{sha256}\n".encode())
        return digest.hexdigest()

    def _folder_oid(self, repo: Path, folder: str) -> str:
        digest = hashlib.sha1(usedforsecurity=False)
        for path in self._files(repo):
            if path.startswith(f"{folder}/"):
                digest.update(f"{path}\0{self._digest(repo / path)[2]}\n".encode())
        return digest.hexdigest()


class _App:
    def __init__(self, hub: FakeHub) -> None:
        self._hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._hub.handle(scope, receive, send)


def _check_safe(path: str) -> None:
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise _HubError("EntryNotFound", f"bad path {path}")


def _json(body: Any) -> Response:
    return Response(json.dumps(body), media_type="application/json")


@contextmanager
def serve_hub(root: Path) -> Iterator[FakeHub]:
    """Serve the repositories under ``root`` on 127.0.0.1 while the context is open."""
    hub = FakeHub(root)
    with hub.serve():
        yield hub
