"""Object masks as uint8 label images (0 = background, 1..255 = object ids), read from and written to PNG.

Palette PNGs use the DAVIS palette, so masks open with the right colours in DAVIS tools and image viewers.
The masks a run starts from are frame 0's PNG, or a folder of PNGs named by frame (DAVIS-2017 / Cutie style) for
objects that appear later: `read_masks` reads and checks either.
"""

from __future__ import annotations

import re
import struct
import warnings
import zlib
from dataclasses import dataclass, field
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


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_header(head: bytes) -> tuple[int, int, int] | None:
    """(width, height, bit depth) from a PNG's first 25 bytes (the signature, then the IHDR chunk), or None if
    they are not a PNG's: an image's size is known before any of it is decoded."""
    if len(head) < 25 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return width, height, head[24]


def _png_bit_depth(path: Path) -> int:
    # PIL silently reduces 16-bit RGB to 8 bits, so read the depth from the IHDR chunk instead.
    with open(path, "rb") as f:
        header = png_header(f.read(25))
    return header[2] if header else 8


def _open_png(path, size: tuple[int, int] | None = None) -> Image.Image:
    """The decoded PNG. With `size` (the video's), one of another size is refused from its header, before a
    pixel is decoded: a 12000x12000 "mask" costs nothing."""
    path = user_path(path, "mask")
    kind = kind_of(path)
    if kind == "missing":
        raise InputError(f"{path}: mask file not found")
    if kind == "folder":
        raise InputError(f"{path}: is a folder; give the first frame's mask as a PNG file")
    unreadable = f"{path.name}: not a readable image; give the mask as a PNG file"
    try:
        with open(path, "rb") as f:
            header = png_header(f.read(25))
    except OSError as e:
        raise InputError(unreadable) from e
    if header is not None and size is not None and header[:2] != tuple(size):
        raise InputError(
            f"{path.name}: mask is {header[0]}x{header[1]} but the video is {size[0]}x{size[1]}; "
            "the mask must have the video's size"
        )
    try:
        with warnings.catch_warnings():
            if header is None or size is not None:
                # Not a PNG (only its format is read, to say so) or one of the video's size: not a bomb.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)  # lazy: reads the header, decodes nothing
        if img.format != "PNG":
            # Check the real format: JPEG's lossy compression smears label values, whatever the extension says.
            raise InputError(
                f"{path.name}: is a {img.format} image, not a PNG; masks must be lossless PNG files"
            )
        img.load()
    except (UnidentifiedImageError, OSError, ValueError) as e:  # ValueError: damaged chunks in some Pillows
        raise InputError(unreadable) from e
    except Image.DecompressionBombError as e:
        raise InputError(f"{path.name}: image is too large to be a mask ({e})") from e
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


def _read_labels(path, size: tuple[int, int] | None, binarize: bool) -> np.ndarray:
    """One annotation PNG as uint8 labels, checked for format and size; it may be empty."""
    path = user_path(path, "mask")
    img = _open_png(path, size)
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

    return labels


def read_first_mask(path, size: tuple[int, int] | None = None, binarize: bool = False) -> np.ndarray:
    """Read the first frame's annotation as uint8 labels (0 = background, object ids as given).

    ``size`` is the video's (width, height). Accepted: binary greyscale (0/255 or 0/1 -> id 1) and palette PNGs
    (indices are ids, 255 = void -> background). With ``binarize`` any other mask is thresholded to one object.
    """
    path = user_path(path, "mask")
    labels = _read_labels(path, size, binarize)
    if not labels.any():
        raise InputError(f"{path.name}: mask has no object (every pixel is background); paint the object(s)")
    count = int(np.count_nonzero(np.bincount(labels.ravel(), minlength=256)[1:]))
    if count > MAX_OBJECTS:
        raise InputError(
            f"{path.name}: mask has {count} objects; at most {MAX_OBJECTS} can be tracked in one run"
        )
    return labels


