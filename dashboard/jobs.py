"""The job that segments one run. It reads everything from storage and writes everything back there,
so the same function runs in a local worker process and in a Celery worker.

    python -m dashboard.jobs <run_id>     (the local runner starts runs this way)
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import sys
import time
import traceback
from pathlib import Path

from dashboard.storage import Storage

log = logging.getLogger(__name__)

# Rough share of the wall time each engine stage takes, to turn stage progress into one bar.
_STAGE_SPAN = {
    "decode": (0.0, 0.1),
    "online training": (0.1, 0.3),
    "propagation": (0.3, 0.9),
    "encode": (0.9, 1.0),
    "done": (1.0, 1.0),
}
_OPTION_NAMES = ("device", "preset", "online_seconds", "fps", "binarize")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def save_jpeg(image, path: Path, max_width: int | None = None) -> None:
    """Write atomically, so a page polling the file never reads half an image."""
    from PIL import Image

    picture = Image.fromarray(image)
    if max_width and picture.width > max_width:
        picture = picture.resize((max_width, round(picture.height * max_width / picture.width)))
    tmp = path.with_suffix(".tmp.jpg")
    picture.save(tmp, quality=85)
    os.replace(tmp, path)


class _Reporter:
    """Engine progress -> the runs index (throttled: the page polls once a second anyway)."""

    def __init__(self, storage: Storage, run_id: str):
        self.storage, self.run_id = storage, run_id
        self.last_write = self.last_preview = self.last_cancel_check = 0.0
        self.last_stage: str | None = None
        self.cancelled = False

    def __call__(self, progress) -> None:
        now = time.monotonic()
        if progress.preview is not None and now - self.last_preview > 0.8:
            self.last_preview = now
            save_jpeg(progress.preview, self.storage.preview_path(self.run_id), max_width=960)
        if progress.stage == self.last_stage and now - self.last_write < 0.5:
            return
        self.last_stage, self.last_write = progress.stage, now
        start, end = _STAGE_SPAN.get(progress.stage, (0.0, 1.0))
        share = progress.done / progress.total if progress.total else 0.0
        self.storage.update_run(
            self.run_id,
            stage=progress.stage,
            done=int(progress.done),
            total=int(progress.total),
            eta_s=progress.eta_s,
            progress=round(start + (end - start) * min(1.0, share), 4),
        )

    def should_cancel(self) -> bool:
        now = time.monotonic()
        if not self.cancelled and now - self.last_cancel_check > 0.5:
            self.last_cancel_check = now
            self.cancelled = self.storage.cancel_requested(self.run_id)
        return self.cancelled


def write_thumbnail(storage: Storage, run_id: str) -> None:
    """A frame from the middle of the overlay video, small, for the gallery cards."""
    from segmentation.video import iter_frames, probe

    overlay = storage.result_dir(run_id) / "overlay.mp4"
    middle = probe(overlay).frame_count // 2
    for index, frame in enumerate(iter_frames(overlay)):
        if index >= middle:
            save_jpeg(frame, storage.run_dir(run_id) / "thumb.jpg", max_width=320)
            return


def evaluate_run(storage: Storage, run_id: str) -> dict | None:
    """J, F and J&F against the run's ground-truth masks, if it has any; per-frame rows to a CSV."""
    from segmentation.evaluate import evaluate_sequence

    gt_dir = storage.unpack_gt(run_id)
    if gt_dir is None:
        return None
    scores = evaluate_sequence(gt_dir, storage.result_dir(run_id) / "masks")
    scores["JF"] = (scores["J"] + scores["F"]) / 2
    scores.to_csv(storage.evaluation_path(run_id), index=False)
    overall = {"j": float(scores["J"].mean()), "f": float(scores["F"].mean())}
    overall["jf"] = (overall["j"] + overall["f"]) / 2
    storage.update_run(run_id, **overall)
    return overall


