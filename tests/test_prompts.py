"""Prompts and corrections in the engine: boxes instead of a mask, and a correction that reaches backward."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from segmentation import inference
from segmentation.annotations import backward_spans
from segmentation.errors import InputError
from segmentation.evaluate import jaccard
from segmentation.masks import read_mask, write_mask
from segmentation.pipeline import SegmentOptions, segment
from segmentation.prompts import Box
from segmentation.synthetic import make_clip

# Without online training the engine is deterministic, whatever else the machine is doing.
STILL = SegmentOptions(online_seconds=0)


def box_of(labels: np.ndarray, object_id: int) -> Box:
    ys, xs = np.nonzero(labels == object_id)
    return Box(int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max()), object_id=object_id)


def frames_iou(out, truth_dir, object_id, frames, truth_id=None) -> float:
    return float(
        np.mean(
            [
                jaccard(
                    read_mask(out / "masks" / f"{t:05d}.png") == object_id,
                    read_mask(truth_dir / f"{t:05d}.png") == (truth_id or object_id),
                )
                for t in frames
            ]
        )
    )


def test_boxes_alone_track_each_object(tmp_path):
    clip = make_clip(tmp_path / "clip", n_frames=12, size=(192, 128), n_objects=2, seed=2)
    first = read_mask(clip.mask)
    boxes = [box_of(first, 1), box_of(first, 2)]
    summary = segment(clip.video, None, tmp_path / "out", SegmentOptions(online_seconds=2), boxes=boxes)
    assert summary["objects"] == [1, 2] and [b["object_id"] for b in summary["boxes"]] == [1, 2]
    for object_id in (1, 2):
        assert frames_iou(tmp_path / "out", clip.gt_dir, object_id, range(12)) >= 0.8
    # The mask the boxes made stays inside them.
    made = read_mask(tmp_path / "out" / "masks" / "00000.png")
    for box in boxes:
        ys, xs = np.nonzero(made == box.object_id)
        assert xs.min() >= box.x0 and xs.max() <= box.x1 and ys.min() >= box.y0 and ys.max() <= box.y1


def test_cli_takes_boxes(tmp_path):
    clip = make_clip(tmp_path / "clip", n_frames=6, size=(160, 96), n_objects=2, seed=4)
    first = read_mask(clip.mask)
    boxes = [box_of(first, i) for i in (1, 2)]
    args = [sys.executable, "-m", "segmentation.cli", "segment", str(clip.video), "-o", str(tmp_path / "out"),
            "--online-seconds", "0"]  # fmt: skip
    for b in boxes:
        args += ["--box", f"{b.x0},{b.y0},{b.x1},{b.y1}"]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["objects"] == [1, 2]
    assert frames_iou(tmp_path / "out", clip.gt_dir, 1, range(6)) >= 0.7


def test_a_correction_fixes_the_frames_before_it(tmp_path):
    # Frame 0 calls one shape object 1; frame 12's correction says object 1 is the other shape (as when the model
    # had followed a look-alike). The frames nearer the correction than frame 0 (7-11) must follow it, the
    # earlier ones frame 0. The two shapes stay apart in this clip, so either is easy to track on its own.
    clip = make_clip(tmp_path / "clip", n_frames=16, size=(192, 128), n_objects=2, seed=0)
    masks = tmp_path / "masks"
    masks.mkdir()
    write_mask(masks / "00000.png", (read_mask(clip.gt_dir / "00000.png") == 1).astype(np.uint8))
    write_mask(masks / "00012.png", (read_mask(clip.gt_dir / "00012.png") == 2).astype(np.uint8))
    out = tmp_path / "out"
    summary = segment(clip.video, masks, out, STILL)
    assert summary["corrections"] == [{"frame": 12, "objects": {"1": 6}}]
    assert frames_iou(out, clip.gt_dir, 1, range(0, 7), truth_id=1) >= 0.8
    assert frames_iou(out, clip.gt_dir, 1, range(7, 12), truth_id=2) >= 0.8
    assert frames_iou(out, clip.gt_dir, 1, range(12, 16), truth_id=2) >= 0.8
    # The overlay and the trajectory follow the corrected masks.
    from segmentation.trajectory import read_csv

    rows = read_csv(out / "trajectory.csv")
    assert list(rows["frame"]) == list(range(16))
    centroid_x = rows.set_index("frame")["x"]
    truth = clip.centroids
    assert abs(centroid_x[9] - truth[2][9][0]) < 6 and abs(centroid_x[3] - truth[1][3][0]) < 6


def test_online_training_learns_every_annotated_frame(tmp_path):
    clip = make_clip(tmp_path / "clip", n_frames=10, size=(160, 96), n_objects=2, seed=11, appear_at={2: 5})
    summary = segment(clip.video, clip.masks_dir, tmp_path / "out", SegmentOptions(online_seconds=3))
    assert summary["online_training"]["annotated_frames"] == [0, 5]
    assert summary["online_training"]["frames"] == 2
    assert summary["online_training"]["objects"] == [1, 2]


def test_backward_spans_reach_back_to_each_objects_previous_annotation():
    # Object 1 at 0, 10 and 20; object 2 from 4 (new: nothing backward), redrawn at 20.
    spans = backward_spans({0: [1], 4: [2], 10: [1], 20: [1, 2]})
    assert [(s.frame, s.midpoints) for s in spans] == [(10, {1: 5}), (20, {1: 15, 2: 12})]
    assert spans[1].stop == 12
    assert backward_spans({0: [1], 1: [1]}) == []  # adjacent frames: nothing in between


def _two_object_clip(tmp_path):
    return make_clip(tmp_path / "clip", n_frames=6, size=(160, 96), n_objects=2, seed=4)


@pytest.mark.parametrize(
    "boxes, message",
    [
        ([Box(-1, 0, 20, 20)], "outside the 160x96 frame"),
        ([Box(10, 10, 170, 20)], "outside the 160x96 frame"),
        ([Box(10, 10, 10, 40)], "has no area"),
        ([Box(30, 30, 10, 10)], "right of and below"),
        ([Box(10, 10, 40, 40), Box(50, 10, 60, 40, frame=6)], "frames 0 to 5"),
        ([Box(10, 10, 40, 40, object_id=1), Box(12, 12, 30, 30, object_id=1)], "two boxes for object 1"),
        ([Box(10, 10, 40, 40, frame=2)], "frame 0 needs a mask or a box"),
    ],
)
def test_bad_boxes_are_one_line_and_write_nothing(tmp_path, boxes, message):
    clip = _two_object_clip(tmp_path)
    with pytest.raises(InputError, match=message):
        segment(clip.video, None, tmp_path / "out", STILL, boxes=boxes)
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--box", "1,2,3"], "give it as X0,Y0,X1,Y1"),
        (["--box", "1,2,a,4"], "give it as X0,Y0,X1,Y1"),
        (["MASK", "--box", "0,0,10,10"], "either as a mask or as --box, not both"),
        ([], "give the objects to track"),
    ],
)
def test_cli_bad_boxes(tmp_path, extra, message):
    clip = _two_object_clip(tmp_path)
    extra = [str(clip.mask) if a == "MASK" else a for a in extra]
    done = subprocess.run(
        [sys.executable, "-m", "segmentation.cli", "segment", str(clip.video), *extra, "-o", str(tmp_path / "out")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_a_correction_past_the_last_frame_or_unreadable_is_refused(tmp_path):
    clip = _two_object_clip(tmp_path)
    masks = tmp_path / "masks"
    masks.mkdir()
    shutil.copy(clip.mask, masks / "00000.png")
    shutil.copy(clip.mask, masks / "00009.png")
    with pytest.raises(InputError, match="names frame 9, but the video has 6 frame"):
        segment(clip.video, masks, tmp_path / "out", STILL)
    assert not (tmp_path / "out").exists()


def _masks_folder(folder, clip, frames_ids: dict[int, int]):
    """A masks folder with, at each frame, object 1 drawn where the clip's object `frames_ids[frame]` is."""
    folder.mkdir()
    for frame, truth_id in frames_ids.items():
        truth = read_mask(clip.gt_dir / f"{frame:05d}.png")
        write_mask(folder / f"{frame:05d}.png", (truth == truth_id).astype(np.uint8))
    return folder


