"""Starting runs and describing them: shared by the REST API and the pages."""

from __future__ import annotations

import json
import re
import shutil
import uuid
import zipfile
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import numpy as np

from dashboard.archives import open_pngs, unpack
from dashboard.checks import check_boxes, check_inputs, user_message
from dashboard.storage import FINISHED, Run, Storage
from segmentation.options import SegmentOptions  # no torch: the web process checks submissions with it

# The options a run submitted over the web may set: not weights (a path on the server), overwrite (the job owns
# its result folder), ablate (for ablation studies) or runtime (the server's own choice: the same masks either way).
RUN_OPTIONS = tuple(
    name for name in SegmentOptions.model_fields if name not in ("weights", "overwrite", "ablate", "runtime")
)

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

# What an earlier version of a run keeps to download or play (a version's J and F are not kept).
VERSIONED = ("overlay", "masks", "trajectory", "summary")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class BadRequest(ValueError):
    """Input the user must fix; the message is shown as is."""


class Conflict(ValueError):
    """A request the run's state refuses (still running): the message is shown as is."""


def clean_name(text: str | None, default: str = "") -> str:
    """A user's name or file name as display text: no control characters (NUL, newlines), bounded."""
    return _CONTROL.sub("", str(text or ""))[-200:] or default


def parse_options(raw: Mapping, other_fields: Collection[str] = ()) -> dict:
    """A submission's options (a form's text, or the New run page's values) -> the run's options, checked by
    the engine's own model, so a value the engine would refuse is a 400 now, with the engine's message naming
    the option, rather than a failed run later. Fields that are neither options a run may set (RUN_OPTIONS) nor
    `other_fields` are refused."""
    from segmentation.errors import InputError

    unknown = sorted(set(raw) - set(RUN_OPTIONS) - set(other_fields))
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown)
        raise BadRequest(f"Unknown field(s): {shown}; a run's options are {', '.join(RUN_OPTIONS)}.")
    try:
        options = SegmentOptions.from_form({name: raw[name] for name in RUN_OPTIONS if name in raw})
    except InputError as exc:
        raise BadRequest(str(exc)) from None
    # Every option the run will use, so that a rerun does the same whatever the defaults become.
    return options.model_dump(include=set(RUN_OPTIONS), exclude_none=True)


def _stage_masks(
    folder: Path, mask: Path | None, mask_name: str, more: Sequence[tuple[Path, str]], info
) -> dict:
    """Copies the masks into `folder` as 00000.png, 00005.png, ...; returns {copy: the user's name}. Zips are
    judged against the video (`info`: its probe) before a member is unpacked."""
    from segmentation.masks import frame_number

    names: dict[Path, str] = {}

    def place(name: str, index: int | None, write) -> None:
        if index is None:
            raise BadRequest(
                f"{name}: a mask for a later frame is named by its frame number (00005.png = frame 5, "
                "counting from 0)."
            )
        target = folder / f"{index:05d}.png"
        if target in names:
            raise BadRequest(f"{names[target]} and {name}: both are masks for frame {index}; keep one.")
        names[target] = name
        write(target)

    if mask is not None:
        place(mask_name, 0, lambda target: shutil.copyfile(mask, target))
    for path, name in more:
        with path.open("rb") as stream:
            is_zip = stream.read(4) == b"PK\x03\x04" or name.lower().endswith(".zip")
        if not is_zip:
            place(
                name, frame_number(Path(name).stem), lambda target, path=path: shutil.copyfile(path, target)
            )
            continue
        archive, members = open_pngs(path, name, (info.width, info.height), info.frame_count)
        with archive:
            for member, member_name in members:
                write = partial(unpack, archive, member, name=member_name, what=name)
                place(member_name, frame_number(Path(member_name).stem), write)
    return names


