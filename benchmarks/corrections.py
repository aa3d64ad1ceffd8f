"""A simulated user correcting the model: J&F and seconds per round, from a mask and from boxes alone.

Round 0 starts from frame 0's true mask (or from a box around each object, the model making the mask); each later
round adds the true mask of the worst frame so far (lowest J&F, among frames without an annotation) as a
correction and segments the sequence again through the product's own `segment()`, from the previous round's
result (`previous=`, as `stcnn segment --previous` does: only what the correction reaches is segmented again).
Online training is fixed at the preset's iterations (a generous time cap), so J&F does not depend on how fast the
machine was; seconds are worth comparing only within one run of this script.

With --carry N [N ...] the whole simulation runs once per value of how many frames a given mask is carried by
optical flow (`inference.CARRY_FRAMES`; 0: not at all), one after the other, and the tables name it.

Usage: python benchmarks/corrections.py [DATA] [--sequences ...] [--rounds 3] [--preset fast] [--carry 0 8]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from segmentation import inference
from segmentation.evaluate import evaluate_sequence
from segmentation.masks import ids_in, read_mask
from segmentation.pipeline import SegmentOptions, segment
from segmentation.prompts import Box

# The validation split (benchmarks/ablations.py) and the sequences added later, which no shipped weights saw.
SEQUENCES = ["car-turn", "dance-jump", "kite-walk", "motocross-bumps", "stroller", "bear", "hike", "rhino", "train"]


def boxes_of(labels: np.ndarray) -> list[Box]:
    boxes = []
    for object_id in ids_in(labels):
        ys, xs = np.nonzero(labels == object_id)
        boxes.append(Box(int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()), object_id=object_id))
    return boxes


def rounds(seq: Path, start: str, n_rounds: int, options: SegmentOptions, work: Path, full: bool = False) -> list[dict]:
    truth = sorted((seq / "masks").glob("*.png"))
    annotations = work / "masks"
    shutil.rmtree(annotations, ignore_errors=True)
    annotations.mkdir(parents=True)
    boxes = boxes_of(read_mask(truth[0])) if start == "boxes" else []
    if not boxes:
        shutil.copy(truth[0], annotations / "00000.png")
    given, rows = {0}, []
    for n in range(n_rounds + 1):
        out = work / f"round{n}"
        started = time.perf_counter()
        masks = annotations if any(annotations.iterdir()) else None
        previous = work / f"round{n - 1}" if n and not full else None
        summary = segment(seq / "frames", masks, out, options, boxes=boxes, previous=previous)
        seconds = time.perf_counter() - started
        scores = evaluate_sequence(seq / "masks", out / "masks")
        per_frame = scores.groupby("frame")[["J", "F"]].mean()
        jf = (per_frame["J"] + per_frame["F"]) / 2
        recomputed = summary["previous"]["recomputed_frames"] if summary["previous"] else len(truth)
        settled = (summary["previous"] or {}).get("settled_at")
        timings = summary["timings_s"]
        rows.append({"sequence": seq.name, "start": start, "carry": inference.CARRY_FRAMES, "round": n, "JF": 100 * jf.mean(), "seconds": seconds,
                     "recomputed": recomputed, "settled_at": -1 if settled is None else settled, "online_s": timings["online_training"],
                     "propagation_s": timings["propagation"], "render_s": timings["render"]})  # fmt: skip
        worst = int(jf.drop(index=[f for f in given if f in jf.index]).idxmin())
        shutil.copy(truth[worst], annotations / f"{worst:05d}.png")  # the true mask there, as a user would draw
        given.add(worst)
        if n:
            shutil.rmtree(work / f"round{n - 1}", ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default="../shared/data/davis2016-train")
    parser.add_argument("--sequences", nargs="*", default=SEQUENCES)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--preset", default="fast", choices=["fast", "balanced", "quality"])
    parser.add_argument("--starts", nargs="*", default=["mask", "boxes"], choices=["mask", "boxes"])
    parser.add_argument("--carry", type=int, nargs="*", default=[inference.CARRY_FRAMES],
                        help="frames a given mask is carried by optical flow; several: one simulation each")  # fmt: skip
    parser.add_argument("--full", action="store_true",
                        help="each round a whole new run on every annotation so far (no --previous): the reference")  # fmt: skip
    args = parser.parse_args()
    options = SegmentOptions(preset=args.preset, online_seconds=600)  # the preset's iterations, not its seconds
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for carry in args.carry:
            inference.CARRY_FRAMES = carry
            for name in args.sequences:
                for start in args.starts:
                    work = Path(tmp) / f"carry{carry}" / name / start
                    rows += rounds(Path(args.data) / name, start, args.rounds, options, work, args.full)
                    print(pd.DataFrame(rows[-args.rounds - 1 :]).round(1).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    print("\nmean over sequences (J&F; seconds per run, same machine, one after the other)")
    print(table.pivot_table(index=["carry", "start"], columns="round", values=["JF", "seconds"]).round(1).to_string())
    for carry, runs in table.groupby("carry"):
        low = runs[(runs["round"] == 0) & (runs["start"] == "mask") & (runs["JF"] < 75)]["sequence"]
        if len(low) and args.rounds >= 2:
            hard = runs[runs["sequence"].isin(low) & (runs["start"] == "mask")]
            gain = hard[hard["round"] == 2]["JF"].mean() - hard[hard["round"] == 0]["JF"].mean()
            print(f"carry {carry}: sequences below 75 at round 0 ({', '.join(low)}): "
                  f"+{gain:.1f} J&F after two corrections")  # fmt: skip


if __name__ == "__main__":
    main()
