"""The frozen per-frame work on a deployment runtime: the backbone and the temporal branch, which online training
never changes, converted once per model and internal size and run by OpenVINO (in bf16 on CPUs that compute it
natively, fp32 elsewhere: runtime.native_bf16), while the decoder (which online training tunes per video) stays in
PyTorch.

    encode = encoder_for(model, device, size, "auto")
    features, temporal = encode(frame, previous)      # the same tensors as model.encode's first two

`auto` takes OpenVINO on the CPU where it is installed and PyTorch everywhere else (the GPU keeps PyTorch). A
runtime that cannot be imported, or a model it cannot convert or compile, falls back to PyTorch with a warning;
the runtime in use is `encode.runtime`. The converted graph is cached on disk (STCNN_CACHE_DIR, by default
~/.cache/stcnn), named by a hash of the frozen weights, so a size is converted once per machine, not per run.
(ONNX Runtime was measured too, and was slower here than OpenVINO: the README's performance notes.)
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import warnings
import weakref
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .backbone import FEATURE_CHANNELS
from .model import DELTA, STCNN
from .options import RUNTIMES
from .runtime import native_bf16

FORMAT = 1  # of the cached graphs: bump when what is exported changes
log = logging.getLogger(__name__)

# One encoder per shared backbone, size and runtime: sessions over one loaded model share them.
_encoders: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class Frozen(nn.Module):
    """What is exported: frame and previous frames in, backbone features (strides 4..32) and temporal features
    (strides 16, 8, 4) out. The temporal branch's predicted frame is left out: inference never reads it."""

    def __init__(self, model: STCNN):
        super().__init__()
        self.backbone, self.temporal = model.backbone, model.temporal

    def forward(self, frame: torch.Tensor, previous: torch.Tensor):
        _, temporal = self.temporal(previous)
        return (*self.backbone(frame), *temporal)


class TorchEncoder:
    runtime, precision = "torch", "fp32"

    def __init__(self, model: STCNN):
        self.model = model

    def __call__(self, frame: torch.Tensor, previous: torch.Tensor):
        features, temporal, _ = self.model.encode(frame, previous)
        return features, temporal


class OpenVinoEncoder:
    """The exported graph compiled by OpenVINO; outputs come back as torch tensors."""

    runtime = "openvino"

    def __init__(self, graph: Path, precision: str):
        import openvino

        self.precision = precision
        config = {
            "INFERENCE_NUM_THREADS": torch.get_num_threads(),  # the same share of the CPU as PyTorch's
            "PERFORMANCE_HINT": "LATENCY",
            # Said either way: OpenVINO's own choice would be bf16 on any CPU that has it, STCNN_FP32 or not.
            "INFERENCE_PRECISION_HINT": {"bf16": "bf16", "fp32": "f32"}[precision],
            "CACHE_DIR": str(graph.parent),  # the compiled graph too: the next process loads it instead
        }
        self.compiled = openvino.Core().compile_model(str(graph), "CPU", config)
        self.requests = threading.local()  # a request is not thread-safe: one per thread (runs side by side)

    def __call__(self, frame: torch.Tensor, previous: torch.Tensor):
        request = getattr(self.requests, "request", None) or self.compiled.create_infer_request()
        self.requests.request = request
        result = request.infer([_array(frame), _array(previous)])
        # Copies: the request reuses its buffers for the next frame.
        outputs = [torch.from_numpy(np.array(result[o])) for o in self.compiled.outputs]
        n = len(FEATURE_CHANNELS)
        return outputs[:n], outputs[n:]


def _array(x: torch.Tensor) -> np.ndarray:
    return x.detach().contiguous().numpy()  # channels_last tensors come back NCHW-contiguous for the graph


def encoder_for(model: STCNN, device: torch.device, size: tuple[int, int], runtime: str = "auto"):
    """The frozen per-frame work of `model` at `size` (w, h) on `runtime`; see the module's docstring."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    wanted = _resolve(runtime, device)
    if wanted == "torch":
        return TorchEncoder(model)
    cache = _encoders.setdefault(model.backbone, {})
    precision = "bf16" if native_bf16(device) else "fp32"
    key = (tuple(size), wanted, precision)
    if key not in cache:
        cache[key] = _load(model, size, wanted, precision)  # None where it failed: warned once, not tried again
    return cache[key] or TorchEncoder(model)


def _resolve(runtime: str, device: torch.device) -> str:
    if torch.device(device).type != "cpu":
        return "torch"
    if runtime != "auto":
        return runtime
    try:
        import openvino  # noqa: F401
    except ImportError:
        return "torch"
    return "openvino"


def _load(model: STCNN, size: tuple[int, int], runtime: str, precision: str) -> OpenVinoEncoder | None:
    """The runtime's encoder, or None (with a warning) where it cannot run. Nothing cached holds the model: the
    cache's key is its backbone, which a reference from the value would keep alive."""
    try:
        return OpenVinoEncoder(_graph(model, size), precision)
    except Exception as error:  # a missing or broken runtime must not stop a run: PyTorch computes the same in fp32
        warnings.warn(f"{runtime} is not usable here, running the model in PyTorch ({error})", stacklevel=3)
        return None


def _graph(model: STCNN, size: tuple[int, int]) -> Path:
    """The frozen part converted to OpenVINO's format at `size`, from the disk cache when it was converted before."""
    import openvino

    frozen = Frozen(model).eval()
    digest = hashlib.sha1(f"{FORMAT} {torch.__version__} {openvino.__version__} {size}".encode())
    for name, tensor in frozen.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    folder = Path(os.environ.get("STCNN_CACHE_DIR") or Path.home() / ".cache" / "stcnn")
    path = folder / f"frozen-{digest.hexdigest()[:16]}-{size[0]}x{size[1]}.xml"
    if path.is_file() and path.with_suffix(".bin").is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)  # before the slow part: a folder that cannot be made fails fast
    width, height = size
    example = (torch.zeros(1, 3, height, width), torch.zeros(1, 3 * DELTA, height, width))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shape arithmetic it bakes in (sizes are fixed)
        converted = openvino.convert_model(frozen, example_input=example)
    # Saved under a name of its own, then renamed (the weights first): workers converting the same size at once
    # each leave whole files, and a reader never sees a graph without its weights.
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        part = Path(tmp) / path.name
        openvino.save_model(converted, part, compress_to_fp16=False)
        os.replace(part.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(part, path)
    log.info("converted the frozen model at %dx%d for OpenVINO: %s", width, height, path)
    return path
