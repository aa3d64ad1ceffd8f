"""The job that segments one run. It reads everything from storage and writes everything back there,
so the same function runs in a local worker process and in a Celery worker.

    python -m dashboard.jobs <run_id>     (the local runner starts runs this way)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import threading
import time
import traceback
from pathlib import Path

from dashboard.storage import Run, Storage

log = logging.getLogger(__name__)

# Rough share of the wall time each engine stage takes, to turn stage progress into one bar.
_STAGE_SPAN = {
    "decode": (0.0, 0.1),
    "online training": (0.1, 0.3),
    "propagation": (0.3, 0.9),
    "encode": (0.9, 1.0),
    "done": (1.0, 1.0),
}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(8 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


# The live "latest masked frame" and the finished run's thumbnail, which replaces it on the run page: one size,
# so a run's picture does not turn blurrier when it is done.
PREVIEW_WIDTH = 960


def save_jpeg(image, path: Path, max_width: int | None = None) -> None:
    """Write atomically, so a page polling the file never reads half an image."""
    from PIL import Image

    picture = Image.fromarray(image)
    if max_width and picture.width > max_width:
        size = (max_width, round(picture.height * max_width / picture.width))
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    tmp = path.with_suffix(".tmp.jpg")
    picture.save(tmp, quality=85)
    os.replace(tmp, path)


class _Heartbeat:
    """A thread that tells the index this worker is alive while it holds the run, so a worker killed
    with -9 (which records nothing) is noticed by the stale-run check (Storage.fail_stale)."""

    def __init__(self, storage: Storage, run_id: str, worker: str, every_s: float):
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._beat, args=(storage, run_id, worker, every_s), name="stcnn-heartbeat", daemon=True
        )

    def _beat(self, storage, run_id, worker, every_s) -> None:
        while not self.stop.wait(every_s):
            try:
                if not storage.heartbeat(run_id, worker):
                    return  # the run is no longer ours (finished, deleted, given up for dead)
            except Exception:  # a locked or full database now and then must not end the run
                log.warning("heartbeat for %s failed", run_id, exc_info=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exc):
        self.stop.set()


class _Reporter:
    """Engine progress -> the runs index (throttled: the page polls once a second anyway)."""

    def __init__(self, storage: Storage, run_id: str, worker: str):
        self.storage, self.run_id, self.worker = storage, run_id, worker
        self.last_write = self.last_preview = self.last_cancel_check = 0.0
        self.last_stage: str | None = None
        self.cancelled = False

    def __call__(self, progress) -> None:
        now = time.monotonic()
        if progress.preview is not None and now - self.last_preview > 0.8:
            self.last_preview = now
            try:
                save_jpeg(progress.preview, self.storage.preview_path(self.run_id), max_width=PREVIEW_WIDTH)
            except OSError:  # a preview is only a convenience: a full disk fails the run where it matters
                log.warning("run %s: no preview", self.run_id, exc_info=True)
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
            # Cancelled, deleted, or given up for dead and rerun elsewhere: stop either way.
            self.cancelled = not self.storage.holds(self.run_id, self.worker)
        return self.cancelled


def write_thumbnail(storage: Storage, run_id: str) -> None:
    """A frame from the middle of the overlay video, for the gallery cards and the finished run's page."""
    from segmentation.video import iter_frames, probe

    overlay = storage.result_dir(run_id) / "overlay.mp4"
    middle = probe(overlay).frame_count // 2
    for index, frame in enumerate(iter_frames(overlay)):
        if index >= middle:
            save_jpeg(frame, storage.thumbnail_path(run_id), max_width=PREVIEW_WIDTH)
            return


