"""Data derived from finished runs for the plots: trajectories with speed, per-frame mask IoU between runs.

Derived data is cached with flask-caching, keyed by run id and the result's modification time, so a rerun
never shows stale numbers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dashboard.context import ctx
from dashboard.storage import Run, Storage


def _stamp(folder) -> int:
    path = folder / "trajectory.csv"
    return path.stat().st_mtime_ns if path.exists() else 0


def _cached(key: str, compute) -> pd.DataFrame:
    cache = ctx().cache
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value)  # pickled by the file cache
    return value


def trajectory(run: Run, version: int | None = None) -> pd.DataFrame:
    """The run's trajectory with speed_px_s (an earlier version's with `version`); empty if it has no result."""
    from segmentation.trajectory import read_csv, with_speed

    storage = ctx().storage
    folder = storage.result_dir(run.id) if version is None else storage.version_dir(run.id, version)
    path = folder / "trajectory.csv"
    if not path.exists():
        return pd.DataFrame(columns=["frame", "time_s", "object_id", "x", "y", "area_px", "visible"])
    key = f"trajectory:{run.id}:{version}:{path.stat().st_mtime_ns}"
    return _cached(key, lambda: with_speed(read_csv(path), run.fps or 25.0))


def frame_table(df: pd.DataFrame) -> dict:
    """Per object, one value per frame (None where hidden): compact for the browser's per-frame panel."""
    out = {}
    for object_id, rows in df.sort_values("frame").groupby("object_id"):
        rows = rows.astype(object).where(rows.notna(), None)
        out[str(int(object_id))] = {
            column: rows[column].tolist()
            for column in ("frame", "x", "y", "x0", "y0", "x1", "y1", "area_px", "speed_px_s", "visible")
            if column in rows
        }
    return out


def evaluation(run: Run) -> pd.DataFrame | None:
    path = ctx().storage.evaluation_path(run.id)
    return pd.read_csv(path) if path.exists() else None


def mask_iou(run_a: Run, run_b: Run, version_a: int | None = None, version_b: int | None = None) -> pd.DataFrame:
    """Per frame and object id, the IoU of the two runs' masks (and 'all' for the union of objects); of an
    earlier version of either with `version_a` / `version_b` (two versions of one run compare the same way)."""
    storage = ctx().storage
    folder_a, folder_b = _result(storage, run_a.id, version_a), _result(storage, run_b.id, version_b)
    key = f"iou:{run_a.id}:{version_a}:{_stamp(folder_a)}:{run_b.id}:{version_b}:{_stamp(folder_b)}"
    return _cached(key, lambda: _mask_iou(folder_a / "masks", folder_b / "masks"))


def _result(storage: Storage, run_id: str, version: int | None):
    return storage.result_dir(run_id) if version is None else storage.version_dir(run_id, version)


def _mask_iou(folder_a, folder_b) -> pd.DataFrame:
    from segmentation.masks import read_mask

    masks_a = sorted(folder_a.glob("*.png"))
    masks_b = {p.name: p for p in folder_b.glob("*.png")}
    rows = []
    for frame, path in enumerate(masks_a):
        if path.name not in masks_b:
            continue
        a, b = read_mask(path), read_mask(masks_b[path.name])
        if a.shape != b.shape:
            continue
        ids = sorted((set(np.unique(a)) | set(np.unique(b))) - {0})
        for object_id in ["all", *ids]:
            in_a = a > 0 if object_id == "all" else a == object_id
            in_b = b > 0 if object_id == "all" else b == object_id
            union = np.count_nonzero(in_a | in_b)
            iou = np.count_nonzero(in_a & in_b) / union if union else 1.0
            rows.append({"frame": frame, "object_id": str(object_id), "iou": iou})
    return pd.DataFrame(rows, columns=["frame", "object_id", "iou"])
