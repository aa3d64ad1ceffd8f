"""Look at a video and its first-frame mask before a run starts, so a wrong mask is caught early."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np


def check_inputs(video: Path, mask: Path, binarize: bool = False) -> tuple[dict, bytes]:
    """Return the video's facts, the object ids in the mask and a PNG of frame 0 with the mask drawn on it.

    Raises the engine's InputError (a one-line message for the user) when either file cannot be used.
    """
    from PIL import Image

    from segmentation.errors import InputError
    from segmentation.masks import read_first_mask
    from segmentation.render import overlay
    from segmentation.video import iter_frames, probe

    info = probe(video)
    labels = read_first_mask(mask, size=(info.width, info.height), binarize=binarize)
    objects = sorted(int(value) for value in np.unique(labels) if value != 0)
    if not objects:
        raise InputError("The mask has no object in it: paint each object with its own colour on black.")
    frames = iter_frames(video)
    try:
        first = next(iter(frames))
    finally:
        getattr(frames, "close", lambda: None)()
    png = io.BytesIO()
    Image.fromarray(overlay(first, labels)).save(png, format="PNG")
    facts = {
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "frame_count": info.frame_count,
        "objects": objects,
    }
    return facts, png.getvalue()


def user_message(error: Exception, names: dict) -> str:
    """The engine's one-line message with our storage paths replaced by names the user knows (their file
    names), so no server path leaks into the page and the message still says which file is wrong."""
    text = str(error)
    for path, name in sorted(names.items(), key=lambda item: -len(str(item[0]))):
        text = text.replace(str(path), name)
    for path, name in names.items():  # some messages give only the file's own name
        text = text.replace(Path(path).name, name)
    return text
