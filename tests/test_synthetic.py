import cv2
import numpy as np
import pytest
from PIL import Image

from segmentation.masks import read_first_mask, read_mask
from segmentation.synthetic import make_clip
from segmentation.trajectory import frame_rows
from segmentation.video import iter_frames, probe


def test_video_clip_with_one_object(tmp_path):
    clip = make_clip(tmp_path, n_frames=8, size=(96, 64), n_objects=1, seed=3, fps=12.0)
    assert clip.video == tmp_path / "video.mp4" and clip.video_path == clip.video
    info = probe(clip.video)
    assert (info.width, info.height, info.frame_count, info.fps) == (96, 64, 8, 12.0)
    assert clip.size == (96, 64) and clip.fps == 12.0 and clip.object_ids == [1]
    # The first-frame mask is the plain binary 0/255 PNG users draw.
    raw = np.asarray(Image.open(clip.mask))
    assert Image.open(clip.mask).mode == "L" and set(np.unique(raw).tolist()) == {0, 255}
    first = read_first_mask(clip.mask, size=(96, 64))
    gt = [read_mask(p) for p in sorted(clip.gt_dir.glob("*.png"))]
    assert len(gt) == 8 and np.array_equal(first, gt[0])
    # Fully inside the frame every time: same area on every frame (nothing clipped), never on the border.
    areas = {int(g.sum()) for g in gt}
    assert len(areas) == 1
    for g in gt:
        ys, xs = np.nonzero(g)
        assert ys.min() >= 0 and xs.min() >= 0 and ys.max() <= 63 and xs.max() <= 95
    # It moves, and the recorded centroids are those of the ground truth.
    assert clip.centroids[1][0] != clip.centroids[1][-1]
    row = frame_rows(5, 0, gt[5], [1])[0]
    assert clip.centroids[1][5] == pytest.approx((row["x"], row["y"]))
    assert next(iter_frames(clip.video)).shape == (64, 96, 3)


def test_folder_clip_with_three_objects_is_deterministic(tmp_path):
    a = make_clip(tmp_path / "a", n_frames=6, size=(80, 48), n_objects=3, seed=7, as_folder=True)
    b = make_clip(tmp_path / "b", n_frames=6, size=(80, 48), n_objects=3, seed=7, as_folder=True)
    assert a.video == tmp_path / "a" / "frames"
    info = probe(a.video)
    assert info.is_folder and info.frame_count == 6 and info.frame_names[0] == "00000"
    assert set(np.unique(read_first_mask(a.mask)).tolist()) == {0, 1, 2, 3}
    assert Image.open(a.mask).mode == "P"
    for name in ("frames/00003.png", "gt/00005.png", "mask.png"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert a.centroids == b.centroids
    c = make_clip(tmp_path / "c", n_frames=6, size=(80, 48), n_objects=3, seed=8, as_folder=True)
    assert c.centroids != a.centroids


def test_frames_differ_where_nothing_moves(tmp_path):
    clip = make_clip(tmp_path, n_frames=3, size=(64, 48), seed=1, as_folder=True)
    f0, f1 = (np.asarray(Image.open(clip.video / f"0000{i}.png")).astype(int) for i in (0, 1))
    background = (read_mask(clip.gt_dir / "00000.png") == 0) & (read_mask(clip.gt_dir / "00001.png") == 0)
    assert np.abs(f0 - f1)[background].mean() > 1


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="even"):
        make_clip(tmp_path, size=(65, 48))
    with pytest.raises(ValueError, match="n_objects"):
        make_clip(tmp_path, n_objects=0)


def test_figures_have_thin_limbs_that_move_on_their_own(tmp_path):
    clip = make_clip(tmp_path, n_frames=12, size=(160, 96), n_objects=2, seed=5, as_folder=True, figures=True)
    gt = [read_mask(p) for p in sorted(clip.gt_dir.glob("*.png"))]
    shapes = make_clip(tmp_path / "s", n_frames=12, size=(160, 96), n_objects=2, seed=5, as_folder=True)
    rigid = [read_mask(p) for p in sorted(shapes.gt_dir.glob("*.png"))]
    kernel = np.ones((5, 5), np.uint8)

    def thin_share(labels, object_id):  # of the object's pixels, those a 5x5 opening takes away
        mask = (labels == object_id).astype(np.uint8)
        return 1 - cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel).sum() / max(1, mask.sum())

    for object_id in (1, 2):
        # A rigid shape's area changes only where the other object covers it; a figure's, as its limbs swing...
        areas = [int((g == object_id).sum()) for g in rigid]
        assert max(areas) < 1.05 * min(areas)
        areas = [int((g == object_id).sum()) for g in gt]
        assert max(areas) > 1.1 * min(areas) > 0
        # ...and much more of it is thin.
        assert thin_share(gt[0], object_id) > 0.2 > thin_share(rigid[0], object_id)


def test_riders_move_with_their_object_in_front_of_it_and_are_not_it(tmp_path):
    from segmentation.synthetic import _JITTER, _background, _sprites

    clip = make_clip(tmp_path, n_frames=8, size=(160, 96), seed=7, as_folder=True, figures=True, riders=True)
    plain = make_clip(tmp_path / "p", n_frames=8, size=(160, 96), seed=7, as_folder=True, figures=True)
    # The same draws as make_clip makes (its background first), to know where the rider is.
    rng = np.random.default_rng(7)
    _background(rng, 96 + 2 * _JITTER, 160 + 2 * _JITTER)
    (sprite,) = _sprites(rng, 1, 160, 96, 8, figures=True, riders=True)
    assert sprite.rider.sum() > 50
    for t, path in enumerate(sorted(clip.gt_dir.glob("*.png"))):
        labels = read_mask(path)
        x, y = sprite.top_left(t)
        h, w = sprite.rider.shape
        rider = np.zeros_like(labels, bool)
        rider[y : y + h, x : x + w] = sprite.rider
        assert not labels[rider].any()  # not the object, though it moves with it...
        near = cv2.dilate((labels == 1).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert (near & rider).any()  # ...and touches it
    # Without riders the figure is whole where a rider would cover it.
    first = [read_mask(sorted(c.gt_dir.glob("*.png"))[0]) for c in (plain, clip)]
    assert (first[0] == 1).sum() > (first[1] == 1).sum()

    # With two objects, the rider of the one drawn last hides the other object too where it covers it.
    clip = make_clip(tmp_path / "two", n_frames=40, size=(448, 256), n_objects=2, seed=500, as_folder=True,
                     figures=True, riders=True)  # fmt: skip
    rng = np.random.default_rng(500)
    _background(rng, 256 + 2 * _JITTER, 448 + 2 * _JITTER)
    last = _sprites(rng, 2, 448, 256, 40, figures=True, riders=True)[-1]
    under = 0
    for t, path in enumerate(sorted(clip.gt_dir.glob("*.png"))):
        x, y = last.top_left(t)
        h, w = last.rider.shape
        under += int(read_mask(path)[y : y + h, x : x + w][last.rider].any())
    assert under == 0
