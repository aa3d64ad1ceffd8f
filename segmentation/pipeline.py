"""`segment()`: one video and its first-frame mask in, masks, overlay video, trajectory and summary out.

Frames are streamed: each is decoded, segmented, written as a mask, drawn into the overlay and encoded before the
next is read, so memory stays flat however long the video is. Everything is written into a temporary folder
beside OUT and renamed at the end, so OUT appears whole or not at all.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from . import __version__
from .errors import Cancelled, InputError
from .inference import Segmenter, model_size
from .masks import read_first_mask, write_mask
from .online import budget_for, fine_tune
from .render import overlay
from .train import pick_device
from .trajectory import frame_rows, object_stats, read_csv, write_csv
from .video import VideoWriter, iter_frames, probe
from .weights import load_model, weights_path

STAGES = ("decode", "online training", "propagation", "encode", "done")


@dataclass
class SegmentOptions:
    device: str = "auto"  # auto | cpu | cuda
    preset: str = "balanced"  # fast | balanced | quality: the online-training budget
    online_seconds: float | None = None  # overrides the preset's time budget; 0 turns online training off
    fps: float | None = None  # for a folder of frames (default 24)
    binarize: bool = False  # accept RGB / anti-aliased masks by thresholding them
    overwrite: bool = False
    short_side: int = 256  # the model's internal resolution; masks are upsampled to the video's size
    gate: bool = False  # keep predictions near the previous mask (the original STCNN prior)
    weights: str | None = None  # default: weights/stcnn.pt or STCNN_WEIGHTS


@dataclass
class Progress:
    stage: str
    done: int
    total: int
    eta_s: float | None = None
    preview: np.ndarray | None = field(default=None, repr=False)  # latest overlay frame, about once a second


def _check_options(options: SegmentOptions) -> None:
    from .online import PRESETS

    if options.preset not in PRESETS:
        raise InputError(f"unknown preset {options.preset!r}: use one of {', '.join(PRESETS)}")
    if options.device not in ("auto", "cpu", "cuda"):
        raise InputError(f"unknown device {options.device!r}: use auto, cpu or cuda")
    if options.online_seconds is not None and not 0 <= options.online_seconds <= 3600:
        raise InputError("online training seconds must be between 0 and 3600")
    if not 64 <= options.short_side <= 1080:
        raise InputError("internal resolution (short side) must be between 64 and 1080 pixels")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def segment(
    video: str | os.PathLike,
    first_mask: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: SegmentOptions | None = None,
    progress: Callable[[Progress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> dict:
    """Segments every frame of `video` from the objects in `first_mask`; returns the summary (also in
    OUT/summary.json). Raises InputError, WeightsError or Cancelled with a one-line message."""
    options = options or SegmentOptions()
    _check_options(options)
    out_dir = Path(out_dir)
    if out_dir.exists() and not options.overwrite:
        raise InputError(f"output folder already exists: {out_dir} (use --overwrite to replace it)")
    report = progress or (lambda p: None)
    timings = {"decode": 0.0, "online_training": 0.0, "propagation": 0.0, "write_masks": 0.0, "render": 0.0}
    started = time.perf_counter()

    report(Progress("decode", 0, 1))
    info = probe(video, fps=options.fps)
    labels0 = read_first_mask(first_mask, size=(info.width, info.height), binarize=options.binarize)
    object_ids = [int(i) for i in np.unique(labels0) if i]
    device = pick_device(options.device)
    model, weights_meta = load_model(options.weights, device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    size = model_size(info.width, info.height, options.short_side)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
    (tmp / "masks").mkdir(parents=True)
    try:
        frames = iter_frames(video, fps=options.fps)
        t = time.perf_counter()
        first = next(frames, None)
        timings["decode"] += time.perf_counter() - t
        if first is None:
            raise InputError(f"no frames could be decoded from {video}")

        # Online training on frame 0, at the model's size.
        budget = budget_for(options.preset, device, options.online_seconds)
        t = time.perf_counter()
        small_frame = cv2.resize(first, size, interpolation=cv2.INTER_AREA)
        small_labels = cv2.resize(labels0, size, interpolation=cv2.INTER_NEAREST)

        def online_progress(done: int, total: int) -> None:
            elapsed = time.perf_counter() - t
            report(Progress("online training", done, total, max(0.0, budget.seconds - elapsed)))
            if cancel and cancel():
                raise Cancelled("run cancelled")

        report(Progress("online training", 0, budget.iterations, budget.seconds))
        online = fine_tune(model, small_frame, small_labels, object_ids, device, budget, online_progress)
        timings["online_training"] = time.perf_counter() - t

        segmenter = Segmenter(model, device, size, gate=options.gate)
        total = max(info.frame_count, 1)
        rows: list[dict] = []
        names = info.frame_names
        count = 0
        last_preview = 0.0
        propagation_started = time.perf_counter()
        with VideoWriter(tmp / "overlay.mp4", info.width, info.height, info.fps) as writer:
            frame = first
            while frame is not None:
                if cancel and cancel():
                    raise Cancelled("run cancelled")
                t = time.perf_counter()
                labels = segmenter.step(frame, labels0 if count == 0 else None)
                timings["propagation"] += time.perf_counter() - t

                t = time.perf_counter()
                name = names[count] if info.is_folder and count < len(names) else f"{count:05d}"
                write_mask(tmp / "masks" / f"{name}.png", labels)
                timings["write_masks"] += time.perf_counter() - t

                t = time.perf_counter()
                drawn = overlay(frame, labels)
                writer.write(drawn)
                rows.extend(frame_rows(count, count / info.fps, labels, object_ids))
                timings["render"] += time.perf_counter() - t

                count += 1
                total = max(total, count)
                now = time.perf_counter()
                rate = count / max(now - propagation_started, 1e-6)
                preview = drawn if now - last_preview > 1.0 or count == 1 else None
                if preview is not None:
                    last_preview = now
                report(Progress("propagation", count, total, (total - count) / rate, preview))

                t = time.perf_counter()
                frame = next(frames, None)
                timings["decode"] += time.perf_counter() - t
            report(Progress("encode", count, count))
            t = time.perf_counter()
        timings["render"] += time.perf_counter() - t  # closing the writer flushes the encoder

        write_csv(rows, tmp / "trajectory.csv")
        timings["total"] = time.perf_counter() - started
        summary = {
            "engine": f"stcnn {__version__}",
            "video": {
                "source": Path(video).name,
                "width": info.width,
                "height": info.height,
                "fps": info.fps,
                "frame_count": count,
                "codec": info.codec,
                "rotation": info.rotation,
            },
            "objects": object_ids,
            "model": {
                "name": "STCNN (EfficientNet-Lite0)",
                "weights": str(Path(options.weights) if options.weights else weights_path()),
                "weights_meta": {
                    k: weights_meta.get(k) for k in ("version", "trained", "stage", "iteration")
                },
                "internal_size": list(size),
            },
            "device": _device_name(device),
            "options": asdict(options),
            "online_training": online,
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
            "propagation_fps": round(count / max(timings["propagation"], 1e-6), 2),
            "object_stats": {
                str(k): v for k, v in object_stats(read_csv(tmp / "trajectory.csv"), info.fps).items()
            },
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
        _publish(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report(Progress("done", count, count, 0.0))
    return summary


def _publish(tmp: Path, out_dir: Path) -> None:
    """Puts the finished folder in place; an old OUT (with --overwrite) is removed only after the new one is in."""
    if out_dir.exists():
        old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
        out_dir.rename(old)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out_dir)
