"""Propagation speed on the CPU, with and without the allocator setting and channels_last, side by side.

Each configuration runs in its own process (glibc's allocator settings are per process) on a synthetic 854x480
clip through the real `Segmenter`; prints one table. Usage: python benchmarks/cpu_speed.py [--frames 40]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import pandas as pd

CONFIGS = [
    ("default allocator", False, False),
    ("default allocator + channels_last", False, True),
    ("tuned allocator", True, False),
    ("tuned allocator + channels_last (shipped)", True, True),
]


def measure(tuned: bool, channels_last: bool, frames: int, short_side: int) -> dict:
    import numpy as np
    import torch

    if tuned:
        from segmentation.runtime import tune_allocator

        tune_allocator()
    from segmentation.inference import Segmenter, model_size
    from segmentation.weights import load_model

    model, _ = load_model()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    segmenter = Segmenter(model, torch.device("cpu"), model_size(854, 480, short_side))
    segmenter.channels_last = channels_last
    rng = np.random.default_rng(0)
    video = [rng.integers(0, 255, (480, 854, 3), dtype=np.uint8) for _ in range(4)]
    mask = np.zeros((480, 854), np.uint8)
    mask[100:300, 200:500] = 1
    segmenter.step(video[0], mask)
    for i in range(3):  # warm-up
        segmenter.step(video[i % 4])
    started = time.perf_counter()
    for i in range(frames):
        segmenter.step(video[i % 4])
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
    rows = []
    for name, tuned, channels_last in CONFIGS:
        out = subprocess.run(
            [sys.executable, __file__, "--frames", str(args.frames), "--size", str(args.size),
             "--one", json.dumps([tuned, channels_last])],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows.append({"configuration": name, **json.loads(out.stdout.strip().splitlines()[-1])})
    import torch

    print(f"854x480 frames, internal short side {args.size}, {torch.get_num_threads()} threads, one object")
    print(pd.DataFrame(rows).round(1).to_string(index=False))


if __name__ == "__main__":
    main()
