"""What one correction costs on a long video, against the first run: seconds per stage, at 480p and 1080p.

A synthetic clip (one object, `--frames` frames at 24 frames/s) is segmented through the product's `segment()`
(fast preset: a fixed number of online-training iterations), then the true mask of its middle frame is given as a
correction and it is segmented again from the first result (`previous=`, as `stcnn segment --previous` does).
Prints each run's seconds by stage, the frames recomputed and the overlay frames copied, and the correction's
share of the first run's time (the issue asks a third or less). Seconds are worth comparing only within one run.

Usage: python benchmarks/long_correction.py [--frames 600] [--sizes 480p 1080p]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from segmentation.pipeline import SegmentOptions, segment
from segmentation.synthetic import make_clip

SIZES = {"480p": (854, 480), "1080p": (1920, 1080)}


def runs(name: str, frames: int, work: Path, options: SegmentOptions) -> list[dict]:
    clip = make_clip(work / "clip", frames, SIZES[name], seed=3)
    masks = work / "masks"
    masks.mkdir()
    shutil.copy(clip.mask, masks / "00000.png")
    rows = []
    for run in ("first run", "correction"):
        if run == "correction":
            middle = f"{frames // 2:05d}.png"
            shutil.copy(clip.gt_dir / middle, masks / middle)
        started = time.perf_counter()
        previous = work / "first run" if run == "correction" else None
        summary = segment(clip.video, masks, work / run, options, previous=previous)
        again = summary["previous"] or {}
        rows.append({
            "size": name, "run": run, "seconds": time.perf_counter() - started,
            **{f"{k}_s": v for k, v in summary["timings_s"].items() if k != "total"},
            "recomputed": again.get("recomputed_frames", frames), "overlay_copied": again.get("overlay_reused_frames", 0),
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    args = parser.parse_args()
    options = SegmentOptions(preset="fast", online_seconds=600)  # the preset's iterations, not its seconds
    rows = []
    for name in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            rows += runs(name, args.frames, Path(tmp), options)
    table = pd.DataFrame(rows)
    print(table.round(2).to_string(index=False))
    for name, runs_of in table.groupby("size", sort=False):
        first, correction = runs_of["seconds"].tolist()
        print(f"{name}: the correction took {correction / first:.2f} of the first run's time")


if __name__ == "__main__":
    main()