def test_previous_recomputes_only_what_a_correction_reaches(tmp_path, monkeypatch):
    from segmentation.inference import Segmenter

    clip = make_clip(tmp_path / "clip", n_frames=16, size=(192, 128), n_objects=2, seed=0)
    before = tmp_path / "before"
    segment(clip.video, _masks_folder(tmp_path / "m1", clip, {0: 1}), before, STILL)
    corrected = _masks_folder(tmp_path / "m2", clip, {0: 1, 12: 2})

    steps = []
    real_step = Segmenter.step
    monkeypatch.setattr(Segmenter, "step", lambda self, *a, **k: steps.append(1) or real_step(self, *a, **k))
    again = segment(clip.video, corrected, tmp_path / "again", STILL, previous=before)
    # The forward pass resumes at 12; the reverse pass from there reaches back to frame 7 (nearer 12 than 0) and
    # merges into the previous masks: frames 0-6 are kept as they were. Object 1 is another shape from 12 on, so
    # the forward pass never gives the previous result again and runs to the end.
    assert again["version"] == 2
    assert again["previous"] == {"version": 1, "reused_frames": 7, "recomputed_frames": 4 + 5, "settled_at": None,
                                 "overlay_reused_frames": 0}  # fmt: skip  # one group of pictures: drawn again
    assert len(steps) == 4 + 1 + 5  # forward 12-15, the reverse pass's start at 12, then 11 down to 7
    monkeypatch.setattr(Segmenter, "step", real_step)

    full = segment(clip.video, corrected, tmp_path / "full", STILL)
    assert full["version"] == 1 and full["previous"] is None
    for t in range(16):
        name = f"{t:05d}.png"
        assert np.array_equal(
            read_mask(tmp_path / "again" / "masks" / name), read_mask(tmp_path / "full" / "masks" / name)
        ), t
    for t in range(7):
        name = f"{t:05d}.png"
        assert (tmp_path / "again" / "masks" / name).read_bytes() == (before / "masks" / name).read_bytes()
    assert (tmp_path / "again" / "trajectory.csv").read_text() == (
        tmp_path / "full" / "trajectory.csv"
    ).read_text()


