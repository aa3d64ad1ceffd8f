"""Zips of PNG masks (ground truth, masks for later frames) judged against their video before anything is written:
from the central directory (how many PNGs, how big each says it unpacks to), then each PNG's header (its size).
While unpacking, no member writes more than it declared. So a zip bomb costs neither disk nor time."""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path

from segmentation.errors import InputError

# PNGs allowed beyond the video's frame count: a container's frame count can be an estimate.
SLACK_FRAMES = 16
_CHUNK = 1024 * 1024
# Damaged, oddly compressed or encrypted members (an OSError is the disk's, not the zip's: not caught).
_UNPACK_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


def png_members(archive: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, str]]:
    """The PNG files in a zip wherever they sit in it, each with its own file name (folders dropped); hidden
    ones such as macOS's ._00000.png are left out."""
    found = []
    for member in archive.infolist():
        name = re.split(r"[\\/]", member.filename)[-1]
        if not member.is_dir() and name.lower().endswith(".png") and not name.startswith("."):
            found.append((member, name))
    return found


def max_png_bytes(width: int, height: int) -> int:
    """The most a PNG mask of that size can take unpacked: every pixel stored uncompressed as 16-bit RGBA
    (8 bytes), a filter byte per row, and 1 MB for other chunks (colour profile, text)."""
    return 8 * width * height + height + 1024 * 1024


def _mb(size: int) -> str:
    return f"{size / 1024**2:.1f} MB"


def open_pngs(
    path: Path, what: str, size: tuple[int, int], frame_count: int
) -> tuple[zipfile.ZipFile, list[tuple[zipfile.ZipInfo, str]]]:
    """The open zip and its PNG members, judged for a video of `size` (width, height) and `frame_count` frames:
    at most a mask per frame (and a few), none declaring more than such a mask can take, each a PNG of the
    video's size by its header. Raises InputError naming `what` (the user's name for the zip)."""
    message = f"{what} must be a .zip of PNG masks (00000.png, 00001.png, ...)."
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise InputError(message) from None
    try:
        members = png_members(archive)
        if not members:
            raise InputError(message + " This one has no PNG in it.")
        if len(members) > frame_count + SLACK_FRAMES:
            raise InputError(
                f"{what} holds {len(members)} PNG files, but the video has {frame_count} frames: give at most "
                "one mask per frame."
            )
        width, height = size
        limit = max_png_bytes(width, height)
        for member, name in members:
            if member.file_size > limit:
                raise InputError(
                    f"{what}: {name} unpacks to {_mb(member.file_size)}, more than a {width}x{height} PNG mask "
                    f"can take ({_mb(limit)})."
                )
        for member, name in members:
            _check_header(archive, member, name, what, size)
    except BaseException:
        archive.close()
        raise
    return archive, members


def _check_header(archive: zipfile.ZipFile, member: zipfile.ZipInfo, name: str, what: str, size) -> None:
    from segmentation.masks import png_header

    try:
        with archive.open(member) as stream:
            header = png_header(stream.read(25))
    except _UNPACK_ERRORS as exc:
        raise InputError(f"{what}: {name} could not be unpacked ({exc}).") from None
    if header is None:
        raise InputError(f"{what}: {name} is not a PNG image.")
    if header[:2] != tuple(size):
        raise InputError(
            f"{what}: {name} is {header[0]}x{header[1]} but the video is {size[0]}x{size[1]}; masks must have "
            "the video's size."
        )


def unpack(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, *, name: str, what: str) -> None:
    """Copy one member to `target`, never writing more than its declared size: a member holding more than its
    header says is refused when the copy reaches that size (the caller removes what was written)."""
    left = member.file_size
    try:
        with archive.open(member) as source, target.open("wb") as out:
            while chunk := source.read(min(_CHUNK, left + 1)):
                if len(chunk) > left:
                    raise InputError(f"{what}: {name} holds more than its header says; re-create the zip.")
                out.write(chunk)
                left -= len(chunk)
    except _UNPACK_ERRORS as exc:
        raise InputError(f"{what}: {name} could not be unpacked ({exc}).") from None
