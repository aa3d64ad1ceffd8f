"""Propagation speed on the CPU as the product ships it (the pipeline's default options: gate on), on each runtime
for the frozen part of the model (segmentation/frozen.py), and with the allocator setting and channels_last
switched off one at a time, beside a learning-free baseline in the same run.

Every configuration segments the same synthetic 854x480 clip (one object) through the real `Segmenter`, each in
its own process (glibc's allocator settings are per process). In each process, blocks of frames take turns with a
learning-free baseline that warps the mask along OpenCV's DIS optical flow: machines here run up to 2x faster or
slower from one day (or minute) to the next, so compare the `x flow` column (frames/s over the baseline's,
measured alongside), not frames/s across runs. `% matmul` is the model's FLOPs per frame (counted by torch's
FlopCounterMode over one eager step) times frames/s, over the rate of a large fp32 matmul measured in the same
process: how much of what the CPU can do each path uses.

Usage: python benchmarks/cpu_speed.py [--frames 40] [--size 256]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from segmentation.frozen import TorchEncoder

CONFIGS = [  # name, tuned allocator, channels_last, runtime, STCNN_FP32
    ("PyTorch, default allocator", False, False, "torch", "1"),
    ("PyTorch, default allocator + channels_last", False, True, "torch", "1"),
    ("PyTorch, tuned allocator", True, False, "torch", "1"),
    ("PyTorch, tuned allocator + channels_last (--runtime torch)", True, True, "torch", "1"),
    ("OpenVINO fp32, tuned allocator", True, False, "openvino", "1"),
    ("OpenVINO, bf16 where the CPU has it (shipped: auto)", True, False, "openvino", "0"),
]
WIDTH, HEIGHT = 854, 480


def clip_frames(folder: Path):
    """The clip's frames and first mask (object 1 only), made once per process from the same seed."""
    from segmentation.masks import read_first_mask
    from segmentation.synthetic import make_clip
    from segmentation.video import iter_frames

    clip = make_clip(folder, n_frames=24, size=(WIDTH, HEIGHT), n_objects=1, seed=11)
    return list(iter_frames(clip.video)), read_first_mask(clip.mask)


def _model(tuned: bool, channels_last: bool, runtime: str, short_side: int, video, mask):
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
        model, torch.device("cpu"), model_size(WIDTH, HEIGHT, short_side), gate=shipped.gate, match=shipped.match,
        runtime=runtime,
    )
    if segmenter.encode.runtime != runtime:
        raise SystemExit(f"{runtime} is not usable here")
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


def step_flops(segmenter, frame) -> float:
    """FLOPs of one eager step (the exported graphs compute the same convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    encode, segmenter.encode = segmenter.encode, TorchEncoder(segmenter.model)
    try:
        with FlopCounterMode(display=False) as counter:
            segmenter.step(frame)
    finally:
        segmenter.encode = encode
    return counter.get_total_flops()


def matmul_rate(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of an n x n fp32 matmul, the best of a few: the CPU's practical peak for dense work."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def measure(tuned: bool, channels_last: bool, runtime: str, frames: int, short_side: int, blocks: int = 5) -> dict:
    """Blocks of the model and of the flow baseline, taking turns in this process, so a slow spell of the machine
    falls on both; the medians of each."""
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        video, mask = clip_frames(Path(tmp))
    segmenter = _model(tuned, channels_last, runtime, short_side, video, mask)
    flops = step_flops(segmenter, video[4])
    flow = _flow(video, mask)
    per_block = max(1, frames // blocks)
    model_fps, flow_fps = [], []
    for block in range(blocks):
        for step, rates in ((segmenter.step, model_fps), (flow, flow_fps)):
            started = time.perf_counter()
            for i in range(per_block):
                step(video[4 + (block * per_block + i) % (len(video) - 4)])
            rates.append(per_block / (time.perf_counter() - started))
    fps = float(np.median(model_fps))
    return {"fps": fps, "flow_fps": float(np.median(flow_fps)), "GFLOP/frame": flops / 1e9,
            "% matmul": 100 * fps * flops / matmul_rate()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", type=int, default=256, help="internal short side")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        tuned, channels_last, runtime = json.loads(args.one)
        print(json.dumps(measure(tuned, channels_last, runtime, args.frames, args.size)))
        return
    rows = []
    for name, tuned, channels_last, runtime, fp32 in CONFIGS:
        out = subprocess.run(
            [sys.executable, __file__, "--frames", str(args.frames), "--size", str(args.size),
             "--one", json.dumps([tuned, channels_last, runtime])],
            capture_output=True, text=True, env={**os.environ, "STCNN_FP32": fp32},
        )  # fmt: skip
        if out.returncode:  # a runtime that is not installed: say so, measure the rest
            rows.append({"configuration": f"{name}: {out.stderr.strip().splitlines()[-1]}"})
            continue
        rows.append({"configuration": name, **json.loads(out.stdout.strip().splitlines()[-1])})
    import torch

    table = pd.DataFrame(rows)
    table["x flow"] = table["fps"] / table["flow_fps"]
    print(f"{WIDTH}x{HEIGHT} frames, internal short side {args.size}, {torch.get_num_threads()} threads, "
          "one object, gate and matching as shipped; medians of blocks taking turns with the flow baseline")  # fmt: skip
    print(table.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
