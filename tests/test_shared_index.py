"""Workers that share nothing local: the run index on a real PostgreSQL server, runs on Redis, two Celery workers
whose storage roots are two different paths (symlinks, as two machines' mount points) to one folder. One worker
is killed with -9 mid-run and the web app is made again: every run ends done (the killed one failed, then run
again), each with its own clip's results, none lost, and the index names no path."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from dashboard_fixtures import *  # noqa: F403 - the fixtures: weights, tiny_clip, storage_dir
from dashboard_fixtures import post_run, wait_for_run, wait_until
from PIL import Image
from postgres_fixtures import *  # noqa: F403 - the fixtures: postgres_server, postgres_url
from test_celery import _stop, redis_url  # noqa: F401 - the fixture: a Redis server of the test's own
from test_dashboard_faults import training

from dashboard.app import create_app

ROOT = Path(__file__).resolve().parent.parent
N_RUNS = 20  # at once, as a team would queue them
SIZES = [(64, 48), (80, 48), (96, 64), (64, 64)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Different clips: sizes, lengths and object counts vary with the index, so a crossed result shows."""
    from segmentation.synthetic import make_clip

    root = tmp_path_factory.mktemp("clips")
    out = []
    for i in range(N_RUNS):
        clip = make_clip(root / f"c{i}", n_frames=4 + i % 3, size=SIZES[i % 4], n_objects=1 + i % 2, seed=200 + i)
        out.append((clip, SIZES[i % 4], 4 + i % 3, list(range(1, 2 + i % 2))))
    return out


def _worker(root: Path, log_path: Path, name: str) -> subprocess.Popen:
    """A Celery worker as on its own machine: its own path to the shared files, the shared database and Redis."""
    celery = Path(sys.executable).with_name("celery")
    return subprocess.Popen(
        [str(celery), "-A", "dashboard.worker", "worker", "--loglevel=INFO", "--concurrency=1", "--without-gossip",
         "--without-mingle", "--hostname", f"{name}-{os.getpid()}@%h"],
        env={**os.environ, "STCNN_STORAGE": str(root)}, stdout=log_path.open("w"), stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip


def test_two_workers_with_their_own_mount_points_share_a_postgres_index(
    storage_dir, postgres_url, redis_url, clips, tmp_path, monkeypatch  # noqa: F811 - fixtures
):
    monkeypatch.setenv("STCNN_HEARTBEAT_S", "0.5")  # a killed worker's run is stale after 3 s
    monkeypatch.setenv("STCNN_STALE_AFTER_S", "3")
    storage_dir.mkdir()
    mounts = [tmp_path / "machine-a" / "stcnn", tmp_path / "machine-b" / "stcnn"]
    for mount in mounts:
        mount.parent.mkdir()
        mount.symlink_to(storage_dir)
    workers = []
    try:
        monkeypatch.setenv("REDIS_URL", redis_url)
        workers = [_worker(mount, tmp_path / f"w{n}.log", f"w{n}") for n, mount in enumerate(mounts)]
        app = create_app()
        client, storage = app.server.test_client(), app.server.extensions["stcnn"].storage
        assert storage.engine.dialect.name == "postgresql" and storage.db_path is None
        ids = [
            post_run(client, clip, name=f"clip {i}", online_seconds="3" if i == 0 else "0", short_side="64")
            .get_json()["id"]
            for i, (clip, *_) in enumerate(clips)
        ]  # fmt: skip

        # The first run trains for a while: its worker process is killed there, as a machine going away would.
        wait_until(lambda: training(client, ids[0]), 120, "the first run training")
        os.kill(int(storage.get_run(ids[0]).worker.rsplit(":", 1)[1]), signal.SIGKILL)

        app = create_app()  # the web process restarted: nothing it held is needed
        client, storage = app.server.test_client(), app.server.extensions["stcnn"].storage
        killed = wait_for_run(client, ids[0], timeout=30)
        assert killed["status"] == "failed" and "heartbeat" in killed["error"], killed["error"]
        assert client.post(f"/api/runs/{ids[0]}/rerun").status_code == 202
        runs = [wait_for_run(client, run_id, timeout=120) for run_id in ids]

        assert {run.id for run in storage.list_runs()} == set(ids)  # none lost, none invented
        for run_id, run, (clip, size, frames, objects) in zip(ids, runs, clips):
            assert run["status"] == "done", (run["name"], run["error"])
            assert (run["width"], run["height"], run["frame_count"]) == (*size, frames), run["name"]
            assert run["objects"] == objects, run["name"]
            assert run["input_hash"] == hashlib.sha256(clip.video.read_bytes()).hexdigest(), run["name"]
            masks = sorted((storage.result_dir(run_id) / "masks").glob("*.png"))
            assert len(masks) == frames and Image.open(masks[0]).size == size, run["name"]
        # Both machines did runs: each run's worker process is a child of one of the two workers.
        pids = {int(storage.get_run(run_id).worker.rsplit(":", 1)[1]) for run_id in ids}
        masters = {psutil.Process(pid).ppid() for pid in pids}
        assert masters == {worker.pid for worker in workers}
        # Nothing in the index depends on where a machine mounts the files.
        rows = json.dumps([run.to_dict() for run in storage.list_runs()])
        assert str(tmp_path) not in rows and "/runs/" not in rows
    except AssertionError:
        for n in range(2):
            print((tmp_path / f"w{n}.log").read_text()[-3000:])
        raise
    finally:
        for worker in workers:
            _stop(worker)
        shutil.rmtree(storage_dir)  # the web apps' stale-run checks stop with their folder
