"""The one owner of the storage folder: the runs index (dashboard.run_index), each run's files
(dashboard.run_files) and the uploads being received (dashboard.uploads), and the few steps that change
rows and files together.

    <root>/index.sqlite   the runs index (WAL, so the web app reads while a worker writes), unless DATABASE_URL
                          names a server database that web and workers on several machines share
    <root>/runs/<id>/     one folder per run
    <root>/uploads/       files being received

Each process opens the folder at its own root (STCNN_STORAGE: the same files may be mounted at different paths
on different machines) and finds a run's files from the run id alone: no path is kept in the index.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

from dashboard.config import database_url
from dashboard.run_files import RunFiles
from dashboard.run_index import FINISHED, STATUSES, Run, RunIndex, RunNotFound, is_run_id
from dashboard.uploads import Uploads

VIDEO_EXTS = {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg"}

__all__ = ["FINISHED", "STATUSES", "VIDEO_EXTS", "Run", "RunNotFound", "Storage", "is_run_id"]


class Storage(RunIndex, RunFiles, Uploads):
    def __init__(self, root: str | Path, database: str | None = None):
        """database: the run index's URL; by default DATABASE_URL, else index.sqlite in the folder."""
        root = Path(os.path.abspath(root))  # as this machine mounts it: a symlinked mount point is kept
        root.mkdir(parents=True, exist_ok=True)
        RunIndex.__init__(self, database or database_url() or f"sqlite:///{root / 'index.sqlite'}")
        RunFiles.__init__(self, root)
        Uploads.__init__(self, root)

    def create_run(
        self,
        *,
        name: str,
        video: Path,
        mask: Path | None,
        video_name: str,
        options: dict | None = None,
        gt_zip: Path | None = None,
        boxes: list[dict] | None = None,
        strokes: list[dict] | None = None,
    ) -> str:
        """Move the received files into a new run folder and queue the run. `mask`: frame 0's PNG, or a folder of
        masks named by frame (00000.png, ...); or None with `boxes` (segmentation.prompts.Box fields)."""
        now, ext = time.time(), Path(video_name).suffix.lower()
        run = Run(
            id=uuid.uuid4().hex, name=name.strip()[:200] or Path(video_name).stem or "run", created_at=now,
            updated_at=now, options=options or {}, video_name=video_name[-200:],
            video_ext=ext if ext in VIDEO_EXTS else ".bin",
        )  # fmt: skip
        input_dir = self.input_dir(run.id)
        try:
            input_dir.mkdir(parents=True)
            shutil.move(video, input_dir / f"video{run.video_ext}")
            if mask is not None:
                shutil.move(mask, input_dir / ("masks" if mask.is_dir() else "mask.png"))
            if boxes:
                self.input_boxes_path(run.id).write_text(json.dumps(boxes))
            if strokes:
                self.input_strokes_path(run.id).write_text(json.dumps(strokes))
            if gt_zip is not None:
                shutil.move(gt_zip, self.gt_zip(run.id))
            with self.transaction() as conn:
                self.insert_run(conn, run)
        except BaseException:
            # Disk full half way, or a bug: no folder without a row (the row is the last step).
            shutil.rmtree(self.run_dir(run.id), ignore_errors=True)
            raise
        return run.id

    def requeue(self, run_id: str) -> None:
        """Queue a finished run again with the same inputs; its old results are removed."""
        if self.get_run(run_id).status not in FINISHED:
            raise ValueError("only a finished, failed or cancelled run can be run again")
        shutil.rmtree(self.result_dir(run_id), ignore_errors=True)
        for path in (self.preview_path(run_id), self.evaluation_path(run_id)):
            path.unlink(missing_ok=True)
        self.queue_again(run_id)

    def queue_correction(self, run_id: str, masks: Path, version: int) -> None:
        """Queue version `version` of a done run whose latest is version - 1, made from `masks` (a folder, moved
        into input/corrections/); RunNotFound if the run is gone, ValueError if it is not done or another
        correction came first. The latest result stays until the job makes the new one."""
        target = self.correction_masks(run_id, version)
        with self.transaction() as conn:
            self.queue_version(conn, run_id, version)
            shutil.rmtree(target, ignore_errors=True)  # left by a correction that failed
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(masks, target)
        for path in (self.masks_zip_path(run_id), self.preview_path(run_id)):
            path.unlink(missing_ok=True)  # the latest version's masks zip is made again from the new result

    def delete_run(self, run_id: str) -> None:
        """Remove the run and its folder; RunNotFound if it is gone. Of several deletes at once, the one whose
        DELETE removed the row wins (and removes the folder); the others find no run."""
        if not is_run_id(run_id) or not self.delete_row(run_id):
            raise RunNotFound(run_id)
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)
