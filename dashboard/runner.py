"""Where queued runs get executed: a local process per run (default) or a Celery worker (REDIS_URL).

Runs are never held by a page or a callback: the queue is the runs index itself, so reloading a page,
closing the browser or starting another run leaves a running run alone.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from functools import lru_cache

import psutil

from dashboard.config import Settings
from dashboard.storage import Storage, is_run_id

log = logging.getLogger(__name__)
HOST = socket.gethostname()


@lru_cache(maxsize=1)
def local_device() -> tuple[str, str]:
    """(short label, detail) of what this machine's runs run on by default."""
    try:
        import torch

        if torch.cuda.is_available():
            return "GPU", torch.cuda.get_device_name(0)
    except Exception:  # no torch or a broken driver: the engine falls back to the CPU as well
        pass
    return "CPU", f"{os.cpu_count()} cores (no CUDA GPU found)"


def _alive(pid: int) -> bool:
    # A killed process whose parent died too may linger as a zombie until init reaps it: that is dead.
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


class LocalRunner:
    """A daemon thread that claims queued runs from the index and runs each in its own process.

    A process (not a thread) per run keeps the web server responsive and lets a crash or an
    out-of-memory kill take down only that run. Several web workers may each have a runner: the claim
    is a transaction, so a run is started once, and max_parallel counts running runs in the index.
    """

    def __init__(
        self, storage: Storage, max_parallel: int = 1, poll_s: float = 1.0, stale_after_s: float = 60.0
    ):
        self.storage, self.max_parallel, self.poll_s = storage, max_parallel, poll_s
        self.stale_after_s = stale_after_s
        self.children: dict[str, subprocess.Popen] = {}
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self) -> LocalRunner:
        if self.thread is None:
            self.thread = threading.Thread(target=self._loop, name="stcnn-runner", daemon=True)
            self.thread.start()
        return self

    @property
    def has_gpu(self) -> bool:
        """Whether runs here can ask for the GPU: this machine's, as the runs run on it."""
        return local_device()[0] == "GPU"

    def submit(self, run_id: str) -> None:
        self.wake.set()

    def _loop(self) -> None:
        self.requeue_orphans()
        while self.storage.runs_root.exists():  # until a test's storage folder is removed
            try:
                self._reap()
                fail_stale(self.storage, self.stale_after_s, alive=local_process_alive)
                while run_id := self.storage.claim_next(f"local:{HOST}:{os.getpid()}", self.max_parallel):
                    self._spawn(run_id)
            except Exception:  # keep the runner alive whatever one run does
                log.exception("local runner")
            self.wake.wait(self.poll_s)
            self.wake.clear()

    def _spawn(self, run_id: str) -> None:
        if not is_run_id(run_id):  # only ever an id from our own index, but it becomes an argument
            raise ValueError(f"not a run id: {run_id!r}")
        env = {**os.environ, "STCNN_STORAGE": str(self.storage.root)}
        # Parallel runs share the cores: torch's default of one thread per core each would oversubscribe them.
        threads = str(max(1, (os.cpu_count() or 1) // self.max_parallel))
        env.setdefault("OMP_NUM_THREADS", threads)
        env.setdefault("MKL_NUM_THREADS", threads)
        log_file = self.storage.log_path(run_id).open("ab")
        child = subprocess.Popen(
            [sys.executable, "-m", "dashboard.jobs", run_id], env=env, stdout=log_file, stderr=log_file
        )
        log_file.close()
        self.children[run_id] = child
        self.storage.update_run(run_id, worker=f"local:{HOST}:{child.pid}")

    def _reap(self) -> None:
        for run_id, child in list(self.children.items()):
            if child.poll() is None:
                continue
            del self.children[run_id]
            run = self.storage.find_run(run_id)
            if run and run.status == "running":  # the process died before recording an outcome
                self.storage.update_run(
                    run_id, status="failed", finished_at=time.time(),
                    error=f"The worker process stopped unexpectedly (exit code {child.returncode}).",
                )  # fmt: skip

    def requeue_orphans(self) -> None:
        """Runs left 'running' by a local process that no longer exists (server restart) go back in the queue."""
        for run in self.storage.list_runs(statuses=("running",)):
            worker = run.worker or ""
            if worker.startswith(f"local:{HOST}:") and not local_process_alive(worker):
                self.storage.update_run(run.id, status="queued", worker=None, stage=None)
                log.info("run %s was interrupted; queued again", run.id)


def local_process_alive(worker: str) -> bool:
    """True for 'local:<this host>:<pid>' while that process exists."""
    host, _, pid = worker.removeprefix("local:").rpartition(":")
    return worker.startswith("local:") and host == HOST and pid.isdigit() and _alive(int(pid))


def fail_stale(storage: Storage, stale_after_s: float, alive=None) -> None:
    for run_id in storage.fail_stale(stale_after_s, alive):
        log.warning("run %s: no heartbeat for %.0f s; marked failed", run_id, stale_after_s)


class CeleryRunner:
    """Sends run ids to a Celery worker (see dashboard/worker.py); the worker claims them from the index.

    A thread in the web process watches the heartbeats: a worker killed mid-run records nothing, and Redis
    would only hand its message out again after an hour (and then the run is no longer queued)."""

    def __init__(self, storage: Storage, redis_url: str, stale_after_s: float = 60.0, poll_s: float = 1.0):
        from dashboard.celery_app import make_celery

        self.storage, self.celery = storage, make_celery(redis_url)
        self.has_gpu = None  # the workers' own machines: not known here
        self.stale_after_s, self.poll_s = stale_after_s, poll_s
        self.thread: threading.Thread | None = None

    def start(self) -> CeleryRunner:
        if self.thread is None:
            self.thread = threading.Thread(target=self._watch, name="stcnn-watchdog", daemon=True)
            self.thread.start()
        return self

    def _watch(self) -> None:
        while self.storage.runs_root.exists():  # until a test's storage folder is removed
            try:
                fail_stale(self.storage, self.stale_after_s)
            except Exception:
                log.exception("stale-run check")
            time.sleep(self.poll_s)

    def submit(self, run_id: str) -> None:
        # The run id alone: the worker finds the run's files under its own STCNN_STORAGE.
        self.celery.send_task("stcnn.run_job", args=[run_id])


def make_runner(storage: Storage, settings: Settings):
    poll_s = min(1.0, settings.heartbeat_s)
    if settings.redis_url:
        return CeleryRunner(storage, settings.redis_url, settings.stale_after_s, poll_s)
    return LocalRunner(storage, settings.max_parallel_runs, poll_s, settings.stale_after_s)
