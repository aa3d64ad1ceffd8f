"""Accuracy of the shipped model with its parts switched off, side by side: the model card's validation table.

Runs `stcnn benchmark` (segmentation.benchmark.run_benchmark) on the held-out DAVIS sequences once per
configuration and prints one table of mean J, F, J&F, propagation speed and online-training time.
Usage: python benchmarks/ablations.py [DATA] [--weights W] [--only NAME ...]
"""

from __future__ import annotations

import argparse

import pandas as pd

VALIDATION = ["car-turn", "dance-jump", "kite-walk", "motocross-bumps", "stroller"]  # kept out of training

# name: SegmentOptions fields. "ablate" feeds zeros for that decoder input, in online training too.
CONFIGS = {
    "default (online training, balanced preset; gate)": {},
    "online training, fast preset": {"preset": "fast"},
    "no online training": {"online_seconds": 0},
    "no gate (a single object may leave its dilated previous mask)": {"gate": False},
    "no gate, no online training": {"gate": False, "online_seconds": 0},
    "no temporal features": {"ablate": ("temporal",)},
    "no temporal features, no online training": {"ablate": ("temporal",), "online_seconds": 0},
    "no previous mask in the decoder, gate only (the original STCNN prior)": {"ablate": ("mask",)},
    "no previous mask in the decoder, gate only, no online training": {
        "ablate": ("mask",),
        "online_seconds": 0,
    },
}


def main() -> None:
    from segmentation.benchmark import run_benchmark
    from segmentation.options import SegmentOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", default="../shared/data/davis2016-train")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--only", nargs="*", help="substrings of the configuration names to run")
    args = parser.parse_args()
    rows = []
    baseline = True  # the optical-flow baseline is learning-free: once is enough
    for name, options in CONFIGS.items():
        if args.only and not any(s in name for s in args.only):
            continue
        print(f"== {name}", flush=True)
        table = run_benchmark(
            args.data, VALIDATION, SegmentOptions(weights=args.weights, **options), baseline=baseline
        )
        mean = table.iloc[-1]
        if baseline:
            rows.append({"configuration": "optical-flow baseline (Farneback, no learning)",
                         "J": mean["flow_J"], "F": mean["flow_F"], "JF": mean["flow_JF"]})  # fmt: skip
            baseline = False
        rows.append({"configuration": name, "J": mean["J"], "F": mean["F"], "JF": mean["JF"],
                     "prop_fps": mean["prop_fps"], "online_s": mean["online_s"]})  # fmt: skip
    summary = pd.DataFrame(rows)
    for column in ("J", "F", "JF"):
        summary[column] = 100 * summary[column]
    print()
    print(summary.round(1).to_string(index=False))


if __name__ == "__main__":
    main()