def test_a_second_correction_counts_each_frame_once(tmp_path, monkeypatch):
    monkeypatch.setattr(inference, "CARRY_FRAMES", 0)  # the passes' bookkeeping alone (the flow's: below)
    # Version 3 adds a correction at 6 to version 2's at 12: the forward pass from 6 (settling at 14) also
    # passes over 10-11, which the reverse pass from 12 (now reaching back to 9, half way to 6) segments again.
    clip = make_clip(tmp_path / "clip", n_frames=20, size=(192, 128), n_objects=2, seed=0)
    segment(clip.video, _masks_folder(tmp_path / "m1", clip, {0: 1}), tmp_path / "v1", STILL)
    v2 = tmp_path / "v2"
    segment(clip.video, _masks_folder(tmp_path / "m2", clip, {0: 1, 12: 2}), v2, STILL, previous=tmp_path / "v1")
    masks = _masks_folder(tmp_path / "m3", clip, {0: 1, 6: 2, 12: 2})
    v3 = segment(clip.video, masks, tmp_path / "v3", STILL, previous=v2)
    assert v3["corrections"] == [{"frame": 6, "objects": {"1": 3}}, {"frame": 12, "objects": {"1": 9}}]
    assert v3["previous"]["settled_at"] == 14
    # Recomputed: 4-5 (back from 6), 6-14 (forward), 10-11 among them; the other nine are version 2's.
    assert (v3["previous"]["reused_frames"], v3["previous"]["recomputed_frames"]) == (9, 11)
    for t in [*range(4), *range(15, 20)]:
        name = f"{t:05d}.png"
        assert (tmp_path / "v3" / "masks" / name).read_bytes() == (v2 / "masks" / name).read_bytes(), t


