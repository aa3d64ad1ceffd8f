"""A result folder as a version: what it was made from, and what a later run may reuse of it (`--previous`).

Every result keeps, under OUT/state/, what a later run needs to carry on from any frame exactly as this one went:
the decoder as online training left it, each frame's forward result at the model's size (before corrections
reached back into it), and the labels given at each annotated frame. A run with `previous` reuses the earlier
decoder (online training is not run again), keeps the earlier masks of every frame that the changed annotations
cannot reach, resumes the forward pass from the first frame they can, and redoes the reverse passes from there.
With online training off, that gives the same masks as a full run with the same annotations.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .annotations import Annotations, BackwardSpan
from .errors import InputError
from .masks import read_mask, write_mask
from .paths import kind_of, user_path

STATE = "state"
# Options whose change changes every frame: a run that differs in any of them cannot reuse an earlier result.
SAME_OPTIONS = ("short_side", "gate", "match", "ablate", "fps", "binarize")


def save_decoder(out: Path, decoder: torch.nn.Module) -> None:
    # Through memory: torch's own file writer reports a full disk as a RuntimeError, Python's as the OSError it is.
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in decoder.state_dict().items()}, buffer)
    (out / STATE).mkdir(parents=True, exist_ok=True)
    (out / STATE / "decoder.pt").write_bytes(buffer.getvalue())


def save_forward(out: Path, index: int, ids: np.ndarray) -> None:
    write_mask(out / STATE / "forward" / f"{index:05d}.png", ids)


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
    def annotated_frames(self) -> list[int]:
        return sorted(int(p.stem) for p in (self.folder / STATE / "annotations").glob("*.png"))

    def annotation(self, index: int) -> np.ndarray:
        return read_mask(self.folder / STATE / "annotations" / f"{index:05d}.png")

    def forward_ids(self, index: int) -> np.ndarray:
        return read_mask(self.folder / STATE / "forward" / f"{index:05d}.png")

    def decoder_state(self) -> dict:
        return torch.load(self.folder / STATE / "decoder.pt", map_location="cpu", weights_only=True)

    def spans(self) -> list[BackwardSpan]:
        return [
            BackwardSpan(c["frame"], {int(k): v for k, v in c["objects"].items()})
            for c in self.summary.get("corrections", [])
        ]


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


def first_changed(previous: Previous, annotations: Annotations, spans: list[BackwardSpan], count: int) -> int:
    """The first frame whose mask may differ from the previous result's: the earliest annotation that was added,
    changed or removed, or the earliest frame a reverse pass from it or after it reaches (old or new). `count`
    (the video's frames) when nothing changed."""
    old, new = set(previous.annotated_frames), set(annotations.frames)
    changed = sorted(f for f in old | new if f not in old or f not in new)
    for frame in sorted(old & new):
        if changed and frame >= changed[0]:
            break
        if not np.array_equal(previous.annotation(frame), annotations.at(frame)):
            changed.append(frame)
            break
    if not changed:
        return count
    first = min(changed)
    reach = [span.stop + 1 for span in [*spans, *previous.spans()] if span.frame >= first]
    return min([first, *reach])