@contextmanager
def gathered_masks(
    storage: Storage, mask: Path | None, mask_name: str, more: Sequence[tuple[Path, str]] = (), *, info
) -> Iterator[tuple[Path, dict[Path, str]]]:
    """The masks as the engine reads them, with {file: the user's name} for messages. Frame 0's mask alone is
    used as it is; with masks for later frames (PNGs named by frame number, or zips of them) all are copied into
    a staging folder as 00000.png, 00005.png, ... (names made from the parsed numbers, never the user's text),
    which is removed afterwards unless create_run moved it into a run. The uploads themselves stay. `info`: the
    video's probe, which zips of masks are judged against."""
    if not more:
        if mask is None:
            raise BadRequest(
                "Give frame 0's mask: a PNG with each object painted in its own colour on black."
            )
        yield mask, {mask: mask_name}
        return
    folder = storage.new_staging()
    try:
        names = _stage_masks(folder, mask, mask_name, more, info)
        yield folder, {**names, folder: "the masks"}
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # already moved away when a run was made from it


def probe_video(video: Path, video_name: str):
    """The video's facts (segmentation.video.probe), with the engine's message naming the user's file."""
    from segmentation.errors import SegmentationError
    from segmentation.video import probe

    try:
        return probe(video)
    except SegmentationError as exc:
        raise type(exc)(user_message(exc, {video: video_name})) from None


def _checked(
    video: Path, video_name: str, masks: Path, names: dict, binarize: bool, info
) -> tuple[dict, bytes]:
    """check_inputs, with the engine's message naming the user's files instead of our storage paths."""
    from segmentation.errors import SegmentationError

    try:
        return check_inputs(video, masks, binarize=binarize, info=info)
    except SegmentationError as exc:
        raise type(exc)(user_message(exc, {video: video_name, **names})) from None


def check_run_inputs(
    storage: Storage,
    *,
    video: Path,
    video_name: str,
    mask: Path | None,
    mask_name: str = "the mask",
    more_masks: Sequence[tuple[Path, str]] = (),
    binarize: bool = False,
) -> tuple[dict, bytes]:
    """What start_run checks, starting nothing: check_inputs' facts and frame-0 picture (the New run page's
    preview). Raises the engine's InputError or BadRequest with a readable message."""
    info = probe_video(video, video_name)
    with gathered_masks(storage, mask, mask_name, more_masks, info=info) as (masks, names):
        return _checked(video, video_name, masks, names, binarize, info)


def _prompts(text: str, what: str, make) -> list:
    """A JSON list field of prompts, each made by make(value, position from 1); BadRequest naming `what`."""
    import json

    from segmentation.errors import InputError

    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, list) or not values:
        raise BadRequest(what)
    try:
        return [make(value, i) for i, value in enumerate(values, start=1)]
    except InputError as exc:
        raise BadRequest(str(exc)) from None


def parse_boxes(text: str) -> list:
    """The `boxes` field: a JSON list of [x0, y0, x1, y1] in frame 0's pixels (inclusive), one per object, ids
    1..N in the order given, or of {"box": [...], "object": id, "frame": n} -> segmentation.prompts.Box."""
    from segmentation.prompts import Box

    what = "boxes must be a JSON list of [x0, y0, x1, y1], one per object, e.g. [[10, 20, 110, 90]]"
    return _prompts(text, what, Box.from_json)


def parse_strokes(text: str) -> list:
    """The `strokes` field: a JSON list of {"object": 1, "positive": true, "points": [[x, y], ...]} in frame 0's
    pixels (or "frame": n's) -> segmentation.prompts.Stroke: positive ones on an object, negative ones beside it."""
    from segmentation.prompts import Stroke

    what = 'strokes must be a JSON list of {"object": 1, "positive": true, "points": [[x, y], ...]}'
    return _prompts(text, what, lambda value, _i: Stroke.from_dict(value))


