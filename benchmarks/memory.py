"""Peak memory against video length: frames are streamed, so a clip 8x longer should not need more memory.

Segments synthetic 854x480 clips of increasing length through `segment()` (no online training, to time only the
streaming part) and prints frames, peak resident memory and propagation speed per clip, side by side.
Usage: python benchmarks/memory.py [--lengths 30 120 240]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd

from segmentation.benchmark import PeakMemory
from segmentation.pipeline import SegmentOptions, segment
from segmentation.synthetic import make_clip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lengths", type=int, nargs="+", default=[30, 120, 240])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.lengths:
            clip = make_clip(Path(tmp) / f"clip{n}", n_frames=n, size=(854, 480), n_objects=2, seed=n)
            with PeakMemory() as memory:
                summary = segment(
                    clip.video, clip.mask, Path(tmp) / f"out{n}", SegmentOptions(online_seconds=0)
                )
            rows.append({"frames": n, "peak_MB": round(memory.peak_mb), "prop_fps": summary["propagation_fps"],
                         "total_s": summary["timings_s"]["total"]})  # fmt: skip
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
