"""The one owner of the storage folder: a SQLite index of runs and one folder of files per run.

Layout (every path derives from a run id or an upload token, never from a user's file name)::

    <root>/index.sqlite          runs index (WAL, so the web app reads while a worker writes)
    <root>/uploads/<token>.part  videos and masks being received in chunks
    <root>/uploads/masks-<uuid>.staging/  masks named by frame, gathered from uploads while a run is checked
    <root>/runs/<id>/input/      video.<ext>, gt.zip (as uploaded), and mask.png (frame 0's mask) or
                                 masks/00000.png, 00005.png, ... (masks named by frame, for objects that
                                 appear later)
    <root>/runs/<id>/gt/         ground-truth masks unpacked from gt.zip
    <root>/runs/<id>/result/     the engine's out_dir (appears whole or not at all): the latest version
    <root>/runs/<id>/versions/<n>/  earlier versions' results, kept as they were (n = 1, 2, ...; the runs row's
                                 `version` is the latest's, or the one being made)
    <root>/runs/<id>/input/corrections/<n>/  the masks version n >= 2 is made from: version n - 1's annotations
                                 (its state/annotations/) with one frame corrected, named by frame
    <root>/runs/<id>/preview.jpg latest masked frame while running
    <root>/runs/<id>/check.png   frame 0 with the first-frame mask drawn on it
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
VIDEO_EXTS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg"}
_ID = re.compile(r"[0-9a-f]{32}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    stage TEXT,
    done INTEGER NOT NULL DEFAULT 0,
    total INTEGER NOT NULL DEFAULT 0,
    progress REAL NOT NULL DEFAULT 0,
    eta_s REAL,
    error TEXT,
    options TEXT NOT NULL DEFAULT '{}',
    video_name TEXT,
    video_ext TEXT NOT NULL DEFAULT '.mp4',
    input_hash TEXT,
    width INTEGER,
    height INTEGER,
    fps REAL,
    frame_count INTEGER,
    objects TEXT,
    device TEXT,
    model TEXT,
    run_time_s REAL,
    timings TEXT,
    j REAL,
    f REAL,
    jf REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    heartbeat_at REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    version INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
"""

# Columns a caller may set through update_run; anything else is a programming error.
_UPDATABLE = {
    "name", "status", "stage", "done", "total", "progress", "eta_s", "error", "options", "input_hash",
    "width", "height", "fps", "frame_count", "objects", "device", "model", "run_time_s", "timings",
    "j", "f", "jf", "cancel_requested", "worker", "heartbeat_at", "started_at", "finished_at", "version",
}  # fmt: skip
_JSON_COLUMNS = ("options", "timings", "objects")


class RunNotFound(KeyError):
    pass


def is_run_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


