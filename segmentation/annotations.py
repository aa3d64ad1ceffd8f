"""What the user gave, frame by frame: masks (files named by frame) and boxes, and how a correction reaches back.

An object starts at the first frame that holds it. A mask or box for a known object at a later frame is a
correction: propagation restarts from it forward (as from any given mask), and backward the frames since the
object's previous annotation are segmented again in reverse from the correction. Each of those frames keeps the
result of the nearer annotation (ties go to the earlier one), so a correction halfway through a clip fixes the
frames before it as well as after it. Nothing is propagated backward of an object's first appearance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .errors import InputError
from .masks import MaskSet
from .prompts import Box, Stroke, check_boxes, check_strokes


@dataclass(frozen=True)
class BackwardSpan:
    """A reverse pass from a correction at `frame`: object id -> the last frame that keeps the forward result
    (frames after it, up to the correction, take the reverse pass's)."""

    frame: int
    midpoints: dict[int, int]

    @property
    def stop(self) -> int:
        """The reverse pass covers frames frame - 1 down to stop + 1."""
        return min(self.midpoints.values())


def backward_spans(ids_at: dict[int, list[int]]) -> list[BackwardSpan]:
    """The reverse passes that the annotations call for (frame -> object ids given there)."""
    spans, last_seen = [], {}
    for frame in sorted(ids_at):
        mids = {
            o: (last_seen[o] + frame) // 2
            for o in ids_at[frame]
            if o in last_seen and frame - last_seen[o] > 1
        }
        if mids:
            spans.append(BackwardSpan(frame, mids))
        for o in ids_at[frame]:
            last_seen[o] = frame
    return spans


@dataclass
class Annotations:
    """Mask files and prompts (boxes, strokes), checked together; prompts become masks once the model has seen their
    frame."""

    masks: MaskSet | None
    boxes: list[Box] = field(default_factory=list)
    strokes: list[Stroke] = field(default_factory=list)
    _from_boxes: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        if self.masks is None and not self.boxes and not any(s.positive for s in self.strokes):
            raise InputError("give the objects to track: a mask, or a box (or a stroke) on each object")
        box_frames = {p.frame for p in [*self.boxes, *self.strokes]}
        if self.masks is not None and box_frames & set(self.masks.frames):
            both = min(box_frames & set(self.masks.frames))
            raise InputError(f"frame {both} has both a mask and prompts: give each frame one or the other")
        if 0 not in self.frames:
            raise InputError("frame 0 needs a mask or a box: the objects to track start there")

    @classmethod
    def of(
        cls,
        masks: MaskSet | None,
        boxes: list[Box],
        size: tuple[int, int],
        frame_count: int | None,
        strokes=(),
    ):
        check_boxes(boxes, *size, frame_count)
        check_strokes(list(strokes), boxes, *size, frame_count)
        return cls(masks, list(boxes), list(strokes))

    # Derived once: the masks and prompts do not change, and the loops ask for these on every frame.
    @cached_property
    def ids(self) -> dict[int, list[int]]:
        """frame -> the object ids annotated there."""
        ids = {k: list(v) for k, v in (self.masks.ids if self.masks else {}).items()}
        for prompt in [*self.boxes, *(s for s in self.strokes if s.positive)]:
            ids[prompt.frame] = sorted({*ids.get(prompt.frame, []), prompt.object_id})
        return ids

    @cached_property
    def frames(self) -> list[int]:
        return sorted(self.ids)

    @cached_property
    def starts(self) -> dict[int, int]:
        """object id -> the first frame that holds it."""
        starts: dict[int, int] = {}
        for frame in self.frames:
            for o in self.ids[frame]:
                starts.setdefault(o, frame)
        return starts

    @property
    def object_ids(self) -> list[int]:
        return sorted(self.starts)

    def boxes_at(self, frame: int) -> list[Box]:
        return [box for box in self.boxes if box.frame == frame]

    def strokes_at(self, frame: int) -> list[Stroke]:
        return [stroke for stroke in self.strokes if stroke.frame == frame]

    def resolve(self, frame: int, labels: np.ndarray) -> None:
        """The mask the model made from this frame's boxes (prompts.mask_from_boxes)."""
        self._from_boxes[frame] = labels

    def at(self, frame: int) -> np.ndarray | None:
        """The labels given for this frame (boxes must have been resolved), or None."""
        if frame in self._from_boxes:
            return self._from_boxes[frame]
        if self.boxes_at(frame) or self.strokes_at(frame):
            raise RuntimeError(f"prompts at frame {frame} were not made into a mask yet")
        return self.masks.at(frame) if self.masks is not None else None