def evaluate_run(storage: Storage, run_id: str) -> dict | None:
    """J, F and J&F against the run's ground-truth masks, if it has any; per-frame rows to a CSV."""
    from segmentation.evaluate import evaluate_sequence

    gt_dir = storage.unpack_gt(storage.get_run(run_id))
    if gt_dir is None:
        return None
    scores = evaluate_sequence(gt_dir, storage.result_dir(run_id) / "masks")
    scores["JF"] = (scores["J"] + scores["F"]) / 2
    scores.to_csv(storage.evaluation_path(run_id), index=False)
    overall = {"j": float(scores["J"].mean()), "f": float(scores["F"].mean())}
    overall["jf"] = (overall["j"] + overall["f"]) / 2
    storage.update_run(run_id, **overall)
    return overall


def run_job(run_id: str, storage: Storage, worker: str | None = None, claimed: bool = False) -> str:
    """Segment one run and record the outcome; returns the final status. Never raises for a bad run.

    claimed: the caller (the local runner) has already moved the run to 'running' for this process.
    Otherwise (Celery) the run must still be queued: a message delivered again after a worker died finds it
    running or failed and leaves it alone, so a run is never executed twice at once.
    """
    import segmentation.pipeline  # noqa: F401 - torch first: a long import would starve the heartbeat thread
    from dashboard.config import load_settings

    worker = worker or f"local:{socket.gethostname()}:{os.getpid()}"
    run = storage.get_run(run_id)
    if run.status == "queued":
        if not storage.claim(run_id, worker):
            return storage.get_run(run_id).status
    elif run.status != "running" or not claimed:
        return run.status  # cancelled or deleted while waiting, or someone else's
    storage.update_run(run_id, worker=worker)
    with _Heartbeat(storage, run_id, worker, load_settings().heartbeat_s):
        status = _execute(storage, run, worker)
    return status


def _execute(storage: Storage, run: Run, worker: str) -> str:
    from segmentation.errors import Cancelled, SegmentationError
    from segmentation.pipeline import SegmentOptions, segment
    from segmentation.video import probe

    run_id = run.id
    reporter = _Reporter(storage, run_id, worker)
    started = time.time()
    notes: list[str] = []
    version = run.version or 1
    try:
        video = storage.input_video(run_id)
        info = probe(video)
        storage.update_run(
            run_id, stage="decode", input_hash=file_sha256(video), width=info.width, height=info.height,
            fps=info.fps, frame_count=info.frame_count,
        )  # fmt: skip
        result_dir = storage.result_dir(run_id)
        masks, boxes, strokes = storage.input_mask(run_id), _boxes(storage, run_id), _strokes(storage, run_id)
        previous = None
        if version > 1:  # a correction: made from the latest version, which is kept as an earlier one
            masks, boxes, strokes = storage.correction_masks(run_id, version), [], []
            previous = storage.version_dir(run_id, version - 1)
            if not previous.exists():
                previous.parent.mkdir(exist_ok=True)
                result_dir.rename(previous)
        shutil.rmtree(result_dir, ignore_errors=True)
        summary = segment(
            video, masks, result_dir, SegmentOptions.of(run.options), progress=reporter,
            cancel=reporter.should_cancel, boxes=boxes, strokes=strokes, previous=previous,
        )  # fmt: skip
        storage.update_run(
            run_id, stage="thumbnail", device=summary.get("device"), model=_model_name(summary.get("model")),
            objects=summary.get("objects"), timings=summary.get("timings_s"),
            frame_count=summary.get("video", {}).get("frame_count", info.frame_count),
            fps=summary.get("video", {}).get("fps", info.fps),
        )  # fmt: skip
        status = "done"  # the result folder is complete: nothing after this may lose it
        try:
            write_thumbnail(storage, run_id)
        except Exception as exc:  # e.g. disk full: the gallery shows a placeholder instead
            log.warning("run %s: no thumbnail", run_id, exc_info=True)
            notes.append(f"No thumbnail ({_message(exc, storage, run)}).")
        try:
            evaluate_run(storage, run_id)
        except SegmentationError as exc:  # bad ground truth must not throw the segmentation away
            notes.append(f"Ground truth not scored: {_message(exc, storage, run)}")
        except Exception as exc:
            log.warning("run %s: ground truth not scored", run_id, exc_info=True)
            notes.append(f"Ground truth not scored ({type(exc).__name__}): {_message(exc, storage, run)}")
        error = " ".join(notes) or None
    except Cancelled:
        status, error = "cancelled", "Cancelled by the user."
    except SegmentationError as exc:
        status, error = "failed", _message(exc, storage, run)
    except Exception as exc:  # a bug or a crash below us: keep the run and say what happened
        log.exception("run %s failed", run_id)
        try:
            with storage.log_path(run_id).open("a") as out:
                traceback.print_exc(file=out)
        except OSError:  # the disk may be what failed
            pass
        status, error = "failed", f"Unexpected error ({type(exc).__name__}): {_message(exc, storage, run)}"
    finished = time.time()
    kept = {}
    if version > 1 and status != "done" and _keep_earlier(storage, run_id, version):
        # A correction that did not finish loses nothing: the run is done again, at the version before.
        what = "was cancelled" if status == "cancelled" else f"failed: {error}"
        status, error, kept = "done", f"The correction (version {version}) {what} Version {version - 1} is kept.", {
            "version": version - 1}  # fmt: skip
    # Only while the run is still ours: a rerun or the stale-run check may have taken it meanwhile.
    storage.finish(
        run_id, worker, status=status, error=error, stage="done" if status == "done" else None,
        progress=1.0 if status == "done" else reporter_progress(storage, run_id), eta_s=None,
        finished_at=finished, cancel_requested=0, **kept,
        # A failed correction's attempt is not the kept version's run: its run time stays.
        **({} if kept else {"run_time_s": round(finished - started, 2)}),
    )  # fmt: skip
    return status


