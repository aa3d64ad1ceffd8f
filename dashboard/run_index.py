"""The runs index: one SQLite table of run records, their schema and migrations, and the run lifecycle
(queued -> running -> done | failed | cancelled) as atomic updates that web threads and workers share."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

STATUSES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
_ID = re.compile(r"[0-9a-f]{32}")


class RunNotFound(KeyError):
    pass


def is_run_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


@dataclass
class Run:
    """One run as the index keeps it: what the pages, the API and the workers are handed."""

    id: str
    name: str
    created_at: float
    updated_at: float
    status: str = "queued"
    stage: str | None = None  # the engine's stage while running ("online training", "segmenting", ...)
    done: int = 0  # frames (or iterations) of the stage done, of total
    total: int = 0
    progress: float = 0.0  # 0..1 over the whole run
    eta_s: float | None = None
    error: str | None = None  # a failed or cancelled run's message, in the page's words
    options: dict = field(default_factory=dict)  # segmentation.options.SegmentOptions fields as given
    video_name: str | None = None  # the user's file name, for display only
    video_ext: str = ".mp4"
    input_hash: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    frame_count: int | None = None
    objects: list = field(default_factory=list)
    device: str | None = None
    model: str | None = None
    run_time_s: float | None = None
    timings: dict = field(default_factory=dict)
    j: float | None = None  # scores against ground truth, when the run has it
    f: float | None = None
    jf: float | None = None
    cancel_requested: bool = False
    worker: str | None = None  # who holds a running run: local:<host>:<pid> or celery:<host>:<pid>
    heartbeat_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    version: int = 1  # the latest result's version, or the one being made

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_COLUMNS = tuple(f.name for f in dataclasses.fields(Run))
_JSON_COLUMNS = ("options", "timings", "objects")
_UPDATABLE = frozenset(_COLUMNS) - {"id", "created_at", "updated_at", "video_name", "video_ext"}

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

# Columns added since the first index was made, for an index an older version left: (column, its definition).
_MIGRATIONS = (
    ("heartbeat_at", "REAL"),
    ("version", "INTEGER NOT NULL DEFAULT 1"),
)

# What a run's row is set to when it is queued again: no trace of the attempt before.
_FRESH = dict(
    status="queued", stage=None, done=0, total=0, progress=0, eta_s=None, error=None, cancel_requested=0,
    worker=None, heartbeat_at=None, started_at=None, finished_at=None,
)  # fmt: skip


def _encode(fields: dict) -> dict:
    unknown = set(fields) - _UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    return {
        column: json.dumps(value) if column in _JSON_COLUMNS and value is not None else value
        for column, value in fields.items()
    }


def _decode(row: sqlite3.Row) -> Run:
    values = dict(row)
    for column in _JSON_COLUMNS:
        values[column] = json.loads(values[column]) if values[column] else ([] if column == "objects" else {})
    values["cancel_requested"] = bool(values["cancel_requested"])
    return Run(**{column: values[column] for column in _COLUMNS})


class RunIndex:
    """The index file and every SQL statement on it."""

    def __init__(self, db_path: Path):
        self.db_path = db_path
        conn = self._connect()
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            columns = {row["name"] for row in conn.execute("PRAGMA table_info(runs)")}
            for column, definition in _MIGRATIONS:
                if column not in columns:
                    conn.execute(f"ALTER TABLE runs ADD COLUMN {column} {definition}")
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        # A fresh connection per call: the web app, its threads and worker processes share the file.
        conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
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

    def _one(self, sql: str, params: tuple) -> sqlite3.Row | None:
        conn = self._connect()
        try:
            return conn.execute(sql, params).fetchone()
        finally:
            conn.close()

    # -- reading ------------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> Run:
        row = self._one("SELECT * FROM runs WHERE id = ?", (run_id,)) if is_run_id(run_id) else None
        if row is None:
            raise RunNotFound(run_id)
        return _decode(row)

    def find_run(self, run_id: str | None) -> Run | None:
        try:
            return self.get_run(run_id) if run_id else None
        except RunNotFound:
            return None

    def list_runs(self, statuses: tuple[str, ...] | None = None, search: str | None = None) -> list[Run]:
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
        return [_decode(row) for row in rows]

    def holds(self, run_id: str, worker: str) -> bool:
        """Whether `worker` still owns the run: not cancelled, deleted, marked failed or rerun elsewhere."""
        row = self._one("SELECT status, worker, cancel_requested FROM runs WHERE id=?", (run_id,))
        return (
            row is not None
            and row["status"] == "running"
            and row["worker"] == worker
            and not row["cancel_requested"]
        )

    def cancel_requested(self, run_id: str) -> bool:
        row = self._one("SELECT cancel_requested FROM runs WHERE id=?", (run_id,))
        return row is None or bool(row["cancel_requested"])  # a deleted run stops too

    # -- writing ------------------------------------------------------------------------------------

    def insert_run(self, conn: sqlite3.Connection, run: Run) -> None:
        values = {column: getattr(run, column) for column in _COLUMNS}
        values.update(_encode({k: values[k] for k in _JSON_COLUMNS}))
        conn.execute(
            f"INSERT INTO runs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})", list(values.values())
        )

    def update_run(self, run_id: str, **fields) -> None:
        fields = {**_encode(fields), "updated_at": time.time()}
        assignments = ", ".join(f"{column} = ?" for column in fields)
        with self.transaction() as conn:
            conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", [*fields.values(), run_id])

    def claim(self, run_id: str, worker: str) -> bool:
        """Move one queued run to running; False if someone else got it first or it was cancelled."""
        with self.transaction() as conn:
            return self._start(conn, run_id, worker, only_queued=True)

    def claim_next(self, worker: str, max_running: int) -> str | None:
        """Claim the oldest queued run if fewer than max_running runs are running (atomically)."""
        with self.transaction() as conn:
            running = conn.execute("SELECT COUNT(*) FROM runs WHERE status='running'").fetchone()[0]
            if running >= max_running:
                return None
            row = conn.execute("SELECT id FROM runs WHERE status='queued' ORDER BY created_at LIMIT 1").fetchone()
            if row is None:
                return None
            self._start(conn, row["id"], worker, only_queued=False)
            return row["id"]

    @staticmethod
    def _start(conn: sqlite3.Connection, run_id: str, worker: str, only_queued: bool) -> bool:
        now = time.time()
        cursor = conn.execute(
            "UPDATE runs SET status='running', worker=?, started_at=?, updated_at=?, heartbeat_at=?,"
            " stage='starting', error=NULL WHERE id=?" + (" AND status='queued'" if only_queued else ""),
            (worker, now, now, now, run_id),
        )
        return cursor.rowcount == 1

    def heartbeat(self, run_id: str, worker: str) -> bool:
        """The worker holding a running run says it is alive; False once the run is no longer its own."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "UPDATE runs SET heartbeat_at=? WHERE id=? AND status='running' AND worker=?",
                (time.time(), run_id, worker),
            )
            return cursor.rowcount == 1

    def finish(self, run_id: str, worker: str, **fields) -> bool:
        """Record a run's outcome only if `worker` still owns it, so a worker given up for dead (or a
        duplicate delivery) can never overwrite what a rerun or the stale-run check wrote since."""
        fields = {**_encode(fields), "updated_at": time.time()}
        assignments = ", ".join(f"{column} = ?" for column in fields)
        with self.transaction() as conn:
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
        with self.transaction() as conn:
            rows = conn.execute(
                "SELECT id, worker FROM runs WHERE status='running' AND COALESCE(heartbeat_at, updated_at) < ?",
                (now - stale_after_s,),
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

    def request_cancel(self, run_id: str) -> str:
        """Ask a run to stop. A queued run is cancelled at once; a running one stops at its next check."""
        now = time.time()
        with self.transaction() as conn:
            conn.execute(
                "UPDATE runs SET status='cancelled', stage=NULL, finished_at=?, updated_at=?"
                " WHERE id=? AND status='queued'",
                (now, now, run_id),
            )
            conn.execute(
                "UPDATE runs SET cancel_requested=1, updated_at=? WHERE id=? AND status='running'",
                (now, run_id),
            )
        return self.get_run(run_id).status

    def queue_again(self, run_id: str) -> None:
        """The row of a finished run, queued with the same inputs: no progress, outcome or scores left."""
        self.update_run(run_id, **_FRESH, run_time_s=None, j=None, f=None, jf=None)

    def queue_version(self, conn: sqlite3.Connection, run_id: str, version: int) -> None:
        """Inside the caller's transaction: queue version `version` of a done run whose latest is version - 1;
        RunNotFound if it is gone, ValueError if it is not done or another correction came first."""
        row = conn.execute("SELECT status, version FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFound(run_id)
        if row["status"] != "done" or row["version"] != version - 1:
            raise ValueError(f"the run is {row['status']}: correct it once it is done")
        fields = {**_FRESH, "version": version, "updated_at": time.time()}
        assignments = ", ".join(f"{column} = ?" for column in fields)
        conn.execute(f"UPDATE runs SET {assignments} WHERE id=?", [*fields.values(), run_id])

    def delete_row(self, run_id: str) -> bool:
        """Remove the run's row; of several deletes at once, only one finds it."""
        with self.transaction() as conn:
            return conn.execute("DELETE FROM runs WHERE id=?", (run_id,)).rowcount == 1
