"""REST API: a run started from boxes instead of a mask, and bad boxes refused before anything is stored."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dashboard_fixtures import *  # noqa: F403 - the fixtures: weights, tiny_clip, storage_dir
from dashboard_fixtures import FAST_OPTIONS, wait_for_run

from dashboard.app import create_app
from dashboard.storage import Storage
from segmentation.evaluate import jaccard
from segmentation.masks import read_mask


@pytest.fixture
def client(storage_dir):
    return create_app().server.test_client()


def boxes_of(clip) -> list[list[int]]:
    first = read_mask(clip.mask)
    boxes = []
    for object_id in (1, 2):
        ys, xs = np.nonzero(first == object_id)
        boxes.append([int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())])
    return boxes


def post(client, clip, boxes, with_mask=False):
    with open(clip.video, "rb") as video, open(clip.mask, "rb") as mask:
        data = {"video": (video, "clip.mp4"), "boxes": boxes, "name": "boxes", **FAST_OPTIONS}
        if with_mask:
            data["mask"] = (mask, "mask.png")
        return client.post("/api/runs", data=data, content_type="multipart/form-data")


def test_a_run_from_boxes(client, tiny_clip, storage_dir):
    answer = post(client, tiny_clip, json.dumps(boxes_of(tiny_clip)))
    assert answer.status_code == 202, answer.get_json()
    run_id = answer.get_json()["id"]
    assert client.get(f"/api/runs/{run_id}/files/check").mimetype == "image/png"  # frame 0 with the boxes
    run = wait_for_run(client, run_id)
    assert run["status"] == "done", run["error"]
    assert run["objects"] == [1, 2]
    summary = client.get(f"/api/runs/{run_id}/files/summary").get_json()
    assert [box["object_id"] for box in summary["boxes"]] == [1, 2]
    made = read_mask(Storage(storage_dir).result_dir(run_id) / "masks" / "00000.png")
    truth = read_mask(tiny_clip.mask)
    assert min(jaccard(made == i, truth == i) for i in (1, 2)) >= 0.5


@pytest.mark.parametrize(
    "boxes, with_mask, message",
    [
        ("not json", False, "boxes must be a JSON list"),
        ("[]", False, "boxes must be a JSON list"),
        ('{"x0": 1}', False, "boxes must be a JSON list"),
        ("[[1, 2, 3]]", False, "give it as [x0, y0, x1, y1]"),
        ("[[1.5, 2, 30, 40]]", False, "whole pixels"),
        ("[[0, 0, 96, 40]]", False, "outside the 96x64 frame"),
        ("[[10, 10, 10, 40]]", False, "has no area"),
        ("[[10, 10, 40, 40]]", True, "either as masks or as boxes"),
        ('[{"box": [10, 10, 40, 40], "object": 1, "frame": 12}]', False, "the video has frames 0 to 9"),
        ('[{"box": [10, 10, 40, 40], "object": 1, "frame": 5}]', False, "frame 0 needs a mask or a box"),
        ('[{"box": [10, 10, 40, 40], "colour": 2}]', False, 'give it as {"box"'),
    ],
)
def test_bad_boxes_are_refused_and_nothing_is_kept(client, tiny_clip, storage_dir, boxes, with_mask, message):
    answer = post(client, tiny_clip, boxes, with_mask)
    assert answer.status_code == 400
    assert message in answer.get_json()["error"]
    storage = Storage(storage_dir)
    assert storage.list_runs() == []
    assert list(storage.runs_root.iterdir()) == []
    assert list(storage.uploads_root.iterdir()) == []


def test_a_run_from_a_box_and_a_negative_stroke(client, tiny_clip, storage_dir):
    # Object 1's box over the whole frame, refined by a negative stroke across object 2 (which the box lets in);
    # object 2 by its box alone, from frame 3.
    import torch

    from segmentation.inference import model_size
    from segmentation.prompts import Box, Stroke, mask_from_boxes
    from segmentation.video import iter_frames
    from segmentation.weights import load_for_inference

    truth = read_mask(tiny_clip.mask)
    ys, xs = np.nonzero(truth == 2)
    across = [[int(xs.min()) + 2, int(ys.mean())], [int(xs.max()) - 2, int(ys.mean())]]
    boxes = [[0, 0, 95, 63], {"box": boxes_of(tiny_clip)[1], "object": 2, "frame": 3}]
    strokes = [{"object": 1, "positive": False, "points": across, "radius": 2}]
    with open(tiny_clip.video, "rb") as video:
        data = {"video": (video, "clip.mp4"), "boxes": json.dumps(boxes), "strokes": json.dumps(strokes),
                **FAST_OPTIONS}  # fmt: skip
        answer = client.post("/api/runs", data=data, content_type="multipart/form-data")
    assert answer.status_code == 202, answer.get_json()
    run = wait_for_run(client, answer.get_json()["id"])
    assert run["status"] == "done", run["error"]
    summary = client.get(f"/api/runs/{run['id']}/files/summary").get_json()
    assert [(s["object_id"], s["positive"]) for s in summary["strokes"]] == [(1, False)]
    assert summary["object_start_frames"] == {"1": 0, "2": 3}
    masks = Storage(storage_dir).result_dir(run["id"]) / "masks"
    # Frame 0 is what the engine makes of the box with the stroke, not of the box alone.
    model, frame = load_for_inference()[0], next(iter(iter_frames(tiny_clip.video)))  # as the run loads it
    wide, stroke = [Box(0, 0, 95, 63, object_id=1)], Stroke(tuple(map(tuple, across)), 1, positive=False, radius=2)
    alone, refined = (
        mask_from_boxes(model, torch.device("cpu"), frame, wide, model_size(96, 64), extra)
        for extra in ((), [stroke])
    )
    on_two = lambda labels: ((labels == 1) & (truth == 2)).mean()  # noqa: E731
    assert on_two(refined) < on_two(alone), "the test needs a box that lets object 2 in"
    assert np.array_equal(read_mask(masks / "00000.png"), refined)
    # Nothing of object 2 before the frame it was drawn on.
    assert not any((read_mask(masks / f"{i:05d}.png") == 2).any() for i in range(3))
    assert (read_mask(masks / "00003.png") == 2).any()


@pytest.mark.parametrize(
    "strokes, message",
    [
        ("[]", "strokes must be a JSON list"),
        ('[{"points": [[1, 2, 3]]}]', "give it as [x, y]"),
        ('[{"object": 1, "points": [[500, 2]]}]', "goes outside the 96x64 frame"),
        ('[{"object": 1, "positive": false, "points": [[5, 5]]}]', "refines nothing"),
        ('[{"object": 1, "points": []}]', "has no points"),
        ('[{"object": 1, "points": [[5, 5]], "frame": 10}]', "past the video's end"),
        ('[{"object": 1, "points": [[5, 5]], "frame": 2.5}]', "frame a frame number"),
    ],
)
def test_bad_strokes_are_refused(client, tiny_clip, storage_dir, strokes, message):
    with open(tiny_clip.video, "rb") as video:
        data = {"video": (video, "clip.mp4"), "strokes": strokes, **FAST_OPTIONS}
        answer = client.post("/api/runs", data=data, content_type="multipart/form-data")
    assert answer.status_code == 400 and message in answer.get_json()["error"], answer.get_json()
    assert Storage(storage_dir).list_runs() == []