_FRAME_NUMBER = re.compile(r"[0-9]+")
# Images a user may take for masks by mistake: refused in a masks folder (lossy, or not what we read); other
# files there (notes, Thumbs.db) are left alone.
_OTHER_IMAGES = {".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def frame_number(stem: str) -> int | None:
    """The 0-based frame a mask's file name gives ("00005" -> 5), or None if the name is not a frame number."""
    return int(stem) if _FRAME_NUMBER.fullmatch(stem) else None


def ids_in(labels: np.ndarray) -> list[int]:
    """The object ids in a label image, ascending (0, the background, left out)."""
    return [int(i) for i in np.unique(labels) if i]


@dataclass
class MaskSet:
    """The masks a run starts from: frame 0's labels, and the files of later frames' masks (checked already;
    each is read again when its frame comes, so memory does not grow with the number of masks)."""

    first: np.ndarray
    size: tuple[int, int] | None = None
    binarize: bool = False
    later: dict[int, Path] = field(default_factory=dict)  # frame index -> mask file
    starts: dict[int, int] = field(default_factory=dict)  # object id -> the first frame whose mask holds it
    ids: dict[int, list[int]] = field(default_factory=dict)  # frame index -> the object ids its mask holds

    @property
    def frames(self) -> list[int]:
        return [*([0] if self.first is not None else []), *sorted(self.later)]

    @property
    def object_ids(self) -> list[int]:
        return sorted(self.starts)

    @property
    def first_ids(self) -> list[int]:
        return [i for i in self.object_ids if self.starts[i] == 0]

    def at(self, frame: int) -> np.ndarray | None:
        """The labels given for this frame, or None."""
        if frame == 0:
            return self.first
        path = self.later.get(frame)
        return None if path is None else _read_labels(path, self.size, self.binarize)


def _mask_files(folder: Path) -> list[Path]:
    try:
        entries = sorted(p for p in folder.iterdir() if not p.name.startswith(".") and not p.is_dir())
    except OSError as e:
        raise InputError(f"{folder}: cannot be read ({e.strerror or e})") from e
    for path in entries:
        if path.suffix.lower() in _OTHER_IMAGES:
            raise InputError(
                f"{path.name}: is not a PNG; masks must be lossless PNG files named by frame (00000.png, ...)"
            )
    files = [p for p in entries if p.suffix.lower() == ".png"]
    if not files:
        raise InputError(
            f"{folder}: is a folder with no PNG masks in it; give frame 0's mask as a PNG file, or a folder "
            "of masks named by frame (00000.png, 00005.png, ...)"
        )
    return files


def _frames_of(
    folder: Path, files: list[Path], frame_count: int | None, frame_names, require_first: bool = True
) -> dict[int, Path]:
    """Frame index -> mask file. Masks are named by 0-based frame number; for a frames folder, by the frames'
    own names instead when every mask is named like a frame."""
    stems = {name: index for index, name in enumerate(frame_names)}
    by_stem = bool(stems) and all(p.stem in stems for p in files)
    also = f", or like its frame ({frame_names[0]}.png for frame 0)" if stems else ""
    frames: dict[int, Path] = {}
    for path in files:
        index = stems[path.stem] if by_stem else frame_number(path.stem)
        if index is None:
            raise InputError(
                f"{path.name}: mask is not named by a frame; name each mask by its 0-based frame number "
                f"(00000.png, 00005.png, ...){also}"
            )
        if index in frames:
            raise InputError(
                f"{frames[index].name} and {path.name}: both name frame {index}; keep one of them"
            )
        if frame_count is not None and index >= frame_count:
            raise InputError(
                f"{path.name}: names frame {index}, but the video has {frame_count} frame(s) "
                f"(0 to {frame_count - 1})"
            )
        frames[index] = path
    if 0 not in frames and require_first:
        first = f"{frame_names[0]}.png" if by_stem else "00000.png"
        raise InputError(
            f"{folder}: no mask for frame 0 ({first}); frame 0's mask gives the objects to track"
        )
    return frames


def read_masks(
    source,
    size: tuple[int, int] | None = None,
    frame_count: int | None = None,
    frame_names=(),
    binarize: bool = False,
    require_first: bool = True,
) -> MaskSet:
    """Read and check every mask a run starts from, before any work: one PNG (frame 0's mask, as
    `read_first_mask`), or a folder of PNGs named by 0-based frame number (00000.png, 00005.png, ...) or, for a
    frames folder (`frame_names`: its frames' stems), by the frames' own names. Frame 0 must have a mask; a later
    one starts the new object ids drawn in it there and redraws the known ones where it paints them.
    ``frame_count`` refuses masks for frames beyond the video's end. Without `require_first` (frame 0's objects
    come from prompts instead) a folder may start at a later frame."""
    path = user_path(source, "mask")
    if kind_of(path) != "folder":
        first = read_first_mask(path, size, binarize)
        return MaskSet(first, size, binarize, starts=dict.fromkeys(ids_in(first), 0), ids={0: ids_in(first)})
    frames = _frames_of(path, _mask_files(path), frame_count, list(frame_names), require_first)
    first = read_first_mask(frames.pop(0), size, binarize) if 0 in frames else None
    starts = dict.fromkeys(ids_in(first), 0) if first is not None else {}
    ids = {0: ids_in(first)} if first is not None else {}
    for index in sorted(frames):
        labels = _read_labels(frames[index], size, binarize)
        if not labels.any():
            raise InputError(
                f"{frames[index].name}: mask has no object (every pixel is background); a later frame's mask "
                "adds or redraws the objects painted in it: paint them, or leave the file out"
            )
        ids[index] = ids_in(labels)
        for object_id in ids[index]:
            starts.setdefault(object_id, index)
        if len(starts) > MAX_OBJECTS:
            raise InputError(
                f"{frames[index].name}: brings the objects to {len(starts)}; at most {MAX_OBJECTS} can be "
                "tracked in one run"
            )
    return MaskSet(first, size, binarize, frames, starts, ids)


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
    # The palette only as long as the labels need: with up to 15 objects PIL then packs 1, 2 or 4 bits a pixel,
    # which zlib compresses in less time (into smaller files) than 8; readers get the same indices and colours.
    img.putpalette(PALETTE[: 3 * max(2, int(labels.max(initial=0)) + 1)])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Masks are long runs of one value: zlib's run-length strategy packs them into files less than half the size
    # of the default strategy's at level 1, and no slower (it never searches for matches, whatever the level).
    img.save(path, format="PNG", compress_level=9, compress_type=zlib.Z_RLE)


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
