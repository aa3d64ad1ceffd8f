"""DAVIS-layout training data (`<seq>/frames/*.jpg`, `<seq>/masks/*.png`) held in memory at the model's size,
and the random samples that offline training draws from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError
from .masks import ids_in
from .model import DELTA

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class Sequence:
    name: str
    frames: np.ndarray  # (T, h, w, 3) uint8 at the model's size
    masks: np.ndarray  # (T, h, w) uint8 object ids at the model's size
    frame_dir: Path
    mask_dir: Path


def sequence_dirs(roots: list[str | Path]) -> list[Path]:
    """Every `<seq>` folder with frames/ and masks/ under the given roots (a root may itself be a sequence)."""
    found = []
    for root in map(Path, roots):
        if (root / "frames").is_dir() and (root / "masks").is_dir():
            found.append(root)
        elif root.is_dir():
            found.extend(
                p for p in sorted(root.iterdir()) if (p / "frames").is_dir() and (p / "masks").is_dir()
            )
        else:
            raise InputError(f"training data folder not found: {root}")
    if not found:
        raise InputError(f"no <seq>/frames + <seq>/masks folders under {', '.join(map(str, roots))}")
    return found


def _frame_files(path: Path) -> list[Path]:
    return sorted(p for p in (path / "frames").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def first_frame_size(path: Path) -> tuple[int, int]:
    """(w, h) of a sequence's first frame."""
    files = _frame_files(path)
    if not files:
        raise InputError(f"no JPEG/PNG frames in {path / 'frames'}")
    h, w = cv2.imread(str(files[0]), cv2.IMREAD_COLOR).shape[:2]
    return w, h


def load_sequence(path: Path, size: tuple[int, int]) -> Sequence:
    """Reads every frame and mask of one sequence, resized to size = (w, h). Masks: any non-zero value is the object
    for binary masks, palette indices are kept."""
    frame_files = _frame_files(path)
    frames, masks = [], []
    for frame_file in frame_files:
        mask_file = path / "masks" / (frame_file.stem + ".png")
        image = cv2.cvtColor(cv2.imread(str(frame_file), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        mask = cv2.imread(str(mask_file), cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise InputError(f"mask missing for frame {frame_file}")
        if mask.ndim == 3:
            mask = mask.max(axis=2)
        mask = (mask > 127).astype(np.uint8) if mask.max() > 127 else mask.astype(np.uint8)
        frames.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
        masks.append(cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST))
    return Sequence(path.name, np.stack(frames), np.stack(masks), path / "frames", path / "masks")


def _affine(h: int, w: int, rng: np.random.Generator, scale: float, shift: float, angle: float) -> np.ndarray:
    s = 1.0 + rng.uniform(-scale, scale)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-angle, angle), s)
    m[:, 2] += rng.uniform(-shift, shift, 2) * (w, h)
    return m


def paint_out(frame: np.ndarray, labels: np.ndarray, grow: int) -> np.ndarray:
    """The frame with every object inpainted away, each grown by `grow` pixels so that no fringe of it is left."""
    hole = cv2.dilate((labels > 0).astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
    return cv2.inpaint(frame, hole, 5, cv2.INPAINT_TELEA)


def deform_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Imitates the previous frame's imperfect prediction: small affine motion, dilation or erosion, holes."""
    h, w = mask.shape
    out = cv2.warpAffine(mask, _affine(h, w, rng, 0.08, 0.04, 8), (w, h), flags=cv2.INTER_NEAREST)
    k = int(rng.integers(0, 8))
    if k:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))
        out = cv2.dilate(out, kernel) if rng.random() < 0.5 else cv2.erode(out, kernel)
    if rng.random() < 0.3 and out.any():  # cut a random blob out, as when a part was missed
        ys, xs = np.nonzero(out)
        i = rng.integers(len(ys))
        r = int(rng.integers(3, max(4, int(np.sqrt(len(ys)) / 3))))
        cv2.circle(out, (int(xs[i]), int(ys[i])), r, 0, -1)
    return out


