"""Faults around the dashboard: a worker killed with -9 mid-run, the web process killed and restarted, a full
disk. What must survive: finished results (byte for byte), the gallery, and a failed run's inputs (Rerun works).
"""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from bad_input_files import fail_on_call, tree_bytes
from dashboard_fixtures import *  # noqa: F403 - the fixtures: weights, tiny_clip, storage_dir
from dashboard_fixtures import FAST_OPTIONS, post_run, wait_for_run, wait_until
from test_celery import _connects, _free_port, _stop, redis_url  # noqa: F401 - redis_url: a Redis server of the test's own

import segmentation.pipeline as pipeline
from dashboard.app import create_app
from dashboard.jobs import run_job
from dashboard.storage import Storage

ROOT = Path(__file__).resolve().parent.parent
NO_TRAINING = {"online_seconds": "0"}


@pytest.fixture
def fast_heartbeat(monkeypatch):
    """Heartbeats every 0.5 s, a run silent for 3 s is stale: the bounded time of these tests."""
    monkeypatch.setenv("STCNN_HEARTBEAT_S", "0.5")
    monkeypatch.setenv("STCNN_STALE_AFTER_S", "3")


def run_folder(storage: Storage, run_id: str) -> dict[str, bytes]:
    return {k: v for k, v in tree_bytes(storage.run_dir(run_id)).items() if not k.endswith(".log")}


def training(client, run_id):
    """The run is in the engine (past start-up), so a kill lands mid-run."""
    run = client.get(f"/api/runs/{run_id}").get_json()
    return run if run["status"] == "running" and run["stage"] in ("online training", "propagation") else None


# -- a worker killed with -9 --------------------------------------------------------------------------------


def test_local_worker_killed_mid_run_fails_keeps_inputs_and_reruns(storage_dir, tiny_clip, fast_heartbeat):
    app = create_app()
    client, storage = app.server.test_client(), app.server.extensions["stcnn"].storage
    done_id = post_run(client, tiny_clip, name="earlier", **NO_TRAINING).get_json()["id"]
    assert wait_for_run(client, done_id)["status"] == "done"
    earlier = run_folder(storage, done_id)

    run_id = post_run(client, tiny_clip, name="killed", online_seconds="4").get_json()["id"]
    wait_until(lambda: training(client, run_id), 90, "training")
    pid = int(storage.get_run(run_id).worker.rsplit(":", 1)[1])
    inputs = tree_bytes(storage.run_dir(run_id) / "input")
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()

    run = wait_for_run(client, run_id, timeout=10)
    assert time.monotonic() - killed_at < 10
    assert run["status"] == "failed" and "stopped" in run["error"], run["error"]
    assert tree_bytes(storage.run_dir(run_id) / "input") == inputs
    assert client.post(f"/api/runs/{run_id}/rerun").status_code == 202
    run = wait_for_run(client, run_id, timeout=120)
    assert run["status"] == "done" and run["error"] is None
    assert run_folder(storage, done_id) == earlier


def test_a_silent_worker_is_marked_failed_by_the_heartbeat_check(storage_dir, tiny_clip, fast_heartbeat):
    """A worker on another machine (or a Celery worker) records nothing when killed: only the missing heartbeat
    tells. Two runs claimed by such workers; one keeps beating, the other stops."""
    app = create_app(start_runner=False)
    client, storage = app.server.test_client(), app.server.extensions["stcnn"].storage
    alive, dead = (post_run(client, tiny_clip).get_json()["id"] for _ in range(2))
    assert storage.claim(alive, "celery:elsewhere:1") and storage.claim(dead, "celery:elsewhere:2")
    app.server.extensions["stcnn"].runner.start()  # the stale-run check of the web process
    start = time.monotonic()
    while time.monotonic() - start < 5:
        assert storage.heartbeat(alive, "celery:elsewhere:1")
        time.sleep(0.3)
    run = wait_for_run(client, dead, timeout=5)
    assert run["status"] == "failed" and "heartbeat" in run["error"]
    assert client.get(f"/api/runs/{alive}").get_json()["status"] == "running"
    # The dead worker comes back (a late message): it may no longer write the outcome or beat.
    assert not storage.heartbeat(dead, "celery:elsewhere:2")
    assert not storage.finish(dead, "celery:elsewhere:2", status="done")
    assert storage.get_run(dead).status == "failed"
    assert storage.input_video(dead).exists() and storage.input_mask(dead).exists()