def test_a_removed_correction_takes_back_what_its_reverse_pass_did_in_an_earlier_version(tmp_path):
    # Version 1's correction at 20 says object 1 is the other shape, and its reverse pass relabels 11-19. Version 2
    # adds one at 40 (resuming there, 11-19 kept as they were); version 3 removes the one at 20. Frames 11-19 must
    # then be the forward pass's from frame 0 again, as in a full run: the reverse pass that made them belongs to
    # version 1, and version 2 only kept its result.
    clip = make_clip(tmp_path / "clip", n_frames=48, size=(192, 128), n_objects=2, seed=0)
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    segment(clip.video, _masks_folder(tmp_path / "m1", clip, {0: 1, 20: 2}), v1, STILL)
    segment(clip.video, _masks_folder(tmp_path / "m2", clip, {0: 1, 20: 2, 40: 2}), v2, STILL, previous=v1)
    masks = _masks_folder(tmp_path / "m3", clip, {0: 1, 40: 2})
    v3 = segment(clip.video, masks, tmp_path / "v3", STILL, previous=v2)
    full = segment(clip.video, masks, tmp_path / "full", STILL)
    assert full["corrections"] == [{"frame": 40, "objects": {"1": 20}}]
    settled = v3["previous"]["settled_at"]
    for t in range(48 if settled is None else settled + 1):
        name = f"{t:05d}.png"
        assert np.array_equal(
            read_mask(tmp_path / "v3" / "masks" / name), read_mask(tmp_path / "full" / "masks" / name)
        ), t
    assert frames_iou(tmp_path / "v3", clip.gt_dir, 1, range(11, 20), truth_id=1) >= 0.8


def test_a_correction_that_fades_stops_the_forward_pass(tmp_path, monkeypatch):
    from segmentation.inference import Segmenter

    monkeypatch.setattr(inference, "CARRY_FRAMES", 0)  # the flow would carry the correction on past 11
    clip = make_clip(tmp_path / "clip", n_frames=20, size=(192, 128), n_objects=1, seed=3)
    before = tmp_path / "before"
    segment(clip.video, _masks_folder(tmp_path / "m1", clip, {0: 1}), before, STILL)
    # The correction at frame 8 is what the model had there: three frames after it agree with the previous result.
    masks = _masks_folder(tmp_path / "m2", clip, {0: 1})
    shutil.copy(before / "masks" / "00008.png", masks / "00008.png")
    steps = []
    real_step = Segmenter.step
    monkeypatch.setattr(Segmenter, "step", lambda self, *a, **k: steps.append(1) or real_step(self, *a, **k))
    again = segment(clip.video, masks, tmp_path / "again", STILL, previous=before)
    assert again["previous"] == {"version": 1, "reused_frames": 5 + 8, "recomputed_frames": 4 + 3, "settled_at": 11,
                                 "overlay_reused_frames": 0}  # fmt: skip
    assert len(steps) == 4 + 1 + 3  # forward 8-11, the reverse pass's start at 8, then 7 down to 5
    assert again["video"]["frame_count"] == 20
    for t in [*range(5), *range(12, 20)]:  # 5-7: the reverse pass's
        name = f"{t:05d}.png"
        assert (tmp_path / "again" / "masks" / name).read_bytes() == (before / "masks" / name).read_bytes(), t
        assert (tmp_path / "again" / "state" / "forward" / name).is_file()
    rows = (tmp_path / "again" / "trajectory.csv").read_text().splitlines()
    assert len(rows) == len((before / "trajectory.csv").read_text().splitlines())


def test_a_correction_soon_after_another_mask_resumes_where_that_mask_is_carried_from(tmp_path):
    # Object 2 is drawn again at 10, and its mask is carried by the flow over the frames after it; a correction of
    # object 1 at 14 (within that reach) resumes at 10, so that object 2 is carried on exactly as in a full run.
    assert 14 - 10 < inference.CARRY_FRAMES < 14
    clip = make_clip(tmp_path / "clip", n_frames=24, size=(192, 128), n_objects=2, seed=0)

    def masks(folder, frames_ids):
        folder.mkdir()
        for frame, ids in frames_ids.items():
            truth = read_mask(clip.gt_dir / f"{frame:05d}.png")
            write_mask(folder / f"{frame:05d}.png", np.where(np.isin(truth, ids), truth, 0).astype(np.uint8))
        return folder

    before = tmp_path / "before"
    segment(clip.video, masks(tmp_path / "m1", {0: [1, 2], 10: [2]}), before, STILL)
    corrected = masks(tmp_path / "m2", {0: [1, 2], 10: [2], 14: [1]})
    again = segment(clip.video, corrected, tmp_path / "again", STILL, previous=before)
    full = segment(clip.video, corrected, tmp_path / "full", STILL)
    settled = again["previous"]["settled_at"]  # past it the previous result is kept, as it agreed with it
    for t in range(24 if settled is None else settled + 1):
        name = f"{t:05d}.png"
        assert np.array_equal(
            read_mask(tmp_path / "again" / "masks" / name), read_mask(tmp_path / "full" / "masks" / name)
        ), t
    # Resumed at 10, its reverse pass is redone too: frames are kept as they were before it reaches (5, half way
    # to object 2's mask at 0).
    assert full["previous"] is None
    assert again["corrections"] == [{"frame": 10, "objects": {"2": 5}}, {"frame": 14, "objects": {"1": 7}}]
    for t in range(6):
        name = f"{t:05d}.png"
        assert (tmp_path / "again" / "masks" / name).read_bytes() == (before / "masks" / name).read_bytes(), t


