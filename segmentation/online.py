"""Online training on the annotated frames: the decoder learns this video's objects before propagation starts.

Training pairs come from the frames the user annotated (frame 0, and later frames where objects start or are
corrected, taking turns in the pool; in a new version the changed ones take more turns): the objects are cut out,
the background is inpainted, and the objects are pasted back moved, scaled, rotated, flipped and colour-jittered;
the previous-mask input is the new mask, deformed as a propagated mask would be. Because the previous mask only
enters the decoder, the backbone and temporal features of a pool of such images are computed once, and the
iterations train the decoder alone on them with a fresh mask deformation each time: several times more iterations
in the same budget. When the loss only counts the gated region, the decoder also runs only on windows around the
objects (`crop_windows`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from .data import deform_mask, paint_out
from .inference import gate_region
from .masks import ids_in
from .model import DELTA, STCNN, normalise, segmentation_loss
from .runtime import native_bf16


@dataclass(frozen=True)
class OnlineBudget:
    """A number of iterations, so the same video and options give the same masks on any machine; the seconds are
    only a safety net for a machine far slower than planned (the summary says when they cut training short)."""

    seconds: float
    iterations: int


# Per preset: (CPU budget, GPU budget), iterations and the time cap. The model card gives each one's time.
PRESETS = {
    "fast": (OnlineBudget(40, 60), OnlineBudget(10, 150)),
    "balanced": (OnlineBudget(120, 200), OnlineBudget(20, 400)),
    "quality": (OnlineBudget(300, 500), OnlineBudget(40, 1000)),
}
POOL = 24  # augmented images whose features are computed once
BATCH = 4
CROP_STEP = 32  # crops start and end on the coarsest feature stride, so every level crops to whole cells


def budget_for(preset: str, device: torch.device, seconds: float | None = None) -> OnlineBudget:
    cpu, gpu = PRESETS[preset]
    budget = gpu if device.type == "cuda" else cpu
    if seconds is not None:  # the user's own time limit instead of the preset's cap (0: no online training)
        budget = OnlineBudget(seconds, budget.iterations if seconds > 0 else 0)
    return budget


class PairMaker:
    """Builds (image, object masks) pairs from one annotated frame at the model's size."""

    def __init__(self, frame: np.ndarray, labels: np.ndarray, object_ids: list[int], seed: int = 0):
        self.frame, self.labels, self.ids = frame, labels, object_ids
        self.rng = np.random.default_rng(seed)
        self.background = paint_out(frame, labels, grow=3)

    def make(self) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.labels.shape
        rng = self.rng
        if rng.random() < 0.2:  # sometimes the frame itself, so the untouched case is learnt too
            image, labels = self.frame.astype(np.float32), self.labels
        else:
            m_fg = cv2.getRotationMatrix2D(
                (w / 2, h / 2), rng.uniform(-15, 15), np.exp(rng.uniform(-0.25, 0.25))
            )
            m_fg[:, 2] += rng.uniform(-0.12, 0.12, 2) * (w, h)
            m_bg = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-3, 3), np.exp(rng.uniform(0, 0.1)))
            m_bg[:, 2] += rng.uniform(-0.03, 0.03, 2) * (w, h)
            background = cv2.warpAffine(self.background, m_bg, (w, h), borderMode=cv2.BORDER_REFLECT)
            foreground = cv2.warpAffine(self.frame, m_fg, (w, h), borderMode=cv2.BORDER_REFLECT)
            labels = cv2.warpAffine(self.labels, m_fg, (w, h), flags=cv2.INTER_NEAREST)
            alpha = cv2.GaussianBlur((labels > 0).astype(np.float32), (3, 3), 0)[..., None]
            image = foreground * alpha + background * (1 - alpha)
        if rng.random() < 0.5:
            image, labels = image[:, ::-1], labels[:, ::-1]
        image = np.clip(image * rng.uniform(0.85, 1.15, 3) + rng.uniform(-15, 15, 3), 0, 255)
        return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(labels)


