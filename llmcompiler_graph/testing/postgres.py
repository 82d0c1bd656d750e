"""A throwaway PostgreSQL server for tests and benchmarks, on 127.0.0.1.

:class:`LocalPostgres` runs the server binaries of the operating system's
``postgresql`` package (``initdb`` into a temporary directory, ``pg_ctl start``
on a free port with its unix socket in that directory, trust authentication)
and removes everything on :meth:`LocalPostgres.stop`. PostgreSQL refuses to run
as root, so under root the server runs as the ``postgres`` system user (or
``nobody``), which owns the temporary directory.

Binaries are found through ``$PG_BIN``, ``initdb`` on ``PATH``, or Debian's
``/usr/lib/postgresql/<version>/bin``. :func:`find_pg_bin` can install
Debian's ``postgresql`` package when they are missing and apt is usable.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["LocalPostgres", "PostgresUnavailable", "find_pg_bin"]


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here, and none could be installed."""


def _bin_dir_candidates() -> list[Path]:
    found: list[Path] = []
    if os.environ.get("PG_BIN"):
        found.append(Path(os.environ["PG_BIN"]))
    on_path = shutil.which("initdb")
    if on_path:
        found.append(Path(on_path).resolve().parent)
    # Debian keeps server binaries off PATH, one directory per major version.
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    found.extend(Path(p) for p in versions)
    return found


def _usable(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))


def find_pg_bin(*, install: bool = False) -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    Args:
        install: When none is found and this process is root with ``apt-get``,
            install Debian's ``postgresql`` package first.

    Raises:
        PostgresUnavailable: Not found (and not installable), with the reason.

    Example:
        >>> find_pg_bin()  # doctest: +SKIP
        PosixPath('/usr/lib/postgresql/15/bin')
    """
    for candidate in _bin_dir_candidates():
        if _usable(candidate):
            return candidate
    reason = "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found"
    if not install:
        raise PostgresUnavailable(f"{reason}; install them with: apt-get install postgresql")
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PostgresUnavailable(f"{reason}, and apt-get is not usable here (needs root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise PostgresUnavailable(f"{reason}; `{' '.join(command)}` failed: {' | '.join(tail)}")
    return find_pg_bin(install=False)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """A private PostgreSQL server: started by :meth:`start`, deleted by :meth:`stop`.

    Args:
        bin_dir: Server binaries (default: :func:`find_pg_bin`).
        install: Let :func:`find_pg_bin` install the ``postgresql`` package.
        durable: Keep PostgreSQL's crash-safety settings. ``False`` (tests)
            turns off ``fsync``, ``synchronous_commit`` and ``full_page_writes``:
            a killed *client* loses nothing, only a power cut would.
        max_connections: The server's connection limit.

    Attributes:
        url: ``postgresql://postgres@127.0.0.1:PORT/postgres`` once started.

    Example:
        ```python
        with LocalPostgres() as pg:
            async with AsyncPostgresSaver.from_conn_string(pg.url) as saver:
                await saver.setup()
        ```
    """

    def __init__(
        self,
        *,
        bin_dir: Path | None = None,
        install: bool = False,
        durable: bool = False,
        max_connections: int = 200,
    ) -> None:
        self.bin_dir = bin_dir or find_pg_bin(install=install)
        self.durable = durable
        self.max_connections = max_connections
        self.port: int | None = None
        self.root: Path | None = None
        self.url = ""
        self._user: str | None = None

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        assert self.root is not None
        return self.root / "server.log"

    def _run(self, *args: str, timeout: float = 120.0) -> None:
        done = subprocess.run(
            args,
            user=self._user,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            raise RuntimeError(
                f"{Path(args[0]).name} failed ({done.returncode}): {done.stderr.strip()}\n{log}"
            )

    def start(self) -> str:
        """Create and start the server; returns its connection URL."""
        if os.geteuid() == 0:
            # The server refuses to run as root.
            names = [u.pw_name for u in pwd.getpwall()]
            self._user = "postgres" if "postgres" in names else "nobody"
        self.root = Path(tempfile.mkdtemp(prefix="llmc-pg-"))
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.root}",
            f"-c max_connections={self.max_connections}",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self.port = _free_port()
        options.append(f"-p {self.port}")
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            " ".join(options),
            "-w",
            "-t",
            "60",
            "start",
        )
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        return self.url

    def stop(self) -> None:
        """Stop the server (immediate shutdown) and delete its files."""
        if self.root is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self._run(
                    str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                    "-w", "stop",
                )  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None
        self.url = ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
