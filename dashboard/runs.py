"""Starting runs and describing them: shared by the REST API and the pages."""

from __future__ import annotations

import zipfile
from pathlib import Path

from dashboard.checks import check_inputs, user_message
from dashboard.storage import Storage

PRESETS = ("fast", "balanced", "quality")
DEVICES = ("auto", "cpu", "cuda")

# kind -> (file inside the run folder, mime type, download name suffix)
FILE_KINDS = {
    "overlay": ("result/overlay.mp4", "video/mp4", "overlay.mp4"),
    "masks": ("masks.zip", "application/zip", "masks.zip"),
    "trajectory": ("result/trajectory.csv", "text/csv", "trajectory.csv"),
    "summary": ("result/summary.json", "application/json", "summary.json"),
    "evaluation": ("evaluation.csv", "text/csv", "evaluation.csv"),
    "preview": ("preview.jpg", "image/jpeg", "preview.jpg"),
    "thumbnail": ("thumb.jpg", "image/jpeg", "thumbnail.jpg"),
    "check": ("check.png", "image/png", "first-frame.png"),
}


class BadRequest(ValueError):
    """Input the user must fix; the message is shown as is."""


def parse_options(raw: dict) -> dict:
    """Options from a form or JSON body -> the SegmentOptions fields we pass on (validated here, so a
    typo is a 400 now rather than a failed run later)."""
    options: dict = {}
    preset = (raw.get("preset") or "balanced").strip()
    if preset not in PRESETS:
        raise BadRequest(f"preset must be one of {', '.join(PRESETS)}")
    device = (raw.get("device") or "auto").strip()
    if device not in DEVICES:
        raise BadRequest(f"device must be one of {', '.join(DEVICES)}")
    options.update(preset=preset, device=device)
    for key in ("online_seconds", "fps"):
        value = raw.get(key)
        if value not in (None, ""):
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise BadRequest(f"{key} must be a number") from None
            if number < 0:
                raise BadRequest(f"{key} must not be negative")
            options[key] = number
    options["binarize"] = str(raw.get("binarize", "")).lower() in ("1", "true", "on", "yes")
    return options


def start_run(
    storage: Storage,
    runner,
    *,
    video: Path,
    video_name: str,
    mask: Path,
    mask_name: str = "the mask",
    name: str = "",
    options: dict | None = None,
    gt_zip: Path | None = None,
) -> str:
    """Check the inputs (raises the engine's InputError with a readable message), store them, queue the run."""
    from segmentation.errors import SegmentationError

    options = options or {}
    try:
        _facts, check_png = check_inputs(video, mask, binarize=options.get("binarize", False))
    except SegmentationError as exc:
        raise type(exc)(user_message(exc, {video: video_name, mask: mask_name})) from None
    if gt_zip is not None and not zipfile.is_zipfile(gt_zip):
        raise BadRequest("The ground truth must be a .zip of PNG masks (00000.png, 00001.png, ...).")
    run_id = storage.create_run(
        name=name, video=video, mask=mask, video_name=video_name, options=options, gt_zip=gt_zip
    )
    storage.check_path(run_id).write_bytes(check_png)
    runner.submit(run_id)
    return run_id


def rerun(storage: Storage, runner, run_id: str) -> None:
    storage.requeue(run_id)
    runner.submit(run_id)


def file_path(storage: Storage, run_id: str, kind: str) -> Path | None:
    """The file of that kind for the run, built on demand (masks zip); None if it does not exist (yet)."""
    if kind not in FILE_KINDS:
        return None
    path = storage.run_dir(run_id) / FILE_KINDS[kind][0]
    if kind == "masks" and not path.exists():
        masks = storage.result_dir(run_id) / "masks"
        if not masks.is_dir():
            return None
        tmp = path.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
            for png in sorted(masks.glob("*.png")):
                archive.write(png, f"masks/{png.name}")
        tmp.replace(path)
    return path if path.exists() else None


def describe(storage: Storage, run: dict) -> dict:
    """The public JSON form of a run (no server paths)."""
    keys = (
        "id", "name", "status", "stage", "done", "total", "progress", "eta_s", "error", "options",
        "video_name", "input_hash", "width", "height", "fps", "frame_count", "objects", "device", "model",
        "run_time_s", "timings", "j", "f", "jf", "created_at", "updated_at", "started_at", "finished_at",
    )  # fmt: skip
    out = {key: run.get(key) for key in keys}
    out["files"] = {
        kind: f"/api/runs/{run['id']}/files/{kind}"
        for kind in FILE_KINDS
        if (storage.run_dir(run["id"]) / FILE_KINDS[kind][0]).exists()
        or (kind == "masks" and run["status"] == "done")
    }
    return out
