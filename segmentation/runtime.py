"""Process-wide run-time choices: the allocator setting that makes CPU inference fast, the device, and where
bfloat16 is used."""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import torch

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def tune_allocator() -> bool:
    """Keeps large activation buffers in glibc's heap instead of returning them to the OS after every frame
    (the same as MALLOC_MMAP_MAX_=0 and a huge MALLOC_TRIM_THRESHOLD_; what it saves: the README's performance
    notes, from benchmarks/cpu_speed.py). Returns False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))  # int max


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from .errors import InputError

        raise InputError("--device cuda asked for, but no CUDA GPU is available (use --device auto or cpu)")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether the engine computes in bfloat16 where it measured the same masks (online training's decoder and
    OpenVINO's frozen part; the model card has the figures): on a CPU that does bf16 natively (AVX512-BF16 or
    AMX). Elsewhere, and with STCNN_FP32=1, everything is fp32."""
    if torch.device(device).type != "cpu" or os.environ.get("STCNN_FP32") == "1":
        return False
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
