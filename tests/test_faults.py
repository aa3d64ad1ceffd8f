"""Faults during a run: a write fails, the GPU runs out of memory, a bug or Ctrl-C strikes mid-run.

Each must end in one line (CLI: `stcnn: error: ...`), leave no half-written OUT, and never touch earlier results.
Disk full is simulated in-process (ENOSPC from the mask writer) and for real in a subprocess under RLIMIT_FSIZE;
a read-only output parent is /sys (read-only even for root, which ignores chmod). GPU out-of-memory is injected
through `segmentation.pipeline.fault_hook`, as there is no GPU here.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bad_input_files import box_mask, cache_model, fail_on_call, leftovers, tree_bytes, write_png, write_video

import segmentation.pipeline as pipeline
from segmentation.cli import main
from segmentation.errors import OutputError, SegmentationError
from segmentation.inference import model_size
from segmentation.pipeline import segment

FAST = {"online_seconds": 0}


@pytest.fixture(autouse=True)
def _one_model_load(monkeypatch):
    cache_model(monkeypatch)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    return write_video(d / "video.mp4", n=4), write_png(d / "mask.png", box_mask())


@pytest.fixture
def earlier(tmp_path):
    """A finished result in the same parent folder: must come through every fault byte for byte. Its content
    does not matter to the engine (it is never read), so it is written directly rather than by a run."""
    out = tmp_path / "earlier"
    (out / "masks").mkdir(parents=True)
    (out / "summary.json").write_text('{"objects": [1]}')
    (out / "masks" / "00000.png").write_bytes(bytes(range(256)))
    (out / "overlay.mp4").write_bytes(b"\0" * 1000)
    return out, tree_bytes(out)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO])
def test_write_failure_is_one_line_and_keeps_earlier_results(monkeypatch, tmp_path, inputs, earlier, code):
    monkeypatch.setattr(
        pipeline, "write_mask", fail_on_call(3, OSError(code, os.strerror(code)), pipeline.write_mask)
    )
    with pytest.raises(OutputError) as info:
        segment(*inputs, tmp_path / "out", FAST)
    message = str(info.value)
    assert "\n" not in message and os.strerror(code) in message
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    assert tree_bytes(earlier[0]) == earlier[1]


def test_write_failure_during_overwrite_keeps_the_old_result(monkeypatch, tmp_path, inputs, earlier):
    monkeypatch.setattr(
        pipeline,
        "write_mask",
        fail_on_call(2, OSError(errno.ENOSPC, "No space left on device"), pipeline.write_mask),
    )
    with pytest.raises(OutputError, match="No space left"):
        segment(*inputs, earlier[0], {**FAST, "overwrite": True})
    assert tree_bytes(earlier[0]) == earlier[1] and leftovers(tmp_path) == []


def test_failed_swap_puts_the_old_result_back(monkeypatch, tmp_path, inputs, earlier):
    """The new OUT cannot be renamed into place (after the old one was moved aside): the old one returns."""
    rename = Path.rename

    def flaky(self, target):
        if ".partial-" in self.name:
            raise OSError(errno.EIO, "Input/output error")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", flaky)
    with pytest.raises(OutputError, match="Input/output error"):
        segment(*inputs, earlier[0], {**FAST, "overwrite": True})
    assert tree_bytes(earlier[0]) == earlier[1] and leftovers(tmp_path) == []


def test_read_only_output_parent(tmp_path, inputs, capsys):
    rc = main(["segment", *map(str, inputs), "-o", "/sys/stcnn-out", "--online-seconds", "0"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0
    assert err.startswith("stcnn: error: cannot create the output folder /sys/stcnn-out: ")


def test_file_size_limit_in_a_real_process(tmp_path, inputs, earlier):
    """RLIMIT_FSIZE as a stand-in for a full disk: writes past 4 KB fail with EFBIG (Python ignores SIGXFSZ)."""
    script = (
        "import resource, sys\n"
        "from segmentation.cli import main\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "segment",
            *map(str, inputs),
            "-o",
            str(tmp_path / "out"),
            "--online-seconds",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stcnn: error: cannot write the results to ")
    assert "File too large" in lines[0]
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    assert tree_bytes(earlier[0]) == earlier[1]


def oom_hook(times: int, stage: str = "propagation"):
    seen = []

    def hook(name):
        if name == stage and len(seen) < times:
            seen.append(name)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    return hook


def test_out_of_gpu_memory_retries_at_a_lower_size(monkeypatch, tmp_path, inputs):
    monkeypatch.setattr(pipeline, "fault_hook", oom_hook(1))
    summary = segment(*inputs, tmp_path / "out", {**FAST, "short_side": 512})
    size = list(model_size(summary["video"]["width"], summary["video"]["height"], 512))
    assert summary["retries"] == [
        {"device": "cpu", "short_side": 512, "internal_size": size, "error": "out of GPU memory"}
    ]
    assert summary["options"]["short_side"] == 512  # what was asked; the retry ran at 256
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["retries"] == summary["retries"]
    assert len(list((tmp_path / "out" / "masks").iterdir())) == 4 and leftovers(tmp_path) == []


def test_out_of_gpu_memory_is_reported_by_the_cli(monkeypatch, tmp_path, inputs, capsys):
    monkeypatch.setattr(pipeline, "fault_hook", oom_hook(1, "online training"))
    rc = main(["segment", *map(str, inputs), "-o", str(tmp_path / "out"), "--online-seconds", "0"])
    out = capsys.readouterr().out
    assert rc == 0 and "note: out of GPU memory on cpu at internal size" in out


def test_out_of_memory_every_time_fails_cleanly(monkeypatch, tmp_path, inputs, earlier):
    monkeypatch.setattr(pipeline, "fault_hook", oom_hook(99))
    with pytest.raises(SegmentationError, match="out of GPU memory") as info:
        segment(*inputs, tmp_path / "out", FAST)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    assert tree_bytes(earlier[0]) == earlier[1]


def test_fallback_plan_on_a_gpu():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert pipeline._fallbacks(cuda, 256) == [(cuda, 128), (cpu, 256)]
    assert pipeline._fallbacks(cuda, 100) == [(cpu, 100)]
    assert pipeline._fallbacks(cpu, 100) == []


def test_host_memory_error_is_one_line(monkeypatch, tmp_path, inputs):
    def hook(name):
        raise MemoryError

    monkeypatch.setattr(pipeline, "fault_hook", hook)
    with pytest.raises(SegmentationError, match="out of memory"):
        segment(*inputs, tmp_path / "out", FAST)
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "error, rc, message",
    [
        (
            RuntimeError("boom\nsecond line"),
            1,
            r"stcnn: error: internal error \(RuntimeError: boom\\nsecond line\)",
        ),
        (KeyboardInterrupt(), 130, "stcnn: interrupted"),
    ],
    ids=["bug", "ctrl-c"],
)
def test_bug_or_interrupt_mid_run(monkeypatch, tmp_path, inputs, earlier, capsys, error, rc, message):
    def hook(name):
        raise error

    monkeypatch.setattr(pipeline, "fault_hook", hook)
    assert main(["segment", *map(str, inputs), "-o", str(tmp_path / "out"), "--online-seconds", "0"]) == rc
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert re.match(message, err), err
    assert not (tmp_path / "out").exists() and leftovers(tmp_path) == []
    assert tree_bytes(earlier[0]) == earlier[1]
