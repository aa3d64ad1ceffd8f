import math

import numpy as np
import pandas as pd
import pytest

from segmentation.errors import InputError
from segmentation.masks import color_of
from segmentation.render import overlay
from segmentation.trajectory import (
    COLUMNS,
    frame_rows,
    object_stats,
    read_csv,
    with_speed,
    write_csv,
)


def two_objects():
    labels = np.zeros((48, 64), np.uint8)
    labels[10:20, 4:14] = 1  # 10x10 square: centroid (8.5, 14.5), box (4,10)-(13,19)
    labels[30:34, 40:48] = 3  # 8 wide, 4 tall: centroid (43.5, 31.5)
    labels[31, 47] = 0  # one pixel off the corner: 31 pixels, box unchanged
    return labels


def test_overlay_tints_and_outlines_without_touching_the_frame():
    frame = np.full((48, 64, 3), 100, np.uint8)
    before = frame.copy()
    out = overlay(frame, two_objects(), alpha=0.5)
    assert np.array_equal(frame, before) and out is not frame
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert tuple(out[0, 0]) == (100, 100, 100)  # background untouched
    # Inside object 1, away from the outline: half frame, half (128, 0, 0).
    assert np.abs(out[15, 9].astype(int) - [114, 50, 50]).max() <= 1
    # The outline is the brightened colour: (128, 0, 0) -> (255, 0, 0).
    assert tuple(out[10, 4]) == (255, 0, 0)
    assert tuple(out[30, 40]) == tuple(c * 255 // max(color_of(3)) for c in color_of(3))


def test_overlay_of_empty_labels_is_a_copy():
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    out = overlay(frame, np.zeros((48, 64), np.uint8))
    assert np.array_equal(out, frame) and out is not frame
    with pytest.raises(ValueError):
        overlay(frame, np.zeros((10, 10), np.uint8))


def test_frame_rows_centroid_box_area():
    rows = frame_rows(7, 7 / 24, two_objects(), [1, 3])
    one, three = rows
    assert one == {
        "frame": 7,
        "time_s": 7 / 24,
        "object_id": 1,
        "x": 8.5,
        "y": 14.5,
        "x0": 4,
        "y0": 10,
        "x1": 13,
        "y1": 19,
        "area_px": 100,
        "visible": True,
    }
    assert three["area_px"] == 31 and three["visible"]
    # 32 pixels centred at (43.5, 31.5) minus the one at (47, 31).
    assert three["x"] == pytest.approx((43.5 * 32 - 47) / 31)
    assert three["y"] == pytest.approx((31.5 * 32 - 31) / 31)
    assert (three["x0"], three["y0"], three["x1"], three["y1"]) == (40, 30, 47, 33)
    assert list(one) == COLUMNS


def test_frame_rows_match_numpy_on_scattered_objects():
    # Objects in pieces, touching the frame's edges, one inside another's box, labels not uint8: every row
    # agrees with the definitions computed directly.
    rng = np.random.default_rng(5)
    labels = np.zeros((90, 120), np.int64)
    labels[0:5, 0:7] = 4
    labels[80:90, 100:120] = 4
    labels[rng.random(labels.shape) < 0.02] = 9
    labels[40:60, 50:70] = 2
    labels[45:50, 55:60] = 0  # a hole
    rows = frame_rows(3, 0.1, labels, [2, 4, 9, 7])
    assert [row["object_id"] for row in rows] == [2, 4, 9, 7]
    for row in rows:
        ys, xs = np.nonzero(labels == row["object_id"])
        if row["object_id"] == 7:
            assert not row["visible"]
            continue
        assert row["area_px"] == len(xs)
        assert row["x"] == pytest.approx(xs.mean()) and row["y"] == pytest.approx(ys.mean())
        assert (row["x0"], row["y0"], row["x1"], row["y1"]) == (xs.min(), ys.min(), xs.max(), ys.max())


def test_absent_object_row():
    (row,) = frame_rows(0, 0.0, two_objects(), [2])
    assert row["visible"] is False and row["area_px"] == 0
    assert all(math.isnan(row[k]) for k in ("x", "y", "x0", "y0", "x1", "y1"))


def moving_square_rows():
    """Object 1 moves 3 px right per frame and is hidden on frame 2; object 2 is never there."""
    rows = []
    for f in range(5):
        labels = np.zeros((48, 64), np.uint8)
        if f != 2:
            labels[10:20, 10 + 3 * f : 14 + 3 * f] = 1
        rows += frame_rows(f, f / 24, labels, [1, 2])
    return rows


def test_csv_round_trip(tmp_path):
    rows = moving_square_rows()
    write_csv(rows, tmp_path / "out" / "trajectory.csv")
    text = (tmp_path / "out" / "trajectory.csv").read_text().splitlines()
    assert text[0] == ",".join(COLUMNS)
    assert text[1] == "0,0.0,1,11.5,14.5,10,10,13,19,40,True"  # boxes print as integers
    df = read_csv(tmp_path / "out" / "trajectory.csv")
    assert list(df.columns) == COLUMNS and len(df) == 10
    assert df["visible"].dtype == bool and df["frame"].dtype == np.int64
    expected = pd.DataFrame(rows, columns=COLUMNS)
    pd.testing.assert_frame_equal(df, expected, check_dtype=False, atol=1e-5)


def test_read_csv_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_csv(tmp_path / "none.csv")
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match="lacks columns"):
        read_csv(tmp_path / "bad.csv")


def test_speed_and_stats():
    df = pd.DataFrame(moving_square_rows())
    fps = 24
    sped = with_speed(df, fps)
    one = sped[sped.object_id == 1].set_index("frame")["speed_px_s"]
    # 3 px per frame = 72 px/s; across the hidden frame 6 px in 2 frames is still 72 px/s.
    assert math.isnan(one[0]) and math.isnan(one[2])
    assert one[[1, 3, 4]].tolist() == [72.0, 72.0, 72.0]
    assert sped[sped.object_id == 2]["speed_px_s"].isna().all()
    stats = object_stats(df, fps)
    assert stats[1] == {
        "frames_visible": 4,
        "first_frame": 0,
        "last_frame": 4,
        "mean_area_px": 40.0,
        "path_length_px": 12.0,
        "mean_speed_px_s": 72.0,
        "max_speed_px_s": 72.0,
    }
    assert stats[2]["frames_visible"] == 0 and stats[2]["first_frame"] is None
    with pytest.raises(InputError, match="fps"):
        object_stats(df, 0)
