"""A throwaway PostgreSQL cluster for tests: initdb + pg_ctl in a temporary directory.

The cluster listens on 127.0.0.1 only, on a free port, with its unix socket inside the
temporary directory and trust authentication. When the tests run as root, the server
programs run as the ``postgres`` user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["INSTALL_HINT", "PostgresCluster", "PostgresUnavailable", "find_postgres_bindir"]

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found; install them with "
    "`apt-get install -y postgresql` (Debian/Ubuntu), then rerun the tests"
)

_SERVER_USER = "postgres"
_READY_TIMEOUT_S = 30.0


class PostgresUnavailable(RuntimeError):
    """The cluster cannot be created or started; the message says what to do."""


def find_postgres_bindir() -> Path:
    """Locate the directory holding ``initdb`` and ``pg_ctl``.

    Tries ``pg_config --bindir``, then ``/usr/lib/postgresql/*/bin`` (newest first), then PATH.

    Raises:
        PostgresUnavailable: no directory has both programs.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    versioned = glob.glob("/usr/lib/postgresql/*/bin")
    versioned.sort(key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)
    candidates.extend(Path(p) for p in reversed(versioned))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise PostgresUnavailable(INSTALL_HINT)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresCluster:
    """A started throwaway cluster; call :meth:`stop` to stop it and delete its files."""

    bindir: Path
    root: Path
    port: int
    superuser: str = _SERVER_USER
    _as_root: bool = field(default=False, repr=False)

    @property
    def datadir(self) -> Path:
        """Where the cluster's data lives."""
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg 3) for ``database`` on this cluster."""
        return f"postgresql+psycopg://{self.superuser}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls, bindir: Path | None = None) -> PostgresCluster:
        """Create, start and wait for a new cluster.

        Raises:
            PostgresUnavailable: the binaries are missing or the server does not start.
        """
        bindir = bindir or find_postgres_bindir()
        as_root = os.geteuid() == 0
        root = Path(tempfile.mkdtemp(prefix="lamarena-pg-"))
        cluster = cls(bindir=bindir, root=root, port=_free_port(), _as_root=as_root)
        try:
            if as_root:
                shutil.chown(root, user=_SERVER_USER)
                root.chmod(0o700)
            cluster._run(
                "initdb",
                "--pgdata",
                str(cluster.datadir),
                "--username",
                cluster.superuser,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
            )
            cluster._start_server()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _command(self, program: str, *args: str) -> list[str]:
        command = [str(self.bindir / program), *args]
        if self._as_root:
            return ["runuser", "-u", _SERVER_USER, "--", *command]
        return command

    def _run(
        self, program: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self._command(program, *args),
            capture_output=True,
            text=True,
            check=False,
            cwd=self.root,
            timeout=120,
        )
        if check and result.returncode != 0:
            output = result.stderr.strip() or result.stdout.strip()
            raise PostgresUnavailable(f"{program} failed ({result.returncode}): {output}")
        return result

    def _start_server(self) -> None:
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                f"-c unix_socket_directories={self.root}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=50",
            ]
        )
        log = self.root / "server.log"
        result = self._run(
            "pg_ctl",
            "start",
            "--pgdata",
            str(self.datadir),
            "--log",
            str(log),
            "--options",
            options,
            "--wait",
            "--timeout",
            str(int(_READY_TIMEOUT_S)),
            check=False,
        )
        if result.returncode != 0:
            server_log = log.read_text(errors="replace") if log.exists() else ""
            raise PostgresUnavailable(
                f"pg_ctl start failed: {result.stderr.strip()} {server_log.strip()[-2000:]}"
            )
        self._wait_until_ready()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while True:
            result = self._run(
                "pg_isready", "--host", "127.0.0.1", "--port", str(self.port), check=False
            )
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"PostgreSQL on port {self.port} did not become ready")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop the server (if running) and delete the cluster directory."""
        if (self.datadir / "postmaster.pid").exists():
            self._run(
                "pg_ctl",
                "stop",
                "--pgdata",
                str(self.datadir),
                "--mode",
                "immediate",
                "--wait",
                check=False,
            )
        shutil.rmtree(self.root, ignore_errors=True)
