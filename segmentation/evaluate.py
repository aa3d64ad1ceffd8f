"""DAVIS semi-supervised evaluation: region similarity J (IoU) and boundary accuracy F, as fractions in [0, 1].

The first frame (the given annotation) and the last frame are left out, as in the DAVIS protocol. Scores are
averaged over frames per object, then over objects (DAVIS-2017 style), and J&F = (J + F) / 2.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from segmentation.errors import InputError
from segmentation.masks import ids_in, read_mask

BOUNDARY_FRACTION = 0.008  # tolerance radius as a fraction of the image diagonal (DAVIS bound_th)


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union; 1 when both masks are empty."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    union = np.count_nonzero(pred | gt)
    if union == 0:
        return 1.0
    return np.count_nonzero(pred & gt) / union


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels: where the mask differs from its right, lower or lower-right neighbour (DAVIS)."""
    seg = np.asarray(mask, bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    boundary = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    # DAVIS quirk kept for comparable scores: the last row only compares with its right neighbour, the
    # last column only with its lower one, and the bottom-right pixel never is boundary.
    boundary[-1, :] = seg[-1, :] ^ east[-1, :]
    boundary[:, -1] = seg[:, -1] ^ south[:, -1]
    boundary[-1, -1] = False
    return boundary


def _disk(radius: int) -> np.ndarray:
    # Same footprint as skimage.morphology.disk, which DAVIS uses: x^2 + y^2 <= r^2.
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return (x * x + y * y <= radius * radius).astype(np.uint8)


def boundary_f(pred: np.ndarray, gt: np.ndarray) -> float:
    """Boundary F-measure with a tolerance of ceil(0.008 x image diagonal) pixels."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    radius = math.ceil(BOUNDARY_FRACTION * math.hypot(*gt.shape))
    pred_b, gt_b = seg2bmap(pred), seg2bmap(gt)
    n_pred, n_gt = np.count_nonzero(pred_b), np.count_nonzero(gt_b)
    if n_pred == 0 and n_gt == 0:
        return 1.0
    if n_pred == 0 or n_gt == 0:
        return 0.0
    kernel = _disk(radius)
    gt_near = cv2.dilate(gt_b.astype(np.uint8), kernel).astype(bool)
    pred_near = cv2.dilate(pred_b.astype(np.uint8), kernel).astype(bool)
    precision = np.count_nonzero(pred_b & gt_near) / n_pred
    recall = np.count_nonzero(gt_b & pred_near) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def evaluate_masks(gt: list[np.ndarray], pred: list[np.ndarray], object_ids=None) -> pd.DataFrame:
    """J and F per object for frames 1 .. n-2 of one sequence of label images.

    ``object_ids`` defaults to the objects in the first ground-truth frame (the ones the method was given).
    """
    if len(gt) != len(pred):
        raise InputError(f"{len(pred)} predicted masks for {len(gt)} ground-truth frames; they must match")
    if len(gt) < 3:
        raise InputError(f"need at least 3 frames to evaluate (first and last are excluded), got {len(gt)}")
    if object_ids is None:
        object_ids = ids_in(gt[0])
        if not object_ids:
            object_ids = sorted({i for g in gt for i in ids_in(g)})
    rows = []
    for frame in range(1, len(gt) - 1):
        g, p = np.asarray(gt[frame]), np.asarray(pred[frame])
        if g.shape != p.shape:
            raise InputError(
                f"frame {frame}: prediction is {p.shape[1]}x{p.shape[0]} but ground truth is {g.shape[1]}x{g.shape[0]}"
            )
        for object_id in object_ids:
            gm, pm = g == object_id, p == object_id
            rows.append(
                {"object_id": int(object_id), "frame": frame, "J": jaccard(pm, gm), "F": boundary_f(pm, gm)}
            )
    return pd.DataFrame(rows, columns=["object_id", "frame", "J", "F"])


def _pngs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.png") if p.is_file())


def evaluate_sequence(gt_dir, pred_dir) -> pd.DataFrame:
    """Evaluate one sequence of PNG masks; predictions are matched to ground truth by file stem."""
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    for folder, what in ((gt_dir, "ground-truth"), (pred_dir, "prediction")):
        if not folder.is_dir():
            raise InputError(f"{folder}: {what} folder not found")
    gt_files = _pngs(gt_dir)
    if not gt_files:
        raise InputError(f"{gt_dir}: no ground-truth PNG masks")
    predicted = {p.stem: p for p in _pngs(pred_dir)}
    missing = [g.name for g in gt_files if g.stem not in predicted]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise InputError(f"{pred_dir}: no prediction for ground-truth frame {missing[0]}{more}")
    gt = [read_mask(g) for g in gt_files]
    pred = [read_mask(predicted[g.stem]) for g in gt_files]
    return evaluate_masks(gt, pred)


def _sequence_masks(root: Path, sequence: str) -> Path:
    # Accept <root>/<seq>/masks/*.png as well as <root>/<seq>/*.png.
    nested = root / sequence / "masks"
    return nested if nested.is_dir() else root / sequence


def evaluate_dataset(data_root, pred_root, sequences=None) -> tuple[pd.DataFrame, dict]:
    """Evaluate every sequence of a DAVIS-layout dataset (``<seq>/masks/*.png``) against predictions.

    Returns a (sequence, object_id, J, F, JF) table of per-object means and the dataset means
    {"J", "F", "JF", "sequences"}, objects weighted equally (DAVIS-2017).
    """
    data_root, pred_root = Path(data_root), Path(pred_root)
    if not data_root.is_dir():
        raise InputError(f"{data_root}: dataset folder not found")
    if not pred_root.is_dir():
        raise InputError(f"{pred_root}: predictions folder not found")
    if sequences is None:
        sequences = sorted(p.name for p in data_root.iterdir() if (p / "masks").is_dir())
        if not sequences:
            raise InputError(f"{data_root}: no sequences (expected <sequence>/masks/*.png)")
    rows = []
    for sequence in sequences:
        if not (data_root / sequence / "masks").is_dir():
            raise InputError(f"{data_root / sequence}: sequence has no masks folder")
        if not (pred_root / sequence).is_dir():
            raise InputError(f"{pred_root}: no predictions for sequence {sequence}")
        per_frame = evaluate_sequence(data_root / sequence / "masks", _sequence_masks(pred_root, sequence))
        means = per_frame.groupby("object_id", sort=True)[["J", "F"]].mean().reset_index()
        means.insert(0, "sequence", sequence)
        rows.append(means)
    table = (
        pd.concat(rows, ignore_index=True)
        if rows
        else pd.DataFrame(columns=["sequence", "object_id", "J", "F"])
    )
    table["JF"] = (table["J"] + table["F"]) / 2
    j, f = float(table["J"].mean()), float(table["F"].mean())
    return table, {"J": j, "F": f, "JF": (j + f) / 2, "sequences": len(sequences)}
