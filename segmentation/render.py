"""Draw segmentation results on frames: a translucent tint per object plus a bright outline."""

from __future__ import annotations

import cv2
import numpy as np

from segmentation.masks import PALETTE

_COLOURS = np.array(PALETTE, np.uint8).reshape(256, 3)


def _brighter(colour: np.ndarray) -> tuple[int, int, int]:
    # Stretch the colour so its strongest channel is 255: the outline reads well on both tint and frame.
    top = int(colour.max())
    if top == 0:
        return (255, 255, 255)
    return tuple(int(c) * 255 // top for c in colour)


def overlay(frame: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Return a copy of ``frame`` (RGB uint8) with each object of ``labels`` tinted and outlined."""
    if frame.shape[:2] != labels.shape:
        raise ValueError(f"labels {labels.shape} do not match frame {frame.shape[:2]}")
    labels = labels.astype(np.uint8, copy=False)
    out = frame.copy()
    # Only the objects' bounding box is drawn on (and an outline's width around it): at 1080p most of a frame
    # is background, and the cost follows the pixels touched.
    x, y, w, h = cv2.boundingRect(labels)
    if w == 0:
        return out
    x0, y0 = max(x - 2, 0), max(y - 2, 0)
    x1, y1 = min(x + w + 2, labels.shape[1]), min(y + h + 2, labels.shape[0])
    box, area = labels[y0:y1, x0:x1], out[y0:y1, x0:x1]
    present = np.flatnonzero(np.bincount(box.ravel(), minlength=256)[1:]) + 1
    # Blend the box once (SIMD in cv2), then keep the blend only where there is an object.
    tinted = cv2.addWeighted(area, 1.0 - alpha, _COLOURS[box], alpha, 0.0)
    np.copyto(area, tinted, where=(box > 0)[..., None])
    for object_id in present:
        binary = (box == object_id).astype(np.uint8)
        # RETR_LIST also outlines holes, so a ring-shaped object shows both edges.
        contours, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0))
        cv2.drawContours(out, contours, -1, _brighter(_COLOURS[object_id]), thickness=2)
    return out
