"""Weights side by side: every check a new release must pass, one column per weights file, run one after the other.

Checks: J&F on the held-out DAVIS sequences with a preset's online training (`stcnn benchmark`'s own run), the
SegTrack v2 bmx clip (a small, thin object; never trained on), box to mask (`boxes.py`: a tight box on the first
frame and every 10th), and the mean IoU of the multi-object clips (`multi_object.py`'s default variant). Quality
only: presets are iterations, so a busy machine gives the same table as an idle one. The first weights file is the
baseline the differences are taken from.

Usage: python benchmarks/weights.py WEIGHTS [WEIGHTS ...] [--data DATA] [--preset P] [--skip bmx multi]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
from ablations import VALIDATION  # the held-out sequences, next to this script
from boxes import box_table
from multi_object import clip_iou, make_clips

CHECKS = ("davis", "bmx", "boxes", "multi")


def score(weights: str, data: Path, bmx: Path, preset: str, checks: set[str], clips: list, work: Path) -> dict:
    from segmentation.benchmark import run_benchmark
    from segmentation.evaluate import evaluate_sequence
    from segmentation.options import SegmentOptions
    from segmentation.pipeline import segment
    from segmentation.weights import load_model

    options = SegmentOptions(weights=weights, preset=preset, overwrite=True)
    row: dict = {"weights": weights}
    if "davis" in checks:
        table = run_benchmark(data, VALIDATION, options, out=str(work / "davis"), baseline=False)
        for _, seq in table.iterrows():
            row[seq["sequence"] if seq["sequence"] != "MEAN" else "J&F"] = 100 * seq["JF"]
    if "bmx" in checks:
        first = sorted((bmx / "masks_bin").glob("*.png"))[0]
        segment(bmx / "frames", first, work / "bmx", options)
        scores = evaluate_sequence(bmx / "masks_bin", work / "bmx" / "masks")
        row["bmx"] = 50 * (scores["J"].mean() + scores["F"].mean())
    if "boxes" in checks:
        boxes = box_table(load_model(weights)[0], data, VALIDATION, every=10)
        row["boxes, first frames"] = boxes[boxes["frame"] == 0]["model from the box"].mean()
        row[f"boxes, {len(boxes)} frames"] = boxes["model from the box"].mean()
    if "multi" in checks:
        row["multi-object"] = 100 * sum(clip_iou(c, options, work / "multi") for c in clips) / len(clips)
    print(", ".join(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items()), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", help="weights files; the first is the baseline")
    parser.add_argument("--data", default="../shared/data/davis2016-train")
    parser.add_argument("--bmx", default="../shared/data/segtrackv2-bmx")
    parser.add_argument("--preset", default="balanced", choices=["fast", "balanced", "quality"])
    parser.add_argument("--skip", nargs="*", default=[], choices=CHECKS)
    args = parser.parse_args()
    checks = set(CHECKS) - set(args.skip)
    work = Path(tempfile.mkdtemp(prefix="stcnn-weights-"))
    clips = make_clips(work / "clips", args.data) if "multi" in checks else []
    rows = [score(w, Path(args.data), Path(args.bmx), args.preset, checks, clips, work) for w in args.weights]
    table = pd.DataFrame(rows).set_index("weights")
    difference = (table - table.iloc[0]).iloc[1:].rename(index=lambda w: f"{w} - baseline")
    print()
    print(f"preset {args.preset}; J&F and IoU in %, boxes as IoU (0-1)")
    print(pd.concat([table, difference]).round(3).T.to_string())


if __name__ == "__main__":
    main()