def test_a_correction_draws_the_overlay_again_only_around_what_it_changed(tmp_path, monkeypatch):
    from segmentation.render import overlay
    from segmentation.video import iter_frames, keyframes

    monkeypatch.setattr(inference, "CARRY_FRAMES", 0)  # where the forward pass settles, without the flow's carry
    # 24 frames/s: a keyframe every 48 frames. The correction at 90 reaches back to 70 (halfway to the one at 50).
    clip = make_clip(tmp_path / "clip", n_frames=100, size=(128, 96), n_objects=2, seed=0)
    before = tmp_path / "before"
    segment(clip.video, _masks_folder(tmp_path / "m1", clip, {0: 1, 50: 1}), before, STILL)
    assert keyframes(before / "overlay.mp4") == [0, 48, 96]
    corrected = _masks_folder(tmp_path / "m2", clip, {0: 1, 50: 1, 90: 2})
    again = segment(clip.video, corrected, tmp_path / "again", STILL, previous=before)
    # Masks changed on 71-92 (the forward pass settles at 94): 0-47 and 96-99 are copied, 48-95 drawn again.
    assert again["previous"]["settled_at"] == 94 and again["previous"]["overlay_reused_frames"] == 48 + 4
    segment(clip.video, corrected, tmp_path / "full", STILL)

    spliced, whole, earlier = (list(iter_frames(tmp_path / d / "overlay.mp4")) for d in ("again", "full", "before"))
    assert len(spliced) == len(whole) == 100
    for t in [*range(48), *range(96, 100)]:
        assert np.array_equal(spliced[t], earlier[t]), t
    # Drawn again from the right frames and the same masks as the full run's: as close to the overlay drawn
    # from them as the full run's encode is, and far from the next frame's.
    frames = list(iter_frames(clip.video))
    drawn = [overlay(frames[t], read_mask(tmp_path / "full" / "masks" / f"{t:05d}.png")) for t in range(100)]
    error = [np.abs(spliced[t].astype(int) - drawn[t]).mean() for t in range(100)]
    assert max(error) < max(np.abs(w.astype(int) - d).mean() for w, d in zip(whole, drawn)) + 1
    assert max(error[48:96]) < min(np.abs(spliced[t].astype(int) - drawn[t + 1]).mean() for t in range(48, 96))
    assert not np.array_equal(spliced[90], earlier[90])  # the correction shows
    assert (tmp_path / "again" / "trajectory.csv").read_text() == (tmp_path / "full" / "trajectory.csv").read_text()

    # A previous overlay cut short, or gone: what is left of it is copied, the rest drawn; the result is whole.
    size = (before / "overlay.mp4").stat().st_size
    for keep, reused in ((size * 3 // 5, 48), (5000, 0), (0, 0)):
        if keep:
            (before / "overlay.mp4").write_bytes((before / "overlay.mp4").read_bytes()[:keep])
        else:
            (before / "overlay.mp4").unlink()
        again = segment(clip.video, corrected, tmp_path / "again", STILL.model_copy(update={"overwrite": True}),
                        previous=before)  # fmt: skip
        assert again["previous"]["overlay_reused_frames"] == reused
        assert len(list(iter_frames(tmp_path / "again" / "overlay.mp4"))) == 100


def test_previous_carries_the_earlier_decoder_on_with_the_corrections(tmp_path):
    import torch

    clip = make_clip(tmp_path / "clip", n_frames=8, size=(160, 96), n_objects=1, seed=1)
    before, fast = tmp_path / "before", SegmentOptions(preset="fast", online_seconds=600)  # its 60 iterations
    first = segment(clip.video, clip.mask, before, fast)
    masks = _masks_folder(tmp_path / "m", clip, {0: 1, 6: 1})
    again = segment(clip.video, masks, tmp_path / "again", fast, previous=before)
    online = again["online_training"]
    assert online["reused_from_version"] == 1 and online["annotated_frames"] == [0, 6]
    assert first["online_training"]["iterations"] == 60 and online["iterations"] == 60 // 3  # a share, on top
    # The corrected frame takes three times frame 0's turns in the pool: the decoder has learnt frame 0 already.
    assert first["online_training"]["pool_by_frame"] == [24] and online["pool_by_frame"] == [6, 18]

    def decoder(out):
        return torch.load(out / "state" / "decoder.pt", weights_only=True)

    # Without online training the new version's decoder is the earlier one, exactly; with it, it moved on.
    kept = segment(clip.video, masks, tmp_path / "kept", STILL, previous=before)
    assert kept["online_training"]["iterations"] == 0
    assert all(torch.equal(a, b) for a, b in zip(decoder(before).values(), decoder(tmp_path / "kept").values()))
    assert not all(torch.equal(a, b) for a, b in zip(decoder(before).values(), decoder(tmp_path / "again").values()))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp, before: tmp / "nowhere", "not found"),
        (lambda tmp, before: (tmp / "empty").mkdir() or tmp / "empty", "no readable summary.json"),
    ],
)
def test_a_previous_result_that_cannot_be_used(tmp_path, make, message):
    clip = _two_object_clip(tmp_path)
    with pytest.raises(InputError, match=message):
        segment(clip.video, clip.mask, tmp_path / "out", STILL, previous=make(tmp_path, None))
    assert not (tmp_path / "out").exists()


