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

    @classmethod
    def from_json(cls, value, position: int) -> Box:
        """[x0, y0, x1, y1] for object `position` at frame 0, or {"box": [x0, y0, x1, y1], "object": 2, "frame": 5}
        for an object drawn at a later frame (as the REST API's JSON takes them)."""
        if not isinstance(value, dict):
            return cls.from_list(value, object_id=position)
        object_id, frame = value.get("object", position), value.get("frame", 0)
        if set(value) - {"box", "object", "frame"} or not _whole(object_id) or not _whole(frame):
            raise InputError(f'box {value!r}: give it as {{"box": [x0, y0, x1, y1], "object": 1, "frame": 0}}')
        return cls.from_list(value.get("box"), object_id=int(object_id), frame=int(frame))

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


@dataclass(frozen=True)
class Stroke:
    """A scribble in the frame's pixels: on the object (positive: it belongs to it) or beside it (negative: it does
    not). Strokes refine what a box gives, or (positive) start an object on their own."""

    points: tuple[tuple[int, int], ...]
    object_id: int = 1
    positive: bool = True
    frame: int = 0
    radius: int = 4  # half the brush width, in pixels

    @classmethod
    def from_dict(cls, value, frame: int = 0) -> Stroke:
        """{"object": 1, "positive": true, "points": [[x, y], ...], "radius": 4, "frame": 0} (as the REST API's JSON
        takes it; `frame` when the value names none)."""
        if not isinstance(value, dict) or not isinstance(value.get("points"), list):
            raise InputError(
                f'stroke {value!r}: give it as {{"object": 1, "positive": true, "points": [[x, y], ...]}}'
            )
        points = []
        for point in value["points"]:
            if not (isinstance(point, (list, tuple)) and len(point) == 2 and all(_whole(v) for v in point)):
                raise InputError(f"stroke point {point!r}: give it as [x, y] in whole pixels")
            points.append((int(point[0]), int(point[1])))
        object_id, positive, radius = (
            value.get("object", 1),
            value.get("positive", True),
            value.get("radius", 4),
        )
        frame = value.get("frame", frame)
        if (
            not _whole(object_id)
            or not isinstance(positive, bool)
            or not _whole(radius)
            or not 1 <= radius <= 100
            or not _whole(frame)
        ):
            raise InputError(
                f"stroke {value!r}: object is an id, positive true or false, radius 1 to 100 pixels, frame a "
                "frame number"
            )
        return cls(tuple(points), int(object_id), positive, int(frame), int(radius))

    def check(self, width: int, height: int) -> None:
        name = f"{'positive' if self.positive else 'negative'} stroke for object {self.object_id}"
        if not self.points:
            raise InputError(f"{name}: has no points; draw it on the frame")
        if any(not (0 <= x < width and 0 <= y < height) for x, y in self.points):
            raise InputError(f"{name}: goes outside the {width}x{height} frame")

    def paint(self, height: int, width: int) -> np.ndarray:
        """The stroke as a bool mask (H, W): its points joined by lines of the brush's width."""
        canvas = np.zeros((height, width), np.uint8)
        points = np.array(self.points, np.int32).reshape(-1, 1, 2)
        cv2.polylines(canvas, [points], False, 1, thickness=2 * self.radius + 1)
        for x, y in self.points:  # a single click is a dot
            cv2.circle(canvas, (x, y), self.radius, 1, -1)
        return canvas.astype(bool)


def _regions_hit(found: torch.Tensor, no: torch.Tensor, yes: torch.Tensor) -> torch.Tensor:
    """(K, H, W): the parts of each object's mask that a stroke in `no` touches, a part being a connected region;
    a region that a stroke in `yes` touches too is left out (for negative strokes: the user says it is partly the
    object)."""
    out = torch.zeros_like(no)
    for j in range(len(found)):
        if not no[j].any():
            continue
        # With the stroke itself in: predictions were zeroed under it, and it joins what it crosses.
        _, regions = cv2.connectedComponents((found[j] | no[j]).cpu().numpy().astype(np.uint8))
        regions = torch.from_numpy(regions).to(no.device)
        hit = set(regions[no[j]].unique().tolist()) - set(regions[yes[j]].unique().tolist()) - {0}
        if hit:
            out[j] = torch.isin(regions, torch.tensor(sorted(hit), device=no.device))
    return out