def run_job(run_id: str, storage: Storage, worker: str | None = None) -> str:
    """Segment one run and record the outcome; returns the final status. Never raises for a bad run."""
    from segmentation.errors import Cancelled, SegmentationError
    from segmentation.pipeline import SegmentOptions, segment
    from segmentation.video import probe

    worker = worker or f"local:{socket.gethostname()}:{os.getpid()}"
    run = storage.get_run(run_id)
    if run["status"] == "queued":
        if not storage.claim(run_id, worker):
            return storage.get_run(run_id)["status"]
    elif run["status"] != "running":
        return run["status"]  # cancelled or deleted while waiting in the queue
    storage.update_run(run_id, worker=worker)

    reporter = _Reporter(storage, run_id)
    started = time.time()
    try:
        video = storage.input_video(run_id)
        info = probe(video)
        storage.update_run(
            run_id, stage="decode", input_hash=file_sha256(video), width=info.width, height=info.height,
            fps=info.fps, frame_count=info.frame_count,
        )  # fmt: skip
        options = {k: v for k, v in run["options"].items() if k in _OPTION_NAMES and v not in (None, "")}
        result_dir = storage.result_dir(run_id)
        shutil.rmtree(result_dir, ignore_errors=True)
        summary = segment(
            video, storage.input_mask(run_id), result_dir, SegmentOptions(**options),
            progress=reporter, cancel=reporter.should_cancel,
        )  # fmt: skip
        storage.update_run(
            run_id, stage="thumbnail", device=summary.get("device"), model=_model_name(summary.get("model")),
            objects=summary.get("objects"), timings=summary.get("timings_s"),
            frame_count=summary.get("video", {}).get("frame_count", info.frame_count),
            fps=summary.get("video", {}).get("fps", info.fps),
        )  # fmt: skip
        write_thumbnail(storage, run_id)
        status, error = "done", None
        try:
            evaluate_run(storage, run_id)
        except SegmentationError as exc:  # bad ground truth must not throw the segmentation away
            error = f"Ground truth not scored: {_message(exc, storage, run)}"
    except Cancelled:
        status, error = "cancelled", "Cancelled by the user."
    except SegmentationError as exc:
        status, error = "failed", _message(exc, storage, run)
    except Exception as exc:  # a bug or a crash below us: keep the run and say what happened
        log.exception("run %s failed", run_id)
        with storage.log_path(run_id).open("a") as out:
            traceback.print_exc(file=out)
        status, error = "failed", f"Unexpected error ({type(exc).__name__}): {exc}"
    finished = time.time()
    storage.update_run(
        run_id, status=status, error=error, stage="done" if status == "done" else None,
        progress=1.0 if status == "done" else reporter_progress(storage, run_id), eta_s=None,
        run_time_s=round(finished - started, 2), finished_at=finished, cancel_requested=0,
    )  # fmt: skip
    return status


def reporter_progress(storage: Storage, run_id: str) -> float:
    run = storage.find_run(run_id)
    return run["progress"] if run else 0.0


def _message(error: Exception, storage: Storage, run: dict) -> str:
    from dashboard.checks import user_message

    run_id = run["id"]
    return user_message(error, {
        storage.input_video(run_id): run["video_name"] or "the video", storage.input_mask(run_id): "the mask",
        storage.gt_dir(run_id): "the ground truth", storage.result_dir(run_id) / "masks": "the run's masks",
        storage.run_dir(run_id): "the run folder",
    })  # fmt: skip


def _model_name(model) -> str | None:
    return model.get("name") if isinstance(model, dict) else model


def main(argv: list[str] | None = None) -> int:
    from dashboard.config import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    (run_id,) = argv if argv is not None else sys.argv[1:]
    status = run_job(run_id, Storage(load_settings().storage))
    return 0 if status in ("done", "cancelled", "failed") else 1


if __name__ == "__main__":
    raise SystemExit(main())
