"""The overlay's H.264 encoder settings side by side: milliseconds a frame, file size and quality.

Overlay frames (each object tinted and outlined, as a run draws them) of real footage (DAVIS sequences under DATA)
or of synthetic clips are encoded at 854x480 and 1920x1080 with x264 at crf 20, keyframes every 2 s and the
encoder's own threads (`add_h264_stream`, as `VideoWriter` sets it up), once per setting, the settings taking turns `--repeats` times
so all see the same machine. Quality is the luma PSNR of the decoded file against the frames given to it: at one
PSNR a smaller file is the better setting. Seconds swing with the machine: compare the ratios of one run.

Usage: python benchmarks/encode.py [DATA] [--sequences ...] [--frames 60] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd

from segmentation.masks import read_mask
from segmentation.render import overlay
from segmentation.synthetic import make_clip
from segmentation.video import X264_OPTIONS, add_h264_stream, iter_frames

SIZES = {"480p": (854, 480), "1080p": (1920, 1080)}
FPS = 24
SETTINGS = {
    "veryfast (until session 16)": {"crf": "20", "preset": "veryfast"},
    "superfast": {"crf": "20", "preset": "superfast"},
    "shipped": X264_OPTIONS,
}


def overlays(frames: list[np.ndarray], masks: list[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    """The overlay frames at `size`, as yuv420p planes (what the encoder is given)."""
    out = []
    for rgb, labels in zip(frames, masks):
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)
        labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
        out.append(cv2.cvtColor(overlay(rgb, labels), cv2.COLOR_RGB2YUV_I420))
    return out


def encode(planes: list[np.ndarray], size: tuple[int, int], options: dict, path: Path) -> float:
    """Seconds to encode `planes` into `path`, the stream set up as VideoWriter's."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = add_h264_stream(container, *size, Fraction(FPS), options)
        started = time.perf_counter()
        for index, plane in enumerate(planes):
            frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        return time.perf_counter() - started


def luma_psnr(path: Path, planes: list[np.ndarray], height: int) -> float:
    with av.open(str(path)) as container:
        decoded = [frame.to_ndarray(format="yuv420p")[:height] for frame in container.decode(video=0)]
    errors = [
        np.mean((a.astype(np.float32) - b[:height].astype(np.float32)) ** 2) for a, b in zip(decoded, planes)
    ]
    return float(10 * np.log10(255**2 / np.mean(errors)))


def sources(data: Path | None, names: list[str], frames: int, work: Path):
    """(name, RGB frames, label masks) per sequence: DAVIS folders (frames/*.jpg, masks/*.png) or synthetic."""
    if data is None:
        for seed in (3, 4):
            clip = make_clip(work / f"clip{seed}", frames, SIZES["480p"], seed=seed)
            masks = [read_mask(p) for p in sorted(clip.gt_dir.glob("*.png"))[:frames]]
            yield f"synthetic-{seed}", list(iter_frames(clip.video))[:frames], masks
        return
    for name in names:
        seq = data / name
        masks = [read_mask(p) for p in sorted((seq / "masks").glob("*.png"))[:frames]]
        yield name, list(iter_frames(seq / "frames"))[: len(masks)], masks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, help="DAVIS-style folder; default: synthetic clips")
    parser.add_argument("--sequences", nargs="*", default=["dance-jump", "kite-walk", "car-turn"])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, frames, masks in sources(args.data, args.sequences, args.frames, work):
            for size_name, size in SIZES.items():
                planes = overlays(frames, masks, size)
                for repeat in range(args.repeats):
                    for setting, options in SETTINGS.items():
                        path = work / "overlay.mp4"
                        seconds = encode(planes, size, options, path)
                        rows.append({
                            "size": size_name, "sequence": name, "setting": setting, "repeat": repeat,
                            "ms_per_frame": 1000 * seconds / len(planes), "kb": path.stat().st_size / 1024,
                            "luma_psnr": luma_psnr(path, planes, size[1]),
                        })  # fmt: skip
    table = pd.DataFrame(rows).groupby(["size", "setting"], sort=False).mean(numeric_only=True)
    table = table.drop(columns="repeat")
    for size_name in SIZES:
        part = table.loc[size_name]
        base = part.iloc[0]
        part = part.assign(time_ratio=part.ms_per_frame / base.ms_per_frame, size_ratio=part.kb / base.kb)
        print(f"\n{size_name} (mean over sequences; ratios to the first row)")
        print(part.round(3).to_string())


if __name__ == "__main__":
    main()