def _whole(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()


def check_strokes(
    strokes: list[Stroke], boxes: list[Box], width: int, height: int, frame_count: int | None
) -> None:
    """Every stroke inside its frame; a negative one only for an object that a box or positive stroke starts."""
    for stroke in strokes:
        stroke.check(width, height)
        if stroke.frame < 0 or (frame_count is not None and stroke.frame >= frame_count):
            raise InputError(
                f"stroke for object {stroke.object_id} at frame {stroke.frame}: past the video's end"
            )
        if not 1 <= stroke.object_id <= MAX_OBJECTS:
            raise InputError(f"stroke for object {stroke.object_id}: object ids go from 1 to {MAX_OBJECTS}")
    for stroke in strokes:
        if not stroke.positive and not any(
            p.object_id == stroke.object_id and p.frame == stroke.frame and getattr(p, "positive", True)
            for p in [*boxes, *strokes]
        ):
            raise InputError(
                f"negative stroke for object {stroke.object_id} at frame {stroke.frame} refines nothing: draw a box "
                "or a positive stroke on that object first"
            )


@torch.inference_mode()
def mask_from_boxes(
    model: STCNN,
    device: torch.device,
    frame: np.ndarray,
    boxes: list[Box],
    size: tuple[int, int],
    strokes: list[Stroke] = (),
) -> np.ndarray:
    """uint8 labels (H, W) of the objects the model finds on `frame` (RGB uint8) from their boxes and strokes, run
    at `size`. A box is the decoder's prior and bounds the result; strokes then say which pixels are (positive) or
    are not (negative) the object, and the model runs once more from the mask so edited, so a stroke on a missed
    part brings in the part, not only the stroke."""
    height, width = frame.shape[:2]
    ids = sorted({p.object_id for p in [*boxes, *strokes] if getattr(p, "positive", True)})
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    x = normalise(torch.from_numpy(small).to(device).permute(2, 0, 1)[None].float())
    # The frame stands still behind itself: no motion for the temporal branch to report.
    features, temporal, _ = model.encode(x, x.repeat(1, DELTA, 1, 1))
    allowed = torch.ones(len(ids), height, width, dtype=torch.bool, device=device)
    prior = torch.zeros(len(ids), height, width, device=device)
    for j, object_id in enumerate(ids):
        for box in (b for b in boxes if b.object_id == object_id):
            allowed[j] = False
            allowed[j, box.y0 : box.y1 + 1, box.x0 : box.x1 + 1] = True
            prior[j, box.y0 : box.y1 + 1, box.x0 : box.x1 + 1] = 1
    painted: dict[tuple[int, bool], torch.Tensor] = {}  # (object, positive) -> every such stroke's pixels
    for s in strokes:
        stroke = torch.from_numpy(s.paint(height, width)).to(device)
        key = (s.object_id, s.positive)
        painted[key] = painted[key] | stroke if key in painted else stroke
    yes = torch.stack([painted.get((i, True), torch.zeros_like(allowed[0])) for i in ids])
    no = torch.stack([painted.get((i, False), torch.zeros_like(allowed[0])) for i in ids])
    allowed |= yes
    prior = torch.where(yes, 1.0, prior)

    def predict(prior: torch.Tensor) -> torch.Tensor:
        small_prior = F.interpolate(prior[:, None], size=(size[1], size[0]), mode="area")
        logits = model.decode(features, temporal, small_prior)[-1]
        probs = torch.sigmoid(
            F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        )
        probs = probs[:, 0] * allowed
        return torch.where(yes, 1.0, torch.where(no, 0.0, probs))

    probs = predict(prior)
    if strokes:
        no |= _regions_hit(probs > 0.5, no, yes)
        for j, object_id in enumerate(ids):  # an object given by strokes alone is the regions they touch
            if not any(b.object_id == object_id for b in boxes):
                allowed[j] = _regions_hit(
                    probs[j : j + 1] > 0.5, yes[j : j + 1], torch.zeros_like(yes[j : j + 1])
                )[0]
        probs = predict((probs > 0.5).float())
    background = torch.prod(1 - probs, 0, keepdim=True)
    index = torch.cat([background, probs]).argmax(0).cpu().numpy()
    labels = np.array([0, *ids], np.uint8)[index]
    for box in boxes:  # the user says the object is there: where the model found nothing, the box is the mask
        if not (labels == box.object_id).any():
            inside = labels[box.y0 : box.y1 + 1, box.x0 : box.x1 + 1]
            inside[inside == 0] = box.object_id
    return labels
