"""`stcnn benchmark`: every sequence through the product's own `segment()`, scored with the DAVIS protocol, beside
a learning-free baseline (the previous mask warped by OpenCV's Farneback optical flow) in the same run."""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import psutil

from .data import sequence_dirs
from .evaluate import evaluate_masks, evaluate_sequence
from .masks import read_mask
from .pipeline import SegmentOptions, segment
from .video import iter_frames


class PeakMemory:
    """Samples this process's resident memory in a thread; `peak_mb` is the highest value seen."""

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._process = psutil.Process()

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def flow_baseline(frames_dir: Path, first_mask: np.ndarray) -> list[np.ndarray]:
    """Warps each mask onto the next frame along dense optical flow (next -> previous), object by object."""
    masks = [first_mask]
    previous_grey = None
    for frame in iter_frames(frames_dir):
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        if previous_grey is not None:
            flow = cv2.calcOpticalFlowFarneback(grey, previous_grey, None, 0.5, 3, 15, 3, 5, 1.2, 0)
            h, w = grey.shape
            grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            warped = cv2.remap(masks[-1], grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_NEAREST)
            masks.append(warped)
        previous_grey = grey
    return masks


def run_benchmark(
    data,
    sequences: list[str] | None = None,
    options: SegmentOptions | dict | None = None,
    *,
    out: str | None = None,
    baseline: bool = True,
) -> pd.DataFrame:
    """Segments each sequence with `options` (SegmentOptions or a dict of its fields) and prints the table."""
    dirs = sequence_dirs([data])
    if sequences:
        dirs = [d for d in dirs if d.name in set(sequences)]
    options = SegmentOptions.of(options).replace(overwrite=True)  # OUT holds one folder per sequence
    keep = Path(out) if out else Path(tempfile.mkdtemp(prefix="stcnn-benchmark-"))
    rows = []
    for seq in dirs:
        first_mask = sorted((seq / "masks").iterdir())[0]
        with PeakMemory() as memory:
            started = time.perf_counter()
            summary = segment(seq / "frames", first_mask, keep / seq.name, options)
            seconds = time.perf_counter() - started
        scores = evaluate_sequence(seq / "masks", keep / seq.name / "masks")
        t = summary["timings_s"]
        row = {
            "sequence": seq.name,
            "frames": summary["video"]["frame_count"],
            "J": scores["J"].mean(),
            "F": scores["F"].mean(),
            "seconds": seconds,
            "online_s": t["online_training"],
            "online_it": summary["online_training"]["iterations"],
            "prop_fps": summary["propagation_fps"],
            "decode_%": 100 * t["decode"] / t["total"],
            "encode_%": 100 * (t["render"] + t["write_masks"]) / t["total"],
            "peak_MB": memory.peak_mb,
        }
        if baseline:
            gt = [read_mask(p) for p in sorted((seq / "masks").iterdir())]
            started = time.perf_counter()
            flow_masks = flow_baseline(seq / "frames", gt[0])
            flow_scores = evaluate_masks(gt, flow_masks)
            row.update(flow_J=flow_scores["J"].mean(), flow_F=flow_scores["F"].mean(),
                       flow_s=time.perf_counter() - started)  # fmt: skip
        rows.append(row)
        print(f"{seq.name}: J&F {50 * (row['J'] + row['F']):.1f}", flush=True)
    table = pd.DataFrame(rows)
    table.insert(4, "JF", (table["J"] + table["F"]) / 2)
    if baseline:
        table["flow_JF"] = (table["flow_J"] + table["flow_F"]) / 2
        # Speed as a ratio to the baseline measured beside it: this machine's speed swings from one run to the next.
        table["fps_x_flow"] = table["prop_fps"] / (table["frames"] / table["flow_s"])
    mean = table.mean(numeric_only=True)
    mean["frames"] = table["frames"].sum()
    mean["prop_fps"] = table["frames"].sum() / (table["frames"] / table["prop_fps"]).sum()
    if baseline:
        mean["fps_x_flow"] = mean["prop_fps"] / (table["frames"].sum() / table["flow_s"].sum())
    table = pd.concat([table, pd.DataFrame([{"sequence": "MEAN", **mean}])], ignore_index=True)
    shown = table.copy()
    for column in [
        c for c in shown.columns if c in ("J", "F", "JF") or c in ("flow_J", "flow_F", "flow_JF")
    ]:
        shown[column] = 100 * shown[column]
    rounded = shown.round(1)
    if baseline:
        rounded["fps_x_flow"] = shown["fps_x_flow"].round(2)
    print(rounded.to_string(index=False))
    seconds = options.online_seconds
    online = "off" if seconds == 0 else f"{seconds:g} s" if seconds else f"preset {options.preset}"
    off = f"; switched off: {', '.join(options.ablate)}" if options.ablate else ""
    print(f"device: {summary['device']}; online training: {online}; gate: {options.gate}{off}; "
          f"internal size {summary['model']['internal_size']}")  # fmt: skip
    return table
