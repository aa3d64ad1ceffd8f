"""The trained checkpoint: where it lives, how it is written (fp16, with its metadata) and read back."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .errors import InputError, WeightsError
from .model import STCNN

# The shipped weights; STCNN_WEIGHTS points elsewhere (a checkpoint of your own).
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "stcnn.pt"
FORMAT = "stcnn-weights-1"


def weights_path() -> Path:
    return Path(os.environ.get("STCNN_WEIGHTS") or DEFAULT_WEIGHTS)


def save_weights(model: STCNN, path: str | Path, meta: dict) -> None:
    """Writes only what inference needs, in fp16 (BatchNorm statistics too: they fit in fp16's range)."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"format": FORMAT, "meta": meta, "state": state}, tmp)
    os.replace(tmp, path)


def load_for_inference(path=None, device: torch.device | str = "cpu", ablate=()) -> tuple[STCNN, dict]:
    """load_model, set up as every inference path runs it: the ablated inputs switched off, and channels_last on
    the CPU, where its convolutions are faster."""
    model, meta = load_model(path, device)
    model.ablate = frozenset(ablate)
    if torch.device(device).type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return model, meta


def load_model(path: str | Path | None = None, device: torch.device | str = "cpu") -> tuple[STCNN, dict]:
    """Builds STCNN with the given weights. A missing or damaged file is a WeightsError naming it."""
    hint = "" if path else " (set STCNN_WEIGHTS or reinstall the project)"  # only where no file was named
    path = Path(path) if path else weights_path()
    if not path.is_file():
        raise WeightsError(f"model weights not found: {path}{hint}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise WeightsError(
            f"model weights file is damaged or not a checkpoint: {path} ({error.__class__.__name__})"
        ) from error
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise WeightsError(f"not an STCNN weights file of this version: {path}")
    model = STCNN()
    try:
        model.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in blob["state"].items()}
        )
    except RuntimeError as error:
        raise WeightsError(f"weights do not fit the model: {path} ({str(error).splitlines()[0]})") from error
    return model.to(device).eval(), blob.get("meta", {})


def average_weights(first: str | Path, second: str | Path, share: float) -> tuple[STCNN, dict]:
    """(1 - share) x first + share x second, every tensor: a fine-tuned model averaged with the one it started from
    keeps most of the gain and most of what the fine-tuning lost (WiSE-FT). The metadata is second's (a run's place
    in it too, so `stcnn train --resume-from` carries the average on) but for its last validation, which scored the
    second model, not the average; `averaged_with` names first and its share."""
    if not 0 <= share <= 1:
        raise InputError(f"share must be between 0 and 1, not {share}")
    model, meta = load_model(second)
    start = load_model(first)[0].state_dict()
    mixed = {
        k: torch.lerp(start[k], v, share) if v.is_floating_point() else v for k, v in model.state_dict().items()
    }
    model.load_state_dict(mixed)
    return model, {
        **meta,
        "last_validation": None,
        "averaged_with": {"weights": str(first), "share": round(1 - share, 4)},
    }
