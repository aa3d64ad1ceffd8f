"""The frozen part of the model on OpenVINO: the same features and masks as PyTorch, cached once converted, and a
fallback to PyTorch when the runtime cannot be used."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segmentation.frozen import encoder_for
from segmentation.inference import Segmenter, model_size
from segmentation.masks import read_first_mask
from segmentation.model import DELTA
from segmentation.synthetic import make_clip
from segmentation.video import iter_frames
from segmentation.weights import load_for_inference

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    made = make_clip(tmp_path_factory.mktemp("clip"), n_frames=10, size=(160, 96), n_objects=2, seed=3)
    return list(iter_frames(made.video)), read_first_mask(made.mask)


def masks_by_runtime(clip) -> dict[str, tuple[np.ndarray, str]]:
    """Per runtime: the clip's masks and the precision the frozen part ran in."""
    frames, first = clip
    results = {}
    for runtime in ("torch", "auto"):
        model, _ = load_for_inference()
        segmenter = Segmenter(model, CPU, model_size(160, 96), gate=True, runtime=runtime)
        masks = [segmenter.step(frames[0], first)] + [segmenter.step(f) for f in frames[1:]]
        results[segmenter.encode.runtime] = np.stack(masks), segmenter.encode.precision
    assert set(results) == {"torch", "openvino"}  # auto takes OpenVINO on the CPU
    assert len(np.unique(results["torch"][0])) == 3  # both objects tracked, so the comparison means something
    return results


def test_openvino_gives_pytorchs_features_and_masks(clip, tmp_path, monkeypatch):
    monkeypatch.setenv("STCNN_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("STCNN_FP32", "1")
    results = masks_by_runtime(clip)
    assert results["openvino"][1] == "fp32"
    assert (results["torch"][0] == results["openvino"][0]).mean() > 0.999
    size = model_size(160, 96)

    model, _ = load_for_inference()
    frame, previous = torch.randn(1, 3, size[1], size[0]), torch.randn(1, 3 * DELTA, size[1], size[0])
    eager = encoder_for(model, CPU, size, "torch")(frame, previous)
    graph = encoder_for(model, CPU, size, "openvino")(frame, previous)
    for a, b in zip([*eager[0], *eager[1]], [*graph[0], *graph[1]]):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-3)


def test_bf16_where_the_cpu_has_it_keeps_the_masks(clip, tmp_path, monkeypatch):
    monkeypatch.setenv("STCNN_CACHE_DIR", str(tmp_path))
    results = masks_by_runtime(clip)
    native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert results["openvino"][1] == ("bf16" if native else "fp32")
    # Per frame: bf16 moves a boundary pixel here and there, never an object.
    agree = (results["torch"][0] == results["openvino"][0]).mean(axis=(1, 2))
    assert agree.min() > 0.98, agree


def test_a_converted_size_is_reused_by_the_next_process(tmp_path, monkeypatch):
    monkeypatch.setenv("STCNN_CACHE_DIR", str(tmp_path))
    encoder_for(load_for_inference()[0], CPU, (96, 64), "openvino")
    graphs = sorted(tmp_path.glob("frozen-*-96x64.*"))
    assert [p.suffix for p in graphs] == [".bin", ".xml"]
    written = [p.stat().st_mtime_ns for p in graphs]
    again = encoder_for(load_for_inference()[0], CPU, (96, 64), "openvino")  # a new model: not the memory cache
    assert again.runtime == "openvino" and [p.stat().st_mtime_ns for p in graphs] == written


def test_a_runtime_that_cannot_run_falls_back_to_pytorch(clip, tmp_path, monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("STCNN_CACHE_DIR", str(blocker / "cache"))  # the graph cannot be saved there
    frames, first = clip
    model, _ = load_for_inference()
    with pytest.warns(UserWarning, match="openvino is not usable here, running the model in PyTorch"):
        segmenter = Segmenter(model, CPU, model_size(160, 96), runtime="openvino")
    assert segmenter.encode.runtime == "torch"
    segmenter.step(frames[0], first)
    assert set(np.unique(segmenter.step(frames[1]))) == {0, 1, 2}
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        encoder_for(model, CPU, (96, 64), "tensorrt")