def prompt_prior(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a person's prompt on this very frame gives the decoder instead of a previous mask: mostly the object's
    box, drawn loosely (each side off by up to a tenth of the box, more often outside than in), else a few thick
    strokes across the object, as a brush or positive clicks leave them (segmentation.prompts)."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    out = np.zeros_like(mask)
    if not len(ys):
        return out
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    if rng.random() < 0.75:
        bw, bh = x1 - x0 + 1, y1 - y0 + 1
        dx0, dx1, dy0, dy1 = rng.uniform(-0.03, 0.1, 4) * (bw, bw, bh, bh)
        x0, x1 = int(np.clip(x0 - dx0, 0, w - 1)), int(np.clip(x1 + dx1, 0, w - 1))
        y0, y1 = int(np.clip(y0 - dy0, 0, h - 1)), int(np.clip(y1 + dy1, 0, h - 1))
        out[y0 : y1 + 1, x0 : x1 + 1] = 1
        return out
    radius = max(2, int(np.sqrt(len(ys)) / 12))
    for _ in range(int(rng.integers(1, 4))):
        picks = rng.integers(len(ys), size=int(rng.integers(2, 5)))  # a stroke through a few points of the object
        points = np.stack([xs[picks], ys[picks]], 1).astype(np.int32)
        cv2.polylines(out, [points], False, 1, thickness=2 * radius + 1)
    return out & mask.astype(out.dtype)


class JointSamples:
    """Draws (previous frames, frame, previous mask, mask) crops for the joint stage, one object at a time."""

    def __init__(
        self,
        sequences: list[Sequence],
        crop: tuple[int, int],
        seed: int = 0,
        distractors: float = 0.0,
        new_backgrounds: float = 0.0,
        prompts: float = 0.0,
        by_error: float = 0.0,
        still: float = 0.0,
    ):
        self.sequences = sequences
        self.crop_w, self.crop_h = crop
        self.rng = np.random.default_rng(seed)
        self.distractors = distractors  # share of samples with another sequence's object pasted in
        self.new_backgrounds = new_backgrounds  # share of samples whose target moves onto another background
        self.prompts = prompts  # share of samples whose prior is a box or strokes on a still frame (prompt_prior)
        # Share of the other samples on a still frame too, with a deformed mask of that frame as the prior, as
        # online training's pool is made: otherwise a still frame always means a box, and online training, which
        # learns on still frames, works against what the decoder learnt offline.
        self.still = still
        self._backgrounds: dict[tuple[int, int], np.ndarray] = {}  # (sequence, frame) -> objects painted out
        # Share of samples whose sequence is drawn in proportion to the model's recent error on it (`learn`): a
        # uniform draw spends most iterations on the large, easy objects DAVIS is full of.
        self.by_error = by_error
        self.error = np.full(len(sequences), 0.5)  # per sequence, a running mean of 1 - Dice

    def learn(self, sequences: np.ndarray, errors: np.ndarray) -> None:
        """The errors (1 - Dice) the model just made on samples of these sequences (`sample`'s "sequence")."""
        for seq, error in zip(sequences, errors):
            self.error[seq] = 0.9 * self.error[seq] + 0.1 * float(error)

    def recall(self, errors: dict[str, float]) -> int:
        """Takes up the errors a run recorded by sequence name (its history), so a run carried on draws as it did;
        a sequence the record lacks starts at their mean (0.5 would give it several times its share). Returns how
        many were recalled."""
        known = [i for i, sequence in enumerate(self.sequences) if sequence.name in errors]
        if known:
            self.error[:] = np.mean([errors[self.sequences[i].name] for i in known])
            for i in known:
                self.error[i] = errors[self.sequences[i].name]
        return len(known)

    def _background(self, seq: int, t: int) -> np.ndarray:
        """Frame t of sequence seq with its objects inpainted away (made once: about 16 ms a frame at 448x256)."""
        if (seq, t) not in self._backgrounds:
            sequence = self.sequences[seq]
            self._backgrounds[seq, t] = paint_out(sequence.frames[t], sequence.masks[t], grow=4)
        return self._backgrounds[seq, t]

    def _new_background(self, frames: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Moves the target, with its own motion, onto a clip of another sequence whose objects are painted out,
        shifted, scaled and turned a little. 21 DAVIS sequences are 21 object-background pairs: validation J&F stopped
        rising while the training loss kept falling, so the model was learning the pairs rather than the task."""
        seq = int(self.rng.integers(len(self.sequences)))
        other = self.sequences[seq]
        h, w = masks.shape[1:]
        if other.frames.shape[1:3] != (h, w):
            return frames, masks
        gap = int(self.rng.integers(1, 4))
        start = int(self.rng.integers(len(other.frames)))
        steps = [min(start + k * gap, len(other.frames) - 1) for k in range(len(frames))]
        if self.rng.random() < 0.5:
            steps = steps[::-1]
        placed = _affine(h, w, self.rng, 0.25, 0.2, 10)
        out_frames, out_masks = np.empty_like(frames), np.empty_like(masks)
        for i, t in enumerate(steps):
            out_masks[i] = cv2.warpAffine(masks[i], placed, (w, h), flags=cv2.INTER_NEAREST)
            alpha = cv2.GaussianBlur(out_masks[i].astype(np.float32), (3, 3), 0)[..., None]
            target = cv2.warpAffine(frames[i], placed, (w, h), borderMode=cv2.BORDER_REFLECT)
            out_frames[i] = target * alpha + self._background(seq, t) * (1 - alpha)
        return out_frames, out_masks

    def _paste_distractor(self, frames: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pastes an object cut from another sequence into every frame of the clip, drifting a little per frame,
        in front of the target or behind it. Only the previous mask then says which object is the target, which
        DAVIS-2016 (one salient object per video) never forces the model to learn."""
        other = self.sequences[self.rng.integers(len(self.sequences))]
        t = int(self.rng.integers(len(other.frames)))
        cut = other.masks[t] > 0
        if not cut.any():
            return frames, masks
        h, w = cut.shape
        in_front = self.rng.random() < 0.5
        start, drift = self.rng.uniform(-0.5, 0.5, 2) * (w, h), self.rng.uniform(-0.03, 0.03, 2) * (w, h)
        scale = float(np.exp(self.rng.uniform(-0.5, 0.2)))
        frames, masks = frames.copy(), masks.copy()
        placed = cv2.getRotationMatrix2D((w / 2, h / 2), 0, scale)
        placed[:, 2] += start
        for i in range(len(frames)):
            m = placed.copy()
            m[:, 2] += i * drift
            alpha = cv2.warpAffine(cut.astype(np.float32), m, (w, h))
            pasted = cv2.warpAffine(other.frames[t].astype(np.float32), m, (w, h))
            target = masks[i] > 0
            if in_front:
                masks[i][alpha > 0.5] = 0
            else:
                alpha = alpha * ~target
            frames[i] = frames[i] * (1 - alpha[..., None]) + pasted * alpha[..., None]
        return frames, masks

    def _crop_box(self, mask: np.ndarray, h: int, w: int) -> tuple[int, int]:
        if mask.any() and self.rng.random() < 0.85:  # mostly around the object, sometimes anywhere
            ys, xs = np.nonzero(mask)
            i = self.rng.integers(len(ys))
            x0 = (
                int(xs[i])
                - self.crop_w // 2
                + int(self.rng.integers(-self.crop_w // 4, self.crop_w // 4 + 1))
            )
            y0 = (
                int(ys[i])
                - self.crop_h // 2
                + int(self.rng.integers(-self.crop_h // 4, self.crop_h // 4 + 1))
            )
        else:
            x0, y0 = (
                int(self.rng.integers(0, w - self.crop_w + 1)),
                int(self.rng.integers(0, h - self.crop_h + 1)),
            )
        return min(max(x0, 0), w - self.crop_w), min(max(y0, 0), h - self.crop_h)

    def _pick_sequence(self) -> int:
        if self.by_error and self.rng.random() < self.by_error:
            return int(self.rng.choice(len(self.sequences), p=self.error / self.error.sum()))
        return int(self.rng.integers(len(self.sequences)))

    def sample(self) -> dict[str, np.ndarray]:
        index = self._pick_sequence()
        seq = self.sequences[index]
        t = int(self.rng.integers(1, len(seq.frames)))
        gap = int(self.rng.integers(1, 4))  # bigger jumps than one frame teach larger motion
        if self.rng.random() < 0.5:
            order = np.arange(len(seq.frames))
        else:  # sequences played backwards are sequences too
            order = np.arange(len(seq.frames))[::-1]
        idx = [order[max(t - k * gap, 0)] for k in range(DELTA, 0, -1)] + [order[t]]
        ids = ids_in(seq.masks[idx[-1]])
        obj = int(self.rng.choice(ids)) if ids else 1
        frames = seq.frames[idx].astype(np.float32)
        masks = (seq.masks[idx] == obj).astype(np.uint8)
        if self.rng.random() < self.distractors:
            frames, masks = self._paste_distractor(frames, masks)
        if self.rng.random() < self.new_backgrounds:
            frames, masks = self._new_background(frames, masks)
        mask = masks[-1]
        if self.rng.random() < self.prompts:
            # As mask_from_boxes runs the model: the frame stands still behind itself, the prior is the prompt.
            frames = np.repeat(frames[-1:], len(frames), 0)
            previous_mask = prompt_prior(mask, self.rng)
        elif self.still and self.rng.random() < self.still:
            frames = np.repeat(frames[-1:], len(frames), 0)
            previous_mask = deform_mask(mask, self.rng)
        else:
            previous_mask = deform_mask(masks[-2], self.rng)

        # One random zoom for the whole clip, then a crop.
        h, w = mask.shape
        scale = float(np.exp(self.rng.uniform(np.log(0.8), np.log(1.4))))
        sw, sh = max(int(w * scale), self.crop_w), max(int(h * scale), self.crop_h)
        frames = np.stack([cv2.resize(f, (sw, sh), interpolation=cv2.INTER_LINEAR) for f in frames])
        mask = cv2.resize(mask, (sw, sh), interpolation=cv2.INTER_NEAREST)
        previous_mask = cv2.resize(previous_mask, (sw, sh), interpolation=cv2.INTER_NEAREST)
        x0, y0 = self._crop_box(mask, sh, sw)
        box = (slice(y0, y0 + self.crop_h), slice(x0, x0 + self.crop_w))
        frames, mask, previous_mask = frames[:, box[0], box[1]], mask[box], previous_mask[box]
        if self.rng.random() < 0.5:
            frames, mask, previous_mask = frames[:, :, ::-1], mask[:, ::-1], previous_mask[:, ::-1]
        # Colour jitter shared by the clip: gain and bias per channel.
        frames = np.clip(
            frames * self.rng.uniform(0.8, 1.2, 3) + self.rng.uniform(-20, 20, 3), 0, 255
        ).astype(np.float32)
        return {
            "frames": np.ascontiguousarray(frames.transpose(0, 3, 1, 2)),  # (DELTA + 1, 3, h, w)
            "mask": np.ascontiguousarray(mask[None].astype(np.float32)),
            "previous_mask": np.ascontiguousarray(previous_mask[None].astype(np.float32)),
            "sequence": np.int64(index),
        }

    def batch(self, n: int) -> dict[str, np.ndarray]:
        samples = [self.sample() for _ in range(n)]
        return {k: np.stack([s[k] for s in samples]) for k in samples[0]}
