"""A result folder as a version: what it was made from, and what a later run may reuse of it (`--previous`).

Every result keeps, under OUT/state/, what a later run needs to carry on from any frame exactly as this one went:
the decoder as online training left it, each frame's forward result at the model's size (before corrections
reached back into it), and the labels given at each annotated frame. A run with `previous` carries the earlier
decoder on (online training goes on from it, on every annotated frame, for a share of the preset), keeps the
earlier masks of every frame that the changed annotations cannot reach, resumes the forward pass from the first
frame they can and redoes the reverse passes from there, and stops the forward pass where it gives the previous
result again (the correction has faded: `agrees`). With online training off, the masks up to that frame are those
of a full run with the same annotations. The overlay video and the trajectory are drawn again only around the
frames whose masks changed (`overlay_reuse`); the rest is copied from the previous version.
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import inference
from .annotations import Annotations, BackwardSpan, backward_spans
from .errors import InputError
from .evaluate import jaccard
from .masks import ids_in, read_mask, write_mask
from .paths import kind_of, user_path
from .trajectory import read_csv
from .video import keyframes

STATE = "state"
# Options whose change changes every frame: a run that differs in any of them cannot reuse an earlier result.
SAME_OPTIONS = ("short_side", "gate", "match", "ablate", "fps", "binarize")
# A correction's forward pass stops once it has given the previous result again (every object's IoU at least
# AGREE_IOU) on AGREE_FRAMES frames in a row after the last changed annotation: from there on the correction has
# faded, and the previous result is kept.
AGREE_IOU = 0.98
AGREE_FRAMES = 3


def save_decoder(out: Path, decoder: torch.nn.Module) -> None:
    # Through memory: torch's own file writer reports a full disk as a RuntimeError, Python's as the OSError it is.
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in decoder.state_dict().items()}, buffer)
    (out / STATE).mkdir(parents=True, exist_ok=True)
    (out / STATE / "decoder.pt").write_bytes(buffer.getvalue())


def save_forward(out: Path, index: int, ids: np.ndarray) -> None:
    write_mask(out / STATE / "forward" / f"{index:05d}.png", ids)


def keep_frame(previous: Previous, out: Path, index: int, mask_name: str) -> None:
    """A frame the new version takes unchanged from the previous one: its mask and its forward result."""
    (out / STATE / "forward").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(previous.folder / "masks" / mask_name, out / "masks" / mask_name)
    name = f"{index:05d}.png"
    shutil.copyfile(previous.folder / STATE / "forward" / name, out / STATE / "forward" / name)


def save_annotation(out: Path, index: int, labels: np.ndarray) -> None:
    write_mask(out / STATE / "annotations" / f"{index:05d}.png", labels)


@dataclass
class Previous:
    """An earlier result of the same video, checked to fit this run."""

    folder: Path
    summary: dict

    @property
    def version(self) -> int:
        return int(self.summary.get("version", 1))

    @property
    def frame_count(self) -> int:
        return int(self.summary["video"]["frame_count"])

    @property
    def annotated_frames(self) -> list[int]:
        return sorted(int(p.stem) for p in (self.folder / STATE / "annotations").glob("*.png"))

    def annotation(self, index: int) -> np.ndarray:
        return read_mask(self.folder / STATE / "annotations" / f"{index:05d}.png")

    def made_from_same_prompts(self, frame: int, prompts: list) -> bool:
        """Whether the previous result's mask at `frame` was made from these prompts (boxes and strokes): then it is
        kept, not made again by a decoder that online training has moved on since."""
        def listed(values):
            return sorted(json.dumps(v, sort_keys=True) for v in values)

        earlier = [p for p in [*self.summary.get("boxes", []), *self.summary.get("strokes", [])] if p["frame"] == frame]
        now = json.loads(json.dumps([asdict(p) for p in prompts]))  # tuples as the summary's lists
        return frame in self.annotated_frames and listed(earlier) == listed(now)

    def forward_ids(self, index: int) -> np.ndarray:
        return read_mask(self.folder / STATE / "forward" / f"{index:05d}.png")

    def decoder_state(self) -> dict:
        return torch.load(self.folder / STATE / "decoder.pt", map_location="cpu", weights_only=True)

    def spans(self) -> list[BackwardSpan]:
        """The reverse passes whose results its masks hold: all that its annotations call for, those an earlier
        version ran and this one kept among them (from the annotations, which every result has kept)."""
        return backward_spans({frame: ids_in(self.annotation(frame)) for frame in self.annotated_frames})


def load_previous(path, info, options) -> Previous:
    """The earlier result at `path`, or InputError saying why it cannot be reused for this video and options."""
    folder = user_path(path, "previous result")
    if kind_of(folder) != "folder":
        raise InputError(f"previous result {folder}: not found (give the output folder of an earlier run)")
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        raise InputError(f"previous result {folder}: has no readable summary.json") from None
    needed = [folder / STATE / "decoder.pt", folder / STATE / "forward", folder / "masks"]
    if not all(p.exists() for p in needed):
        raise InputError(f"previous result {folder}: was made by an older version; run without --previous")
    video = summary.get("video", {})
    if (video.get("width"), video.get("height")) != (info.width, info.height) or (
        info.frame_count and video.get("frame_count") not in (None, info.frame_count)
    ):
        raise InputError(
            f"previous result {folder}: was made from a {video.get('width')}x{video.get('height')} video of "
            f"{video.get('frame_count')} frames, not this one; run without --previous"
        )
    earlier = summary.get("options", {})
    for name in SAME_OPTIONS:
        now, then = getattr(options, name), earlier.get(name)
        if (list(now) if isinstance(now, tuple) else now) != then:
            raise InputError(
                f"previous result {folder}: was made with {name} {then!r}, this run asks {now!r}; run without "
                "--previous"
            )
    return Previous(folder, summary)


def changed_frames(previous: Previous, annotations: Annotations) -> list[int]:
    """The annotated frames that were added, changed or removed since the previous result, in order."""
    old, new = set(previous.annotated_frames), set(annotations.frames)
    return sorted(
        f for f in old | new
        if f not in old or f not in new or not np.array_equal(previous.annotation(f), annotations.at(f))
    )  # fmt: skip


def first_changed(previous: Previous, changed: list[int], count: int) -> int:
    """The first frame the forward pass must segment again, given the `changed_frames`: the earliest of them, or
    the earliest frame that a previous reverse pass from it or after it reached (its merged masks may no longer
    hold). `count` (the video's frames) when nothing changed. A new reverse pass reaching further back needs no
    forward pass there: the previous masks are what the forward pass would give again, and it merges into them."""
    if not changed:
        return count
    reach = [span.stop + 1 for span in previous.spans() if span.frame >= changed[0]]
    return min([changed[0], *reach])


def before_carried_masks(resume_at: int, annotated: list[int]) -> int:
    """`resume_at`, or the earliest annotated frame whose mask is still carried by the flow there, through a chain
    of such frames (inference.CARRY_FRAMES): a resumed segmenter carries no masks, so it resumes where they start."""
    while True:
        carried = [a for a in annotated if resume_at - inference.CARRY_FRAMES <= a < resume_at]
        if not carried:
            return resume_at
        resume_at = min(carried)


def agrees(ids: np.ndarray, earlier: np.ndarray) -> bool:
    """Whether a frame's forward result (model-size ids) is the previous result's there: every object's IoU at
    least AGREE_IOU (an object in neither counts as agreeing)."""
    return all(jaccard(ids == o, earlier == o) >= AGREE_IOU for o in {*ids_in(ids), *ids_in(earlier)})


@dataclass
class OverlayReuse:
    """Frames [start, stop) are drawn and encoded again; the others are the previous version's overlay and
    trajectory rows, copied (start and stop are keyframes of its overlay, or its end)."""

    start: int
    stop: int
    overlay: Path  # the previous version's
    trajectory: pd.DataFrame  # the previous version's rows

    def rows(self, drawn: list[dict]) -> pd.DataFrame:
        """The whole trajectory: the previous rows around those of the frames drawn again."""
        before = self.trajectory[self.trajectory["frame"] < self.start]
        after = self.trajectory[self.trajectory["frame"] >= self.stop]
        parts = [before, *([pd.DataFrame(drawn, columns=before.columns)] if drawn else []), after]
        return pd.concat(parts, ignore_index=True)


def overlay_reuse(
    previous: Previous, masks: Path, names: list[str], object_ids: list[int], shown: tuple[int, int]
) -> OverlayReuse | None:
    """What of the previous version's overlay and trajectory a new version with these final `masks` (one file
    name per frame) can copy: everything outside the keyframe-aligned run of frames from the first to the last
    mask that differs. None where nothing can be: another overlay size, other objects, files missing."""
    folder = previous.folder
    overlay, trajectory = folder / "overlay.mp4", folder / "trajectory.csv"
    if previous.summary.get("overlay_size") != list(shown) or previous.frame_count != len(names):
        return None
    if not (overlay.is_file() and trajectory.is_file()):
        return None
    earlier = read_csv(trajectory)
    if earlier["object_id"].unique().tolist() != list(object_ids):
        return None
    # The same mask file is the same overlay frame and the same trajectory rows: masks are written deterministically.
    changed = [i for i, name in enumerate(names) if not _same_bytes(masks / name, folder / "masks" / name)]
    if not changed:
        return OverlayReuse(len(names), len(names), overlay, earlier)
    starts = keyframes(overlay)
    start = max((k for k in starts if k <= changed[0]), default=0)
    stop = min((k for k in starts if k > changed[-1]), default=len(names))
    return OverlayReuse(start, stop, overlay, earlier)


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        return a.read_bytes() == b.read_bytes()
    except OSError:
        return False
