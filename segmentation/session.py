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
(pipeline.py) is a session's loop over a whole video, opened with `open_session` on every annotated frame, plus
what files need around it: reading and writing them, reverse passes for corrections, and `--previous`.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .inference import Segmenter, model_size, online_gated
from .masks import ids_in
from .online import OnlineBudget, budget_for, fine_tune
from .options import SegmentOptions
from .prompts import Box, Stroke, mask_from_boxes
from .runtime import pick_device, tune_allocator
from .weights import load_for_inference


class Session:
    """One video's inference state: its segmenter (frame history, previous masks, matching references) over a
    model with its own fine-tuned decoder."""

    def __init__(self, segmenter: Segmenter, online_training: dict, first_mask: np.ndarray | None = None):
        self.segmenter = segmenter
        self.online_training = online_training  # what online training did: iterations, seconds, ...
        self.first_mask = first_mask  # the first frame's objects: the mask given, or the one the prompts made

    @property
    def object_ids(self) -> list[int]:
        return list(self.segmenter.state.object_ids)

    @property
    def probabilities(self) -> torch.Tensor:
        """(objects, h, w): each object's probability in the last frame stepped, at the model's size."""
        return self.segmenter.state.probs

    def step(
        self, frame: np.ndarray, mask: np.ndarray | None = None, *, out_size=None, remember: bool = True
    ) -> np.ndarray:
        """frame: RGB uint8 (H, W, 3); mask: optional uint8 ids (H, W) that (re)start the objects drawn in it.
        Returns the frame's uint8 object ids (H, W), or at out_size (width, height); remember=False leaves the
        state as it was (a look at a frame that is not part of the sequence)."""
        return self.segmenter.step(frame, mask, out_size=out_size, remember=remember)


def open_session(
    model, device: torch.device, size: tuple[int, int], options: SegmentOptions,
    examples: list[tuple[np.ndarray, np.ndarray]], budget: OnlineBudget | None = None, progress=None,
    shares: list[int] | None = None,
) -> Session:
    """Online training on the annotated frames (examples: (frame, labels) at the model's `size`; `shares`: their
    turns in the pool, see online.fine_tune) for the options' preset, or `budget`, then a session over the tuned
    model. `model`'s decoder is changed: pass one of its own."""
    ids = {i for _, labels in examples for i in ids_in(labels)}
    budget = budget or budget_for(options.preset, device, options.online_seconds)
    gate = online_gated(options.gate, len(ids), options.ablate)  # the loss counts what inference keeps
    online = fine_tune(model, examples, device, budget, progress, gate=gate, shares=shares)
    segmenter = Segmenter(model, device, size, gate=options.gate, match=options.match, runtime=options.runtime)
    return Session(segmenter, online)


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
        example = (cv2.resize(frame, size, interpolation=cv2.INTER_AREA),
                   cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST))  # fmt: skip
        session = open_session(model, self.device, size, self.options, [example])
        session.first_mask = mask
        session.step(frame, mask)
        return session


def build_segmenter(
    weights=None, device: str = "auto", options: SegmentOptions | dict | None = None
) -> VideoSegmenter:
    """Loads the model (the shipped weights unless `weights` names a checkpoint) on `device` for `options`."""
    options = SegmentOptions.of(options)
    tune_allocator()
    where = pick_device(device if device != "auto" else options.device)
    model, _ = load_for_inference(weights or options.weights, where, options.ablate)
    return VideoSegmenter(model, where, options)