class Storage:
    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.runs_root = self.root / "runs"
        self.uploads_root = self.root / "uploads"
        self.db_path = self.root / "index.sqlite"
        for folder in (self.root, self.runs_root, self.uploads_root):
            folder.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            columns = {row["name"] for row in conn.execute("PRAGMA table_info(runs)")}
            if "heartbeat_at" not in columns:  # an index made before heartbeats existed
                conn.execute("ALTER TABLE runs ADD COLUMN heartbeat_at REAL")
            if "version" not in columns:  # an index made before corrections existed
                conn.execute("ALTER TABLE runs ADD COLUMN version INTEGER NOT NULL DEFAULT 1")
        finally:
            conn.close()

    # -- database -----------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # A fresh connection per call: the web app, its threads and worker processes share the file.
        conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    @staticmethod
    def _row_to_run(row: sqlite3.Row) -> dict:
        run = dict(row)
        for column in _JSON_COLUMNS:
            run[column] = json.loads(run[column]) if run[column] else ({} if column != "objects" else [])
        return run

    # -- paths --------------------------------------------------------------------------------------

    def run_dir(self, run_id: str) -> Path:
        if not is_run_id(run_id):
            raise RunNotFound(run_id)
        return self.runs_root / run_id

    def contained_file(self, run_id: str, relative: str) -> Path | None:
        """runs/<id>/<relative> if it is a plain file really inside that run folder, else None: a symlink
        (planted in the storage folder, pointing anywhere) is never followed to serve or read a file."""
        base = self.run_dir(run_id)
        path = base / relative
        try:
            for part in (path, *path.parents):
                if part == self.root:
                    break
                if part.is_symlink():
                    return None
            resolved = path.resolve(strict=True)
        except (OSError, ValueError):
            return None
        if not resolved.is_relative_to(base.resolve()) or not resolved.is_file():
            return None
        return resolved

    def input_video(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "input" / f"video{self.get_run(run_id)['video_ext']}"

    def input_mask(self, run_id: str) -> Path | None:
        """The masks the engine starts from: input/masks/ (named by frame) when the run has later frames' masks,
        else input/mask.png; None for a run started from boxes alone."""
        folder = self.run_dir(run_id) / "input" / "masks"
        if folder.is_dir():
            return folder
        prompted = self.input_boxes_path(run_id).exists() or self.input_strokes_path(run_id).exists()
        return None if prompted else folder.with_name("mask.png")

    def input_boxes_path(self, run_id: str) -> Path:
        """input/boxes.json: the boxes a run was started from, as segmentation.prompts.Box fields."""
        return self.run_dir(run_id) / "input" / "boxes.json"

    def input_strokes_path(self, run_id: str) -> Path:
        """input/strokes.json: the strokes a run was started from, as segmentation.prompts.Stroke fields."""
        return self.run_dir(run_id) / "input" / "strokes.json"

    def gt_zip(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "input" / "gt.zip"

    def gt_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "gt"

    def result_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "result"

    def version_dir(self, run_id: str, version: int) -> Path:
        """An earlier version's result (the latest is result_dir)."""
        return self.run_dir(run_id) / "versions" / str(int(version))

    def correction_masks(self, run_id: str, version: int) -> Path:
        return self.run_dir(run_id) / "input" / "corrections" / str(int(version))

    def earlier_versions(self, run_id: str) -> list[int]:
        folder = self.run_dir(run_id) / "versions"
        found = folder.iterdir() if folder.is_dir() and not folder.is_symlink() else []
        return sorted(int(p.name) for p in found if p.name.isdigit() and p.is_dir())

    def preview_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "preview.jpg"

    def check_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "check.png"

    def evaluation_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "evaluation.csv"

    def log_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "worker.log"

    # -- uploads received in chunks -----------------------------------------------------------------

    def new_upload(self, filename: str) -> str:
        token = uuid.uuid4().hex
        (self.uploads_root / f"{token}.part").touch()
        # The user's file name is kept only as metadata (display, extension), never as a path.
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

    # -- runs ---------------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        name: str,
        video: Path,
        mask: Path | None,
        video_name: str,
        options: dict | None = None,
        gt_zip: Path | None = None,
        boxes: list[dict] | None = None,
        strokes: list[dict] | None = None,
    ) -> str:
        """Move the received files into a new run folder and queue the run. `mask`: frame 0's PNG, or a folder of
        masks named by frame (00000.png, ...); or None with `boxes` (segmentation.prompts.Box fields)."""
        run_id = uuid.uuid4().hex
        ext = Path(video_name).suffix.lower()
        ext = ext if ext in VIDEO_EXTS else ".bin"
        input_dir = self.run_dir(run_id) / "input"
        try:
            input_dir.mkdir(parents=True)
            shutil.move(video, input_dir / f"video{ext}")
            if mask is not None:
                shutil.move(mask, input_dir / ("masks" if mask.is_dir() else "mask.png"))
            if boxes:
                (input_dir / "boxes.json").write_text(json.dumps(boxes))
            if strokes:
                (input_dir / "strokes.json").write_text(json.dumps(strokes))
            if gt_zip is not None:
                shutil.move(gt_zip, input_dir / "gt.zip")
            now = time.time()
            with self._transaction() as conn:
                conn.execute(
                    "INSERT INTO runs (id, name, status, options, video_name, video_ext, created_at, updated_at)"
                    " VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)",
                    (run_id, name.strip()[:200] or Path(video_name).stem or "run", json.dumps(options or {}),
                     video_name[-200:], ext, now, now),
                )  # fmt: skip
        except BaseException:
            # Disk full half way, or a bug: no folder without a row (the row is the last step).
            shutil.rmtree(self.run_dir(run_id), ignore_errors=True)
            raise
        return run_id

    def get_run(self, run_id: str) -> dict:
        if not is_run_id(run_id):
            raise RunNotFound(run_id)
        conn = self._connect()
        try:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        finally:
            conn.close()
        if row is None:
            raise RunNotFound(run_id)
        return self._row_to_run(row)

    def find_run(self, run_id: str | None) -> dict | None:
        try:
            return self.get_run(run_id) if run_id else None
        except RunNotFound:
            return None

    def list_runs(self, statuses: tuple[str, ...] | None = None, search: str | None = None) -> list[dict]:
        sql, params = "SELECT * FROM runs WHERE 1=1", []
        if statuses:
            sql += f" AND status IN ({','.join('?' * len(statuses))})"
            params += list(statuses)
        if search:
            sql += " AND (name LIKE ? OR video_name LIKE ?)"
            params += [f"%{search}%"] * 2
        conn = self._connect()
        try:
            rows = conn.execute(sql + " ORDER BY created_at DESC", params).fetchall()
        finally:
            conn.close()
        return [self._row_to_run(row) for row in rows]

    def update_run(self, run_id: str, **fields) -> None:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        for column in _JSON_COLUMNS:
            if column in fields and fields[column] is not None:
                fields[column] = json.dumps(fields[column])
        fields["updated_at"] = time.time()
        assignments = ", ".join(f"{column} = ?" for column in fields)
        with self._transaction() as conn:
            conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", [*fields.values(), run_id])

    def claim(self, run_id: str, worker: str) -> bool:
        """Move one queued run to running; False if someone else got it first or it was cancelled."""
        now = time.time()
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status='running', worker=?, started_at=?, updated_at=?, heartbeat_at=?,"
                " stage='starting', error=NULL WHERE id=? AND status='queued'",
                (worker, now, now, now, run_id),
            )
            return cursor.rowcount == 1

    def claim_next(self, worker: str, max_running: int) -> str | None:
        """Claim the oldest queued run if fewer than max_running runs are running (atomically)."""
        now = time.time()
        with self._transaction() as conn:
            running = conn.execute("SELECT COUNT(*) FROM runs WHERE status='running'").fetchone()[0]
            if running >= max_running:
                return None
            row = conn.execute(
                "SELECT id FROM runs WHERE status='queued' ORDER BY created_at LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE runs SET status='running', worker=?, started_at=?, updated_at=?, heartbeat_at=?,"
                " stage='starting', error=NULL WHERE id=?",
                (worker, now, now, now, row["id"]),
            )
            return row["id"]

    def heartbeat(self, run_id: str, worker: str) -> bool:
        """The worker holding a running run says it is alive; False once the run is no longer its own."""
        now = time.time()
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE runs SET heartbeat_at=? WHERE id=? AND status='running' AND worker=?",
                (now, run_id, worker),
            )
            return cursor.rowcount == 1

    def holds(self, run_id: str, worker: str) -> bool:
        """Whether `worker` still owns the run: not cancelled, deleted, marked failed or rerun elsewhere."""
        conn = self._connect()
        try:
            row = conn.execute(
                "SELECT status, worker, cancel_requested FROM runs WHERE id=?", (run_id,)
            ).fetchone()
        finally:
            conn.close()
        return (
            row is not None
            and row["status"] == "running"
            and row["worker"] == worker
            and not row["cancel_requested"]
        )

    def finish(self, run_id: str, worker: str, **fields) -> bool:
        """Record a run's outcome only if `worker` still owns it, so a worker given up for dead (or a
        duplicate delivery) can never overwrite what a rerun or the stale-run check wrote since."""
        fields["updated_at"] = time.time()
        for column in _JSON_COLUMNS:
            if column in fields and fields[column] is not None:
                fields[column] = json.dumps(fields[column])
        unknown = set(fields) - _UPDATABLE - {"updated_at"}
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        assignments = ", ".join(f"{column} = ?" for column in fields)
        with self._transaction() as conn:
            cursor = conn.execute(
                f"UPDATE runs SET {assignments} WHERE id = ? AND status='running' AND worker=?",
                [*fields.values(), run_id, worker],
            )
            return cursor.rowcount == 1

    def fail_stale(self, stale_after_s: float, alive=None) -> list[str]:
        """Mark failed every running run whose worker has been silent for stale_after_s (killed, lost its
        machine); its inputs stay, so Run again works. Returns the ids marked.

        alive(worker) -> bool may vouch for a worker it can see directly (a local process that exists), whose
        heartbeat may just be late: a busy machine importing torch can starve the heartbeat thread."""
        now = time.time()
        cutoff = now - stale_after_s
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT id, worker FROM runs WHERE status='running' AND COALESCE(heartbeat_at, updated_at) < ?",
                (cutoff,),
            ).fetchall()
            ids = [row["id"] for row in rows if not (alive and alive(row["worker"] or ""))]
            for run_id in ids:
                conn.execute(
                    "UPDATE runs SET status='failed', stage=NULL, eta_s=NULL, finished_at=?, updated_at=?,"
                    " cancel_requested=0, error=? WHERE id=?",
                    (now, now, f"The worker stopped responding (no heartbeat for {stale_after_s:.0f} s): it was "
                     "killed or its machine went away. The inputs are kept: press Run again.", run_id),
                )  # fmt: skip
        return ids

    def cancel_requested(self, run_id: str) -> bool:
        conn = self._connect()
        try:
            row = conn.execute("SELECT cancel_requested FROM runs WHERE id=?", (run_id,)).fetchone()
        finally:
            conn.close()
        return row is None or bool(row["cancel_requested"])  # a deleted run stops too

    def request_cancel(self, run_id: str) -> str:
        """Ask a run to stop. A queued run is cancelled at once; a running one stops at its next check."""
        now = time.time()
        with self._transaction() as conn:
            conn.execute(
                "UPDATE runs SET status='cancelled', stage=NULL, finished_at=?, updated_at=?"
                " WHERE id=? AND status='queued'",
                (now, now, run_id),
            )
            conn.execute(
                "UPDATE runs SET cancel_requested=1, updated_at=? WHERE id=? AND status='running'",
                (now, run_id),
            )
        return self.get_run(run_id)["status"]

    def requeue(self, run_id: str) -> None:
        """Queue a finished run again with the same inputs; its old results are removed."""
        run = self.get_run(run_id)
        if run["status"] not in FINISHED:
            raise ValueError("only a finished, failed or cancelled run can be run again")
        shutil.rmtree(self.result_dir(run_id), ignore_errors=True)
        for path in (self.preview_path(run_id), self.evaluation_path(run_id)):
            path.unlink(missing_ok=True)
        self.update_run(
            run_id, status="queued", stage=None, done=0, total=0, progress=0, eta_s=None, error=None,
            cancel_requested=0, worker=None, heartbeat_at=None, started_at=None, finished_at=None, run_time_s=None,
            j=None, f=None, jf=None,
        )  # fmt: skip

    def queue_correction(self, run_id: str, masks: Path, version: int) -> None:
        """Queue version `version` of a done run whose latest is version - 1, made from `masks` (a folder, moved
        into input/corrections/); RunNotFound if the run is gone, ValueError if it is not done or another
        correction came first. The latest result stays until the job makes the new one."""
        now = time.time()
        target = self.correction_masks(run_id, version)
        with self._transaction() as conn:
            row = conn.execute("SELECT status, version FROM runs WHERE id=?", (run_id,)).fetchone()
            if row is None:
                raise RunNotFound(run_id)
            if row["status"] != "done" or row["version"] != version - 1:
                raise ValueError(f"the run is {row['status']}: correct it once it is done")
            shutil.rmtree(target, ignore_errors=True)  # left by a correction that failed
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(masks, target)
            conn.execute(
                "UPDATE runs SET status='queued', version=?, stage=NULL, done=0, total=0, progress=0, eta_s=NULL,"
                " error=NULL, cancel_requested=0, worker=NULL, heartbeat_at=NULL, started_at=NULL,"
                " finished_at=NULL, updated_at=? WHERE id=?",
                (version, now, run_id),
            )
        for path in (self.run_dir(run_id) / "masks.zip", self.preview_path(run_id)):
            path.unlink(missing_ok=True)  # the latest version's masks zip is made again from the new result

    def delete_run(self, run_id: str) -> None:
        """Remove the run and its folder; RunNotFound if it is gone. Of several deletes at once, the one whose
        DELETE removed the row wins (and removes the folder); the others find no run."""
        if not is_run_id(run_id):
            raise RunNotFound(run_id)
        with self._transaction() as conn:
            deleted = conn.execute("DELETE FROM runs WHERE id=?", (run_id,)).rowcount
        if deleted != 1:
            raise RunNotFound(run_id)
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    # -- ground truth -------------------------------------------------------------------------------

    def unpack_gt(self, run_id: str) -> Path | None:
        """Unpack gt.zip into gt/ (PNG files only, flattened, names sanitised); None if absent. The zip is judged
        against the run's video first (dashboard.archives): InputError, and no gt/ folder, if it does not fit."""
        from dashboard.archives import open_pngs, unpack

        source = self.gt_zip(run_id)
        if not source.exists():
            return None
        run = self.get_run(run_id)
        target = self.gt_dir(run_id)
        shutil.rmtree(target, ignore_errors=True)
        what = "The ground truth"
        archive, members = open_pngs(source, what, (run["width"], run["height"]), run["frame_count"])
        try:
            with archive:
                target.mkdir(parents=True)
                for member, name in members:
                    unpack(archive, member, target / re.sub(r"[^0-9A-Za-z_.-]", "_", name), name=name, what=what)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        return target
