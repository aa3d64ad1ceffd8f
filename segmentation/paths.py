"""User-given paths: the checks every input and output path goes through before anything is opened.

`Path.exists()` raises (instead of answering False) for a name with a NUL byte or one longer than the file
system allows, and those exceptions would reach the user as tracebacks; here they become one-line InputErrors.
"""

from __future__ import annotations

import os
from pathlib import Path

from segmentation.errors import InputError

NAME_MAX = 255  # bytes in one path component on Linux, macOS and Windows file systems


def user_path(source, what: str) -> Path:
    """`source` as a Path, or an InputError saying why it can never name a file. `what`: "video", "mask", ..."""
    if not isinstance(source, str | os.PathLike):
        raise InputError(f"{what} path must be a file name, got {type(source).__name__}")
    try:
        text = os.fsdecode(source)
    except (TypeError, UnicodeDecodeError) as e:
        raise InputError(f"{what} path is not a valid file name ({e})") from e
    if not text:
        raise InputError(f"{what} path is empty")
    if "\0" in text:
        raise InputError(f"{what} path contains a NUL character, which no file name can hold")
    path = Path(text)
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise InputError(
                f"{what} file name is too long ({len(os.fsencode(part))} bytes; at most {NAME_MAX}): {part[:40]}..."
            )
    return path


def kind_of(path: Path) -> str:
    """ "file", "folder" or "missing"; an OS refusal (path too long, no permission) is an InputError."""
    try:
        if path.is_dir():
            return "folder"
        return "file" if path.exists() else "missing"
    except OSError as e:
        raise InputError(f"{path}: cannot be used ({e.strerror or e})") from e
