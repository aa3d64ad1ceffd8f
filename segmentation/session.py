"""The engine as a library: build a segmenter once, then open a session per video and step through its frames.

    from segmentation.session import build_segmenter

    segmenter = build_segmenter(options={"preset": "fast"})      # loads the model once
    session = segmenter.start(first_frame, mask=first_mask)      # or boxes=[Box(...)]: online training on it
    for frame in frames[1:]:
        labels = session.step(frame)                             # uint8 object ids at the frame's size
        probs = session.probabilities                            # (objects, h, w) at the model's size
    labels = session.step(frame_k, mask=correction)              # a mask at any frame (re)starts what it draws

Each session has its own copy of the decoder (online training changes it) over the segmenter's shared backbone and
temporal branch, so one loaded model serves several videos, one after the other or side by side. `segment()`
(pipeline.py) adds what a whole video needs around this: reading and writing files, reverse passes for
corrections, and `--previous`.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .inference import Segmenter, gated, model_size
from .masks import ids_in
from .online import budget_for, fine_tune
from .options import SegmentOptions
from .prompts import Box, Stroke, mask_from_boxes
from .runtime import pick_device, tune_allocator
from .weights import load_for_inference


class Session:
    """One video's inference state: its segmenter (frame history, previous masks, matching references) over a
    model with its own fine-tuned decoder."""

    def __init__(self, segmenter: Segmenter, first_mask: np.ndarray, online_training: dict):
        self.segmenter = segmenter
        self.first_mask = first_mask  # the first frame's objects: the mask given, or the one the prompts made
        self.online_training = online_training  # what online training did: iterations, seconds, ...

    @property
    def object_ids(self) -> list[int]:
        return list(self.segmenter.state.object_ids)

    @property
    def probabilities(self) -> torch.Tensor:
        """(objects, h, w): each object's probability in the last frame stepped, at the model's size."""
        return self.segmenter.state.probs

    def step(self, frame: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """frame: RGB uint8 (H, W, 3); mask: optional uint8 ids (H, W) that (re)start the objects drawn in it.
        Returns the frame's uint8 object ids (H, W)."""
        return self.segmenter.step(frame, mask)


class VideoSegmenter:
    """A loaded model and the options every session runs with."""

    def __init__(self, model, device: torch.device, options: SegmentOptions):
        self.model, self.device, self.options = model, device, options

    def start(
        self,
        frame: np.ndarray,
        mask: np.ndarray | None = None,
        *,
        boxes: list[Box] = (),
        strokes: list[Stroke] = (),
    ) -> Session:
        """A session on a video whose first frame is `frame`, with its objects given as a mask or as prompts (made
        into a mask by the model); online training runs on that frame for the options' preset first."""
        height, width = frame.shape[:2]
        size = model_size(width, height, self.options.short_side)
        model = self.model.with_own_decoder()
        if mask is None:
            mask = mask_from_boxes(model, self.device, frame, list(boxes), size, list(strokes))
        ids = ids_in(mask)
        budget = budget_for(self.options.preset, self.device, self.options.online_seconds)
        example = (cv2.resize(frame, size, interpolation=cv2.INTER_AREA),
                   cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST))  # fmt: skip
        online = fine_tune(model, [example], self.device, budget, gate=gated(self.options.gate, len(ids)))
        segmenter = Segmenter(model, self.device, size, gate=self.options.gate, match=self.options.match)
        segmenter.step(frame, mask)
        return Session(segmenter, mask, online)


def build_segmenter(
    weights=None, device: str = "auto", options: SegmentOptions | dict | None = None
) -> VideoSegmenter:
    """Loads the model (the shipped weights unless `weights` names a checkpoint) on `device` for `options`."""
    options = SegmentOptions.of(options)
    tune_allocator()
    where = pick_device(device if device != "auto" else options.device)
    model, _ = load_for_inference(weights or options.weights, where, options.ablate)
    return VideoSegmenter(model, where, options)
