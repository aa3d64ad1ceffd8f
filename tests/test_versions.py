"""What a new version takes from the previous one: which annotations changed, and where its forward pass resumes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from segmentation import inference
from segmentation.annotations import Annotations
from segmentation.masks import read_masks, write_mask
from segmentation.versions import STATE, Previous, before_carried_masks, changed_frames, first_changed

C = inference.CARRY_FRAMES


@pytest.mark.parametrize(
    "resume_at, annotated, expected",
    [
        (14, [0, 10, 14], 10),  # 10's mask is still carried at 14
        (10 + C, [0, 10], 10),  # carried to 10 + C with the last, smallest weight
        (11 + C, [0, 10], 11 + C),  # no longer
        (20, [0, 20], 20),  # the frame itself is not before it
        (2 * C + 1, [1, 1 + C, 2 * C + 1], 1),  # a chain: 1 + C is carried from 1
        (5, [], 5),
    ],
)
def test_a_resumed_pass_starts_where_the_masks_carried_there_were_given(resume_at, annotated, expected):
    assert before_carried_masks(resume_at, annotated) == expected


def test_without_the_carry_a_pass_resumes_where_it_was_asked(monkeypatch):
    monkeypatch.setattr(inference, "CARRY_FRAMES", 0)
    assert before_carried_masks(14, [10, 13]) == 14


def _previous(folder, annotations: dict[int, np.ndarray]) -> Previous:
    for frame, labels in annotations.items():
        write_mask(folder / STATE / "annotations" / f"{frame:05d}.png", labels)
    return Previous(folder, {})


def _labels(x0: int) -> np.ndarray:
    labels = np.zeros((32, 48), np.uint8)
    labels[8:20, x0 : x0 + 10] = 1
    return labels


def test_changed_frames_are_added_changed_and_removed_ones_compared_by_labels(tmp_path):
    previous = _previous(tmp_path / "v1", {0: _labels(4), 5: _labels(10), 9: _labels(20)})
    given = tmp_path / "given"
    given.mkdir()
    Image.fromarray(_labels(4) * 255).save(given / "00000.png")  # the same object, as a greyscale PNG
    write_mask(given / "00005.png", _labels(12))  # moved
    write_mask(given / "00007.png", _labels(16))  # new; 9 is gone
    annotations = Annotations(read_masks(given, (48, 32), 12))
    assert changed_frames(previous, annotations) == [5, 7, 9]


def test_a_change_resumes_before_the_reverse_passes_that_reach_over_it(tmp_path):
    # Object 1 given at 0, 20 and 40: the passes back from 20 and 40 reach 11 and 31.
    previous = _previous(tmp_path / "v1", {0: _labels(4), 20: _labels(10), 40: _labels(20)})
    assert first_changed(previous, [], 48) == 48
    assert first_changed(previous, [20], 48) == 11
    assert first_changed(previous, [40], 48) == 31
    assert first_changed(previous, [44], 48) == 44  # no pass from 44 or later
