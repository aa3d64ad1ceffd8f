"""The network's pieces: the ImageNet backbone, shared features across objects, the propagation state."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from segmentation.backbone import EfficientNetLite0, load_imagenet
from segmentation.inference import Segmenter, gate_region, model_size
from segmentation.masks import read_first_mask
from segmentation.model import DELTA, STCNN
from segmentation.synthetic import make_clip
from segmentation.video import iter_frames
from segmentation.weights import load_model


def test_imagenet_weights_load_strictly_and_give_strided_features():
    backbone = EfficientNetLite0()
    load_imagenet(backbone)  # strict: a missing or extra key raises
    features = backbone(torch.zeros(1, 3, 96, 160))
    assert [tuple(f.shape[1:]) for f in features] == [(24, 24, 40), (40, 12, 20), (112, 6, 10), (320, 3, 5)]


def test_objects_share_the_frame_features():
    torch.manual_seed(0)
    model = STCNN().eval()
    frame, previous = torch.randn(1, 3, 64, 96), torch.randn(1, 3 * DELTA, 64, 96)
    masks = (torch.rand(2, 1, 64, 96) > 0.5).float()
    with torch.no_grad():
        together = model(frame, previous, masks)[-1]
        apart = torch.cat([model(frame, previous, masks[i : i + 1])[-1] for i in range(2)])
    assert torch.allclose(together, apart, atol=1e-5)


def test_soft_aggregation_picks_the_most_likely_object():
    probs = torch.tensor([[[0.9, 0.2, 0.1]], [[0.6, 0.7, 0.1]]])  # 2 objects, 1 x 3 pixels
    labels = Segmenter._aggregate(probs).argmax(0)
    assert labels.tolist() == [[1, 2, 0]]


def test_one_objects_labels_and_the_gate_are_the_general_ones_made_cheap():
    torch.manual_seed(0)
    probs = torch.rand(1, 40, 70)
    assert torch.equal(Segmenter._winner(Segmenter._scores(probs)), Segmenter._aggregate(probs).argmax(0))
    for shape in [(1, 1, 64, 96), (3, 1, 40, 50), (2, 1, 9, 13)]:  # OpenCV's dilation against the max filter
        masks = (torch.rand(shape) > 0.97).float()
        k = max(3, (min(shape[-2:]) // 8) | 1)
        expected = F.max_pool2d(masks, k, stride=1, padding=k // 2)
        assert torch.equal(gate_region(masks), expected)


def test_a_mask_given_later_adds_an_object():
    model, _ = load_model()
    size = model_size(96, 64)
    segmenter = Segmenter(model, torch.device("cpu"), size)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(3)]
    first = np.zeros((64, 96), np.uint8)
    first[10:30, 10:30] = 1
    out0 = segmenter.step(frames[0], first)
    assert np.array_equal(out0, first)  # the user's own mask comes back untouched
    segmenter.step(frames[1])
    later = np.zeros((64, 96), np.uint8)
    later[40:60, 60:90] = 3
    out2 = segmenter.step(frames[2], later)
    assert segmenter.state.object_ids == [1, 3]
    assert (out2[40:60, 60:90] == 3).all()


def test_an_object_redrawn_later_is_only_where_it_is_drawn(tmp_path):
    clip = make_clip(tmp_path, n_frames=3, size=(160, 96), n_objects=2, seed=3)
    frames, first = list(iter_frames(clip.video)), read_first_mask(clip.mask)
    model, _ = load_model()
    segmenter = Segmenter(model, torch.device("cpu"), model_size(160, 96))
    segmenter.step(frames[0], first)
    seen = segmenter.step(frames[1])
    assert (seen == 1).sum() > 100  # the model follows object 1
    # A correction of object 1 alone, smaller than where the model sees it: object 1 is that and nothing more.
    fix = np.where(cv2.erode((seen == 1).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0, 1, 0).astype(np.uint8)
    out = segmenter.step(frames[2], fix)
    assert np.array_equal(out == 1, fix == 1)


def test_ablations_cut_the_decoder_off_from_that_input():
    # With the shipped weights each input changes the prediction; switched off, the prediction ignores it.
    model, _ = load_model()
    torch.manual_seed(0)
    frame = torch.randn(1, 3, 64, 96)
    previous = [torch.randn(1, 3 * DELTA, 64, 96) for _ in range(2)]
    masks = [(torch.rand(1, 1, 64, 96) > 0.5).float() for _ in range(2)]

    def logits(previous_frames, mask):
        with torch.no_grad():
            return model(frame, previous_frames, mask)[-1]

    assert not torch.allclose(logits(previous[0], masks[0]), logits(previous[1], masks[0]))
    assert not torch.allclose(logits(previous[0], masks[0]), logits(previous[0], masks[1]))
    model.ablate = frozenset({"temporal"})
    assert torch.equal(logits(previous[0], masks[0]), logits(previous[1], masks[0]))
    model.ablate = frozenset({"mask"})
    assert torch.equal(logits(previous[0], masks[0]), logits(previous[0], masks[1]))


def _matching_segmenter(frame: np.ndarray, labels: np.ndarray) -> Segmenter:
    model, _ = load_model()
    segmenter = Segmenter(model, torch.device("cpu"), model_size(*frame.shape[1::-1]))
    segmenter.step(frame, labels)
    return segmenter


def _two_textures() -> tuple[np.ndarray, np.ndarray]:
    # Left half red stripes (object 1), right half green checks (object 2): different looks, exact answer.
    frame = np.zeros((64, 128, 3), np.uint8)
    frame[:, :64, 0] = 200 + 55 * (np.arange(64)[:, None] % 8 < 4)
    frame[:, 64:, 1] = 120 + 120 * ((np.arange(64)[:, None] // 8 + np.arange(64)[None] // 8) % 2)
    labels = np.zeros((64, 128), np.uint8)
    labels[8:56, 8:56], labels[8:56, 72:120] = 1, 2
    return frame, labels


def test_reference_matching_lowers_an_object_where_another_object_matches_better():
    frame, labels = _two_textures()
    segmenter = _matching_segmenter(frame, labels)
    x = segmenter._to_tensor(frame)
    features = segmenter.model.backbone(x)[1]
    with torch.no_grad():
        factors = segmenter._match(features, x.shape[-2:])
    h, w = x.shape[-2:]
    inner_left, inner_right = (slice(h // 4, 3 * h // 4), slice(w // 8, 3 * w // 8)), (
        slice(h // 4, 3 * h // 4), slice(5 * w // 8, 7 * w // 8))  # fmt: skip
    assert factors[0][inner_left].mean() > 0.95 and factors[1][inner_right].mean() > 0.95  # own look: kept
    # The other's look: lowered (measured 0.69 on both), enough to decide between near-equal probabilities.
    assert factors[0][inner_right].mean() < 0.8 and factors[1][inner_left].mean() < 0.8


def test_reference_matching_is_the_same_in_chunks(monkeypatch):
    # Large internal sizes match a block of pixels at a time; the blocks must not change the answer.
    import segmentation.inference as inference

    frame, labels = _two_textures()
    segmenter = _matching_segmenter(frame, labels)
    features = torch.randn(1, 40, 8, 16)
    whole = segmenter._match(features, (32, 64))
    monkeypatch.setattr(inference, "MATCH_ROWS", 7)
    assert torch.allclose(segmenter._match(features, (32, 64)), whole)


def test_an_object_without_a_reference_is_left_alone():
    # A single object has nothing to be told apart from; with matching it gives the same answer as without.
    frame, labels = _two_textures()
    segmenter = _matching_segmenter(frame, (labels == 1).astype(np.uint8))
    segmenter.state.object_ids.append(2)  # an object known but never seen in a mask
    factors = segmenter._match(torch.randn(1, 40, 8, 16), (32, 64))
    assert torch.equal(factors, torch.ones_like(factors))


def test_the_region_loss_ignores_pixels_outside_the_region():
    from segmentation.model import segmentation_loss

    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:5, 2:5] = 1
    region = torch.zeros_like(mask)
    region[..., :6, :6] = 1
    logits = [torch.zeros(1, 1, 8, 8, requires_grad=True)]
    segmentation_loss(logits, mask, region).backward()
    grad = logits[0].grad[0, 0]
    assert (grad[6:, :] == 0).all() and (grad[:, 6:] == 0).all()
    assert (grad[2:5, 2:5] < 0).all() and (grad[0, 0] > 0)


def test_online_training_crops_hold_every_object_and_its_margin_on_whole_cells():
    from segmentation.online import CROP_STEP, crop_windows

    rng = np.random.default_rng(0)
    cropped = 0
    for _ in range(300):
        pool = []
        for _ in range(3):
            labels = np.zeros((256, 448), np.uint8)
            y, x = rng.integers(0, 246), rng.integers(0, 438)
            labels[y : y + rng.integers(1, 60), x : x + rng.integers(1, 80)] = 1
            pool.append(labels)
        margin = int(rng.integers(0, 50))
        windows = crop_windows(pool, margin)
        if windows is None:
            continue
        cropped += 1
        assert len({(ys.stop - ys.start, xs.stop - xs.start) for ys, xs in windows}) == 1  # they stack
        for labels, (ys, xs) in zip(pool, windows):
            assert ys.start % CROP_STEP == 0 and xs.start % CROP_STEP == 0
            rows, cols = np.nonzero(labels)
            assert ys.start <= max(0, rows.min() - margin) and ys.stop >= min(256, rows.max() + 1 + margin)
            assert xs.start <= max(0, cols.min() - margin) and xs.stop >= min(448, cols.max() + 1 + margin)
    assert cropped > 100
    whole = np.ones((256, 448), np.uint8)
    assert crop_windows([whole], 8) is None  # nothing to gain: the decoder runs on the whole frame


def test_the_gate_on_a_crop_reaches_as_far_as_on_the_whole_frame():
    # Online training gates its loss on crops; the region must be the one inference keeps on the whole frame.
    from segmentation.inference import gate_region

    masks = torch.zeros(1, 1, 256, 448)
    masks[..., 120:140, 200:230] = 1
    window = (..., slice(64, 192), slice(96, 320))
    whole = gate_region(masks)[window]
    assert torch.equal(gate_region(masks[window], short_side=256), whole)
    assert not torch.equal(gate_region(masks[window]), whole)  # the crop's own short side would reach less


def _moving_square(n_frames: int, step: int) -> list[np.ndarray]:
    """A textured square moving right by `step` pixels a frame over a still textured background."""
    rng = np.random.default_rng(4)
    background = rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)
    square = cv2.resize(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8), (24, 24), interpolation=cv2.INTER_NEAREST)
    frames = []
    for t in range(n_frames):
        frame = background.copy()
        frame[20:44, 10 + step * t : 34 + step * t] = square
        frames.append(frame)
    return frames


def test_a_given_mask_is_carried_along_the_motion_for_a_few_frames(monkeypatch):
    from segmentation import inference
    from segmentation.evaluate import jaccard

    model, _ = load_model()
    frames = _moving_square(inference.CARRY_FRAMES + 4, step=3)
    half = np.zeros((64, 96), np.uint8)
    half[20:44, 10:22] = 1  # the square's left half only: a part that nothing in its look sets apart

    def run(carry: int) -> list[float]:
        monkeypatch.setattr(inference, "CARRY_FRAMES", carry)
        segmenter = Segmenter(model, torch.device("cpu"), model_size(96, 64), runtime="torch")
        segmenter.step(frames[0], half)
        ious = []
        for t, frame in enumerate(frames[1:], 1):
            moved = np.roll(half, 3 * t, axis=1)  # where that half is now
            ious.append(jaccard(segmenter.step(frame) == 1, moved == 1))
        return ious

    carried, model_only = run(inference.CARRY_FRAMES), run(0)
    # Right after the mask the flow moves it with the square (a weight of 8/9 on the next frame), where the
    # model alone takes the whole square or loses the half.
    assert carried[0] > 0.85 and carried[0] > model_only[0] + 0.1
    assert np.mean(carried[:3]) > np.mean(model_only[:3])


def test_where_the_flow_cannot_follow_the_model_s_own_result_stands(monkeypatch):
    from segmentation import inference
    from segmentation.evaluate import jaccard

    model, _ = load_model()
    frames = _moving_square(3, step=3)
    cut = np.random.default_rng(9).integers(0, 255, (64, 96, 3), dtype=np.uint8)  # a cut to another shot
    cut[30:54, 50:74] = frames[0][20:44, 10:34]  # with the square elsewhere in it
    square = np.zeros((64, 96), np.uint8)
    square[20:44, 10:34] = 1

    def run(carry: int) -> np.ndarray:
        monkeypatch.setattr(inference, "CARRY_FRAMES", carry)
        segmenter = Segmenter(model, torch.device("cpu"), model_size(96, 64), runtime="torch")
        segmenter.step(frames[0], square)
        return segmenter.step(cut)

    carried, model_only = run(inference.CARRY_FRAMES), run(0)
    # No flow is consistent both ways across the cut: nothing of the mask before it is carried over.
    assert jaccard(carried == 1, model_only == 1) > 0.95


def test_a_carried_mask_weighs_less_each_frame_and_none_after_carry_frames():
    # On a still scene the flow is zero and consistent, so what the carry adds is its weight alone: 8/9 of the
    # given mask on the next frame, then 7/9, ... 1/9, and after CARRY_FRAMES frames the model's own probabilities.
    from segmentation.inference import CARRY_FRAMES

    model, _ = load_model()
    segmenter = Segmenter(model, torch.device("cpu"), (96, 64), runtime="torch")
    grey = np.random.default_rng(0).integers(0, 255, (64, 96), dtype=np.uint8)
    given = torch.zeros(1, 64, 96)
    given[0, 20:44, 30:60] = 1
    segmenter.state.grey = grey
    segmenter._start_carry(given, [True])
    weights, untouched = [], []
    for _ in range(CARRY_FRAMES + 2):
        probs = torch.zeros(1, 64, 96)
        out = segmenter._carry(probs, grey)
        weights.append(float(out[0, 32, 45]))
        untouched.append(out is probs)
    expected = [1 - k / (CARRY_FRAMES + 1) for k in range(1, CARRY_FRAMES + 1)]
    assert weights[:CARRY_FRAMES] == pytest.approx(expected, abs=0.02)
    assert untouched == [False] * CARRY_FRAMES + [True, True]
    assert float(out[0, 5, 5]) == 0  # outside the mask nothing is added


def test_a_flow_step_that_fails_the_test_is_not_trusted_again_later(monkeypatch):
    # A cut to another shot, then that shot standing still: the still step's flow is consistent, but what it
    # would carry came across the cut, so nothing is carried (the model's own result, as without the carry).
    from segmentation import inference
    from segmentation.evaluate import jaccard

    model, _ = load_model()
    frames = _moving_square(1, step=3)
    cut = np.random.default_rng(9).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    cut[30:54, 50:74] = frames[0][20:44, 10:34]
    square = np.zeros((64, 96), np.uint8)
    square[20:44, 10:34] = 1

    def run(carry: int):
        monkeypatch.setattr(inference, "CARRY_FRAMES", carry)
        segmenter = Segmenter(model, torch.device("cpu"), model_size(96, 64), runtime="torch")
        segmenter.step(frames[0], square)
        segmenter.step(cut)
        return segmenter.step(cut), segmenter.state.trusted

    (carried, trusted), (model_only, _) = run(inference.CARRY_FRAMES), run(0)
    assert float(trusted.mean()) < 0.1
    assert jaccard(carried == 1, model_only == 1) > 0.95
