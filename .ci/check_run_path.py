"""Proves the README's run command from a clean environment: only what `make run` installs, no test extras.

Run with the clean venv's own Python (standard library only, so a missing runtime dependency fails here):

    VENV/bin/python .ci/check_run_path.py VENV

1. `stcnn-dashboard` on a free port with a new storage folder: it must print the address, the device and the
   storage folder, finish its demo run, and serve the pages and the demo's overlay as H.264 mp4;
2. `stcnn segment` on a small synthetic clip.
Exits non-zero with a message on the first failure.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DEMO_TIMEOUT_S = 300


def fail(message: str, log: Path | None = None) -> None:
    if log is not None and log.exists():
        print(log.read_text()[-4000:], file=sys.stderr)
    raise SystemExit(f"run path: {message}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.read()


def h264_codec(path: Path) -> str:
    import av  # the clean venv's own PyAV

    with av.open(str(path)) as container:
        return container.streams.video[0].codec_context.name


def check_dashboard(venv: Path, work: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = work / "dashboard.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STCNN_")}
    with log.open("w") as out:
        server = subprocess.Popen(
            [venv / "bin" / "stcnn-dashboard", "--port", str(port), "--storage", str(work / "storage")],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
    started = time.monotonic()
    try:
        demo = None
        while time.monotonic() - started < DEMO_TIMEOUT_S:
            if server.poll() is not None:
                fail(f"stcnn-dashboard exited with status {server.returncode}", log)
            try:
                runs = json.loads(get(f"{base}/api/runs"))["runs"]
            except OSError:
                runs = []
            demo = runs[0] if runs else None
            if demo and demo["status"] in ("failed", "cancelled"):
                fail(f"the demo run {demo['status']}: {demo['error']}", log)
            if demo and demo["status"] == "done":
                break
            time.sleep(1)
        else:
            fail(f"no finished demo run after {DEMO_TIMEOUT_S} s (last seen: {demo})", log)
        print(f"run path: demo run done {time.monotonic() - started:.0f} s after start")
        banner = log.read_text()
        for expected in (f"http://127.0.0.1:{port}", "Device:", f"Storage: {work / 'storage'}"):
            if expected not in banner:
                fail(f"the start-up message does not say {expected!r}", log)
        if "development server" in banner:
            fail("served by Flask's development server", log)
        for page in ("/", "/gallery", f"/player?run={demo['id']}"):
            if b"_dash-config" not in get(base + page):
                fail(f"{page} is not the Dash app", log)
        overlay = work / "overlay.mp4"
        overlay.write_bytes(get(f"{base}/api/runs/{demo['id']}/files/overlay"))
        if h264_codec(overlay) != "h264":
            fail("the demo overlay is not H.264", log)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                fail("stcnn-dashboard did not stop within 30 s of SIGTERM", log)
    print("run path: dashboard served its demo run's overlay (H.264) and stopped")


def check_cli(venv: Path, work: Path) -> None:
    from segmentation.synthetic import make_clip

    clip = make_clip(work / "clip", n_frames=8, size=(128, 96), n_objects=2, seed=1)
    out = work / "segmented"
    done = subprocess.run(
        [venv / "bin" / "stcnn", "segment", clip.video, clip.mask, "-o", out, "--preset", "fast",
         "--online-seconds", "1"],
        capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        fail(f"stcnn segment exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
    masks = sorted((out / "masks").glob("*.png"))
    if len(masks) != 8 or h264_codec(out / "overlay.mp4") != "h264":
        fail(f"stcnn segment wrote {len(masks)} masks and no H.264 overlay")
    print(f"run path: {done.stdout.strip()}")


def main() -> None:
    venv = Path(sys.argv[1]).resolve()
    with tempfile.TemporaryDirectory(prefix="stcnn-run-path-") as tmp:
        check_dashboard(venv, Path(tmp))
        check_cli(venv, Path(tmp))


if __name__ == "__main__":
    main()