def test_celery_worker_killed_mid_run_is_marked_failed_and_reruns(
    storage_dir, tiny_clip, fast_heartbeat, tmp_path, monkeypatch, redis_url  # noqa: F811 - the fixture
):
    worker = None
    try:
        monkeypatch.setenv("REDIS_URL", redis_url)
        worker = _celery_worker(tmp_path / "celery.log", "kill")
        app = create_app()
        client, storage = app.server.test_client(), app.server.extensions["stcnn"].storage
        run_id = post_run(client, tiny_clip, name="killed", online_seconds="4").get_json()["id"]
        wait_until(lambda: training(client, run_id), 120, "training")
        pid = int(storage.get_run(run_id).worker.rsplit(":", 1)[1])  # the pool process running the task
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        run = wait_for_run(client, run_id, timeout=15)
        print(f"marked {run['status']} {time.monotonic() - killed_at:.1f} s after the kill")
        assert run["status"] == "failed" and "heartbeat" in run["error"], run["error"]
        assert storage.input_video(run_id).exists()
        # The message the killed worker held may come back: it must not run the failed run again.
        time.sleep(2)
        assert storage.get_run(run_id).status == "failed"
        assert client.post(f"/api/runs/{run_id}/rerun").status_code == 202
        run = wait_for_run(client, run_id, timeout=120)
        assert run["status"] == "done", run["error"]
    except AssertionError:
        print((tmp_path / "celery.log").read_text()[-4000:])
        raise
    finally:
        if worker:
            _stop(worker)


