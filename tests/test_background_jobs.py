"""The dashboard's background jobs (diskcache, no Redis) start in a clean process, not a fork of the web one."""

import threading
import time

import diskcache

from dashboard.app import SpawningDiskcacheManager

HELD = threading.Lock()  # stands for a lock some thread of the web process holds (a logger's, a thread pool's)


def job(value):
    with HELD:  # a fork would copy HELD locked, and wait for ever here
        return value * 2


def test_a_job_runs_while_a_thread_of_the_web_process_holds_a_lock(tmp_path):
    manager = SpawningDiskcacheManager(diskcache.Cache(str(tmp_path / "callbacks")))
    job_fn = manager.make_job_fn(job, progress=False)
    with HELD:
        pid = manager.call_job_fn("result", job_fn, [21], {})
        deadline = time.monotonic() + 60
        while not manager.result_ready("result") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert manager.get_result("result", pid) == 42
