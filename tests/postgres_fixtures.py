"""A real PostgreSQL server for the tests (Debian's `postgresql` package), one per test session, and a fresh
database on it for each test that asks: the run index as several machines would share it."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
from services import missing

__all__ = ["postgres_server", "postgres_url"]  # the fixtures, for `import *` in test modules


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """The server's admin URL (the `postgres` database, no password, on 127.0.0.1 only)."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        missing("PostgreSQL")
    # The server refuses to run as root: as root, it runs as the package's `postgres` user, in a folder it owns.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    data = Path(tempfile.mkdtemp(prefix="stcnn-pg-"))
    if as_user:
        shutil.chown(data, "postgres")
    port = _free_port()

    def pg(*args, **kwargs):
        return subprocess.run([*as_user, *args], check=True, capture_output=True, text=True, **kwargs)

    try:
        pg(str(bin_dir / "initdb"), "-D", str(data / "db"), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        # Durability off: a test server that loses everything on a crash, and commits at memory speed.
        options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
        pg(str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-o", options, "-l", str(data / "log"), "-w", "start")
    except subprocess.CalledProcessError as exc:
        log = data / "log"
        why = exc.stderr + (log.read_text() if log.exists() else "")
        raise RuntimeError(f"PostgreSQL did not start: {why}") from None
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        pg(str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop")
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server, monkeypatch) -> str:
    """An empty database of its own, named in DATABASE_URL for this process and the ones it starts."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = postgres_server.rsplit("/", 1)[0] + f"/{name}"
    monkeypatch.setenv("DATABASE_URL", url)
    return url
