"""Look at a video and its masks before a run starts, so a wrong mask is caught early."""

from __future__ import annotations

import io
from pathlib import Path


def check_inputs(video: Path, mask: Path, binarize: bool = False) -> tuple[dict, bytes]:
    """Return the video's facts, the object ids in the masks, the frames that have a mask and where each object
    starts, and a PNG of frame 0 with its mask drawn on it. `mask`: frame 0's PNG or a folder of masks named by
    frame, as the engine takes them.

    Raises the engine's InputError (a one-line message for the user) when a file cannot be used.
    """
    from PIL import Image

    from segmentation.masks import read_masks
    from segmentation.render import overlay
    from segmentation.video import iter_frames, probe

    info = probe(video)
    masks = read_masks(mask, (info.width, info.height), info.frame_count, binarize=binarize)
    frames = iter_frames(video)
    try:
        first = next(iter(frames))
    finally:
        getattr(frames, "close", lambda: None)()
    png = io.BytesIO()
    Image.fromarray(overlay(first, masks.first)).save(png, format="PNG")
    facts = {
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "frame_count": info.frame_count,
        "objects": masks.object_ids,
        "mask_frames": masks.frames,
        "starts": masks.starts,  # object id -> the frame whose mask first holds it
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
