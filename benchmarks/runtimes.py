"""Whether a runtime for the frozen part of the model (segmentation/frozen.py) may be adopted: the same sequences
through the product's `segment()` on each runtime, one after the other in this run, with J&F, propagation speed
as a ratio to the optical-flow baseline measured beside it, and the mean IoU between each runtime's masks and
PyTorch's (adopt when >= 0.99 and J&F within 0.2).

Online training runs in PyTorch on every runtime, for the preset's iterations (its time cap set out of reach),
so the only difference between the rows is what computed the frozen features. A runtime written `NAME:fp32`
runs with STCNN_FP32=1 (fp32 everywhere, online training included), so `openvino:fp32 openvino` compares bf16
with fp32 on a CPU that has bf16.

Usage: python benchmarks/runtimes.py DATA --sequences car-turn dance-jump [--runtimes torch openvino]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from segmentation.benchmark import run_benchmark
from segmentation.evaluate import evaluate_sequence


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--sequences", nargs="+", required=True)
    parser.add_argument("--runtimes", nargs="+", default=["torch", "openvino"])
    parser.add_argument("--preset", default="balanced")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="stcnn-runtimes-"))
    tables = {}
    for runtime in args.runtimes:
        name, _, precision = runtime.partition(":")
        os.environ["STCNN_FP32"] = "1" if precision == "fp32" else "0"
        options = {"runtime": name, "preset": args.preset, "online_seconds": 3600}
        tables[runtime] = run_benchmark(args.data, args.sequences, options, out=str(out / runtime)).set_index(
            "sequence"
        )
    reference = args.runtimes[0]
    rows = []
    for runtime, table in tables.items():
        row = {"runtime": runtime, "J&F": 100 * table.loc["MEAN", "JF"], "prop_fps": table.loc["MEAN", "prop_fps"],
               "fps_x_flow": table.loc["MEAN", "fps_x_flow"], "seconds": table["seconds"][:-1].sum()}  # fmt: skip
        # J with the reference runtime's masks as the ground truth: the IoU per object and frame, averaged.
        row[f"IoU vs {reference}"] = np.mean(
            [evaluate_sequence(out / reference / s / "masks", out / runtime / s / "masks")["J"].mean()
             for s in args.sequences]
        )  # fmt: skip
        rows.append(row)
    print(f"\n{len(args.sequences)} sequences, preset {args.preset} (iterations), one runtime after the other")
    print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