def start_run(
    storage: Storage,
    runner,
    *,
    video: Path,
    video_name: str,
    mask: Path | None,
    mask_name: str = "the mask",
    more_masks: Sequence[tuple[Path, str]] = (),
    name: str = "",
    options: dict | None = None,
    gt_zip: Path | None = None,
    boxes: list | None = None,
    strokes: list | None = None,
) -> str:
    """Check the inputs (raises the engine's InputError or BadRequest with a readable message), store them,
    queue the run. `more_masks`: (file, user's name) of masks for later frames, PNGs or zips of them; `boxes`
    (segmentation.prompts.Box) instead of masks."""
    from dataclasses import asdict

    options = options or {}
    if options.get("device") == "cuda" and getattr(runner, "has_gpu", None) is False:
        raise BadRequest("This server has no CUDA GPU: ask for device auto or cpu.")
    info = probe_video(video, video_name)
    prompted = bool(boxes or strokes)
    if prompted and (mask is not None or more_masks):
        raise BadRequest("Give the objects either as masks or as boxes and strokes, not both.")
    with ExitStack() as stack:
        if prompted:
            masks, (_facts, check_png) = None, check_boxes(video, boxes or [], info, strokes or [])
        else:
            masks, names = stack.enter_context(
                gathered_masks(storage, mask, mask_name, more_masks, info=info)
            )
            _facts, check_png = _checked(
                video, video_name, masks, names, options.get("binarize", False), info
            )
        if gt_zip is not None:
            check_gt_zip(gt_zip, (info.width, info.height), info.frame_count)
        run_id = storage.create_run(
            name=clean_name(name), video=video, mask=masks, video_name=clean_name(video_name, "video"),
            options=options, gt_zip=gt_zip, boxes=[asdict(box) for box in boxes or ()],
            strokes=[asdict(stroke) for stroke in strokes or ()],
        )  # fmt: skip
    try:
        storage.check_path(run_id).write_bytes(check_png)
    except OSError:
        storage.delete_run(run_id)  # disk full: no run without its check image
        raise
    runner.submit(run_id)
    return run_id


def check_gt_zip(path: Path, size: tuple[int, int], frame_count: int) -> None:
    """BadRequest unless the zip holds PNG masks that fit a video of `size` (width, height) and `frame_count`
    frames (dashboard.archives), judged without unpacking it."""
    from segmentation.errors import InputError

    try:
        archive, _members = open_pngs(path, "The ground truth", size, frame_count)
    except InputError as exc:
        raise BadRequest(str(exc)) from None
    archive.close()


def add_ground_truth(storage: Storage, run_id: str, source: Path) -> dict:
    """Score a done run against ground-truth masks (a zip of PNGs named by frame, moved in from `source`):
    {"j", "f", "jf"}, and the per-frame scores in the run's evaluation.csv. BadRequest if the zip does not fit
    the run's video or cannot be read (the run keeps no ground truth then), Conflict if the run is not done."""
    import shutil

    from dashboard.jobs import evaluate_run
    from segmentation.errors import SegmentationError

    run = storage.get_run(run_id)
    if run.status != "done":
        raise Conflict(f"The run is {run.status}: add ground truth once it is done.")
    check_gt_zip(source, (run.width, run.height), run.frame_count)
    shutil.move(source, storage.gt_zip(run_id))
    try:
        return evaluate_run(storage, run_id)
    except SegmentationError as exc:
        storage.gt_zip(run_id).unlink(missing_ok=True)
        shutil.rmtree(storage.gt_dir(run_id), ignore_errors=True)
        names = {storage.gt_dir(run_id): "the ground truth", storage.result_dir(run_id) / "masks": "the run's masks"}
        raise BadRequest(user_message(exc, names)) from None


def delete_run(storage: Storage, run_id: str) -> None:
    """Remove a run and its files; a queued or running one is cancelled first (its worker notices the missing
    row and stops). RunNotFound if it is gone."""
    if storage.get_run(run_id).status not in FINISHED:
        storage.request_cancel(run_id)
    storage.delete_run(run_id)


def rerun(storage: Storage, runner, run_id: str) -> None:
    storage.requeue(run_id)
    runner.submit(run_id)