def test_a_previous_result_of_another_video_or_size_is_refused(tmp_path):
    clip = _two_object_clip(tmp_path)
    before = tmp_path / "before"
    segment(clip.video, clip.mask, before, STILL)
    with pytest.raises(InputError, match="was made with short_side 256, this run asks 320"):
        segment(
            clip.video,
            clip.mask,
            tmp_path / "out",
            SegmentOptions(online_seconds=0, short_side=320),
            previous=before,
        )
    other = make_clip(tmp_path / "other", n_frames=6, size=(128, 96), n_objects=1, seed=1)
    with pytest.raises(InputError, match="160x96 video of 6 frames, not this one"):
        segment(other.video, other.mask, tmp_path / "out", STILL, previous=before)
    assert not (tmp_path / "out").exists()


def _weights_model():
    from segmentation.weights import load_model

    return load_model()[0]


def test_a_negative_stroke_takes_out_what_the_box_let_in(tmp_path):
    import torch

    from segmentation.inference import model_size
    from segmentation.prompts import Stroke, mask_from_boxes
    from segmentation.video import iter_frames

    # A box over the whole frame lets in both shapes as object 1; a negative stroke across shape 2 takes it out.
    clip = make_clip(tmp_path / "clip", n_frames=2, size=(192, 128), n_objects=2, seed=0)
    frame, truth = next(iter(iter_frames(clip.video))), read_mask(clip.mask)
    model, size = _weights_model(), model_size(192, 128)
    wide = [Box(0, 0, 191, 127, object_id=1)]
    before = mask_from_boxes(model, torch.device("cpu"), frame, wide, size)
    ys, xs = np.nonzero(truth == 2)
    across = Stroke(((int(xs.min()) + 2, int(ys.mean())), (int(xs.max()) - 2, int(ys.mean()))), 1, positive=False)
    after = mask_from_boxes(model, torch.device("cpu"), frame, wide, size, [across])
    on_two = lambda labels: ((labels == 1) & (truth == 2)).sum() / (truth == 2).sum()  # noqa: E731
    assert on_two(before) > 0.5, "the test needs a box that lets shape 2 in"
    assert on_two(after) < 0.1
    assert jaccard(after == 1, truth == 1) > jaccard(before == 1, truth == 1)


