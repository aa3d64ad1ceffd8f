"""Whole runs at 854x480 and 1920x1080: does a run's cost follow the model's internal size or the video's?

The same synthetic clip (one object) is written at both sizes as an H.264 mp4 and segmented end to end through
the product's `segment()` (fast preset: a fixed number of online-training iterations), the two sizes taking
turns `--repeats` times so both see the same machine. Per size: end-to-end frames/s (the whole run, decode to
encode), propagation frames/s (the model's steps alone), milliseconds a frame for each stage, and the online
training's iterations; the last rows give 1080p over 480p and end to end over propagation. Seconds swing with
the machine from one day to the next: compare the ratios, which come from one run of this script.

Usage: python benchmarks/resolution.py [--frames 120] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from segmentation.pipeline import SegmentOptions, segment
from segmentation.synthetic import make_clip

SIZES = {"480p": (854, 480), "1080p": (1920, 1080)}


def run(clip, out: Path, options: SegmentOptions) -> dict:
    summary = segment(clip.video, clip.mask, out, options)
    frames = summary["video"]["frame_count"]
    t = summary["timings_s"]
    per_frame = {f"{k}_ms": 1000 * t[k] / frames for k in ("decode", "propagation", "write_masks", "render")}
    return {
        "end_to_end_fps": frames / (t["total"] - t["online_training"]),
        "propagation_fps": summary["propagation_fps"],
        **per_frame,
        "online_s": t["online_training"],
        "iterations": summary["online_training"]["iterations"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--preset", default="fast", choices=["fast", "balanced", "quality"])
    args = parser.parse_args()
    options = SegmentOptions(preset=args.preset, overwrite=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = {name: make_clip(Path(tmp) / name, args.frames, size, seed=3) for name, size in SIZES.items()}
        for repeat in range(args.repeats):
            for name, clip in clips.items():
                rows.append({"size": name, "repeat": repeat, **run(clip, Path(tmp) / f"out-{name}", options)})
    table = pd.DataFrame(rows).groupby("size", sort=False).mean(numeric_only=True).drop(columns="repeat")
    print(table.round(2).to_string())
    print(f"\n1080p / 480p propagation frames/s: {table.propagation_fps['1080p'] / table.propagation_fps['480p']:.2f}")
    print(f"1080p / 480p end-to-end frames/s:  {table.end_to_end_fps['1080p'] / table.end_to_end_fps['480p']:.2f}")
    for name in SIZES:
        print(f"{name} end to end / propagation: {table.end_to_end_fps[name] / table.propagation_fps[name]:.2f}")


if __name__ == "__main__":
    main()