def _answers(url) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def _celery_worker(log_path: Path, name: str) -> subprocess.Popen:
    celery = Path(sys.executable).with_name("celery")
    return subprocess.Popen(
        [str(celery), "-A", "dashboard.worker", "worker", "--loglevel=INFO", "--concurrency=1", "--without-gossip",
         "--without-mingle", "--hostname", f"{name}-{os.getpid()}@%h"],
        env={**os.environ}, stdout=log_path.open("w"), stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip


# -- the web process killed and restarted --------------------------------------------------------------------


def _serve(port: int, log_path: Path) -> subprocess.Popen:
    # Its own session: killing the group takes the web process and its run processes down together.
    return subprocess.Popen(
        [sys.executable, "-m", "dashboard.cli", "--port", str(port), "--no-demo"],
        env={**os.environ}, stdout=log_path.open("a"), stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
    )  # fmt: skip


def test_web_process_killed_and_restarted(storage_dir, tiny_clip, fast_heartbeat, tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = tmp_path / "web.log"
    web = _serve(port, log)
    try:
        wait_until(lambda: _connects(port), 60, "web up")

        def submit(name, seconds):
            with open(tiny_clip.video, "rb") as video, open(tiny_clip.mask, "rb") as mask:
                data = {**FAST_OPTIONS, "name": name, "online_seconds": seconds}
                answer = requests.post(
                    f"{url}/runs", data=data, files={"video": video, "mask": mask}, timeout=30
                )
            assert answer.status_code == 202, answer.text
            return answer.json()["id"]

        def get(run_id):
            return requests.get(f"{url}/runs/{run_id}", timeout=10).json()

        done_id = submit("finished before the crash", "0")
        wait_until(lambda: get(done_id)["status"] == "done", 120, "done")
        storage = Storage(storage_dir)
        finished = run_folder(storage, done_id)
        running_id = submit("running at the crash", "4")
        queued_id = submit("queued at the crash", "0")
        wait_until(lambda: get(running_id)["stage"] in ("online training", "propagation"), 90, "running")
        os.killpg(web.pid, signal.SIGKILL)  # the web server's processes and the run's process
        web.wait()
        # gunicorn's worker holds the listening socket too and may outlive its master by a moment.
        wait_until(lambda: not _connects(port), 30, "the old server gone")

        web = _serve(port, log)
        wait_until(lambda: _answers(f"{url}/runs"), 60, "web up again")
        gallery = {run["id"]: run for run in requests.get(f"{url}/runs", timeout=10).json()["runs"]}
        assert set(gallery) == {done_id, running_id, queued_id}
        assert gallery[done_id]["status"] == "done" and run_folder(storage, done_id) == finished
        assert requests.get(f"{url}/runs/{done_id}/files/overlay", timeout=10).status_code == 200
        # The interrupted run is queued again and runs to the end; the queued one runs too.
        for run_id in (running_id, queued_id):
            wait_until(lambda run_id=run_id: get(run_id)["status"] in ("done", "failed"), 180, "finished")
            assert get(run_id)["status"] == "done", get(run_id)["error"]
    except (AssertionError, OSError):  # requests' ConnectionError is an OSError too
        print(log.read_text()[-4000:])
        raise
    finally:
        try:
            os.killpg(web.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        web.wait()


# -- a full disk -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_disk_full_during_a_run_fails_it_with_that_reason(storage_dir, tiny_clip, monkeypatch, code):
    app = create_app(start_runner=False)
    client, storage = app.server.test_client(), app.server.extensions["stcnn"].storage
    done_id = post_run(client, tiny_clip, name="earlier", **NO_TRAINING).get_json()["id"]
    assert run_job(done_id, storage) == "done"
    earlier = run_folder(storage, done_id)

    run_id = post_run(client, tiny_clip, name="disk full", **NO_TRAINING).get_json()["id"]
    failing = fail_on_call(3, OSError(code, os.strerror(code)), pipeline.write_mask)
    with monkeypatch.context() as patched:  # only this patch ends with the block, not the fixtures' environment
        patched.setattr(pipeline, "write_mask", failing)
        assert run_job(run_id, storage) == "failed"
    run = client.get(f"/api/runs/{run_id}").get_json()
    assert os.strerror(code) in run["error"] and str(storage.root) not in run["error"]
    assert not storage.result_dir(run_id).exists() and storage.input_video(run_id).exists()
    assert run_folder(storage, done_id) == earlier

    # Space again: Rerun works on the kept inputs.
    client.post(f"/api/runs/{run_id}/rerun")
    assert run_job(run_id, storage) == "done"


def test_disk_full_after_the_segmentation_keeps_the_result(storage_dir, tiny_clip, monkeypatch):
    """The thumbnail (or the scoring) cannot be written: the run stays done, with a note."""
    import dashboard.jobs as jobs

    app = create_app(start_runner=False)
    client, storage = app.server.test_client(), app.server.extensions["stcnn"].storage
    run_id = post_run(client, tiny_clip, **NO_TRAINING).get_json()["id"]

    def no_space(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jobs, "save_jpeg", no_space)
    assert run_job(run_id, storage) == "done"
    run = client.get(f"/api/runs/{run_id}").get_json()
    assert "No thumbnail" in run["error"] and "No space left" in run["error"]
    assert client.get(f"/api/runs/{run_id}/files/overlay").status_code == 200
    assert client.get(f"/api/runs/{run_id}/files/thumbnail").status_code == 404


def test_disk_full_while_receiving_files_is_a_507_and_leaves_nothing(storage_dir, tiny_clip, monkeypatch):
    import shutil

    app = create_app(start_runner=False)
    client, storage = app.server.test_client(), app.server.extensions["stcnn"].storage
    earlier = post_run(client, tiny_clip).get_json()["id"]
    before = run_folder(storage, earlier)

    move = shutil.move

    def full_on_the_mask(source, target):
        if Path(target).name == "mask.png":
            raise OSError(errno.ENOSPC, "No space left on device")
        return move(source, target)

    with monkeypatch.context() as patched:
        patched.setattr(shutil, "move", full_on_the_mask)
        answer = post_run(client, tiny_clip)
    assert answer.status_code == 507 and "full" in answer.get_json()["error"]
    assert [run.id for run in storage.list_runs()] == [earlier]
    assert sorted(p.name for p in storage.runs_root.iterdir()) == [earlier]
    assert list(storage.uploads_root.iterdir()) == []
    assert run_folder(storage, earlier) == before

    token = client.post("/api/uploads", json={"filename": "v.mp4"}).get_json()["token"]

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(Storage, "append_upload", full)
        answer = client.put(f"/api/uploads/{token}?offset=0", data=io.BytesIO(b"x" * 1000))
    assert answer.status_code == 507
    assert list(storage.uploads_root.iterdir()) == []
