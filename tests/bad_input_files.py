"""Tiny good and bad input files for tests/test_bad_inputs.py and tests/test_faults.py, and the checks they share.

Everything is a few kilobytes (64x48 pixels, a handful of frames) so hundreds of cases run in about a minute.
"""

from __future__ import annotations

import copy
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

import segmentation.weights as weights
from segmentation.masks import write_mask
from segmentation.weights import load_model

W, H = 64, 48


def frame(h=H, w=W, shift=0, seed=0):
    """A textured frame (noise plus a gradient) with a bright box, so encoders spend real bytes on it."""
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
    out[..., 0] += (np.arange(w) * 100 // max(w - 1, 1)).astype(np.uint8)[None, :]
    out[h // 4 : h // 2, w // 4 + shift : w // 2 + shift] = 230
    return out


def box_mask(w=W, h=H) -> np.ndarray:
    """Binary 0/255 mask of the box `frame` draws."""
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4 : h // 2, w // 4 : w // 2] = 255
    return mask


def write_video(
    path, n=4, w=W, h=H, codec="libx264", pix_fmt="yuv420p", rotation=0, pts=None, faststart=True, fmt=None
) -> Path:
    """An mp4 (or other container) of `n` frames; `rotation`: display matrix degrees counter-clockwise;
    `pts`: explicit timestamps in milliseconds (variable frame rate)."""
    path = Path(path)
    options = {"movflags": "+faststart"} if faststart and path.suffix in (".mp4", ".mov") else {}
    with av.open(str(path), "w", format=fmt, options=options) as container:
        stream = container.add_stream(codec, rate=24)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        if pts is not None:  # millisecond timestamps for the encoder and the muxer alike
            stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(n):
            f = av.VideoFrame.from_ndarray(frame(h, w, shift=i, seed=i), format="rgb24")
            if pts is not None:
                f.pts, f.time_base = pts[i], Fraction(1, 1000)
            for packet in stream.encode(f):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_no_frames(path, fmt="matroska") -> Path:
    """A container with a video track and not one frame (mp4 drops an empty track; Matroska keeps it)."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        container.start_encoding()
    return Path(path)


def write_audio_mp4(path) -> Path:
    """An m4a-style mp4 with one AAC track and no video."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        stream.layout = "mono"
        samples = np.zeros((1, 1024), np.float32)
        for i in range(4):
            f = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            f.sample_rate, f.pts = 8000, i * 1024
            for packet in stream.encode(f):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return Path(path)


def write_wav(path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 800)
    return Path(path)


def write_png(path, array, mode=None, **save) -> Path:
    img = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    img.save(path, format=save.pop("format", "PNG"), **save)
    return Path(path)


def write_palette(path, labels) -> Path:
    write_mask(path, labels)
    return Path(path)


def leftovers(folder: Path) -> list[str]:
    """Hidden half-written folders a run may leave beside OUT."""
    return sorted(p.name for p in folder.iterdir() if ".partial-" in p.name or ".old-" in p.name)


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


_MODELS: dict = {}


def cache_model(monkeypatch) -> None:
    """Loads the weights once per test session and hands each run its own copy: the same model and checks,
    a second less per run (online training changes the copy, never the cached one)."""

    def cached(path=None, device="cpu"):
        key = (str(path), str(device))
        if key not in _MODELS:
            _MODELS[key] = load_model(path, device)
        model, meta = _MODELS[key]
        return copy.deepcopy(model), dict(meta)

    monkeypatch.setattr(weights, "load_model", cached)


def fail_on_call(n, error, original):
    """Wraps `original` so that its n-th call raises `error` (a failing write, say) and the others pass through."""
    calls = []

    def hook(*args, **kwargs):
        calls.append(args)
        if len(calls) == n:
            raise error
        return original(*args, **kwargs)

    return hook


def png_of_size(width: int, height: int) -> bytes:
    """A valid, all-black greyscale PNG of any size, made without holding its pixels: 12000x12000 is a few
    hundred kilobytes, and 144 MB once decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row, rows = zlib.compressobj(9), bytes(width + 1), []  # each row: filter byte 0, then zeros
    batch = max(1, (1 << 20) // (width + 1))
    for start in range(0, height, batch):
        rows.append(packer.compress(row * min(batch, height - start)))
    rows.append(packer.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(rows)) + chunk(b"IEND", b"")


def zip_of(members: dict[str, bytes]) -> bytes:
    """A deflated zip of these members, in memory."""
    import io
    import zipfile

    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return packed.getvalue()
