"""Object masks as uint8 label images (0 = background, 1..255 = object ids), read from and written to PNG.

Palette PNGs use the DAVIS palette, so masks open with the right colours in DAVIS tools and image viewers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from segmentation.errors import InputError
from segmentation.paths import kind_of, user_path

VOID = 255  # DAVIS-2017 marks "don't care" pixels with index 255: not an object
# Each object is decoded separately for every frame (and trained on), so time and memory grow with the count;
# beyond this a run takes hours on a CPU. A palette can hold 254 ids, so the limit is checked on reading.
MAX_OBJECTS = 32


def _davis_palette() -> list[int]:
    # The PASCAL VOC / DAVIS colour map: the bits of the index are spread over the high bits of R, G and B.
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


PALETTE: list[int] = _davis_palette()
_PALETTE_RGB = np.array(PALETTE, np.uint8).reshape(256, 3)

_RESAVE = "re-save it as a binary 0/255 greyscale PNG or a palette PNG, or pass --binarize (binarize=True)"


def color_of(object_id: int) -> tuple[int, int, int]:
    """The DAVIS colour of an object id (0 is black)."""
    r, g, b = _PALETTE_RGB[int(object_id) % 256]
    return int(r), int(g), int(b)


def _png_bit_depth(path: Path) -> int:
    # PIL silently reduces 16-bit RGB to 8 bits, so read the depth from the IHDR chunk (byte 24) instead.
    with open(path, "rb") as f:
        header = f.read(26)
    return header[24] if len(header) >= 26 else 8


def _open_png(path) -> Image.Image:
    path = user_path(path, "mask")
    kind = kind_of(path)
    if kind == "missing":
        raise InputError(f"{path}: mask file not found")
    if kind == "folder":
        raise InputError(f"{path}: is a folder; give the first frame's mask as a PNG file")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, ValueError) as e:  # ValueError: damaged chunks in some Pillows
        raise InputError(f"{path.name}: not a readable image; give the mask as a PNG file") from e
    except Image.DecompressionBombError as e:
        raise InputError(f"{path.name}: image is too large to be a mask ({e})") from e
    if img.format != "PNG":
        # Check the real format: JPEG's lossy compression smears label values, whatever the extension says.
        raise InputError(f"{path.name}: is a {img.format} image, not a PNG; masks must be lossless PNG files")
    return img


def _flatten_alpha(img: Image.Image) -> np.ndarray:
    """Pixels as uint8 grey (H, W) or RGB (H, W, 3), transparent pixels turned black (background)."""
    if img.mode == "LA":
        arr = np.asarray(img).astype(np.uint16)
        return (arr[..., 0] * arr[..., 1] // 255).astype(np.uint8)
    if img.mode in ("RGBA", "PA"):
        arr = np.asarray(img.convert("RGBA")).astype(np.uint16)
        return (arr[..., :3] * arr[..., 3:] // 255).astype(np.uint8)
    if img.mode in ("L", "RGB"):
        return np.asarray(img)
    return np.asarray(img.convert("RGB" if img.mode not in ("1",) else "L"))


def _threshold(arr: np.ndarray) -> np.ndarray:
    # Any channel at 128 or above counts as object: works for white, coloured and anti-aliased masks alike.
    on = arr >= 128 if arr.ndim == 2 else (arr >= 128).any(axis=-1)
    return on.astype(np.uint8)


def _rgb_to_ids(rgb: np.ndarray) -> np.ndarray | None:
    """Map an RGB mask to ids if it holds only black/white or exact palette colours; None otherwise."""
    flat = rgb.reshape(-1, 3)
    colours, inverse = np.unique(flat, axis=0, return_inverse=True)
    if len(colours) > 256:
        return None
    grey = (colours[:, 0] == colours[:, 1]) & (colours[:, 1] == colours[:, 2])
    if grey.all() and set(colours[:, 0].tolist()) <= {0, 255}:
        return (rgb[..., 0] == 255).astype(np.uint8)
    # Palette colours: key each colour by its 24-bit value and look it up in the palette (index 0..254).
    keys = colours.astype(np.int64) @ np.array([65536, 256, 1])
    pal_keys = _PALETTE_RGB[:VOID].astype(np.int64) @ np.array([65536, 256, 1])
    lookup = {int(k): i for i, k in enumerate(pal_keys)}
    ids = [lookup.get(int(k)) for k in keys]
    if any(i is None for i in ids):
        return None
    return np.array(ids, np.uint8)[inverse.reshape(-1)].reshape(rgb.shape[:2])


def _describe_levels(values: np.ndarray) -> str:
    shown = ", ".join(str(v) for v in values[:6])
    return f"{len(values)} grey levels ({shown}{', ...' if len(values) > 6 else ''})"


def read_first_mask(path, size: tuple[int, int] | None = None, binarize: bool = False) -> np.ndarray:
    """Read the first frame's annotation as uint8 labels (0 = background, object ids as given).

    ``size`` is the video's (width, height). Accepted: binary greyscale (0/255 or 0/1 -> id 1) and palette PNGs
    (indices are ids, 255 = void -> background). With ``binarize`` any other mask is thresholded to one object.
    """
    path = user_path(path, "mask")
    img = _open_png(path)
    depth = _png_bit_depth(path)
    if depth == 16 or img.mode.startswith("I") or img.mode == "F":
        raise InputError(
            f"{path.name}: is a 16-bit PNG; save the mask as an 8-bit PNG (binary 0/255 or palette)"
        )

    if img.mode == "P":
        labels = np.array(img, dtype=np.uint8)
        labels[labels == VOID] = 0
    else:
        arr = _flatten_alpha(img)
        if binarize:
            labels = _threshold(arr)
        elif arr.ndim == 2:
            levels = np.unique(arr)
            if set(levels.tolist()) <= {0, 255} or set(levels.tolist()) <= {0, 1}:
                labels = (arr > 0).astype(np.uint8)
            else:
                raise InputError(
                    f"{path.name}: greyscale mask has {_describe_levels(levels)}, not just 0 and 255 "
                    f"(anti-aliased?); {_RESAVE}"
                )
        else:
            labels = _rgb_to_ids(arr)
            if labels is None:
                n = len(np.unique(arr.reshape(-1, 3), axis=0))
                raise InputError(
                    f"{path.name}: RGB mask with {n} colours that are not DAVIS palette colours; {_RESAVE}"
                )

    if size is not None:
        width, height = size
        if labels.shape != (height, width):
            raise InputError(
                f"{path.name}: mask is {labels.shape[1]}x{labels.shape[0]} but the video is {width}x{height}; "
                "the mask must have the video's size"
            )
    if not labels.any():
        raise InputError(f"{path.name}: mask has no object (every pixel is background); paint the object(s)")
    count = int(np.count_nonzero(np.bincount(labels.ravel(), minlength=256)[1:]))
    if count > MAX_OBJECTS:
        raise InputError(
            f"{path.name}: mask has {count} objects; at most {MAX_OBJECTS} can be tracked in one run"
        )
    return labels


def write_mask(path, labels: np.ndarray) -> None:
    """Save labels as a palette PNG with the DAVIS palette."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D, got shape {labels.shape}")
    if labels.dtype != np.uint8:
        if labels.size and (labels.min() < 0 or labels.max() > 255):
            raise ValueError("labels must be in 0..255 to fit an 8-bit palette PNG")
        labels = labels.astype(np.uint8)
    # frombytes keeps the values as palette indices (converting from "L" would requantise them).
    img = Image.frombytes("P", (labels.shape[1], labels.shape[0]), np.ascontiguousarray(labels).tobytes())
    img.putpalette(PALETTE)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")


def read_mask(path) -> np.ndarray:
    """Read a ground-truth or predicted mask leniently (for evaluation) as uint8 labels.

    Palette -> indices (255 void -> 0); greyscale -> >= 128 is object 1; RGB -> any channel >= 128 is object 1.
    """
    path = user_path(path, "mask")
    img = _open_png(path)
    if img.mode == "P":
        labels = np.array(img, dtype=np.uint8)
        labels[labels == VOID] = 0
        return labels
    if img.mode.startswith("I"):
        # 16-bit greyscale: compare on the same scale as 8 bits.
        arr = np.asarray(img).astype(np.int64)
        return (arr >= (128 << 8 if arr.max(initial=0) > 255 else 128)).astype(np.uint8)
    return _threshold(_flatten_alpha(img))
