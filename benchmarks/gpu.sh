#!/usr/bin/env bash
# The GPU path measured in one call on a lent machine (the `device` tool), in under 8 minutes:
#   run(command="bash benchmarks/gpu.sh", timeout_s=540)
# It installs the project as `make test` does (torch==2.13.0 from the registry, which carries CUDA there), checks
# that CUDA is seen, runs the tests, then prints propagation frames/s at 854x480 and 1920x1080 on the GPU beside
# the CPU, online-training seconds, and J&F on synthetic DAVIS-layout clips (the shared data is not on that
# machine) for both devices. Everything it prints also lands in $OUT/gpu.txt when $OUT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
log="${OUT:-/tmp}/gpu.txt"
exec > >(tee "$log") 2>&1
python3 -m venv /tmp/gpu-venv
/tmp/gpu-venv/bin/pip install -q -e ".[test]"
py=/tmp/gpu-venv/bin/python
$py -c "import torch; assert torch.cuda.is_available(), 'no CUDA: ' + torch.__version__; print(torch.cuda.get_device_name())"
timeout 120 $py -m pytest -q -x tests/test_faults.py tests/test_model.py tests/test_session.py || true
timeout 300 $py - <<'EOF'
import tempfile, time
from pathlib import Path

import pandas as pd

from segmentation.benchmark import run_benchmark
from segmentation.pipeline import segment
from segmentation.synthetic import make_clip
from segmentation.train import synthetic_sequences

root = Path(tempfile.mkdtemp())
rows = []
for width, height in ((854, 480), (1920, 1080)):
    clip = make_clip(root / f"speed{width}", n_frames=120, size=(width, height), n_objects=2, seed=5)
    for device in ("cuda", "cpu"):
        started = time.perf_counter()
        summary = segment(clip.video, clip.mask, root / f"out{width}{device}", {"device": device, "preset": "balanced"})
        rows.append({"size": f"{width}x{height}", "device": device, "prop_fps": summary["propagation_fps"],
                     "online_s": summary["timings_s"]["online_training"],
                     "online_it": summary["online_training"]["iterations"],
                     "total_s": round(time.perf_counter() - started, 1)})
print(pd.DataFrame(rows).to_string(index=False))
data = root / "davis"
synthetic_sequences(data, 3, (854, 480))  # DAVIS layout: <seq>/frames, <seq>/masks; 1-3 objects
for device in ("cuda", "cpu"):
    print(f"--- J&F on {device}")
    run_benchmark(data, options={"device": device}, baseline=False)
EOF
