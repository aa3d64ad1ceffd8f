"""The finished run's thumbnail, which takes the place of the live "latest masked frame" on the run page."""

from __future__ import annotations

import shutil

import numpy as np
from PIL import Image

from dashboard.jobs import PREVIEW_WIDTH, save_jpeg, write_thumbnail
from dashboard.storage import Storage
from segmentation.synthetic import make_clip


def test_the_thumbnail_is_as_large_as_the_live_preview(tmp_path):
    # A clip wider than a gallery card, narrower than the preview's cap: both keep its full width.
    clip = make_clip(tmp_path / "clip", n_frames=3, size=(854, 480), seed=1)
    storage = Storage(tmp_path / "storage")
    run_id = "a" * 32
    storage.result_dir(run_id).mkdir(parents=True)
    shutil.copy(clip.video, storage.result_dir(run_id) / "overlay.mp4")
    write_thumbnail(storage, run_id)
    save_jpeg(np.zeros((480, 854, 3), np.uint8), storage.preview_path(run_id), max_width=PREVIEW_WIDTH)
    thumbnail = Image.open(storage.run_dir(run_id) / "thumb.jpg")
    assert thumbnail.size == Image.open(storage.preview_path(run_id)).size == (854, 480)


def test_a_wide_frame_is_scaled_to_the_preview_width(tmp_path):
    save_jpeg(np.full((1080, 1920, 3), 128, np.uint8), tmp_path / "wide.jpg", max_width=PREVIEW_WIDTH)
    assert Image.open(tmp_path / "wide.jpg").size == (PREVIEW_WIDTH, 540)
