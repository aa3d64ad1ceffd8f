"""Each run's folder of files: where its inputs, results, earlier versions and pictures live.

Layout (every path derives from a run id, never from a user's file name)::

    runs/<id>/input/      video.<ext>, gt.zip (as uploaded), and mask.png (frame 0's mask) or masks/00000.png,
                          00005.png, ... (masks named by frame, for objects that appear later), or boxes.json /
                          strokes.json (the prompts a run was started from)
    runs/<id>/input/corrections/<n>/  the masks version n >= 2 is made from: version n - 1's annotations (its
                          state/annotations/) with one frame corrected, named by frame
    runs/<id>/gt/         ground-truth masks unpacked from gt.zip
    runs/<id>/result/     the engine's out_dir (appears whole or not at all): the latest version
    runs/<id>/versions/<n>/  earlier versions' results, kept as they were (n = 1, 2, ...)
    runs/<id>/preview.jpg latest masked frame while running;  thumb.jpg  the finished run's picture
    runs/<id>/check.png   frame 0 with the first-frame mask drawn on it
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from dashboard.run_index import Run, RunNotFound, is_run_id


class RunFiles:
    def __init__(self, root: Path):
        self.root = root  # the storage folder: nothing above it is ever followed
        self.runs_root = root / "runs"
        self.runs_root.mkdir(parents=True, exist_ok=True)

    def run_dir(self, run_id: str) -> Path:
        if not is_run_id(run_id):
            raise RunNotFound(run_id)
        return self.runs_root / run_id

    def contained_file(self, run_id: str, relative: str) -> Path | None:
        """runs/<id>/<relative> if it is a plain file really inside that run folder, else None: a symlink
        (planted in the storage folder, pointing anywhere) is never followed to serve or read a file."""
        base = self.run_dir(run_id)
        path = base / relative
        try:
            for part in (path, *path.parents):
                if part == self.root:
                    break
                if part.is_symlink():
                    return None
            resolved = path.resolve(strict=True)
        except (OSError, ValueError):
            return None
        if not resolved.is_relative_to(base.resolve()) or not resolved.is_file():
            return None
        return resolved

    def input_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "input"

    def input_video(self, run_id: str) -> Path:
        """input/video.<ext>, the extension the upload came with (or .bin)."""
        found = sorted(self.input_dir(run_id).glob("video.*"))
        if not found:
            raise RunNotFound(run_id)
        return found[0]

    def input_mask(self, run_id: str) -> Path | None:
        """The masks the engine starts from: input/masks/ (named by frame) when the run has later frames' masks,
        else input/mask.png; None for a run started from boxes alone."""
        folder = self.input_dir(run_id) / "masks"
        if folder.is_dir():
            return folder
        prompted = self.input_boxes_path(run_id).exists() or self.input_strokes_path(run_id).exists()
        return None if prompted else folder.with_name("mask.png")

    def input_boxes_path(self, run_id: str) -> Path:
        """input/boxes.json: the boxes a run was started from, as segmentation.prompts.Box fields."""
        return self.input_dir(run_id) / "boxes.json"

    def input_strokes_path(self, run_id: str) -> Path:
        """input/strokes.json: the strokes a run was started from, as segmentation.prompts.Stroke fields."""
        return self.input_dir(run_id) / "strokes.json"

    def gt_zip(self, run_id: str) -> Path:
        return self.input_dir(run_id) / "gt.zip"

    def gt_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "gt"

    def result_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "result"

    def version_dir(self, run_id: str, version: int) -> Path:
        """An earlier version's result (the latest is result_dir)."""
        return self.run_dir(run_id) / "versions" / str(int(version))

    def correction_masks(self, run_id: str, version: int) -> Path:
        return self.input_dir(run_id) / "corrections" / str(int(version))

    def earlier_versions(self, run_id: str) -> list[int]:
        folder = self.run_dir(run_id) / "versions"
        found = folder.iterdir() if folder.is_dir() and not folder.is_symlink() else []
        return sorted(int(p.name) for p in found if p.name.isdigit() and p.is_dir())

    def preview_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "preview.jpg"

    def thumbnail_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "thumb.jpg"

    def check_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "check.png"

    def evaluation_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "evaluation.csv"

    def masks_zip_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "masks.zip"

    def log_path(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "worker.log"

    def unpack_gt(self, run: Run) -> Path | None:
        """Unpack gt.zip into gt/ (PNG files only, flattened, names sanitised); None if absent. The zip is judged
        against the run's video first (dashboard.archives): InputError, and no gt/ folder, if it does not fit."""
        from dashboard.archives import open_pngs, unpack

        source = self.gt_zip(run.id)
        if not source.exists():
            return None
        target = self.gt_dir(run.id)
        shutil.rmtree(target, ignore_errors=True)
        what = "The ground truth"
        archive, members = open_pngs(source, what, (run.width, run.height), run.frame_count)
        try:
            with archive:
                target.mkdir(parents=True)
                for member, name in members:
                    unpack(archive, member, target / re.sub(r"[^0-9A-Za-z_.-]", "_", name), name=name, what=what)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        return target
