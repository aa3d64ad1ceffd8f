"""Files being received: videos and masks sent in chunks, and private staging folders, under uploads/.

    uploads/<token>.part  + <token>.json (the user's file name, kept as metadata only, never as a path)
    uploads/masks-<uuid>.staging/  masks named by frame, gathered from uploads while a run is checked
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from dashboard.run_index import RunNotFound, is_run_id


class Uploads:
    def __init__(self, root: Path):
        self.uploads_root = root / "uploads"
        self.uploads_root.mkdir(parents=True, exist_ok=True)

    def new_upload(self, filename: str) -> str:
        token = uuid.uuid4().hex
        (self.uploads_root / f"{token}.part").touch()
        (self.uploads_root / f"{token}.json").write_text(json.dumps({"filename": filename[-200:]}))
        return token

    def upload_path(self, token: str) -> Path:
        path = self.uploads_root / f"{token}.part"
        if not is_run_id(token) or not path.exists():
            raise RunNotFound(token)
        return path

    def upload_filename(self, token: str) -> str:
        self.upload_path(token)
        return json.loads((self.uploads_root / f"{token}.json").read_text())["filename"]

    def append_upload(self, token: str, offset: int, chunks: Iterator[bytes], limit: int) -> int:
        """Write chunks at offset (must equal the bytes received so far); return the new size."""
        path = self.upload_path(token)
        size = path.stat().st_size
        if offset != size:
            raise ValueError(f"expected offset {size}, got {offset}")
        with path.open("ab") as out:
            for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise OverflowError("upload larger than the limit")
                out.write(chunk)
        return size

    def new_staging(self) -> Path:
        """An empty private folder under uploads/ (removed by the caller, or by cleanup_uploads a day later)."""
        folder = self.uploads_root / f"masks-{uuid.uuid4().hex}.staging"
        folder.mkdir()
        return folder

    def discard_upload(self, token: str) -> None:
        for suffix in (".part", ".json"):
            (self.uploads_root / f"{token}{suffix}").unlink(missing_ok=True)

    def cleanup_uploads(self, max_age_s: float = 24 * 3600) -> None:
        cutoff = time.time() - max_age_s
        for path in self.uploads_root.iterdir():
            try:
                if path.lstat().st_mtime >= cutoff:
                    continue
                if path.name.endswith(".staging") and not path.is_symlink() and path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)  # left by a process killed while checking a run
                else:
                    path.unlink(missing_ok=True)
            except OSError:  # another web worker removed it first, or it is a folder: not ours to judge
                continue
