"""The propagation loop: one `step(frame, mask=None)` per frame, with the inference state kept explicit.

`step` with a mask (re)starts the given objects from it, which is how frame 0 works and how objects that appear
later (a palette mask given at a later frame) are added; without a mask it predicts every known object from the
previous frame's result, merging objects by soft aggregation.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .masks import MAX_OBJECTS, ids_in
from .model import DELTA, STCNN, normalise


def model_size(width: int, height: int, short_side: int = 256) -> tuple[int, int]:
    """The size (w, h) frames are resized to for the model: short side near `short_side`, long side at most twice
    that (panoramas stay affordable), both multiples of 32."""
    # Small videos are enlarged too: the model learnt objects at this scale, and small ones get lost at stride 32.
    # But by at most 2x: beyond that the frames are only blur, unlike anything it learnt from (a 96x64 clip lost
    # its objects within two frames at 4x and kept them at 2x).
    scale = min(short_side / min(width, height), 2 * short_side / max(width, height), 2.0)

    def snap(v: float) -> int:
        return max(32, int(round(v * scale / 32)) * 32)

    return snap(width), snap(height)


@dataclass
class InferenceState:
    """What carries from one frame to the next."""

    object_ids: list[int] = field(default_factory=list)
    history: deque = field(default_factory=lambda: deque(maxlen=DELTA))  # normalised frames, oldest first
    masks: torch.Tensor | None = None  # (K, 1, h, w) previous hard masks at the model's size
    frame_index: int = -1


class Segmenter:
    def __init__(self, model: STCNN, device: torch.device, size: tuple[int, int], gate: bool = False):
        self.model = model.eval()
        self.device = device
        self.size = size  # (w, h) at which the model runs
        self.gate = gate  # keep predictions near the previous mask (the original STCNN's prior)
        self.channels_last = device.type == "cpu" or device.type == "cuda"
        self.state = InferenceState()

    def reset(self) -> None:
        self.state = InferenceState()

    def _to_tensor(self, frame: np.ndarray) -> torch.Tensor:
        small = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(small).to(self.device).permute(2, 0, 1)[None].float()
        return normalise(x)

    def _previous_frames(self, x: torch.Tensor) -> torch.Tensor:
        history = list(self.state.history) or [x]
        history = [history[0]] * (DELTA - len(history)) + history
        return torch.cat(history, 1)

    def _one_hot(self, labels: np.ndarray, ids: list[int]) -> torch.Tensor:
        small = cv2.resize(labels, self.size, interpolation=cv2.INTER_NEAREST)
        t = torch.from_numpy(small).to(self.device)
        return torch.stack([(t == i) for i in ids])[:, None].float()

    @torch.inference_mode()
    def step(self, frame: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """frame: RGB uint8 (H, W, 3); mask: optional uint8 ids (H, W). Returns uint8 ids (H, W)."""
        state = self.state
        state.frame_index += 1
        height, width = frame.shape[:2]
        x = self._to_tensor(frame)
        given = ids_in(mask) if mask is not None else []
        new_ids = [i for i in given if i not in state.object_ids]
        if len(state.object_ids) + len(new_ids) > MAX_OBJECTS:
            raise ValueError(f"at most {MAX_OBJECTS} objects")

        if state.object_ids and (mask is None or len(given) < len(state.object_ids) + len(new_ids)):
            probs = self._predict(x)  # (K, h, w) for known objects
        else:
            probs = None
        # Objects in the given mask override the prediction where they are drawn.
        state.object_ids = state.object_ids + new_ids
        k = len(state.object_ids)
        if probs is None:
            probs = torch.zeros(k, *x.shape[-2:], device=self.device)
        elif new_ids:
            probs = torch.cat([probs, torch.zeros(len(new_ids), *probs.shape[1:], device=self.device)])
        if mask is not None:
            given_onehot = self._one_hot(mask, state.object_ids)[:, 0]
            drawn = given_onehot.sum(0, keepdim=True) > 0
            probs = torch.where(drawn, given_onehot, probs * ~drawn)

        labels_small = self._labels(probs)
        state.masks = torch.stack([(labels_small == j + 1) for j in range(k)])[:, None].float()
        state.history.append(x)
        if mask is not None and not state.object_ids:
            return np.zeros((height, width), np.uint8)
        if mask is not None and len(given) == k:
            return mask.astype(np.uint8)  # the user's own mask, untouched
        return self._full_size_labels(probs, width, height)

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        state = self.state
        xc, prev = x, self._previous_frames(x)
        if self.channels_last:
            xc = xc.contiguous(memory_format=torch.channels_last)
            prev = prev.contiguous(memory_format=torch.channels_last)
        features, temporal, _ = self.model.encode(xc, prev)
        logits = self.model.decode(features, temporal, state.masks)[-1]
        probs = torch.sigmoid(F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False))[
            :, 0
        ]
        # With several objects the gate is always on: the model leans on appearance more than on the mask, and
        # a leak of one object onto another (a similar-looking one, or where they cross) wins it that object's
        # pixels through the aggregation. An object whose mask has emptied is not gated, so it can be found again.
        if self.gate or len(state.object_ids) > 1:
            k = max(3, (min(self.size) // 8) | 1)
            # A square max filter as two 1-D passes: the same result, k times less work.
            near = F.max_pool2d(state.masks, (1, k), stride=1, padding=(0, k // 2))
            near = F.max_pool2d(near, (k, 1), stride=1, padding=(k // 2, 0))[:, 0]
            lost = state.masks.flatten(1).amax(1) == 0
            near[lost] = 1
            probs = probs * near
        return probs

    @staticmethod
    def _aggregate(probs: torch.Tensor) -> torch.Tensor:
        """Soft aggregation of K object probabilities into K + 1 class scores (background first)."""
        p = probs.clamp(1e-6, 1 - 1e-6)
        background = torch.prod(1 - p, 0, keepdim=True)
        both = torch.cat([background, p]).clamp(1e-6, 1 - 1e-6)
        return torch.log(both / (1 - both))

    @staticmethod
    def _argmax(scores: torch.Tensor) -> torch.Tensor:
        # argmax over a short leading dim is a strided reduction, ~15x slower on the CPU than over the last dim.
        return scores.permute(1, 2, 0).contiguous().argmax(-1)

    def _labels(self, probs: torch.Tensor) -> torch.Tensor:
        if not len(probs):
            return torch.zeros(probs.shape[1:], dtype=torch.long)
        return self._argmax(self._aggregate(probs))

    def _full_size_labels(self, probs: torch.Tensor, width: int, height: int) -> np.ndarray:
        """Bilinear scores up to at most twice the model's size, argmax there, then nearest to the video's size:
        smooth boundaries at 480p and 1080p, and memory bounded for 4K/8K and many objects."""
        w, h = min(width, 2 * self.size[0]), min(height, 2 * self.size[1])
        scores = F.interpolate(
            self._aggregate(probs)[None], size=(h, w), mode="bilinear", align_corners=False
        )[0]
        index = self._argmax(scores).cpu().numpy().astype(np.uint8)
        lut = np.array([0, *self.state.object_ids], np.uint8)
        labels = lut[index]
        if (w, h) != (width, height):
            labels = cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
        return labels