def crop_windows(pool_labels: list[np.ndarray], margin: int) -> list[tuple[slice, slice]] | None:
    """One window per pool image, all of one size, around its objects plus `margin`; None where they would cover
    most of the frame anyway. With the gated loss nothing outside these windows counts, and the decoder's cost
    is in proportion to the area it runs on."""
    h, w = pool_labels[0].shape
    boxes = []
    for labels in pool_labels:
        ys, xs = np.nonzero(labels)
        if not len(ys):
            return None
        boxes.append((ys.min() - margin, ys.max() + 1 + margin, xs.min() - margin, xs.max() + 1 + margin))
    # One step of slack: the windows' starts are rounded down to the step and must still hold the whole box.
    ch = min(h, (-(-max(b[1] - b[0] for b in boxes) // CROP_STEP) + 1) * CROP_STEP)
    cw = min(w, (-(-max(b[3] - b[2] for b in boxes) // CROP_STEP) + 1) * CROP_STEP)
    if ch * cw > 0.7 * h * w:
        return None
    windows = []
    for y0, _, x0, _ in boxes:
        y = int(np.clip(y0, 0, h - ch)) // CROP_STEP * CROP_STEP
        x = int(np.clip(x0, 0, w - cw)) // CROP_STEP * CROP_STEP
        windows.append((slice(y, y + ch), slice(x, x + cw)))
    return windows


def _crop(t: torch.Tensor, window: tuple[slice, slice], height: int) -> torch.Tensor:
    """The window (in image pixels) of a feature map at any stride."""
    s = height // t.shape[-2]
    ys, xs = window
    return t[..., ys.start // s : ys.stop // s, xs.start // s : xs.stop // s]


def fine_tune(
    model: STCNN,
    examples: list[tuple[np.ndarray, np.ndarray]],
    device: torch.device,
    budget: OnlineBudget,
    progress: Callable[[int, int], None] | None = None,
    seed: int = 0,
    gate: bool = False,
    shares: list[int] | None = None,
) -> dict:
    """Fine-tunes the decoder in place on the annotated frames: (frame, labels) pairs, both already at the
    model's size (frame 0's, and any later frame's where objects start or are corrected). Returns what it did.

    gate: inference will keep predictions near the previous mask (always so with several objects), so the loss only
    counts pixels there. Without it, with two objects in every training image and the target told apart only by
    the previous mask, the decoder could not separate them and learnt to be unsure on both.

    shares: how many turns each example takes in the pool (default: one each)."""
    started = time.perf_counter()
    kept = [i for i, (_, labels) in enumerate(examples) if labels.any()]
    shares = [shares[i] if shares else 1 for i in kept]
    examples = [examples[i] for i in kept]
    turns = [i for i, share in enumerate(shares) for _ in range(share)]
    if budget.iterations <= 0 or not examples:
        return {"iterations": 0, "seconds": 0.0}
    torch.manual_seed(seed)
    makers = [
        PairMaker(frame, labels, ids_in(labels), seed + i) for i, (frame, labels) in enumerate(examples)
    ]
    model.eval()  # every BatchNorm keeps the statistics learnt offline: one frame is too few to re-estimate them

    pool_features, pool_temporal, pool_labels, pool_ids, pool_sources = [], [], [], [], []
    with torch.no_grad():
        temporal = []
        for frame, _ in examples:  # each object moved from where its frame shows it
            still = normalise(torch.from_numpy(frame).to(device).permute(2, 0, 1)[None].float())
            temporal.append(model.temporal(still.repeat(1, DELTA, 1, 1))[1])
        for n in range(POOL):
            source = turns[n % len(turns)]  # the annotated frames take turns
            image, pair_labels = makers[source].make()
            x = normalise(torch.from_numpy(image).to(device).permute(2, 0, 1)[None])
            pool_features.append(model.backbone(x))
            pool_temporal.append(temporal[source])
            pool_labels.append(pair_labels)
            pool_ids.append(makers[source].ids)
            pool_sources.append(source)
            if progress:  # lets the caller cancel while the pool is built, before the first iteration
                progress(0, budget.iterations)
            if time.perf_counter() - started > budget.seconds / 3:
                break  # only when the time cap bites: fewer images rather than overrunning it
    height, short_side = examples[0][0].shape[0], min(examples[0][0].shape[:2])
    # The margin holds the gate's reach (1/16 of the short side) and how far a deformed previous mask strays.
    windows = crop_windows(pool_labels, short_side // 6) if gate else None
    if windows:
        for i, window in enumerate(windows):
            pool_features[i] = [_crop(f, window, height) for f in pool_features[i]]
            pool_temporal[i] = [_crop(t, window, height) for t in pool_temporal[i]]
            pool_labels[i] = pool_labels[i][window]
    bf16 = native_bf16(device)  # fp32 weights and updates; nearly halves an iteration's time
    parameters = list(model.decoder.parameters())
    optimiser = torch.optim.Adam(parameters, lr=5e-5)
    rng = np.random.default_rng(seed)
    done = 0
    loss_value = float("nan")
    while done < budget.iterations and time.perf_counter() - started < budget.seconds:
        picks = rng.integers(len(pool_labels), size=BATCH)
        features = [torch.cat(level) for level in zip(*(pool_features[i] for i in picks))]
        temporal = [torch.cat(level) for level in zip(*(pool_temporal[i] for i in picks))]
        masks, previous_masks = [], []
        for i in picks:
            obj = pool_ids[i][rng.integers(len(pool_ids[i]))]
            target = (pool_labels[i] == obj).astype(np.uint8)
            masks.append(target)
            previous_masks.append(deform_mask(target, makers[0].rng))
        mask = torch.from_numpy(np.stack(masks)[:, None].astype(np.float32)).to(device)
        previous_mask = torch.from_numpy(np.stack(previous_masks)[:, None].astype(np.float32)).to(device)
        region = gate_region(previous_mask, short_side) if gate else None  # as inference, whatever the crop
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model.decode(features, temporal, previous_mask)
        loss = segmentation_loss([logit.float() for logit in logits], mask, region)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        loss_value = loss.item()
        done += 1
        if progress:
            progress(done, budget.iterations)
    model.eval()
    for p in parameters:
        p.grad = None
    return {
        "iterations": done,
        "pool": len(pool_labels),
        "frames": len(examples),
        "pool_by_frame": np.bincount(pool_sources, minlength=len(examples)).tolist(),  # in the examples' order
        "crop": list(pool_labels[0].shape) if windows else None,
        "seconds": time.perf_counter() - started,
        # The time cap stopped it before the preset's iterations: this run is not reproducible elsewhere.
        "cut_by_time": done < budget.iterations,
        "loss": loss_value,
        "gated": gate,
        "precision": "bf16" if bf16 else "fp32",
    }
