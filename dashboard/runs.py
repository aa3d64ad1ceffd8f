"""Starting runs and describing them: shared by the REST API and the pages."""

from __future__ import annotations

import math
import re
import uuid
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


# Unpacked ground truth may not be bigger than this (a zip bomb would otherwise fill the disk mid-run).
MAX_GT_BYTES = 4 * 1024**3
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadRequest(ValueError):
    """Input the user must fix; the message is shown as is."""


def clean_name(text: str | None, default: str = "") -> str:
    """A user's name or file name as display text: no control characters (NUL, newlines), bounded."""
    return _CONTROL.sub("", str(text or ""))[-200:] or default


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
            if not math.isfinite(number) or number < 0:
                raise BadRequest(f"{key} must be a finite number, not negative")
            options[key] = number
    value = raw.get("short_side")
    if value not in (None, ""):  # the model's working resolution: lower is faster (tests, previews)
        try:
            options["short_side"] = int(str(value).strip())
        except ValueError:
            raise BadRequest("short_side must be a whole number of pixels") from None
        if not 32 <= options["short_side"] <= 2048:
            raise BadRequest("short_side must be between 32 and 2048 pixels")
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
    if gt_zip is not None:
        check_gt_zip(gt_zip)
    run_id = storage.create_run(
        name=clean_name(name), video=video, mask=mask, video_name=clean_name(video_name, "video"),
        options=options, gt_zip=gt_zip,
    )  # fmt: skip
    try:
        storage.check_path(run_id).write_bytes(check_png)
    except OSError:
        storage.delete_run(run_id)  # disk full: no run without its check image
        raise
    runner.submit(run_id)
    return run_id


def check_gt_zip(path: Path) -> None:
    message = "The ground truth must be a .zip of PNG masks (00000.png, 00001.png, ...)."
    try:
        with zipfile.ZipFile(path) as archive:
            members = [
                m for m in archive.infolist() if m.filename.lower().endswith(".png") and not m.is_dir()
            ]
            unpacked = sum(m.file_size for m in members)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise BadRequest(message) from None
    if not members:
        raise BadRequest(message + " This one has no PNG in it.")
    if unpacked > MAX_GT_BYTES:
        raise BadRequest(f"The ground truth unpacks to {unpacked / 1024**3:.1f} GB; the limit is 4 GB.")


def rerun(storage: Storage, runner, run_id: str) -> None:
    storage.requeue(run_id)
    runner.submit(run_id)


def file_path(storage: Storage, run_id: str, kind: str) -> Path | None:
    """The file of that kind for the run, built on demand (masks zip); None if it does not exist (yet)."""
    if kind not in FILE_KINDS:
        return None
    relative = FILE_KINDS[kind][0]
    path = storage.contained_file(run_id, relative)
    masks = storage.result_dir(run_id) / "masks"
    linked = any(p.is_symlink() for p in (masks, masks.parent, masks.parent.parent))
    if kind == "masks" and path is None and masks.is_dir() and not linked:
        target = storage.run_dir(run_id) / relative
        # A private temporary name: two downloads at once must not write into the same file.
        tmp = target.with_name(f".masks-{uuid.uuid4().hex}.tmp")
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
                for png in sorted(masks.glob("*.png")):
                    if storage.contained_file(run_id, f"result/masks/{png.name}"):
                        archive.write(png, f"masks/{png.name}")
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        path = storage.contained_file(run_id, relative)
    return path


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
        if storage.contained_file(run["id"], FILE_KINDS[kind][0])
        or (kind == "masks" and run["status"] == "done")
    }
    return out