def file_path(storage: Storage, run_id: str, kind: str, version: int | None = None) -> Path | None:
    """The file of that kind for the run, built on demand (masks zip); None if it does not exist (yet).
    `version`: an earlier version's (storage.version_dir), for the kinds VERSIONED; the latest's otherwise."""
    if kind not in FILE_KINDS:
        return None
    relative = FILE_KINDS[kind][0]
    masks = storage.result_dir(run_id) / "masks"
    if version is not None and version in storage.earlier_versions(run_id):
        if kind not in VERSIONED:
            return None
        relative = f"versions/masks-{version}.zip" if kind == "masks" else relative.replace(
            "result/", f"versions/{version}/")  # fmt: skip
        masks = storage.version_dir(run_id, version) / "masks"
    path = storage.contained_file(run_id, relative)
    linked = any(p.is_symlink() for p in (masks, masks.parent, masks.parent.parent))
    if kind == "masks" and path is None and masks.is_dir() and not linked:
        target = storage.run_dir(run_id) / relative
        # A private temporary name: two downloads at once must not write into the same file.
        tmp = target.with_name(f".masks-{uuid.uuid4().hex}.tmp")
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
                for png in sorted(masks.glob("*.png")):
                    if storage.contained_file(run_id, f"{masks.relative_to(storage.run_dir(run_id))}/{png.name}"):
                        archive.write(png, f"masks/{png.name}")
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        path = storage.contained_file(run_id, relative)
    return path


def describe(storage: Storage, run: Run) -> dict:
    """The public JSON form of a run (no server paths)."""
    keys = (
        "id", "name", "status", "stage", "done", "total", "progress", "eta_s", "error", "options",
        "video_name", "input_hash", "width", "height", "fps", "frame_count", "objects", "device", "model",
        "run_time_s", "timings", "j", "f", "jf", "created_at", "updated_at", "started_at", "finished_at", "version",
    )  # fmt: skip
    out = {key: getattr(run, key) for key in keys}
    out["files"] = {
        kind: f"/api/runs/{run.id}/files/{kind}"
        for kind in FILE_KINDS
        if storage.contained_file(run.id, FILE_KINDS[kind][0])
        or (kind == "masks" and run.status == "done")
    }
    return out


def version_facts(storage: Storage, run: Run, version: int | None = None) -> tuple[float | None, float | None]:
    """(run time in seconds, J&F) of one version of a done run: the run's own for the latest (None), an earlier
    version's time from its summary; only the latest version is scored against ground truth (J&F None)."""
    if version is None or version not in storage.earlier_versions(run.id):
        return run.run_time_s, run.jf
    try:
        summary = json.loads((storage.version_dir(run.id, version) / "summary.json").read_text())
        return float(summary["timings_s"]["total"]), None
    except (OSError, ValueError, KeyError, TypeError):
        return None, None


def versions(storage: Storage, run: Run) -> list[dict]:
    """Every finished version of the run, oldest first: its number, what it changed, its files."""
    run_id = run.id
    found = [(n, storage.version_dir(run_id, n)) for n in storage.earlier_versions(run_id)]
    if run.status == "done" or (storage.result_dir(run_id) / "summary.json").exists():
        found.append((None, storage.result_dir(run_id)))
    out = []
    for number, folder in found:
        try:
            summary = json.loads((folder / "summary.json").read_text())
        except (OSError, ValueError):
            continue
        version = int(summary.get("version", 1))
        query = "" if number is None else f"?version={version}"
        out.append({
            "version": version, "latest": number is None,
            "annotated_frames": summary.get("mask_frames", []), "previous": summary.get("previous"),
            "files": {kind: f"/api/runs/{run_id}/files/{kind}{query}" for kind in VERSIONED},
        })  # fmt: skip
    return sorted(out, key=lambda v: v["version"])


