"""Twenty runs submitted at once over HTTP with the local default (diskcache, run processes, two at a time):
every run finishes, and each run's results belong to its own clip (size, frame count, objects, input hash), so
nothing is crossed or lost. Tiny clips, no online training. Twenty at once on two Celery workers, with the index
on PostgreSQL: tests/test_shared_index.py.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from dashboard_fixtures import *  # noqa: F403 - the fixtures: weights, tiny_clip, storage_dir
from werkzeug.serving import make_server

from dashboard.app import create_app

N_RUNS = 20
SIZES = [(64, 48), (80, 48), (96, 64), (64, 64), (96, 48)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Twenty different clips: sizes, lengths, object counts and seeds all vary with the index."""
    from segmentation.synthetic import make_clip

    root = tmp_path_factory.mktemp("clips")
    out = []
    for i in range(N_RUNS):
        size = SIZES[i % len(SIZES)]
        clip = make_clip(root / f"c{i}", n_frames=4 + i % 5, size=size, n_objects=1 + i % 3, seed=100 + i)
        out.append(
            {
                "clip": clip, "size": size, "frames": 4 + i % 5, "objects": list(range(1, 2 + i % 3)),
                "sha256": hashlib.sha256(clip.video.read_bytes()).hexdigest(),
            }
        )  # fmt: skip
    return out


def serve(app):
    """The app on a real threaded HTTP server, as gunicorn's threads would run it."""
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/api"


def submit_all(url, clips) -> list[str]:
    def submit(i):
        c = clips[i]
        with open(c["clip"].video, "rb") as video, open(c["clip"].mask, "rb") as mask:
            data = {
                "name": f"clip {i}",
                "preset": "fast",
                "online_seconds": "0",
                "device": "cpu",
                "short_side": "64",
            }
            answer = requests.post(f"{url}/runs", data=data, files={"video": video, "mask": mask}, timeout=60)
        assert answer.status_code == 202, answer.text
        return answer.json()["id"]

    with ThreadPoolExecutor(N_RUNS) as pool:  # all at once
        return list(pool.map(submit, range(N_RUNS)))


def wait_all(url, ids, timeout) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [requests.get(f"{url}/runs/{run_id}", timeout=10).json() for run_id in ids]
        if all(run["status"] in ("done", "failed", "cancelled") for run in runs):
            return runs
        time.sleep(0.5)
    pending = [(r["name"], r["status"], r["stage"]) for r in runs if r["status"] not in ("done", "failed")]
    raise AssertionError(f"{len(pending)} runs unfinished after {timeout} s: {pending}")


def check_uncrossed(url, clips, ids, runs, storage):
    assert len(set(ids)) == N_RUNS
    listed = {run["id"] for run in requests.get(f"{url}/runs", timeout=10).json()["runs"]}
    assert listed == set(ids)  # no run lost, none invented
    for i, (run_id, run) in enumerate(zip(ids, runs)):
        c = clips[i]
        assert run["status"] == "done", (i, run["error"])
        assert run["name"] == f"clip {i}"
        assert (run["width"], run["height"], run["frame_count"]) == (*c["size"], c["frames"]), i
        assert run["objects"] == c["objects"] and run["input_hash"] == c["sha256"], i
        summary = json.loads(requests.get(f"{url}/runs/{run_id}/files/summary", timeout=10).content)
        assert summary["video"]["frame_count"] == c["frames"] and summary["objects"] == c["objects"], i
        rows = list(
            csv.DictReader(
                io.StringIO(requests.get(f"{url}/runs/{run_id}/files/trajectory", timeout=10).text)
            )
        )
        assert {int(r["frame"]) for r in rows} == set(range(c["frames"])), i
        assert {int(r["object_id"]) for r in rows} == set(c["objects"]), i
        from PIL import Image

        masks = sorted((storage.result_dir(run_id) / "masks").glob("*.png"))
        assert len(masks) == c["frames"] and Image.open(masks[0]).size == c["size"], i
    with sqlite3.connect(storage.db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert list(storage.uploads_root.iterdir()) == []


def test_twenty_runs_at_once_with_local_run_processes(storage_dir, clips, monkeypatch):
    monkeypatch.setenv("STCNN_MAX_PARALLEL_RUNS", "2")
    app = create_app()
    storage = app.server.extensions["stcnn"].storage
    server, url = serve(app)
    try:
        started = time.monotonic()
        ids = submit_all(url, clips)
        runs = wait_all(url, ids, timeout=300)
        print(f"local: {N_RUNS} runs in {time.monotonic() - started:.0f} s")
        check_uncrossed(url, clips, ids, runs, storage)
        # Never more than two at a time: their run intervals overlap at most pairwise.
        spans = sorted((storage.get_run(i).started_at, storage.get_run(i).finished_at) for i in ids)
        for t, _ in spans:
            assert sum(start <= t < end for start, end in spans) <= 2
    finally:
        server.shutdown()


def test_index_writes_from_many_threads_and_processes_are_not_lost(storage_dir, tiny_clip):
    """WAL and BEGIN IMMEDIATE transactions: progress written by 8 threads and a second process at once."""
    app = create_app(start_runner=False)
    storage = app.server.extensions["stcnn"].storage
    client = app.server.test_client()
    from dashboard_fixtures import post_run

    ids = [post_run(client, tiny_clip, name=f"r{i}").get_json()["id"] for i in range(8)]

    def hammer(run_id):
        for n in range(50):
            storage.update_run(run_id, done=n + 1, stage="propagation")

    script = (
        "import sys\nfrom dashboard.storage import Storage\ns = Storage(sys.argv[1])\n"
        "for n in range(200): s.update_run(sys.argv[2], total=n + 1)\n"
    )
    other = subprocess.Popen(
        [os.sys.executable, "-c", script, str(storage.root), ids[0]], cwd=Path(__file__).parent.parent
    )
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(hammer, ids))
    assert other.wait(timeout=120) == 0
    assert all(storage.get_run(i).done == 50 for i in ids)
    assert storage.get_run(ids[0]).total == 200
