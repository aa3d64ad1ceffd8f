"""Prompts instead of a mask: a box around each object, turned into a mask by the model itself.

The decoder takes the previous frame's mask as a prior; given a filled box there instead, on the frame where the box
was drawn, it outlines the salient object inside it (the model card has the box-to-mask IoU). The prediction is
clipped to the box: whatever the model finds outside it belongs to something else. Several boxes are merged by
the same soft aggregation as propagation, so overlapping boxes split their pixels by the model's confidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .errors import InputError
from .masks import MAX_OBJECTS
from .model import DELTA, STCNN, normalise

_NUMBERS = re.compile(r"\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*")


@dataclass(frozen=True)
class Box:
    """An object's box in the frame's pixel coordinates, inclusive: (x0, y0) top left, (x1, y1) bottom right."""

    x0: int
    y0: int
    x1: int
    y1: int
    object_id: int = 1
    frame: int = 0

    @classmethod
    def parse(cls, text: str, object_id: int = 1, frame: int = 0) -> Box:
        """'X0,Y0,X1,Y1' (as --box takes it)."""
        match = _NUMBERS.fullmatch(str(text))
        if not match:
            raise InputError(
                f"box {text!r}: give it as X0,Y0,X1,Y1 (whole pixels, top left and bottom right)"
            )
        return cls(*map(int, match.groups()), object_id=object_id, frame=frame)

    @classmethod
    def from_list(cls, values, object_id: int, frame: int = 0) -> Box:
        """[x0, y0, x1, y1] (as the REST API's JSON takes it)."""
        if not isinstance(values, (list, tuple)) or len(values) != 4:
            raise InputError(f"box {values!r}: give it as [x0, y0, x1, y1]")
        whole = (
            isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() for v in values
        )
        if not all(whole):
            raise InputError(f"box {values!r}: its corners must be whole pixels")
        return cls(*(int(v) for v in values), object_id=object_id, frame=frame)

    def check(self, width: int, height: int) -> None:
        """InputError unless the box has an area and lies inside a width x height frame."""
        name = f"box {self.x0},{self.y0},{self.x1},{self.y1} (object {self.object_id})"
        if self.x1 < self.x0 or self.y1 < self.y0:
            raise InputError(f"{name}: the second corner must be right of and below the first")
        if self.x1 == self.x0 or self.y1 == self.y0:
            raise InputError(f"{name}: has no area; draw it around the object")
        if self.x0 < 0 or self.y0 < 0 or self.x1 >= width or self.y1 >= height:
            raise InputError(
                f"{name}: lies outside the {width}x{height} frame (x 0 to {width - 1}, y 0 to {height - 1})"
            )


def check_boxes(boxes: list[Box], width: int, height: int, frame_count: int | None) -> None:
    """Every box inside its frame, one per object and frame, frames within the video, ids 1..MAX_OBJECTS."""
    seen = set()
    for box in boxes:
        box.check(width, height)
        if not 1 <= box.object_id <= MAX_OBJECTS:
            raise InputError(f"box for object {box.object_id}: object ids go from 1 to {MAX_OBJECTS}")
        if box.frame < 0 or (frame_count is not None and box.frame >= frame_count):
            raise InputError(
                f"box for object {box.object_id} at frame {box.frame}: the video has frames 0 to {frame_count - 1}"
            )
        if (box.object_id, box.frame) in seen:
            raise InputError(f"two boxes for object {box.object_id} at frame {box.frame}; keep one")
        seen.add((box.object_id, box.frame))


@torch.inference_mode()
def mask_from_boxes(
    model: STCNN, device: torch.device, frame: np.ndarray, boxes: list[Box], size: tuple[int, int]
) -> np.ndarray:
    """uint8 labels (H, W) of the objects the model finds in their boxes on `frame` (RGB uint8), run at `size`."""
    height, width = frame.shape[:2]
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    x = normalise(torch.from_numpy(small).to(device).permute(2, 0, 1)[None].float())
    # The frame stands still behind itself: no motion for the temporal branch to report.
    features, temporal, _ = model.encode(x, x.repeat(1, DELTA, 1, 1))
    sx, sy = size[0] / width, size[1] / height
    priors = torch.zeros(len(boxes), 1, size[1], size[0], device=device)
    for prior, box in zip(priors, boxes):
        top, bottom = int(box.y0 * sy), int(np.ceil((box.y1 + 1) * sy))
        prior[:, top:bottom, int(box.x0 * sx) : int(np.ceil((box.x1 + 1) * sx))] = 1
    logits = model.decode(features, temporal, priors)[-1]
    probs = torch.sigmoid(F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False))[
        :, 0
    ]
    inside = torch.zeros_like(probs, dtype=torch.bool)
    for keep, box in zip(inside, boxes):
        keep[box.y0 : box.y1 + 1, box.x0 : box.x1 + 1] = True
    probs = probs * inside
    background = torch.prod(1 - probs, 0, keepdim=True)
    index = torch.cat([background, probs]).argmax(0).cpu().numpy()
    lut = np.array([0, *(box.object_id for box in boxes)], np.uint8)
    labels = lut[index]
    for box in boxes:  # the user says the object is there: where the model found nothing, the box is the mask
        if not (labels == box.object_id).any():
            inside = labels[box.y0 : box.y1 + 1, box.x0 : box.x1 + 1]
            inside[inside == 0] = box.object_id
    return labels
