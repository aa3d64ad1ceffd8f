"""First start: if the gallery is empty, queue a run on a synthetic clip so a newcomer has a result to explore."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import uuid
import zipfile

from dashboard.runs import start_run
from dashboard.storage import Storage

log = logging.getLogger(__name__)
DEMO_NAME = "Demo: two shapes on a textured background"


def seed(storage: Storage, runner) -> str | None:
    """Queue the demo run once per storage folder (the marker file makes it once across web workers too)."""
    marker = storage.root / "demo-seeded"
    if storage.list_runs():
        return None
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return None
    os.close(fd)
    from segmentation.synthetic import make_clip

    work = storage.uploads_root / f"demo-{uuid.uuid4().hex}"
    try:
        clip = make_clip(work, n_frames=36, size=(320, 192), n_objects=2, seed=7)
        gt_zip = work / "gt.zip"
        with zipfile.ZipFile(gt_zip, "w") as archive:
            for png in sorted(clip.gt_dir.glob("*.png")):
                archive.write(png, png.name)
        return start_run(
            storage, runner, video=clip.video, video_name=clip.video.name, mask=clip.mask, name=DEMO_NAME,
            options={"preset": "fast", "device": "auto"}, gt_zip=gt_zip,
        )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def seed_in_background(storage: Storage, runner) -> threading.Thread:
    def work():
        try:
            seed(storage, runner)
        except Exception:  # the dashboard is usable without its demo
            log.exception("could not prepare the demo run")

    thread = threading.Thread(target=work, name="stcnn-demo", daemon=True)
    thread.start()
    return thread
