"""The network's pieces: the ImageNet backbone, shared features across objects, the propagation state."""

from __future__ import annotations

import numpy as np
import torch

from segmentation.backbone import EfficientNetLite0, load_imagenet
from segmentation.inference import Segmenter, model_size
from segmentation.model import DELTA, STCNN
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
