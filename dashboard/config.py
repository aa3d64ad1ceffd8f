"""Settings read from the environment once, so every module agrees on them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    storage: Path
    max_upload_mb: int
    redis_url: str | None
    max_parallel_runs: int
    demo: bool

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def load_settings(storage: str | os.PathLike | None = None) -> Settings:
    return Settings(
        storage=Path(storage or os.environ.get("STCNN_STORAGE", "./storage")).resolve(),
        max_upload_mb=int(os.environ.get("STCNN_MAX_UPLOAD_MB", "4096")),
        redis_url=os.environ.get("REDIS_URL") or None,
        # Runs are CPU/GPU heavy: by default one at a time, the rest wait in the queue.
        max_parallel_runs=max(1, int(os.environ.get("STCNN_MAX_PARALLEL_RUNS", "1"))),
        demo=os.environ.get("STCNN_DEMO", "1") != "0",
    )
