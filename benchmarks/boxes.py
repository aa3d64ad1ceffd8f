"""Box to mask: how well the model outlines an object from a box around it, beside the box itself as the mask.

For each sequence's first frame (and, with --every N, every Nth frame after), a tight box around each true object
goes through the product's own `prompts.mask_from_boxes`; prints the IoU against the true mask per sequence and the
mean, next to the IoU of the filled box (what a user would get without the model). Quality only: no timing, so any machine gives the same table.

Usage: python benchmarks/boxes.py [DATA] [--sequences ...] [--every N] [--weights W]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from segmentation.evaluate import jaccard
from segmentation.inference import model_size
from segmentation.masks import ids_in, read_mask
from segmentation.prompts import Box, mask_from_boxes
from segmentation.video import iter_frames
from segmentation.weights import load_model

UNSEEN = ["car-turn", "dance-jump", "kite-walk", "motocross-bumps", "stroller", "bear", "hike", "rhino", "train"]


def box_table(model, root: Path, names: list[str], every: int = 0) -> pd.DataFrame:
    """One row per boxed frame: IoU of the filled box and of the model's mask from it, against the true mask."""
    rows = []
    for name, index, frame, truth in _frames(root, names, every):
        boxes, filled = [], np.zeros_like(truth)
        for object_id in ids_in(truth):
            ys, xs = np.nonzero(truth == object_id)
            box = Box(int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()), object_id=object_id)
            boxes.append(box)
            filled[box.y0 : box.y1 + 1, box.x0 : box.x1 + 1] = object_id
        size = model_size(truth.shape[1], truth.shape[0])
        made = mask_from_boxes(model, torch.device("cpu"), frame, boxes, size)
        rows.append({
            "sequence": name, "frame": index, "never trained on": name in UNSEEN,
            "box as the mask": np.mean([jaccard(filled == b.object_id, truth == b.object_id) for b in boxes]),
            "model from the box": np.mean([jaccard(made == b.object_id, truth == b.object_id) for b in boxes]),
        })  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default="../shared/data/davis2016-train")
    parser.add_argument("--sequences", nargs="*", help="default: every sequence in DATA")
    parser.add_argument("--every", type=int, default=0, help="also every Nth later frame (default: the first only)")
    parser.add_argument("--weights", default=None, help="default: the shipped weights, or STCNN_WEIGHTS")
    args = parser.parse_args()
    root = Path(args.data)
    names = args.sequences or sorted(p.name for p in root.iterdir() if (p / "masks").is_dir())
    model, _ = load_model(args.weights)
    table = box_table(model, root, names, args.every)
    per_sequence = table.groupby(["sequence", "never trained on"], as_index=False).agg(
        frames=("frame", "size"), **{c: (c, "mean") for c in ("box as the mask", "model from the box")}
    )
    print(per_sequence.round(3).to_string(index=False))
    print("\nmean IoU")
    print(table.groupby("never trained on")[["box as the mask", "model from the box"]].mean().round(3).to_string())
    first = table[table["frame"] == 0]
    print(f"first frames ({len(first)}): {first['model from the box'].mean():.3f} "
          f"(box as the mask {first['box as the mask'].mean():.3f})")  # fmt: skip
    print(f"all {len(table)} frames: {table['model from the box'].mean():.3f} "
          f"(box as the mask {table['box as the mask'].mean():.3f})")  # fmt: skip


def _frames(root: Path, names: list[str], every: int):
    """(sequence, frame index, frame, true mask): each sequence's first frame and, with `every`, every Nth after."""
    for name in names:
        masks = sorted((root / name / "masks").glob("*.png"))
        frames = iter_frames(root / name / "frames")
        for index, frame in zip(range(len(masks) if every else 1), frames):  # only the first: no further decoding
            if index % max(every, 1) == 0:
                truth = read_mask(masks[index])
                if ids_in(truth):  # a frame where the object is out of view has nothing to box
                    yield name, index, frame, truth
        getattr(frames, "close", lambda: None)()


if __name__ == "__main__":
    main()
