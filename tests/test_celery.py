"""One run through Redis and a real Celery worker (the REDIS_URL deployment), as the Procfile starts it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from dashboard_fixtures import *  # noqa: F403 - the fixtures: weights, tiny_clip, storage_dir
from dashboard_fixtures import post_run, wait_for_run, wait_until
from services import redis_server

from dashboard.app import create_app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _connects(port) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def redis_url(tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir",
         str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    wait_until(lambda: _connects(port), 10, "redis up")
    yield f"redis://127.0.0.1:{port}/0"
    _stop(server)


@pytest.fixture
def celery_worker(redis_url, storage_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    log = (tmp_path / "celery.log").open("w")
    celery = Path(sys.executable).with_name("celery")
    worker = subprocess.Popen(
        [str(celery), "-A", "dashboard.worker", "worker", "--loglevel=INFO", "--concurrency=1", "--without-gossip",
         "--without-mingle", "--hostname", f"test-{os.getpid()}@%h"],
        env={**os.environ}, stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    yield worker
    _stop(worker)
    log.close()


def test_a_run_goes_through_redis_and_a_celery_worker(celery_worker, tiny_clip, tmp_path):
    app = create_app()
    assert type(app.server.extensions["stcnn"].runner).__name__ == "CeleryRunner"
    client = app.server.test_client()
    answer = post_run(client, tiny_clip, name="celery run")
    assert answer.status_code == 202
    try:
        run = wait_for_run(client, answer.get_json()["id"], timeout=180)
    except AssertionError:
        print((tmp_path / "celery.log").read_text()[-4000:])
        raise
    assert run["status"] == "done", run["error"]
    assert app.server.extensions["stcnn"].storage.get_run(run["id"]).worker.startswith("celery:")
    assert client.get(f"/api/runs/{run['id']}/files/overlay").status_code == 200