def correction_masks(
    storage: Storage, run: Run, frame: int, *, boxes=None, objects=None, polygons=(), mask=None,
    mask_name="the mask", strokes=(),
) -> Path:
    """The masks version n+1 of a done run starts from, in a staging folder: version n's annotations (its
    state/annotations/) with `frame` corrected, by `boxes` ([x0, y0, x1, y1] lists, for the object ids `objects`,
    made into masks by the model), `strokes` (segmentation.prompts.Stroke at that frame) and `polygons` ((object id,
    points) painted over them, as dashboard.drawing gives them), or by `mask` (a PNG of that frame, whose objects
    are corrected). An id the run does not have yet is a new object, tracked from `frame` on. BadRequest when the
    frame, boxes, objects or mask do not fit the run."""
    from dashboard import drawing
    from segmentation.errors import InputError
    from segmentation.masks import MAX_OBJECTS, ids_in, read_first_mask, read_mask, write_mask
    from segmentation.prompts import Box

    run_id, result = run.id, storage.result_dir(run.id)
    count = run.frame_count or 0
    if isinstance(frame, bool) or not isinstance(frame, int) or not 0 <= frame < count:
        raise BadRequest(f"frame {frame!r}: the video has frames 0 to {count - 1}.")
    strokes = list(strokes)
    if (boxes is None and not polygons and not strokes) == (mask is None):
        raise BadRequest("Give the correction either as boxes (with their objects) or as a mask PNG.")
    size = (run.width, run.height)
    annotations = result / "state" / "annotations"
    given = annotations / f"{frame:05d}.png"
    labels = read_mask(given) if given.exists() else np.zeros(size[::-1], np.uint8)
    try:
        if mask is None:
            if boxes is None and (polygons or strokes):
                boxes, objects = [], objects or []
            if not isinstance(boxes, list) or not (boxes or polygons or strokes) or not isinstance(objects, list) or len(
                objects) != len(boxes):  # fmt: skip
                raise BadRequest("boxes must be a JSON list of [x0, y0, x1, y1] and objects a list of as many ids.")
            if not all(isinstance(o, int) and not isinstance(o, bool) for o in objects) or len(set(objects)) < len(
                objects):  # fmt: skip
                raise BadRequest("objects must be distinct whole ids, one per box.")
            bad = sorted(o for o in {*objects, *(o for o, _ in polygons), *(s.object_id for s in strokes)}
                         if not 1 <= o <= MAX_OBJECTS)  # fmt: skip
            if bad:
                raise BadRequest(f"object {bad[0]}: object ids go from 1 to {MAX_OBJECTS}.")
            prompts = [Box.from_list(box, object_id=o, frame=frame) for box, o in zip(boxes, objects)]
            for box in prompts:
                box.check(*size)
            video_frame = drawing.read_frame(storage.input_video(run_id), frame)
            for stroke in strokes:
                stroke.check(*size)
            labels = drawing.labels_of(video_frame, prompts, list(polygons), labels, ("run", run_id, frame), strokes)
        else:
            drawn = read_first_mask(mask, size)
            ids = ids_in(drawn)  # a colour new to the run is a new object
            labels[np.isin(labels, ids)] = 0
            labels[drawn > 0] = drawn[drawn > 0]
    except InputError as exc:
        raise BadRequest(user_message(exc, {mask: mask_name}) if mask else str(exc)) from None
    folder = storage.new_staging()
    try:
        for png in sorted(annotations.glob("*.png")):
            shutil.copyfile(png, folder / png.name)
        write_mask(folder / f"{frame:05d}.png", labels)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def start_correction(storage: Storage, runner, run_id: str, frame: int, **correction) -> int:
    """Queue the next version of a done run with one frame corrected (correction_masks); returns its number.
    RunNotFound when the run is gone, Conflict when it is not done, BadRequest for a correction that does not
    fit. The latest version stays viewable until the new one is made."""
    run = storage.get_run(run_id)
    if run.status != "done":
        raise Conflict(f"The run is {run.status}: correct it once it is done.")
    version = (run.version or 1) + 1
    folder = correction_masks(storage, run, frame, **correction)
    try:
        storage.queue_correction(run_id, folder, version)
    except ValueError as exc:
        raise Conflict(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # moved into the run when queued
    runner.submit(run_id)
    return version
