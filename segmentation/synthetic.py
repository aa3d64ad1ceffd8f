"""Small synthetic clips with exact ground truth, for tests, the dashboard demo and benchmarks.

Textured shapes move on smooth sine paths over a textured background that the "camera" pans slightly. Everything
is drawn from one seeded generator, so the same arguments give the same clip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from segmentation.masks import write_mask
from segmentation.trajectory import frame_rows
from segmentation.video import VideoWriter

_SHAPES = ("ellipse", "rounded_rect", "triangle", "diamond")
_JITTER = 3  # camera pan amplitude in pixels: frames differ even where nothing moves


@dataclass
class SyntheticClip:
    video: Path  # out_dir/video.mp4, or out_dir/frames when written as a folder
    mask: Path  # first-frame annotation
    gt_dir: Path  # palette PNG ground truth for every frame: 00000.png, ...
    centroids: dict[int, list[tuple[float, float]]]  # true (x, y) per frame from the ground truth
    fps: float
    size: tuple[int, int]  # (width, height)
    n_frames: int = 0
    object_ids: list[int] | None = None
    # With appear_at: frame 0's mask and, for each later frame where objects appear, a mask of just those
    # (00000.png, 00005.png, ...: the layout `stcnn segment VIDEO MASKS_FOLDER` reads).
    masks_dir: Path | None = None

    @property
    def video_path(self) -> Path:
        return self.video

    @property
    def mask_path(self) -> Path:
        return self.mask


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    # Random values on a coarse grid, upsampled with cubic interpolation: smooth blotches in [0, 1].
    coarse = rng.random((h // cell + 3, w // cell + 3, 3), dtype=np.float32)
    return np.clip(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    # Mostly-grey blotches and faint stripes: textured enough to matter, duller than the objects.
    grey = _smooth_noise(rng, h, w, cell=12).mean(axis=2, keepdims=True)
    colour = _smooth_noise(rng, h, w, cell=20) - 0.5
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle, period = rng.uniform(0, math.pi), rng.uniform(8, 16)
    stripes = np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period)[..., None]
    tint = rng.uniform(0.7, 1.0, size=3).astype(np.float32)
    return np.clip((50 + 180 * grey) * tint + 40 * colour + 12 * stripes, 0, 255).astype(np.uint8)


def _shape_mask(shape: str, w: int, h: int) -> np.ndarray:
    mask = np.zeros((h, w), np.uint8)
    if shape == "ellipse":
        cv2.ellipse(mask, (w // 2, h // 2), (max(w // 2 - 1, 1), max(h // 2 - 1, 1)), 0, 0, 360, 1, -1)
    elif shape == "rounded_rect":
        r = max(min(w, h) // 4, 1)
        cv2.rectangle(mask, (r, 0), (w - 1 - r, h - 1), 1, -1)
        cv2.rectangle(mask, (0, r), (w - 1, h - 1 - r), 1, -1)
        for cx, cy in ((r, r), (w - 1 - r, r), (r, h - 1 - r), (w - 1 - r, h - 1 - r)):
            cv2.circle(mask, (cx, cy), r, 1, -1)
    elif shape == "triangle":
        cv2.fillPoly(mask, [np.array([(w // 2, 0), (w - 1, h - 1), (0, h - 1)], np.int32)], 1)
    else:
        cv2.fillPoly(
            mask, [np.array([(w // 2, 0), (w - 1, h // 2), (w // 2, h - 1), (0, h // 2)], np.int32)], 1
        )
    return mask.astype(bool)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """An object's own look: a saturated colour pair in checks or stripes, shaded by smooth noise."""
    base = rng.uniform(0, 255, 3)
    base[rng.integers(3)] = rng.uniform(200, 255)  # one strong channel: distinct from the duller background
    other = 255 - base
    yy, xx = np.mgrid[0:h, 0:w]
    cell = int(rng.integers(3, 7))
    if rng.random() < 0.5:
        pattern = ((yy // cell + xx // cell) % 2).astype(bool)
    else:
        pattern = ((xx + yy) // cell % 2).astype(bool)
    tex = np.where(pattern[..., None], base, 0.6 * base + 0.4 * other)
    shade = 0.75 + 0.25 * _smooth_noise(rng, h, w, cell=6)
    return np.clip(tex * shade, 0, 255).astype(np.uint8)


@dataclass
class _Limb:
    """Two thin segments from a joint on the body, each swinging on its own sine: an arm, a leg, a handlebar."""

    root: tuple[float, float]  # in the sprite's box
    lengths: tuple[float, float]
    angles: tuple[float, float]  # at rest, radians; the second relative to the first
    swing: tuple[float, float]  # amplitude, radians
    cycles: tuple[float, float]  # per frame
    phase: tuple[float, float]
    thickness: int

    def draw(self, mask: np.ndarray, t: float) -> None:
        x, y = self.root
        angle = 0.0
        for length, rest, swing, f, p in zip(
            self.lengths, self.angles, self.swing, self.cycles, self.phase, strict=True
        ):
            angle += rest + swing * math.sin(2 * math.pi * f * t + p)
            end = (x + length * math.cos(angle), y + length * math.sin(angle))
            cv2.line(mask, (round(x), round(y)), (round(end[0]), round(end[1])), 1, self.thickness)
            x, y = end


@dataclass
class _Sprite:
    object_id: int
    mask: np.ndarray
    texture: np.ndarray
    centre: tuple[float, float]  # of the top-left corner's path
    amplitude: tuple[float, float]
    cycles: tuple[float, float]
    phase: tuple[float, float]
    limbs: list[_Limb] = field(default_factory=list)  # an articulated figure's: its mask changes every frame
    # A rider: a part in front of the object, of its own texture, that moves with it but is not it (bmx's bike
    # is the object, its rider is not), so only the given mask says where the object ends.
    rider: np.ndarray | None = None
    rider_texture: np.ndarray | None = None

    def mask_at(self, t: float) -> np.ndarray:
        if not self.limbs:
            return self.mask
        mask = self.mask.astype(np.uint8)
        for limb in self.limbs:
            limb.draw(mask, t)
        return mask.astype(bool)

    def top_left(self, t: float) -> tuple[int, int]:
        x, y = (
            c + a * math.sin(2 * math.pi * f * t + p)
            for c, a, f, p in zip(self.centre, self.amplitude, self.cycles, self.phase, strict=True)
        )
        return int(round(x)), int(round(y))


def _figure(rng: np.random.Generator, w: int, h: int) -> tuple[np.ndarray, list[_Limb]]:
    """A small body (a blob or a thin ring, as a wheel) with two to five thin limbs that swing fast: the thin,
    articulated objects (a dancer's limbs, a bike's frame) that plain shapes never show the model."""
    body = np.zeros((h, w), np.uint8)
    side = min(w, h)
    centre = (w / 2 + rng.uniform(-0.1, 0.1) * w, h / 2 + rng.uniform(-0.1, 0.1) * h)
    axes = (max(2, int(side * rng.uniform(0.08, 0.18))), max(2, int(side * rng.uniform(0.08, 0.18))))
    ring = rng.random() < 0.4
    cv2.ellipse(
        body, (round(centre[0]), round(centre[1])), axes, rng.uniform(0, 180), 0, 360, 1,
        max(1, int(side * 0.04)) if ring else -1,
    )  # fmt: skip
    limbs = []
    for _ in range(int(rng.integers(2, 6))):
        at = rng.uniform(0, 2 * math.pi)
        limbs.append(
            _Limb(
                root=(centre[0] + axes[0] * math.cos(at), centre[1] + axes[1] * math.sin(at)),
                lengths=tuple(rng.uniform(0.12, 0.24, 2) * side),
                angles=(at + rng.uniform(-0.5, 0.5), rng.uniform(-1.5, 1.5)),
                swing=tuple(rng.uniform(0.3, 1.1, 2)),
                cycles=tuple(rng.uniform(0.02, 0.07, 2)),
                phase=tuple(rng.uniform(0, 2 * math.pi, 2)),
                thickness=int(rng.integers(2, max(3, int(side * 0.06)) + 1)),
            )
        )
    return body.astype(bool), limbs


def _rider(rng: np.random.Generator, body: np.ndarray) -> np.ndarray:
    """A blob sitting on the body's top, overlapping it, inside the sprite's box (the rider's mask)."""
    h, w = body.shape
    ys, xs = np.nonzero(body)
    axes = (max(2, int(w * rng.uniform(0.12, 0.22))), max(2, int(h * rng.uniform(0.15, 0.25))))
    centre = (int(xs.mean() + rng.uniform(-0.3, 0.3) * axes[0]), max(axes[1], int(ys.min() - 0.4 * axes[1])))
    rider = np.zeros((h, w), np.uint8)
    cv2.ellipse(rider, centre, axes, rng.uniform(-30, 30), 0, 360, 1, -1)
    return rider.astype(bool)


def _sprites(
    rng: np.random.Generator,
    n_objects: int,
    width: int,
    height: int,
    n_frames: int,
    figures: bool = False,
    riders: bool = False,
) -> list[_Sprite]:
    sprites = []
    for k in range(n_objects):
        w = max(6, int(width * rng.uniform(0.18, 0.3)))
        h = max(6, int(height * rng.uniform(0.25, 0.4)))
        if figures:  # a figure's limbs reach out of a small body: it takes a larger box
            w, h = int(min(width * 0.45, 1.5 * w)), int(min(height * 0.6, 1.5 * h))
        centre, amplitude, cycles, phase = [], [], [], []
        # Spread the objects' home positions across the frame so they overlap only now and then.
        homes = ((k + 0.5) / n_objects, rng.uniform(0.25, 0.75))
        for free, home in zip((width - w, height - h), homes, strict=True):
            f = rng.uniform(0.3, 0.8)  # cycles over the whole clip
            # Keep steps to about 4 % of the frame per frame: large enough to track, small enough to follow.
            step_limit = 0.04 * max(width, height) * max(n_frames, 1) / (2 * math.pi * f)
            amp = min(free / 2, step_limit) * rng.uniform(0.6, 1.0)
            centre.append(float(np.clip(free * home, amp, free - amp)))
            amplitude.append(amp)
            cycles.append(f / max(n_frames, 1))
            phase.append(rng.uniform(0, 2 * math.pi))
        mask, limbs = _figure(rng, w, h) if figures else (_shape_mask(_SHAPES[k % len(_SHAPES)], w, h), [])
        sprites.append(
            _Sprite(
                object_id=k + 1,
                mask=mask,
                texture=_texture(rng, h, w),
                centre=tuple(centre),
                amplitude=tuple(amplitude),
                cycles=tuple(cycles),
                phase=tuple(phase),
                limbs=limbs,
            )
        )
        if riders:  # drawn after the others so that clips without riders stay as they were
            sprites[-1].rider, sprites[-1].rider_texture = _rider(rng, mask), _texture(rng, h, w)
    return sprites


def make_clip(
    out_dir,
    n_frames: int = 16,
    size: tuple[int, int] = (160, 96),
    n_objects: int = 1,
    seed: int = 0,
    fps: float = 24.0,
    as_folder: bool = False,
    appear_at: dict[int, int] | None = None,
    figures: bool = False,
    riders: bool = False,
) -> SyntheticClip:
    """Write a synthetic clip, its first-frame mask and per-frame ground truth under ``out_dir``.

    ``appear_at`` maps object ids to the frame they come into view (the others are there from frame 0); the
    clip then also gets a masks folder with a mask at each of those frames (``masks_dir``). ``figures``: the objects
    are articulated figures with thin, swinging limbs instead of rigid shapes. ``riders``: each object carries a
    rider, a part of another texture in front of it that moves with it but is not the object."""
    width, height = size
    appear_at = dict(appear_at or {})
    if n_frames < 1 or not 1 <= n_objects <= 32:
        raise ValueError("n_frames must be >= 1 and n_objects in 1..32")
    if appear_at and (
        not set(appear_at) < set(range(1, n_objects + 1))
        or not all(0 < t < n_frames for t in appear_at.values())
    ):
        raise ValueError("appear_at: ids of some of the objects (not all) -> frames in 1..n_frames-1")
    if width < 32 or height < 32:
        raise ValueError(f"size must be at least 32x32, got {width}x{height}")
    if not as_folder and (width % 2 or height % 2):
        # H.264 would pad the video to even, and the mask would no longer match it.
        raise ValueError(f"use an even size for mp4 output, got {width}x{height}")
    out_dir = Path(out_dir)
    gt_dir = out_dir / "gt"
    gt_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    canvas = _background(rng, height + 2 * _JITTER, width + 2 * _JITTER)
    sprites = _sprites(rng, n_objects, width, height, n_frames, figures, riders)
    pan_phase = rng.uniform(0, 2 * math.pi, size=2)
    noise_rng = np.random.default_rng(seed + 1)

    if as_folder:
        video = out_dir / "frames"
        video.mkdir(exist_ok=True)
        writer = None
    else:
        video = out_dir / "video.mp4"
        writer = VideoWriter(video, width, height, fps)
    ids = [s.object_id for s in sprites]
    centroids: dict[int, list[tuple[float, float]]] = {i: [] for i in ids}
    try:
        for t in range(n_frames):
            ox, oy = (int(round(_JITTER + _JITTER * math.sin(0.9 * t + p))) for p in pan_phase)
            frame = canvas[oy : oy + height, ox : ox + width].copy()
            labels = np.zeros((height, width), np.uint8)
            for sprite in sprites:  # in id order: later ids are drawn on top
                if t < appear_at.get(sprite.object_id, 0):
                    continue
                x, y = sprite.top_left(t)
                mask = sprite.mask_at(t)
                h, w = mask.shape
                frame[y : y + h, x : x + w][mask] = sprite.texture[mask]
                labels[y : y + h, x : x + w][mask] = sprite.object_id
                if sprite.rider is not None:  # in front of everything drawn so far: no object shows under it
                    frame[y : y + h, x : x + w][sprite.rider] = sprite.rider_texture[sprite.rider]
                    labels[y : y + h, x : x + w][sprite.rider] = 0
            # A little sensor noise so no two frames are identical.
            frame = np.clip(frame + noise_rng.normal(0, 2, frame.shape), 0, 255).astype(np.uint8)
            if writer is None:
                Image.fromarray(frame).save(video / f"{t:05d}.png")
            else:
                writer.write(frame)
            write_mask(gt_dir / f"{t:05d}.png", labels)
            new = [i for i in ids if appear_at.get(i, 0) == t]
            if appear_at and new:
                write_mask(out_dir / "masks" / f"{t:05d}.png", np.where(np.isin(labels, new), labels, 0))
            for row in frame_rows(t, t / fps, labels, ids):
                centroids[row["object_id"]].append((row["x"], row["y"]))
            if t == 0:
                first = labels
    finally:
        if writer is not None:
            writer.close()

    mask = out_dir / "mask.png"
    if n_objects == 1:
        Image.fromarray((first > 0).astype(np.uint8) * 255).save(mask)  # the plain binary mask users make
    else:
        write_mask(mask, first)
    return SyntheticClip(
        video=video,
        mask=mask,
        gt_dir=gt_dir,
        centroids=centroids,
        fps=float(fps),
        size=(width, height),
        n_frames=n_frames,
        object_ids=ids,
        masks_dir=out_dir / "masks" if appear_at else None,
    )
