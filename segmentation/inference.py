"""The propagation loop: one `step(frame, mask=None)` per frame, with the inference state kept explicit.

`step` with a mask (re)starts the given objects from it, which is how frame 0 works and how objects that appear
later (a palette mask given at a later frame) are added; without a mask it predicts every known object from the
previous frame's result, merging objects by soft aggregation. A given mask is also carried by optical flow over
the next CARRY_FRAMES steps and blended into the prediction there (`_carry`), so the frames next to a fix follow it.

With several objects two priors keep each object on its own pixels, because the model follows appearance more than
the previous mask (left alone, each object's prediction covers every salient object in view):
- the gate: an object's prediction is kept near its dilated previous mask, as in the original STCNN (the pipeline
  turns it on for a single object too);
- reference matching: the backbone features of the pixels each object covers in its annotated frame are kept, and
  where a pixel looks more like another object's reference than like its own (cosine similarity of stride-8
  features, best match per object, as in FEELVOS's global matching), the object's probability there is lowered.
  Matching against the background too cost 20-50 J&F on DAVIS sequences (the background's look is not stable), so
  it only arbitrates between objects and does nothing for a single object.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .frozen import encoder_for
from .masks import MAX_OBJECTS, ids_in
from .model import DELTA, STCNN, normalise

# Backbone level whose features are matched: stride 8, 40 channels, fine enough for small objects.
MATCH_LEVEL = 1
# In cosine similarity. The model gives two objects near-equal probabilities on both, so matching mostly breaks ties:
# a mild temperature (at most a 4x cut) suits real footage, where features tell objects apart less (the comparison
# of temperatures, from benchmarks/multi_object.py, is in weights/README.md).
MATCH_TEMPERATURE = 1.0
MATCH_ROWS = 4096  # pixels matched at once: bounds the similarity matrix at large internal sizes
# A given mask is also carried to the next CARRY_FRAMES frames by optical flow, and blended with the model's
# prediction there by a weight falling from 1 to 0 over them (in whichever direction the pass goes). Right after a
# mask the flow moves it more truly than the model predicts it, thin parts above all; further on the flow drifts
# and the model is better (weights/README.md has the comparison of lengths).
CARRY_FRAMES = 8


def gated(gate: bool, n_objects: int) -> bool:
    """Whether predictions are kept near the previous mask: as asked, and always with several objects."""
    return gate or n_objects > 1


def online_gated(gate: bool, n_objects: int, ablate=()) -> bool:
    """Whether online training's loss counts only the gated region: as inference keeps it, unless ablated."""
    return gated(gate, n_objects) and "online_gate" not in ablate


