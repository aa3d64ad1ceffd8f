"""Per-frame object positions (centroid, box, area) from label images, and the CSV table they make.

Coordinates are pixels with (0, 0) the centre of the top-left pixel: x to the right, y downwards.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from segmentation.errors import InputError

COLUMNS = ["frame", "time_s", "object_id", "x", "y", "x0", "y0", "x1", "y1", "area_px", "visible"]
_BOX = ["x0", "y0", "x1", "y1"]
_NAN = float("nan")


def frame_rows(frame: int, time_s: float, labels: np.ndarray, object_ids: list[int]) -> list[dict]:
    """One row per object id: centroid, inclusive bounding box, area and visibility on this frame."""
    labels = np.asarray(labels).astype(np.uint8, copy=False)
    # Only the box around all objects is looked at (SIMD in cv2), so the cost follows the objects' pixels, not
    # the frame's: at 1080p most of a frame is background.
    bx, by, bw, bh = cv2.boundingRect(labels)
    box = labels[by : by + bh, bx : bx + bw]
    present = np.bincount(box.ravel(), minlength=256) if bw else np.zeros(256, np.intp)
    out = []
    for object_id in object_ids:
        object_id = int(object_id)
        area = int(present[object_id]) if 0 < object_id < 256 else 0
        row = {"frame": int(frame), "time_s": float(time_s), "object_id": object_id}
        if area:
            binary = (box == object_id).view(np.uint8)
            m = cv2.moments(binary, binaryImage=True)
            x0, y0, w, h = cv2.boundingRect(binary)
            row.update(x=bx + m["m10"] / m["m00"], y=by + m["m01"] / m["m00"], x0=bx + x0, y0=by + y0,
                       x1=bx + x0 + w - 1, y1=by + y0 + h - 1, area_px=area, visible=True)  # fmt: skip
        else:
            row.update(x=_NAN, y=_NAN, x0=_NAN, y0=_NAN, x1=_NAN, y1=_NAN, area_px=0, visible=False)
        out.append(row)
    return out


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    # Boxes stay float so that absent objects hold NaN, like x and y.
    return df.astype(
        {
            "frame": "int64",
            "time_s": "float64",
            "object_id": "int64",
            "x": "float64",
            "y": "float64",
            **dict.fromkeys(_BOX, "float64"),
            "area_px": "int64",
            "visible": "bool",
        }
    )


def write_csv(rows, path) -> None:
    """Write trajectory rows (a list of dicts or a DataFrame) to CSV with the standard columns."""
    df = pd.DataFrame(list(rows) if not isinstance(rows, pd.DataFrame) else rows, columns=COLUMNS)
    df = _typed(df)
    # Integers print without ".0"; blanks mark absent objects. Sub-pixel to 3 decimals is plenty.
    df[_BOX] = df[_BOX].astype("Int64")
    df = df.round({"x": 3, "y": 3, "time_s": 6})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)


def read_csv(path) -> pd.DataFrame:
    """Read a trajectory CSV written by :func:`write_csv`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: trajectory CSV not found")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputError(f"{path.name}: not a readable CSV ({e})") from e
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path.name}: trajectory CSV lacks columns {missing}")
    return _typed(df[COLUMNS])


def _check_fps(fps: float) -> float:
    if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps!r}")
    return float(fps)


def _steps(df: pd.DataFrame, fps: float) -> pd.DataFrame:
    """Visible rows sorted per object, with the displacement and time since the previous visible frame."""
    seen = df[df["visible"].astype(bool)].sort_values(["object_id", "frame"])
    by = seen.groupby("object_id", sort=False)
    dist = np.hypot(by["x"].diff(), by["y"].diff())
    dt = by["frame"].diff() / fps
    return seen.assign(_dist=dist, _speed=dist / dt)


def with_speed(df: pd.DataFrame, fps: float) -> pd.DataFrame:
    """Add ``speed_px_s``: centroid displacement since the object's previous visible frame / elapsed time.

    NaN where the object is not visible and on its first visible frame.
    """
    fps = _check_fps(fps)
    steps = _steps(df, fps)
    out = df.copy()
    out["speed_px_s"] = steps["_speed"].reindex(df.index)
    return out


def object_stats(df: pd.DataFrame, fps: float) -> dict[int, dict]:
    """Per object: visibility span, mean area, path length and speeds (px/s).

    Path length sums centroid steps between visible frames (jumps over gaps count); mean speed is path
    length over the time from first to last visible frame.
    """
    fps = _check_fps(fps)
    steps = _steps(df, fps)
    stats = {}
    for object_id in sorted(df["object_id"].unique()):
        mine = steps[steps["object_id"] == object_id]
        if mine.empty:
            stats[int(object_id)] = {
                "frames_visible": 0,
                "first_frame": None,
                "last_frame": None,
                "mean_area_px": _NAN,
                "path_length_px": 0.0,
                "mean_speed_px_s": _NAN,
                "max_speed_px_s": _NAN,
            }
            continue
        first, last = int(mine["frame"].iloc[0]), int(mine["frame"].iloc[-1])
        path = float(mine["_dist"].sum())
        stats[int(object_id)] = {
            "frames_visible": len(mine),
            "first_frame": first,
            "last_frame": last,
            "mean_area_px": float(mine["area_px"].mean()),
            "path_length_px": path,
            "mean_speed_px_s": path * fps / (last - first) if last > first else _NAN,
            "max_speed_px_s": float(mine["_speed"].max()) if last > first else _NAN,
        }
    return stats
