"""Propagation speed on the CPU as the product ships it (the pipeline's default options: gate on), with the
allocator setting and channels_last switched off one at a time, beside a learning-free baseline in the same run.

Every configuration segments the same synthetic 854x480 clip (one object) through the real `Segmenter`, each in
its own process (glibc's allocator settings are per process). In each process, blocks of frames take turns with a
learning-free baseline that warps the mask along OpenCV's DIS optical flow: machines here run up to 2x faster or
slower from one day (or minute) to the next, so compare the `x flow` column (frames/s over the baseline's,
measured alongside), not frames/s across runs.

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


def _model(tuned: bool, channels_last: bool, short_side: int, video, mask):
    import torch

    if tuned:
        from segmentation.runtime import tune_allocator

        tune_allocator()
    from segmentation.inference import Segmenter, model_size
    from segmentation.pipeline import SegmentOptions
    from segmentation.weights import load_model

    shipped = SegmentOptions()
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
    return segmenter


def _flow(video, mask):
    """The previous mask warped onto each frame along DIS optical flow (OpenCV's fast preset), at full size."""
    import cv2
    import numpy as np

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
    grid_x, grid_y = np.meshgrid(np.arange(WIDTH, dtype=np.float32), np.arange(HEIGHT, dtype=np.float32))
    state = {"previous": cv2.cvtColor(video[0], cv2.COLOR_RGB2GRAY), "mask": mask}

    def step(frame):
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        flow = dis.calc(grey, state["previous"], None)
        state["mask"] = cv2.remap(state["mask"], grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_NEAREST)
        state["previous"] = grey

    return step


def measure(tuned: bool, channels_last: bool, frames: int, short_side: int, blocks: int = 5) -> dict:
    """Blocks of the model and of the flow baseline, taking turns in this process, so a slow spell of the machine
    falls on both; the medians of each."""
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        video, mask = clip_frames(Path(tmp))
    segmenter = _model(tuned, channels_last, short_side, video, mask)
    flow = _flow(video, mask)
    per_block = max(1, frames // blocks)
    model_fps, flow_fps = [], []
    for block in range(blocks):
        for step, rates in ((segmenter.step, model_fps), (flow, flow_fps)):
            started = time.perf_counter()
            for i in range(per_block):
                step(video[4 + (block * per_block + i) % (len(video) - 4)])
            rates.append(per_block / (time.perf_counter() - started))
    return {"fps": float(np.median(model_fps)), "flow_fps": float(np.median(flow_fps))}


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
    rows = []
    for name, tuned, channels_last in CONFIGS:
        out = subprocess.run(
            [sys.executable, __file__, "--frames", str(args.frames), "--size", str(args.size),
             "--one", json.dumps([tuned, channels_last])],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows.append({"configuration": name, **json.loads(out.stdout.strip().splitlines()[-1])})
    import torch

    table = pd.DataFrame(rows)
    table["x flow"] = table["fps"] / table["flow_fps"]
    print(f"{WIDTH}x{HEIGHT} frames, internal short side {args.size}, {torch.get_num_threads()} threads, "
          "one object, gate and matching as shipped; medians of blocks taking turns with the flow baseline")  # fmt: skip
    print(table.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