def gate_region(masks: torch.Tensor, short_side: int | None = None) -> torch.Tensor:
    """Where each object may be: its mask (N, 1, h, w) dilated by about 1/8 of the frame's short side (the masks'
    own unless given: online training passes the frame's for masks cropped from it)."""
    k = max(3, ((short_side or min(masks.shape[-2:])) // 8) | 1)
    if masks.device.type == "cpu":  # OpenCV's dilation: the same max filter, many times faster than max_pool2d's
        kernel = np.ones((k, k), np.uint8)
        planes = masks.detach().reshape(-1, *masks.shape[-2:]).float().numpy()
        near = np.stack([cv2.dilate(plane, kernel) for plane in planes]) if len(planes) else planes
        return torch.from_numpy(near).reshape(masks.shape)
    # A square max filter as two 1-D passes: the same result, k times less work.
    near = F.max_pool2d(masks, (1, k), stride=1, padding=(0, k // 2))
    return F.max_pool2d(near, (k, 1), stride=1, padding=(k // 2, 0))


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
    # Reference matching: normalised features (N, C) of pixels in annotated frames, and the object index of each.
    reference_features: torch.Tensor | None = None
    reference_objects: torch.Tensor | None = None
    reference_frames: torch.Tensor | None = None  # the annotated frame each reference row comes from
    labels: torch.Tensor | None = None  # (h, w) the last frame's result at the model's size: 0, or 1 + object index
    probs: torch.Tensor | None = None  # (K, h, w) each object's probability in the last frame, at the model's size
    grey: np.ndarray | None = None  # the last frame, grey at the model's size: what the flow is measured from
    carried: torch.Tensor | None = None  # (K, h, w) each object's last given mask, moved along by the flow since
    trusted: torch.Tensor | None = None  # (K, h, w) 1 where every flow step that moved it there was consistent
    carried_for: list[int] = field(default_factory=list)  # per object: frames since its mask was given

    def model_size_ids(self) -> np.ndarray:
        """The last frame's result at the model's size as object ids (uint8), what `Segmenter.resume` takes."""
        lut = np.array([0, *self.object_ids], np.uint8)
        return lut[self.labels.cpu().numpy()]


class Segmenter:
    def __init__(
        self,
        model: STCNN,
        device: torch.device,
        size: tuple[int, int],
        gate: bool = False,
        match: bool = True,
        runtime: str = "auto",
    ):
        self.model = model.eval()
        self.device = device
        self.size = size  # (w, h) at which the model runs
        self.gate = gate  # keep predictions near the previous mask (the original STCNN's prior)
        self.match = match  # with several objects, arbitrate between them by their reference features
        self.encode = encoder_for(model, device, size, runtime)  # the frozen per-frame work (frozen.py)
        # channels_last where PyTorch's convolutions gain from it; an exported graph takes plain NCHW.
        self.channels_last = device.type in ("cpu", "cuda") and self.encode.runtime == "torch"
        self.state = InferenceState()
        self.flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # one each: not thread-safe

    def reset(self) -> None:
        self.state = InferenceState()

    @torch.inference_mode()
    def resume(
        self,
        next_frame: int,
        annotated: dict[int, tuple[np.ndarray, np.ndarray]],
        recent: list[np.ndarray],
        previous_ids: np.ndarray,
    ) -> None:
        """Puts the state where a run that went through the frames before `next_frame` left it, so the next step
        gives what that run's would have: the annotated frames so far ({index: (frame, given labels)}: the objects
        in order of appearance and their matching references), the last DELTA frames, and the last frame's result
        at the model's size (`InferenceState.model_size_ids`)."""
        self.reset()
        state = self.state
        for index in sorted(annotated):
            frame, labels = annotated[index]
            given = ids_in(labels)
            state.object_ids += [i for i in given if i not in state.object_ids]
            state.frame_index = index
            if self.match:
                self._remember(self._to_tensor(frame), labels, given)
        state.frame_index = next_frame - 1
        state.history.extend(self._to_tensor(frame) for frame in recent[-DELTA:])
        ids = torch.from_numpy(previous_ids).to(self.device)
        state.masks = torch.stack([(ids == i) for i in state.object_ids])[:, None].float()
        state.labels = torch.zeros_like(ids, dtype=torch.long)
        for j, i in enumerate(state.object_ids):
            state.labels[ids == i] = j + 1

    def fork(self, n_objects: int, frame: int) -> Segmenter:
        """A segmenter with no frame history that knows this one's first n_objects objects (in order) and their
        matching references from annotated frames up to `frame`: the start of a reverse pass from a correction
        there (which so depends on nothing given later)."""
        other = Segmenter(self.model, self.device, self.size, self.gate, self.match, self.encode.runtime)
        other.state.object_ids = self.state.object_ids[:n_objects]
        other.state.frame_index = frame - 1
        if self.state.reference_objects is not None:
            keep = (self.state.reference_objects < n_objects) & (self.state.reference_frames <= frame)
            other.state.reference_features = self.state.reference_features[keep]
            other.state.reference_objects = self.state.reference_objects[keep]
            other.state.reference_frames = self.state.reference_frames[keep]
        return other

    def _to_tensor(self, frame: np.ndarray) -> torch.Tensor:
        return self._normalised(cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA))

    def _normalised(self, small: np.ndarray) -> torch.Tensor:
        return normalise(torch.from_numpy(small).to(self.device).permute(2, 0, 1)[None].float())

    def _previous_frames(self, x: torch.Tensor) -> torch.Tensor:
        history = list(self.state.history) or [x]
        history = [history[0]] * (DELTA - len(history)) + history
        return torch.cat(history, 1)

    def _one_hot(self, labels: np.ndarray, ids: list[int]) -> torch.Tensor:
        small = cv2.resize(labels, self.size, interpolation=cv2.INTER_NEAREST)
        t = torch.from_numpy(small).to(self.device)
        return torch.stack([(t == i) for i in ids])[:, None].float()

    @torch.inference_mode()
    def step(
        self,
        frame: np.ndarray,
        mask: np.ndarray | None = None,
        *,
        out_size: tuple[int, int] | None = None,
        remember: bool = True,
    ) -> np.ndarray:
        """frame: RGB uint8 (H, W, 3); mask: optional uint8 ids at the output size. Returns uint8 ids at the
        output size: the frame's own, or out_size (w, h) for a frame given already at the model's size.
        remember: keep the given objects' features as matching references (for masks a person made, not for a
        propagated result handed back in)."""
        state = self.state
        state.frame_index += 1
        width, height = out_size or (frame.shape[1], frame.shape[0])
        small = cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA)
        x = self._normalised(small)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        given = ids_in(mask) if mask is not None else []
        new_ids = [i for i in given if i not in state.object_ids]
        if len(state.object_ids) + len(new_ids) > MAX_OBJECTS:
            raise ValueError(f"at most {MAX_OBJECTS} objects")

        if state.object_ids and (mask is None or len(given) < len(state.object_ids) + len(new_ids)):
            probs = self._carry(self._predict(x), grey)  # (K, h, w) for known objects
        else:
            probs = None
        # Objects in the given mask are what it draws them as, nowhere else; the others keep the prediction where
        # nothing is drawn.
        state.object_ids = state.object_ids + new_ids
        k = len(state.object_ids)
        if probs is None:
            probs = torch.zeros(k, *x.shape[-2:], device=self.device)
        elif new_ids:
            probs = torch.cat([probs, torch.zeros(len(new_ids), *probs.shape[1:], device=self.device)])
        if mask is not None:
            given_onehot = self._one_hot(mask, state.object_ids)[:, 0]
            drawn = given_onehot.sum(0, keepdim=True) > 0
            redrawn = torch.tensor([i in given for i in state.object_ids], device=self.device)[:, None, None]
            probs = torch.where(drawn | redrawn, given_onehot, probs)
            self._start_carry(given_onehot, [i in given for i in state.object_ids])

        if mask is not None and given and self.match and remember:
            self._remember(x, mask, given)
        labels_small = self._labels(probs)
        state.masks = torch.stack([(labels_small == j + 1) for j in range(k)])[:, None].float()
        state.labels, state.probs, state.grey = labels_small, probs, grey
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
        features, temporal = self.encode(xc, prev)
        logits = self.model.decode(features, temporal, state.masks)[-1]
        probs = torch.sigmoid(F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False))[
            :, 0
        ]
        # With several objects the gate is always on: the model leans on appearance more than on the mask, and
        # a leak of one object onto another (a similar-looking one, or where they cross) wins it that object's
        # pixels through the aggregation. An object whose mask has emptied is not gated, so it can be found again.
        if gated(self.gate, len(state.object_ids)):
            near = gate_region(state.masks)[:, 0]
            lost = state.masks.flatten(1).amax(1) == 0
            near[lost] = 1
            probs = probs * near
        if self.match and len(state.object_ids) > 1:
            probs = probs * self._match(features[MATCH_LEVEL], probs.shape[-2:])
        return probs

    def _start_carry(self, onehot: torch.Tensor, given: list[bool]) -> None:
        """The given objects' masks start being carried; the others carry on as they were."""
        state = self.state
        k = len(onehot)
        ages = state.carried_for + [CARRY_FRAMES + 1] * (k - len(state.carried_for))
        carried = torch.zeros_like(onehot) if state.carried is None else state.carried
        trusted = torch.zeros_like(onehot) if state.trusted is None else state.trusted
        if len(carried) < k:
            more = torch.zeros(k - len(carried), *onehot.shape[1:], device=onehot.device)
            carried, trusted = torch.cat([carried, more]), torch.cat([trusted, more])
        for j in range(k):
            if given[j]:
                carried[j], trusted[j], ages[j] = onehot[j], 1, 0
        state.carried, state.trusted, state.carried_for = carried, trusted, ages

    def _carry(self, probs: torch.Tensor, grey: np.ndarray) -> torch.Tensor:
        """The model's probabilities blended with the masks given up to CARRY_FRAMES frames ago, moved here by
        the optical flow from the last frame (DIS, at the model's size: a few milliseconds a direction). Only where
        the flow is consistent both ways, on every step since the mask (Sundaram et al.'s test): elsewhere (fast
        motion, occlusions, surfaces the flow cannot follow) the model's own prediction stands."""
        state = self.state
        live = [j for j, age in enumerate(state.carried_for) if age < CARRY_FRAMES]
        if not live or state.grey is None:
            state.carried_for = [age + 1 for age in state.carried_for]
            return probs
        back = self.flow.calc(grey, state.grey, None)  # where each pixel of this frame was in the last one
        ahead = self.flow.calc(state.grey, grey, None)
        h, w = grey.shape
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        map_x, map_y = xs + back[..., 0], ys + back[..., 1]
        returned = cv2.remap(ahead, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        error = ((back + returned) ** 2).sum(-1)
        consistent = (error < 0.01 * ((back**2).sum(-1) + (returned**2).sum(-1)) + 0.5).astype(np.float32)
        probs = probs.clone()
        for j in live:
            planes = torch.stack([state.carried[j], state.trusted[j]]).cpu().numpy().transpose(1, 2, 0)
            moved = cv2.remap(planes, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            moved[..., 1] *= consistent
            carried, trusted = torch.from_numpy(moved.transpose(2, 0, 1).copy()).to(probs.device)
            state.carried[j], state.trusted[j] = carried, trusted
            weight = (1 - (state.carried_for[j] + 1) / (CARRY_FRAMES + 1)) * trusted
            probs[j] = weight * carried + (1 - weight) * probs[j]
        state.carried_for = [age + 1 for age in state.carried_for]
        return probs

    def _remember(self, x: torch.Tensor, mask: np.ndarray, given: list[int]) -> None:
        """Keeps the features of the pixels each given object covers in this annotated frame."""
        features = F.normalize(self.model.backbone(x)[MATCH_LEVEL], dim=1)[0]  # (C, h, w)
        onehot = self._one_hot(mask, given)
        # Every cell an object touches, so that a small object still has a reference at stride 8.
        touched = F.adaptive_max_pool2d(onehot, features.shape[-2:])[:, 0] > 0  # (G, h, w)
        flat = features.flatten(1).T  # (h * w, C)
        for obj, cells in zip(given, touched):
            index = self.state.object_ids.index(obj)
            self._add_reference(flat[cells.flatten()], index)

    def _add_reference(self, features: torch.Tensor, index: int) -> None:
        state = self.state
        objects = torch.full((len(features),), index, dtype=torch.long, device=features.device)
        frames = torch.full_like(objects, state.frame_index)
        if state.reference_features is None:
            state.reference_features, state.reference_objects, state.reference_frames = features, objects, frames
        else:
            state.reference_features = torch.cat([state.reference_features, features])
            state.reference_objects = torch.cat([state.reference_objects, objects])
            state.reference_frames = torch.cat([state.reference_frames, frames])

    def _match(self, features: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """(K, h, w) factors in [0, 1]: 1 where a pixel matches the object's reference at least as well as any other
        object's, lower where another object's reference matches better (down to 0.24 at the largest gap)."""
        state = self.state
        k = len(state.object_ids)
        f = F.normalize(features, dim=1)[0]
        pixels = f.flatten(1).T  # (P, C)
        best = torch.full((len(pixels), k), -1.0, device=pixels.device)  # best cosine per pixel and object
        if state.reference_features is not None:
            for start in range(0, len(pixels), MATCH_ROWS):
                sim = pixels[start : start + MATCH_ROWS] @ state.reference_features.T
                index = state.reference_objects.expand_as(sim)
                best[start : start + MATCH_ROWS].scatter_reduce_(1, index, sim, "amax")
        has_reference = torch.zeros(k, dtype=torch.bool, device=pixels.device)
        if state.reference_objects is not None:
            has_reference[state.reference_objects] = True
        factors = torch.ones(k, len(pixels), device=pixels.device)
        for j in range(k):
            others = has_reference.clone()
            others[j] = False
            if has_reference[j] and others.any():
                rival = best[:, others].amax(1)
                factors[j] = (2 * torch.sigmoid((best[:, j] - rival) / MATCH_TEMPERATURE)).clamp(max=1)
        factors = factors.view(k, 1, *f.shape[-2:])
        return F.interpolate(factors, size=shape, mode="bilinear", align_corners=False)[:, 0]

    @staticmethod
    def _aggregate(probs: torch.Tensor) -> torch.Tensor:
        """Soft aggregation of K object probabilities into K + 1 class scores (background first)."""
        p = probs.clamp(1e-6, 1 - 1e-6)
        background = torch.prod(1 - p, 0, keepdim=True)
        return Segmenter._logit(torch.cat([background, p]))

    @staticmethod
    def _logit(p: torch.Tensor) -> torch.Tensor:
        p = p.clamp(1e-6, 1 - 1e-6)
        return torch.log(p / (1 - p))

    @staticmethod
    def _argmax(scores: torch.Tensor) -> torch.Tensor:
        # argmax over a short leading dim is a strided reduction, ~15x slower on the CPU than over the last dim.
        return scores.permute(1, 2, 0).contiguous().argmax(-1)

    @staticmethod
    def _scores(probs: torch.Tensor) -> torch.Tensor:
        """What the labels are the arg-max of: the aggregated class scores, or for one object only its own score,
        since the background's is its negative (it wins where its score is above 0): half the work, same labels."""
        if len(probs) == 1:
            return Segmenter._logit(probs)
        return Segmenter._aggregate(probs)

    @staticmethod
    def _winner(scores: torch.Tensor) -> torch.Tensor:
        """0 for the background, else 1 + the object's index, from `_scores`."""
        if len(scores) == 1:
            return (scores[0] > 0).long()
        return Segmenter._argmax(scores)

    def _labels(self, probs: torch.Tensor) -> torch.Tensor:
        if not len(probs):
            return torch.zeros(probs.shape[1:], dtype=torch.long)
        return self._winner(self._scores(probs))

    def _full_size_labels(self, probs: torch.Tensor, width: int, height: int) -> np.ndarray:
        """Bilinear scores up to at most twice the model's size, argmax there, then nearest to the video's size:
        smooth boundaries at 480p and 1080p, and memory bounded for 4K/8K and many objects."""
        w, h = min(width, 2 * self.size[0]), min(height, 2 * self.size[1])
        scores = F.interpolate(self._scores(probs)[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        index = self._winner(scores).cpu().numpy().astype(np.uint8)
        lut = np.array([0, *self.state.object_ids], np.uint8)
        labels = lut[index]
        if (w, h) != (width, height):
            labels = cv2.resize(labels, (width, height), interpolation=cv2.INTER_NEAREST)
        return labels
