"""Settings read from the environment once, so every module agrees on them."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

TOKEN_ENV = "STCNN_API_TOKEN"
DATABASE_ENV = "DATABASE_URL"


@dataclass(frozen=True)
class Settings:
    storage: Path
    max_upload_mb: int
    redis_url: str | None
    max_parallel_runs: int
    demo: bool
    # Required on every request when set (Authorization: Bearer, or the cookie the pages get); see dashboard/auth.py.
    api_token: str | None = None
    # The run index on a server database (postgresql://...), shared by web and workers on several machines;
    # None: index.sqlite in the storage folder, for one machine.
    database_url: str | None = None
    # A running run's worker writes a heartbeat this often; a run silent for stale_after_s is marked failed.
    heartbeat_s: float = 5.0
    stale_after_s: float = 60.0

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def load_settings(storage: str | os.PathLike | None = None) -> Settings:
    heartbeat_s = max(0.2, float(os.environ.get("STCNN_HEARTBEAT_S", "5")))
    return Settings(
        # Made absolute, not resolved: each machine's own path to the shared files, mount point as given.
        storage=Path(os.path.abspath(storage or os.environ.get("STCNN_STORAGE", "./storage"))),
        max_upload_mb=int(os.environ.get("STCNN_MAX_UPLOAD_MB", "4096")),
        redis_url=os.environ.get("REDIS_URL") or None,
        # Runs are CPU/GPU heavy: by default one at a time, the rest wait in the queue.
        max_parallel_runs=max(1, int(os.environ.get("STCNN_MAX_PARALLEL_RUNS", "1"))),
        demo=os.environ.get("STCNN_DEMO", "1") != "0",
        api_token=os.environ.get(TOKEN_ENV) or None,
        database_url=database_url(),
        heartbeat_s=heartbeat_s,
        # Several missed heartbeats, so a busy machine is not mistaken for a dead worker.
        stale_after_s=max(3 * heartbeat_s, float(os.environ.get("STCNN_STALE_AFTER_S", "60"))),
    )


def database_url() -> str | None:
    return os.environ.get(DATABASE_ENV) or None


def is_loopback(host: str) -> bool:
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or 0.0.0.0: reachable from elsewhere


def check_bind(host: str, settings: Settings) -> None:
    """Refuse to serve beyond this machine without a token: the API starts runs and deletes results."""
    if not is_loopback(host) and not settings.api_token:
        raise SystemExit(
            f"Refusing to listen on {host}: the dashboard would be open to the network without a password. "
            f"Set {TOKEN_ENV} to a long random secret (e.g. `export {TOKEN_ENV}=$(python -c "
            "'import secrets; print(secrets.token_urlsafe(32))')`), or bind to 127.0.0.1."
        )


def check_index(settings: Settings) -> None:
    """Refuse to start without a run index: a bad DATABASE_URL or a server out of reach is one line, not a
    traceback from the first request."""
    from dashboard.storage import Storage

    try:
        Storage(settings.storage)
    except (ValueError, RuntimeError) as exc:
        raise SystemExit(str(exc)) from None