def test_a_positive_stroke_alone_starts_an_object(tmp_path):
    from segmentation.prompts import Stroke

    clip = make_clip(tmp_path / "clip", n_frames=8, size=(192, 128), n_objects=2, seed=0)
    truth = read_mask(clip.mask)
    ys, xs = np.nonzero(truth == 1)
    cy = int(np.median(ys))
    row = xs[ys == cy]
    scribble = Stroke(((int(row.min()) + 3, cy), (int(row.max()) - 3, cy)), object_id=1, radius=2)
    summary = segment(clip.video, None, tmp_path / "out", STILL, strokes=[scribble])
    assert summary["objects"] == [1] and len(summary["strokes"]) == 1
    assert frames_iou(tmp_path / "out", clip.gt_dir, 1, range(8)) >= 0.7


@pytest.mark.parametrize(
    "stroke, message",
    [
        (dict(points=()), "has no points"),
        (dict(points=((10, 10), (200, 10))), "outside the 160x96 frame"),
        (dict(points=((10, 10),), positive=False), "refines nothing"),
    ],
)
def test_bad_strokes(tmp_path, stroke, message):
    from segmentation.prompts import Stroke

    clip = _two_object_clip(tmp_path)
    with pytest.raises(InputError, match=message):
        segment(clip.video, None, tmp_path / "out", STILL, strokes=[Stroke(**stroke)])
    assert not (tmp_path / "out").exists()


def test_boxes_at_frame_0_and_a_mask_correction_later(tmp_path):
    # A masks folder without 00000.png is fine when frame 0's objects come from boxes.
    clip = make_clip(tmp_path / "clip", n_frames=12, size=(192, 128), n_objects=2, seed=0)
    first = read_mask(clip.mask)
    masks = _masks_folder(tmp_path / "m", clip, {8: 1})
    summary = segment(clip.video, masks, tmp_path / "out", STILL, boxes=[box_of(first, 1)])
    assert summary["mask_frames"] == [0, 8] and summary["corrections"] == [{"frame": 8, "objects": {"1": 4}}]
    assert frames_iou(tmp_path / "out", clip.gt_dir, 1, range(12)) >= 0.8
    with pytest.raises(InputError, match="no mask for frame 0"):
        segment(clip.video, masks, tmp_path / "out2", STILL)


def test_a_correction_keeps_the_mask_its_unchanged_boxes_made(tmp_path, monkeypatch):
    # Online training moves the decoder on, so the same box would make another mask: the previous one is kept, and
    # the frames before the correction with it. A box that changed is made into a mask again. (Without the flow's
    # carry: with it, a correction this near frame 0 resumes at 0, as the test above shows.)
    monkeypatch.setattr(inference, "CARRY_FRAMES", 0)
    clip = make_clip(tmp_path / "clip", n_frames=12, size=(160, 96), n_objects=1, seed=5)
    box = box_of(read_mask(clip.mask), 1)
    fast = SegmentOptions(preset="fast", online_seconds=600)
    before = tmp_path / "before"
    segment(clip.video, None, before, fast, boxes=[box])
    masks = _masks_folder(tmp_path / "m", clip, {8: 1})
    again = segment(clip.video, masks, tmp_path / "again", fast, boxes=[box], previous=before)
    # Frames 0-4 kept whole (the reverse pass from 8 reaches back to 5, nearer 8 than 0), each frame counted once.
    assert again["previous"]["reused_frames"] >= 5
    assert again["previous"]["reused_frames"] + again["previous"]["recomputed_frames"] == 12
    annotation = "state/annotations/00000.png"
    assert (tmp_path / "again" / annotation).read_bytes() == (before / annotation).read_bytes()

    moved = Box(box.x0, box.y0, box.x1 - 4, box.y1, object_id=1)
    other = segment(clip.video, masks, tmp_path / "other", fast, boxes=[moved], previous=before)
    assert other["previous"]["reused_frames"] == 0
    assert read_mask(tmp_path / "other" / annotation)[:, box.x1 - 3 :].max() == 0  # inside the new box
