"""Look at a video and its masks before a run starts, so a wrong mask is caught early."""

from __future__ import annotations

import io
import re
from pathlib import Path


def check_inputs(video: Path, mask: Path, binarize: bool = False, info=None) -> tuple[dict, bytes]:
    """Return the video's facts, the object ids in the masks, the frames that have a mask and where each object
    starts, and a PNG of frame 0 with its mask drawn on it. `mask`: frame 0's PNG or a folder of masks named by
    frame, as the engine takes them. `info`: the video's probe, if the caller has it already.

    Raises the engine's InputError (a one-line message for the user) when a file cannot be used.
    """
    from PIL import Image

    from segmentation.masks import read_masks
    from segmentation.render import overlay
    from segmentation.video import iter_frames, probe

    info = info or probe(video)
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


def check_boxes(video: Path, boxes: list, info=None, strokes=()) -> tuple[dict, bytes]:
    """check_inputs for a run started from boxes (segmentation.prompts.Box) and strokes, at frame 0 and later
    frames: the video's facts and a PNG of frame 0 with its boxes drawn in their objects' colours (the model makes
    the masks when the run starts)."""
    import cv2
    import numpy as np
    from PIL import Image

    from segmentation.annotations import Annotations
    from segmentation.masks import color_of
    from segmentation.video import iter_frames, probe

    info = info or probe(video)
    # As the engine will check them: inside their frames, within the video, something at frame 0.
    given = Annotations.of(None, list(boxes), (info.width, info.height), info.frame_count, strokes)
    frames = iter_frames(video)
    try:
        first = next(iter(frames)).copy()
    finally:
        getattr(frames, "close", lambda: None)()
    thickness = max(2, round(min(info.width, info.height) / 200))
    for box in given.boxes_at(0):
        cv2.rectangle(first, (box.x0, box.y0), (box.x1, box.y1), color_of(box.object_id), thickness)
    for stroke in given.strokes_at(0):  # negative strokes in white: they say where the object is not
        colour = color_of(stroke.object_id) if stroke.positive else (255, 255, 255)
        points = np.array(stroke.points, np.int32).reshape(-1, 1, 2)
        cv2.polylines(first, [points], False, colour, 2 * stroke.radius + 1)
    png = io.BytesIO()
    Image.fromarray(first).save(png, format="PNG")
    facts = {
        "width": info.width, "height": info.height, "fps": info.fps, "frame_count": info.frame_count,
        "objects": given.object_ids, "mask_frames": given.frames, "starts": given.starts,
    }  # fmt: skip
    return facts, png.getvalue()


# The engine's messages name its own controls (the CLI's flags); each surface of the dashboard names its own.
_CONTROLS = {
    "pass --binarize (binarize=True)": {"page": "tick “Soft or RGB mask”", "api": "send binarize=true"},
    "--device cuda asked for": {"page": "The CUDA GPU was asked for", "api": "device=cuda asked for"},
    "(use --device auto or cpu)": {"page": "(choose Automatic or CPU as the device)", "api": "(send device=auto or cpu)"},
    "online_seconds: online training seconds must be": {
        "page": "Time limit for tuning: seconds must be", "api": "online_seconds: online training seconds must be",
    },
}


def in_words_of(text: str, surface: str) -> str:
    """An engine message with its controls named as `surface` ("page" or "api") shows them."""
    for engine, words in _CONTROLS.items():
        text = text.replace(engine, words[surface])
    return text


def user_message(error: Exception, names: dict) -> str:
    """The engine's one-line message with our storage paths replaced by names the user knows (their file
    names), so no server path leaks into the page and the message still says which file is wrong.

    One pass over the text (longest path first), so a replacement is never replaced again. Some messages give
    only a file's own name: those are replaced as whole names (not inside pwned_gt_00000.png), and only for
    files, since a folder's name ("masks", "gt") is an ordinary word too."""
    text = str(error)
    found = {str(path): name for path, name in names.items()}
    bare = {Path(path).name: name for path, name in names.items() if Path(path).suffix}
    alternatives = [re.escape(path) for path in sorted(found, key=len, reverse=True)]
    alternatives += [
        rf"(?<![\w.-]){re.escape(name)}(?![\w-]|\.\w)" for name in sorted(bare, key=len, reverse=True)
    ]
    if not alternatives:
        return text
    return re.sub("|".join(alternatives), lambda match: found.get(match[0]) or bare[match[0]], text)
