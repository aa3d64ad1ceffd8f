"""Several objects at once: mean IoU per clip with the multi-object priors switched off one at a time, side by side.

Clips: synthetic ones (textured shapes that cross, appear later, or come three at a time; exact ground truth, no
data needed) and, when DAVIS-layout data is given, two-object composites of real footage: sequence B's object,
scaled down and drifting, pasted in front of sequence A. DAVIS-2016 has one object per video, so the composites
are the only real multi-object check we have ground truth for.

Variants: the default; without reference matching (`--no-match`); online training with the plain loss rather than
the gated one (the gate's region only); and neither, which is how the engine worked before both.
Usage: python benchmarks/multi_object.py [--davis DATA] [--online-seconds S] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from ablations import VALIDATION  # the held-out sequences, next to this script

COMPOSITES = [(a, b) for a, b in zip(VALIDATION, VALIDATION[1:] + VALIDATION[:1])]
COMPOSITE_FRAMES = 40

SYNTHETIC = {  # name: make_clip arguments
    "crossing, 2 objects": dict(n_frames=12, size=(192, 128), n_objects=2, seed=2),
    "appears at frame 5": dict(n_frames=12, size=(192, 128), n_objects=2, seed=11, appear_at={2: 5}),
    "3 objects": dict(n_frames=16, size=(192, 128), n_objects=3, seed=7),
    "2 objects, 640x360": dict(n_frames=16, size=(640, 360), n_objects=2, seed=4),
    "3 objects, 320x180": dict(n_frames=24, size=(320, 180), n_objects=3, seed=21),
}

VARIANTS = {  # name: (SegmentOptions.match, gated online-training loss)
    "default": (True, True),
    "no matching": (False, True),
    "plain online loss": (True, False),
    "neither (before)": (False, False),
}


def composite(root: Path, data: Path, a: str, b: str) -> tuple[Path, Path, list[np.ndarray]]:
    """Frames, first mask and ground truth of B's object (id 2) pasted into A (whose object is id 1)."""
    from segmentation.masks import write_mask

    frames_a = sorted((data / a / "frames").glob("*.jpg"))
    frames_b = sorted((data / b / "frames").glob("*.jpg"))
    n = min(len(frames_a), len(frames_b), COMPOSITE_FRAMES)
    (root / "frames").mkdir(parents=True)
    truth = []
    for t in range(n):
        image = cv2.imread(str(frames_a[t]))
        object_a = cv2.imread(str(data / a / "masks" / f"{frames_a[t].stem}.png"), cv2.IMREAD_GRAYSCALE) > 127
        pasted = cv2.imread(str(frames_b[t]))
        object_b = cv2.imread(str(data / b / "masks" / f"{frames_b[t].stem}.png"), cv2.IMREAD_GRAYSCALE) > 127
        h, w = image.shape[:2]
        place = np.float32([[0.55, 0, w * (0.1 + 0.3 * t / n)], [0, 0.55, h * 0.27]])  # drifts to the right
        alpha = cv2.warpAffine(object_b.astype(np.float32), place, (w, h))[..., None]
        image = image * (1 - alpha) + cv2.warpAffine(pasted, place, (w, h)) * alpha
        cv2.imwrite(
            str(root / "frames" / f"{t:05d}.jpg"), image.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 95]
        )
        labels = object_a.astype(np.uint8)
        labels[alpha[..., 0] > 0.5] = 2
        truth.append(labels)
    write_mask(root / "first.png", truth[0])
    return root / "frames", root / "first.png", truth


def mean_iou(out: Path, truth: list[np.ndarray], starts: dict[int, int]) -> float:
    """Mean over objects of the mean IoU from the frame after each object's mask; the last frame left out."""
    from segmentation.evaluate import jaccard
    from segmentation.masks import read_mask

    predicted = [read_mask(p) for p in sorted((out / "masks").glob("*.png"))]
    scores = []
    for obj, start in starts.items():
        pairs = list(zip(predicted, truth))[start + 1 : -1]
        scores.append(np.mean([jaccard(p == obj, g == obj) for p, g in pairs]))
    return float(np.mean(scores))


def make_clips(work: Path, davis: str | None) -> list[tuple]:
    """(name, video, masks, truth, start frame per object) for each synthetic clip and, with DAVIS data, composite."""
    from segmentation.masks import read_mask
    from segmentation.synthetic import make_clip

    clips = []
    for name, spec in SYNTHETIC.items():
        clip = make_clip(work / name.replace(" ", "_").replace(",", ""), **spec)
        truth = [read_mask(p) for p in sorted(clip.gt_dir.glob("*.png"))]
        starts = {obj: spec.get("appear_at", {}).get(obj, 0) for obj in range(1, spec["n_objects"] + 1)}
        clips.append((name, clip.video, clip.masks_dir or clip.mask, truth, starts))
    if davis:
        for a, b in COMPOSITES:
            video, mask, truth = composite(work / f"{a}+{b}", Path(davis), a, b)
            clips.append((f"DAVIS {b} into {a}", video, mask, truth, {1: 0, 2: 0}))
    return clips


def clip_iou(clip: tuple, options, out: Path) -> float:
    """Segments one clip of `make_clips` with `options` and scores it with `mean_iou`."""
    from segmentation.pipeline import segment

    _, video, masks, truth, starts = clip
    segment(video, masks, out, options.replace(overwrite=True))
    return mean_iou(out, truth, starts)


def main() -> None:
    from segmentation.pipeline import SegmentOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--davis", default=None, help="DAVIS-layout data for the real-footage composites")
    parser.add_argument("--online-seconds", type=float, default=None, help="default: the balanced preset")
    parser.add_argument("--only", nargs="*", help="substrings of the variant names to run")
    args = parser.parse_args()
    variants = {k: v for k, v in VARIANTS.items() if not args.only or any(s in k for s in args.only)}
    work = Path(tempfile.mkdtemp(prefix="stcnn-multi-"))
    rows = []
    for clip in make_clips(work, args.davis):
        row = {"clip": clip[0]}
        for variant, (match, gated) in variants.items():
            ablate = () if gated else ("online_gate",)  # the plain online loss, inference still gated
            options = SegmentOptions(online_seconds=args.online_seconds, match=match, ablate=ablate)
            row[variant] = 100 * clip_iou(clip, options, work / "out")
        print(", ".join(f"{k}: {v:.1f}" if isinstance(v, float) else v for k, v in row.items()), flush=True)
        rows.append(row)
    table = pd.DataFrame(rows)
    table = pd.concat([table, pd.DataFrame([{"clip": "MEAN", **table.mean(numeric_only=True)}])])
    print()
    print("mean IoU (%) over objects, frames after each object's mask")
    print(table.round(1).to_string(index=False))


if __name__ == "__main__":
    main()
