"""Propagation speed on the CPU as the product ships it (the pipeline's default options: gate on), with the
allocator setting and channels_last switched off one at a time, beside a learning-free baseline in the same run.

Every configuration segments the same synthetic 854x480 clip (one object) through the real `Segmenter`, each in
its own process (glibc's allocator settings are per process). The baseline warps the mask along OpenCV's DIS
optical flow: machines here run up to 2x faster or slower from one day to the next, so compare the `x flow`
column (frames/s over the baseline's, same run), not frames/s across days.

Usage: python benchmarks/cpu_speed.py [--frames 40] [--size 256]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

CONFIGS = [
    ("default allocator", False, False),
    ("default allocator + channels_last", False, True),
    ("tuned allocator", True, False),
    ("tuned allocator + channels_last (shipped)", True, True),
]
WIDTH, HEIGHT = 854, 480


def clip_frames(folder: Path):
    """The clip's frames and first mask (object 1 only), made once per process from the same seed."""
    from segmentation.masks import read_first_mask
    from segmentation.synthetic import make_clip
    from segmentation.video import iter_frames

    clip = make_clip(folder, n_frames=24, size=(WIDTH, HEIGHT), n_objects=1, seed=11)
    return list(iter_frames(clip.video)), read_first_mask(clip.mask)


def measure(tuned: bool, channels_last: bool, frames: int, short_side: int) -> dict:
    import torch

    if tuned:
        from segmentation.runtime import tune_allocator

        tune_allocator()
    from segmentation.inference import Segmenter, model_size
    from segmentation.pipeline import SegmentOptions
    from segmentation.weights import load_model

    shipped = SegmentOptions()
    with tempfile.TemporaryDirectory() as tmp:
        video, mask = clip_frames(Path(tmp))
    model, _ = load_model()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    segmenter = Segmenter(
        model, torch.device("cpu"), model_size(WIDTH, HEIGHT, short_side), gate=shipped.gate, match=shipped.match
    )
    segmenter.channels_last = channels_last
    segmenter.step(video[0], mask)
    for i in range(1, 4):  # warm-up
        segmenter.step(video[i])
    started = time.perf_counter()
    for i in range(frames):
        segmenter.step(video[4 + i % (len(video) - 4)])
    seconds = time.perf_counter() - started
    return {"ms_per_frame": 1000 * seconds / frames, "fps": frames / seconds}


def flow_baseline(frames: int) -> dict:
    """The previous mask warped onto each frame along DIS optical flow (OpenCV's fast preset), at full size."""
    import cv2
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        video, mask = clip_frames(Path(tmp))
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    grid_x, grid_y = np.meshgrid(np.arange(WIDTH, dtype=np.float32), np.arange(HEIGHT, dtype=np.float32))
    previous = cv2.cvtColor(video[0], cv2.COLOR_RGB2GRAY)
    started = time.perf_counter()
    for i in range(frames):
        grey = cv2.cvtColor(video[1 + i % (len(video) - 1)], cv2.COLOR_RGB2GRAY)
        flow = dis.calc(grey, previous, None)
        mask = cv2.remap(mask, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_NEAREST)
        previous = grey
    seconds = time.perf_counter() - started
    return {"ms_per_frame": 1000 * seconds / frames, "fps": frames / seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", type=int, default=256, help="internal short side")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        tuned, channels_last = json.loads(args.one)
        print(json.dumps(measure(tuned, channels_last, args.frames, args.size)))
        return
    rows = [{"configuration": "DIS optical flow, mask warped (baseline)", **flow_baseline(args.frames)}]
    for name, tuned, channels_last in CONFIGS:
        out = subprocess.run(
            [sys.executable, __file__, "--frames", str(args.frames), "--size", str(args.size),
             "--one", json.dumps([tuned, channels_last])],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows.append({"configuration": name, **json.loads(out.stdout.strip().splitlines()[-1])})
    import torch

    table = pd.DataFrame(rows)
    table["x flow"] = table["fps"] / table["fps"].iloc[0]
    print(f"{WIDTH}x{HEIGHT} frames, internal short side {args.size}, {torch.get_num_threads()} threads, "
          "one object, gate and matching as shipped")  # fmt: skip
    print(table.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
