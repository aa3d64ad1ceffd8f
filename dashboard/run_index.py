"""The runs index: one table of run records (SQLite in the storage folder, or PostgreSQL when DATABASE_URL is
set), its schema and migrations, and the run lifecycle (queued -> running -> done | failed | cancelled) as atomic
updates that web threads and workers, on one machine or several, share."""

from __future__ import annotations

import dataclasses
import os
import re
import time
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.schema import CreateColumn

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
_EMPTY = {"options": dict, "timings": dict, "objects": list}  # the JSON columns: an older row may hold NULL
_UPDATABLE = frozenset(_COLUMNS) - {"id", "created_at", "updated_at", "video_name", "video_ext"}
_SQL_TYPES = {str: sa.Text, int: sa.Integer, float: sa.Float, bool: sa.Boolean}


def _column(spec: dataclasses.Field, hint) -> sa.Column:
    """A Run field as a column: its type, NULL allowed where the field may be None, and the field's default in
    the table too, so a column added to an older index fills the rows already there."""
    kinds = typing.get_args(hint) or (hint,)
    kind = next(k for k in kinds if k is not type(None))
    if kind in (dict, list):
        return sa.Column(spec.name, sa.JSON(none_as_null=True))
    default = None if spec.default is dataclasses.MISSING else spec.default
    if isinstance(default, bool):
        server_default = sa.true() if default else sa.false()
    else:
        server_default = None if default is None else sa.text(repr(default))  # 0, 1, 0.0 or '.mp4'
    return sa.Column(
        spec.name, _SQL_TYPES[kind](), primary_key=spec.name == "id", server_default=server_default,
        nullable=type(None) in kinds,
    )  # fmt: skip


_HINTS = typing.get_type_hints(Run)
runs = sa.Table(
    "runs",
    sa.MetaData(),
    *(_column(spec, _HINTS[spec.name]) for spec in dataclasses.fields(Run)),
    sa.Index("runs_status", "status"),
)

# What a run's row is set to when it is queued again: no trace of the attempt before.
_FRESH = dict(
    status="queued", stage=None, done=0, total=0, progress=0, eta_s=None, error=None, cancel_requested=False,
    worker=None, heartbeat_at=None, started_at=None, finished_at=None,
)  # fmt: skip

# Any constant: the key of the PostgreSQL lock that makes schema changes and claim_next one at a time.
_LOCK_KEY = 0x5C7C


def _checked(fields: dict) -> dict:
    unknown = set(fields) - _UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    return fields


def _decode(row: sa.Row) -> Run:
    values = dict(row._mapping)
    for column, empty in _EMPTY.items():
        if values[column] is None:
            values[column] = empty()
    values["cancel_requested"] = bool(values["cancel_requested"])
    return Run(**{column: values[column] for column in _COLUMNS})


def database_url(url: str) -> sa.URL:
    """The URL as SQLAlchemy takes it: a plain postgresql:// (or postgres://) URL goes through psycopg 3.
    ValueError, in one line, for anything else than SQLite or PostgreSQL."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ValueError("DATABASE_URL is not a database URL (e.g. postgresql://user:password@host/stcnn)") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ValueError(f"DATABASE_URL names {parsed.get_backend_name()}: the run index is SQLite or PostgreSQL")
    return parsed


_ENGINES: dict[sa.URL, Engine] = {}


def _engine(url: sa.URL) -> Engine:
    """One engine per database and process: the web app, its threads and each worker process."""
    if url not in _ENGINES:
        _ENGINES[url] = _postgres(url) if url.get_backend_name() == "postgresql" else _sqlite(url)
    return _ENGINES[url]


def _postgres(url: sa.URL) -> Engine:
    try:
        return sa.create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=16)
    except ImportError:
        raise ValueError("DATABASE_URL names PostgreSQL: install its driver (pip install -e '.[postgres]')") from None


def _sqlite(url: sa.URL) -> Engine:
    # A fresh connection per use (other processes share the file, and none stays open across a fork);
    # pysqlite's own transaction handling is off, so that BEGIN is ours.
    engine = sa.create_engine(url, poolclass=sa.NullPool, connect_args={"timeout": 30, "isolation_level": None})

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.execute("PRAGMA busy_timeout=30000")

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        # A write takes the file's lock at once: two read-then-write transactions never deadlock.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

    return engine


def _forget_parent_connections() -> None:
    # A forked child (Celery's pool, a background callback) must not share its parent's open connections.
    for engine in _ENGINES.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_parent_connections)


def _one_at_a_time(conn: Connection) -> None:
    """Inside a write transaction: no other one that calls this runs until it ends. SQLite's BEGIN IMMEDIATE
    already locks the whole file; PostgreSQL locks only rows, so there an advisory lock, released at COMMIT."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))