def _keep_earlier(storage: Storage, run_id: str, version: int) -> bool:
    """Puts version - 1 back as the latest result after its correction failed; False if it is gone too."""
    earlier, result_dir = storage.version_dir(run_id, version - 1), storage.result_dir(run_id)
    try:
        if not result_dir.exists() and earlier.is_dir():
            earlier.rename(result_dir)
        shutil.rmtree(storage.correction_masks(run_id, version), ignore_errors=True)
    except OSError:  # the run was deleted meanwhile
        return False
    return result_dir.is_dir()


def reporter_progress(storage: Storage, run_id: str) -> float:
    run = storage.find_run(run_id)
    return run.progress if run else 0.0


def _message(error: Exception, storage: Storage, run: Run) -> str:
    from dashboard.checks import in_words_of, user_message

    run_id, masks = run.id, storage.input_mask(run.id) or storage.input_boxes_path(run.id)
    return in_words_of(user_message(error, {
        storage.input_video(run_id): run.video_name or "the video",
        masks: "the masks" if masks.is_dir() else "the mask",
        storage.gt_dir(run_id): "the ground truth", storage.result_dir(run_id) / "masks": "the run's masks",
        storage.run_dir(run_id): "the run folder",
    }), "page")  # fmt: skip  # the pages show it: their controls named


def _boxes(storage: Storage, run_id: str) -> list:
    from segmentation.prompts import Box

    path = storage.input_boxes_path(run_id)
    return [Box(**fields) for fields in json.loads(path.read_text())] if path.exists() else []


def _strokes(storage: Storage, run_id: str) -> list:
    from segmentation.prompts import Stroke

    path = storage.input_strokes_path(run_id)
    if not path.exists():
        return []
    return [
        Stroke(**{**fields, "points": tuple(map(tuple, fields["points"]))})
        for fields in json.loads(path.read_text())
    ]


def _model_name(model) -> str | None:
    return model.get("name") if isinstance(model, dict) else model


def main(argv: list[str] | None = None) -> int:
    from dashboard.config import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from dashboard.storage import is_run_id

    (run_id,) = argv if argv is not None else sys.argv[1:]
    if not is_run_id(run_id):
        raise SystemExit(f"not a run id: {run_id!r}")
    # Started by the local runner, which claimed the run for this process.
    status = run_job(run_id, Storage(load_settings().storage), claimed=True)
    return 0 if status in ("done", "cancelled", "failed") else 1


if __name__ == "__main__":
    raise SystemExit(main())
