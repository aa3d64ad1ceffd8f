import numpy as np
import pytest

from segmentation.errors import InputError
from segmentation.evaluate import (
    boundary_f,
    evaluate_dataset,
    evaluate_masks,
    evaluate_sequence,
    jaccard,
    seg2bmap,
)
from segmentation.masks import write_mask

H, W = 48, 64  # diagonal 80 px -> tolerance ceil(0.008 * 80) = 1 px (a 5-pixel cross)


def square(top, left, size=10, value=1):
    labels = np.zeros((H, W), np.uint8)
    labels[top : top + size, left : left + size] = value
    return labels


def test_boundary_of_a_square():
    # The DAVIS boundary of a 10x10 square at rows/cols 10..19 is the outline of the 11x11 square at 9..19:
    # outside pixels on the top/left, inside pixels on the bottom/right. 4 * 11 - 4 = 40 pixels.
    b = seg2bmap(square(10, 10))
    assert b.sum() == 40
    assert b[9, 9:20].all() and b[19, 9:20].all() and b[9:20, 9].all() and b[9:20, 19].all()


def test_shifted_square_by_hand():
    gt, pred = square(10, 10) > 0, square(10, 12) > 0
    # J: overlap 10 x 8 = 80, union 100 + 100 - 80 = 120.
    assert jaccard(pred, gt) == pytest.approx(80 / 120)
    # F: both boundaries are 40-pixel outlines, 2 px apart horizontally. Pred's outline (cols 11..21):
    # top and bottom rows, 9 + 9 pixels between the corners, lie on or 1 px from gt's rows -> match;
    # its left side (col 11) matches only at rows 9, 10, 18, 19 (within 1 px of gt's top/bottom rows);
    # its right side (col 21) is 2 px from everything -> 22 / 40 matched. By symmetry recall is 22/40.
    assert boundary_f(pred, gt) == pytest.approx(22 / 40)


def test_identical_empty_disjoint():
    a = square(10, 10) > 0
    empty = np.zeros((H, W), bool)
    assert jaccard(a, a) == 1.0 and boundary_f(a, a) == 1.0
    assert jaccard(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0
    far = square(35, 50) > 0
    assert jaccard(far, a) == 0.0 and boundary_f(far, a) == 0.0
    assert jaccard(empty, a) == 0.0 and boundary_f(empty, a) == 0.0


def test_first_and_last_frames_are_excluded():
    gt = [square(10, 10)] * 5
    wrong = square(35, 50)
    pred = [wrong, square(10, 10), square(10, 10), square(10, 12), wrong]
    table = evaluate_masks(gt, pred)
    assert list(table.columns) == ["object_id", "frame", "J", "F"]
    assert table["frame"].tolist() == [1, 2, 3]
    assert table["J"].tolist() == pytest.approx([1, 1, 80 / 120])
    assert table["F"].tolist() == pytest.approx([1, 1, 22 / 40])


def test_objects_default_to_first_frame_and_are_scored_separately():
    gt = [square(10, 10) + square(30, 40, value=2)] * 3
    pred = [square(10, 10) + square(30, 42, value=2)] * 3
    table = evaluate_masks(gt, pred)
    assert table["object_id"].tolist() == [1, 2]
    assert table["J"].tolist() == pytest.approx([1, 80 / 120])
    with pytest.raises(InputError, match="at least 3"):
        evaluate_masks(gt[:2], pred[:2])
    with pytest.raises(InputError, match="must match"):
        evaluate_masks(gt, pred[:2])


def write_sequence(folder, masks):
    for i, labels in enumerate(masks):
        write_mask(folder / f"{i:05d}.png", labels)


def test_evaluate_sequence_matches_by_name(tmp_path):
    write_sequence(tmp_path / "gt", [square(10, 10)] * 4)
    write_sequence(tmp_path / "pred", [square(10, 10), square(10, 12), square(10, 10), square(10, 10)])
    table = evaluate_sequence(tmp_path / "gt", tmp_path / "pred")
    assert table["J"].tolist() == pytest.approx([80 / 120, 1])
    (tmp_path / "pred" / "00002.png").unlink()
    with pytest.raises(InputError, match="00002.png"):
        evaluate_sequence(tmp_path / "gt", tmp_path / "pred")


def test_evaluate_dataset(tmp_path):
    data, preds = tmp_path / "data", tmp_path / "preds"
    two = square(10, 10) + square(30, 40, value=2)
    write_sequence(data / "alpha" / "masks", [two] * 3)
    write_sequence(data / "beta" / "masks", [square(5, 5)] * 3)
    # Both prediction layouts: <seq>/*.png and <seq>/masks/*.png.
    write_sequence(preds / "alpha", [square(10, 10) + square(30, 42, value=2)] * 3)
    write_sequence(preds / "beta" / "masks", [square(5, 5)] * 3)
    table, summary = evaluate_dataset(data, preds)
    assert list(table.columns) == ["sequence", "object_id", "J", "F", "JF"]
    assert table[["sequence", "object_id"]].values.tolist() == [["alpha", 1], ["alpha", 2], ["beta", 1]]
    j, f = (1 + 80 / 120 + 1) / 3, (1 + 22 / 40 + 1) / 3  # every object counts once
    assert summary == pytest.approx({"J": j, "F": f, "JF": (j + f) / 2, "sequences": 2})
    assert table["JF"].tolist() == pytest.approx([1, (80 / 120 + 22 / 40) / 2, 1])
    _, only_beta = evaluate_dataset(data, preds, sequences=["beta"])
    assert only_beta["JF"] == 1.0 and only_beta["sequences"] == 1
    with pytest.raises(InputError, match="gamma"):
        write_sequence(data / "gamma" / "masks", [square(5, 5)] * 3)
        evaluate_dataset(data, preds)
