"""Fixtures for the dashboard tests: real engine, real storage, a tiny synthetic clip, fast options."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

__all__ = ["weights", "tiny_clip", "storage_dir"]  # the fixtures, for `import *` in test modules

# The engine's fastest settings: a 96x64, 10-frame clip segments in a few seconds on a CPU.
FAST_OPTIONS = {"preset": "fast", "online_seconds": "0.5", "device": "cpu"}
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-results" / "screenshots"


@pytest.fixture(scope="session")
def weights() -> Path:
    """The shipped checkpoint, which job processes and Celery workers started by the tests load by default.
    (Setting STCNN_WEIGHTS here would leak into every later test module of the session.)"""
    from segmentation.weights import weights_path

    path = weights_path()
    assert path.is_file(), f"shipped weights missing: {path}"
    return path


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
    from segmentation.synthetic import make_clip

    return make_clip(tmp_path_factory.mktemp("clip"), n_frames=10, size=(96, 64), n_objects=2, seed=3)


@pytest.fixture
def storage_dir(tmp_path, monkeypatch, weights) -> Path:
    root = tmp_path / "storage"
    monkeypatch.setenv("STCNN_STORAGE", str(root))
    monkeypatch.setenv("STCNN_DEMO", "0")
    monkeypatch.delenv("REDIS_URL", raising=False)
    return root


def post_run(client, clip, name="tiny", **options):
    with open(clip.video, "rb") as video, open(clip.mask, "rb") as mask:
        data = {
            "video": (video, "clip.mp4"),
            "mask": (mask, "mask.png"),
            "name": name,
            **FAST_OPTIONS,
            **options,
        }
        return client.post("/api/runs", data=data, content_type="multipart/form-data")


def wait_until(predicate, timeout: float, what: str):
    """Polls predicate until it returns something true (which is returned) or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not {what} after {timeout} s")


def wait_for_run(client, run_id, statuses=("done", "failed", "cancelled"), timeout=120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/api/runs/{run_id}").get_json()
        if run["status"] in statuses:
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} still {run['status']} ({run['stage']}) after {timeout} s")


def screenshot(driver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.set_window_size(1280, 800)
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))