class RunIndex:
    """The runs table and every statement on it."""

    def __init__(self, url: str):
        self.url = database_url(url)
        self.engine = _engine(self.url)
        # The SQLite file, for what only a file has (the tests look at its journal mode); None on a server.
        self.db_path = Path(self.url.database) if self.url.get_backend_name() == "sqlite" else None
        try:
            # Every process opens the index (a background callback too, while a worker writes): an index that is
            # already as it should be is only read, so opening it never waits for a writer's lock.
            if self.db_path:  # the file keeps it; set outside a transaction. The web app reads while a worker writes.
                raw = self.engine.raw_connection()
                try:
                    mode = raw.driver_connection.execute("PRAGMA journal_mode").fetchone()[0]
                    if mode != "wal":
                        raw.driver_connection.execute("PRAGMA journal_mode=WAL")
                finally:
                    raw.close()
            with self.engine.connect() as conn:
                ready = _up_to_date(conn)
            if not ready:
                with self.transaction() as conn:
                    _one_at_a_time(conn)  # several processes starting at once make the table once
                    runs.metadata.create_all(conn)
                    _add_missing_columns(conn)
        except sa.exc.OperationalError as exc:
            where, why = self.url.render_as_string(hide_password=True), str(exc.orig).strip().splitlines()[0]
            raise RuntimeError(f"The run index at {where} cannot be opened: {why}") from None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.connect().execution_options(write=True) as conn, conn.begin():
            yield conn

    def _one(self, query) -> sa.Row | None:
        with self.engine.connect() as conn:
            return conn.execute(query).first()

    # -- reading ------------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> Run:
        row = self._one(runs.select().where(runs.c.id == run_id)) if is_run_id(run_id) else None
        if row is None:
            raise RunNotFound(run_id)
        return _decode(row)

    def find_run(self, run_id: str | None) -> Run | None:
        try:
            return self.get_run(run_id) if run_id else None
        except RunNotFound:
            return None

    def list_runs(self, statuses: tuple[str, ...] | None = None, search: str | None = None) -> list[Run]:
        query = runs.select().order_by(runs.c.created_at.desc())
        if statuses:
            query = query.where(runs.c.status.in_(statuses))
        if search:  # case-blind on both databases
            query = query.where(sa.or_(runs.c.name.ilike(f"%{search}%"), runs.c.video_name.ilike(f"%{search}%")))
        with self.engine.connect() as conn:
            return [_decode(row) for row in conn.execute(query)]

    def holds(self, run_id: str, worker: str) -> bool:
        """Whether `worker` still owns the run: not cancelled, deleted, marked failed or rerun elsewhere."""
        row = self._one(sa.select(runs.c.status, runs.c.worker, runs.c.cancel_requested).where(runs.c.id == run_id))
        return row is not None and row.status == "running" and row.worker == worker and not row.cancel_requested

    def cancel_requested(self, run_id: str) -> bool:
        row = self._one(sa.select(runs.c.cancel_requested).where(runs.c.id == run_id))
        return row is None or bool(row.cancel_requested)  # a deleted run stops too

    # -- writing ------------------------------------------------------------------------------------

    def insert_run(self, conn: Connection, run: Run) -> None:
        conn.execute(runs.insert().values(**run.to_dict()))

    def _update(self, conn: Connection, run_id: str, *where, **fields) -> bool:
        """UPDATE one run's row if `where` holds of it; whether it did."""
        fields = {**_checked(fields), "updated_at": time.time()}
        return conn.execute(runs.update().where(runs.c.id == run_id, *where).values(**fields)).rowcount == 1

    def update_run(self, run_id: str, **fields) -> None:
        with self.transaction() as conn:
            self._update(conn, run_id, **fields)

    def claim(self, run_id: str, worker: str) -> bool:
        """Move one queued run to running; False if someone else got it first or it was cancelled."""
        with self.transaction() as conn:
            return self._start(conn, run_id, worker)

    def claim_next(self, worker: str, max_running: int) -> str | None:
        """Claim the oldest queued run if fewer than max_running runs are running (atomically)."""
        with self.transaction() as conn:
            _one_at_a_time(conn)  # else two claimers could both count one run too few
            running = conn.execute(sa.select(sa.func.count()).where(runs.c.status == "running")).scalar_one()
            if running >= max_running:
                return None
            # The row stays locked to this transaction; a Celery worker's claim of it waits, then finds it taken.
            oldest = (
                sa.select(runs.c.id).where(runs.c.status == "queued").order_by(runs.c.created_at).limit(1)
                .with_for_update(skip_locked=True)
            )  # fmt: skip
            run_id = conn.execute(oldest).scalar()
            return run_id if run_id and self._start(conn, run_id, worker) else None

    def _start(self, conn: Connection, run_id: str, worker: str) -> bool:
        now = time.time()
        return self._update(
            conn, run_id, runs.c.status == "queued", status="running", worker=worker, started_at=now,
            heartbeat_at=now, stage="starting", error=None,
        )  # fmt: skip

    def heartbeat(self, run_id: str, worker: str) -> bool:
        """The worker holding a running run says it is alive; False once the run is no longer its own."""
        with self.transaction() as conn:
            query = (
                runs.update()
                .where(runs.c.id == run_id, runs.c.status == "running", runs.c.worker == worker)
                .values(heartbeat_at=time.time())
            )
            return conn.execute(query).rowcount == 1

    def finish(self, run_id: str, worker: str, **fields) -> bool:
        """Record a run's outcome only if `worker` still owns it, so a worker given up for dead (or a
        duplicate delivery) can never overwrite what a rerun or the stale-run check wrote since."""
        with self.transaction() as conn:
            return self._update(conn, run_id, runs.c.status == "running", runs.c.worker == worker, **fields)

    def fail_stale(self, stale_after_s: float, alive=None) -> list[str]:
        """Mark failed every running run whose worker has been silent for stale_after_s (killed, lost its
        machine); its inputs stay, so Run again works. Returns the ids marked.

        alive(worker) -> bool may vouch for a worker it can see directly (a local process that exists), whose
        heartbeat may just be late: a busy machine importing torch can starve the heartbeat thread."""
        now = time.time()
        silent = (
            runs.c.status == "running",
            sa.func.coalesce(runs.c.heartbeat_at, runs.c.updated_at) < now - stale_after_s,
        )
        error = (
            f"The worker stopped responding (no heartbeat for {stale_after_s:.0f} s): it was killed or its machine "
            "went away. The inputs are kept: press Run again."
        )
        marked = []
        with self.transaction() as conn:
            for row in conn.execute(sa.select(runs.c.id, runs.c.worker).where(*silent)).all():
                if alive and alive(row.worker or ""):
                    continue
                # Still silent as it is marked: a heartbeat or an outcome written meanwhile wins.
                if self._update(
                    conn, row.id, *silent, status="failed", stage=None, eta_s=None, finished_at=now,
                    cancel_requested=False, error=error,
                ):  # fmt: skip
                    marked.append(row.id)
        return marked

    def request_cancel(self, run_id: str) -> str:
        """Ask a run to stop. A queued run is cancelled at once; a running one stops at its next check."""
        with self.transaction() as conn:
            self._update(conn, run_id, runs.c.status == "queued", status="cancelled", stage=None,
                         finished_at=time.time())  # fmt: skip
            self._update(conn, run_id, runs.c.status == "running", cancel_requested=True)
        return self.get_run(run_id).status

    def queue_again(self, run_id: str) -> None:
        """The row of a finished run, queued with the same inputs: no progress, outcome or scores left."""
        self.update_run(run_id, **_FRESH, run_time_s=None, j=None, f=None, jf=None)

    def queue_version(self, conn: Connection, run_id: str, version: int) -> None:
        """Inside the caller's transaction: queue version `version` of a done run whose latest is version - 1;
        RunNotFound if it is gone, ValueError if it is not done or another correction came first."""
        query = sa.select(runs.c.status, runs.c.version).where(runs.c.id == run_id).with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise RunNotFound(run_id)
        if row.status != "done" or row.version != version - 1:
            raise ValueError(f"the run is {row.status}: correct it once it is done")
        self._update(conn, run_id, **_FRESH, version=version)

    def delete_row(self, run_id: str) -> bool:
        """Remove the run's row; of several deletes at once, only one finds it."""
        with self.transaction() as conn:
            return conn.execute(runs.delete().where(runs.c.id == run_id)).rowcount == 1


def _up_to_date(conn: Connection) -> bool:
    """Whether the table exists with every Run field as a column (read only)."""
    inspector = sa.inspect(conn)
    if not inspector.has_table("runs"):
        return False
    return {column.name for column in runs.columns} <= {column["name"] for column in inspector.get_columns("runs")}


def _add_missing_columns(conn: Connection) -> None:
    """The migrations: each Run field an older index lacks becomes a column, with the field's default."""
    present = {column["name"] for column in sa.inspect(conn).get_columns("runs")}
    for column in runs.columns:
        if column.name not in present:
            spec = CreateColumn(column).compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE runs ADD COLUMN {spec}"))
