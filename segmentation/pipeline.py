"""`segment()`: one video and its masks (frame 0's, and any later frames' for objects that appear later) in;
masks, overlay video, trajectory and summary out.

Frames are streamed: each is decoded, segmented, written as a mask, drawn into the overlay and encoded before the
next is read, so memory stays flat however long the video is. Everything is written into a temporary folder
beside OUT and renamed at the end, so OUT appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from . import __version__
from .annotations import Annotations, backward_spans
from .errors import Cancelled, InputError, OutputError, SegmentationError
from .inference import model_size
from .masks import read_mask, read_masks, write_mask
from .model import DELTA
from .online import POOL, OnlineBudget, budget_for
from .options import SegmentOptions
from .paths import kind_of, user_path
from .prompts import Box, Stroke, mask_from_boxes
from .render import overlay
from .runtime import pick_device, tune_allocator
from .session import open_session
from .trajectory import frame_rows, object_stats, read_csv, write_csv
from .versions import (
    AGREE_FRAMES,
    Previous,
    agrees,
    before_carried_masks,
    changed_frames,
    first_changed,
    keep_frame,
    load_previous,
    overlay_reuse,
    save_annotation,
    save_decoder,
    save_forward,
)
from .video import SpliceError, VideoWriter, iter_frames, probe
from .weights import load_for_inference, weights_path

log = logging.getLogger(__name__)
END = object()  # the end of a frame iterator, whose frames may be None (iter_frames' `only`)
STAGES = ("decode", "online training", "propagation", "encode", "done")
# The overlay is for watching in a browser: 4K/8K sources are drawn at this long side (masks keep full size),
# which keeps the encoder's memory and time bounded and the H.264 level playable everywhere.
OVERLAY_LONG_SIDE = 1920

# Fault injection for tests: when set, called as fault_hook(stage) at the start of online training and before
# each frame's propagation ("online training", "propagation"); raising there (e.g. torch.cuda.OutOfMemoryError)
# exercises the recovery paths without a GPU. None in normal use.
fault_hook: Callable[[str], None] | None = None


@dataclass
class Progress:
    stage: str
    done: int
    total: int
    eta_s: float | None = None
    preview: np.ndarray | None = field(default=None, repr=False)  # latest overlay frame, about once a second


def _as_options(options) -> SegmentOptions:
    """SegmentOptions, or a dict of its fields (as a JSON body gives them)."""
    return SegmentOptions.of(options)


def check_options(options: SegmentOptions) -> None:
    """Checks the options again (the model checks them when made): InputError for the first bad one."""
    SegmentOptions.of(dict(_as_options(options)))


def _hidden(out_dir: Path, kind: str) -> Path:
    """A hidden sibling of OUT (".OUT.partial-1a2b3c4d"); a long OUT name is cut so this name fits too."""
    stem = os.fsencode(out_dir.name)[:200].decode("utf-8", "ignore")
    return out_dir.parent / f".{stem}.{kind}-{uuid.uuid4().hex[:8]}"


def _check_out_dir(out_dir, overwrite: bool, inputs: tuple) -> Path:
    """OUT as an absolute path, checked before anything is read; raises InputError or OutputError."""
    # abspath folds "x/.." and "." into a real name, so the hidden siblings land beside OUT, not inside it.
    path = Path(os.path.abspath(user_path(out_dir, "output folder")))
    if path.parent == path:
        raise InputError(f"output folder cannot be the root of the file system: {path}")
    kind = kind_of(path)
    if kind == "file":
        raise InputError(f"output folder {path} exists and is a file, not a folder")
    if kind == "folder":
        if not overwrite:
            raise InputError(f"output folder already exists: {path} (use --overwrite to replace it)")
        for given in inputs:
            given = Path(os.path.abspath(given))
            if given == path or path in given.parents:
                raise InputError(
                    f"output folder {path} holds the input {given.name}; replacing it would delete that: "
                    "choose another output folder"
                )
    try:  # prove the folder can be made before the model is loaded
        path.parent.mkdir(parents=True, exist_ok=True)
        trial = _hidden(path, "partial")
        trial.mkdir()
        trial.rmdir()
    except OSError as e:
        # mkdir says "File exists" when a parent is a file: name the file instead.
        blocker = next((p for p in path.parents if os.path.lexists(p)), None)
        why = f"{blocker} is a file, not a folder" if blocker and not blocker.is_dir() else e.strerror or e
        raise OutputError(f"cannot create the output folder {path}: {why}") from e
    return path


# A correction's online training (with --previous) is this fraction of the preset's, on top of the previous decoder.
CORRECTION_SHARE = 3
# ... in which each changed annotated frame takes this many more turns in the pool than the unchanged ones, which
# the decoder has learnt already (the comparison is in weights/README.md).
CORRECTION_FOCUS = 2


def overlay_size(width: int, height: int) -> tuple[int, int]:
    """The overlay video's size: the video's own, or scaled down to OVERLAY_LONG_SIDE for 4K/8K."""
    scale = OVERLAY_LONG_SIDE / max(width, height)
    if scale >= 1:
        return width, height
    return max(2, round(width * scale)), max(2, round(height * scale))


def _fallbacks(device: torch.device, short_side: int) -> list[tuple[torch.device, int]]:
    """What to try, in order, after the GPU runs out of memory: a lower internal resolution, then the CPU."""
    plans = [(device, short_side // 2)] if short_side // 2 >= 64 else []
    if device.type == "cuda":
        plans.append((torch.device("cpu"), short_side))
    return plans


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def segment(
    video: str | os.PathLike,
    masks: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    options: SegmentOptions | dict | None = None,
    progress: Callable[[Progress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    boxes: Sequence[Box] = (),
    previous: str | os.PathLike | None = None,
    strokes: Sequence[Stroke] = (),
) -> dict:
    """Segments every frame of `video` from the objects in `masks`: frame 0's mask PNG, or a folder of mask PNGs
    named by frame (00000.png, 00005.png, ...; see masks.read_masks) for objects that appear later, and/or `boxes`
    (prompts.Box: one per object and frame) and `strokes` (prompts.Stroke: positive or negative scribbles that
    refine them), made into masks by the model. A known object given again at a later
    frame is a correction, which reaches backward too (annotations.py). `previous`: an earlier result of this video,
    of which only what the changed annotations reach is segmented again (versions.py). Returns the summary (also in
    OUT/summary.json). Raises InputError, WeightsError or Cancelled with a one-line message."""
    options = SegmentOptions.of(options)  # checked when made
    tune_allocator()  # process-wide and idempotent: every entry point (CLI, dashboard job, Celery) gets it
    video = user_path(video, "video")
    mask_source = user_path(masks, "mask") if masks is not None else None
    inputs = (video, *(p for p in (mask_source, previous) if p is not None))
    out_dir = _check_out_dir(out_dir, options.overwrite, inputs)
    report = progress or (lambda p: None)
    started = time.perf_counter()

    report(Progress("decode", 0, 1))
    info = probe(video, fps=options.fps)
    prompted_first = any(p.frame == 0 for p in [*boxes, *strokes])  # then masks may start at a later frame
    given = None if mask_source is None else read_masks(
        mask_source, (info.width, info.height), info.frame_count, info.frame_names if info.is_folder else (),
        options.binarize, require_first=not prompted_first,
    )  # fmt: skip
    given = Annotations.of(given, list(boxes), (info.width, info.height), info.frame_count, strokes)
    earlier = load_previous(previous, info, options) if previous is not None else None
    device = pick_device(options.device)
    short_side = options.short_side
    retries: list[dict] = []
    while True:
        try:
            summary = _segment_once(
                video, info, given, out_dir, options, device, short_side, report, cancel, started, retries,
                earlier if short_side == options.short_side else None,  # after an out-of-memory retry: all frames
            )  # fmt: skip
            break
        except torch.cuda.OutOfMemoryError as error:
            plans = _fallbacks(device, short_side)
            size = list(model_size(info.width, info.height, short_side))
            if not plans:
                raise SegmentationError(
                    f"out of GPU memory at internal size {size[0]}x{size[1]} even after {len(retries)} retries"
                ) from error
            retries.append(
                {
                    "device": device.type,
                    "short_side": short_side,
                    "internal_size": size,
                    "error": "out of GPU memory",
                }
            )
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            device, short_side = plans[0]
        except MemoryError as error:
            raise SegmentationError(
                f"out of memory ({info.width}x{info.height} video); free memory or lower --size"
            ) from error
    report(Progress("done", summary["video"]["frame_count"], summary["video"]["frame_count"], 0.0))
    return summary


def _segment_once(
    video: Path,
    info,
    annotations: Annotations,
    out_dir: Path,
    options: SegmentOptions,
    device: torch.device,
    short_side: int,
    report: Callable[[Progress], None],
    cancel: Callable[[], bool] | None,
    started: float,
    retries: list[dict],
    previous: Previous | None = None,
) -> dict:
    """One attempt: loads the model on `device`, runs at `short_side` and publishes OUT. With `previous` (an earlier
    result of this video, versions.py) only the frames the changed annotations can reach are segmented again."""
    timings = {"decode": 0.0, "online_training": 0.0, "propagation": 0.0, "write_masks": 0.0, "render": 0.0}
    model, weights_meta = load_for_inference(options.weights, device, options.ablate)
    if previous is not None:
        model.decoder.load_state_dict(previous.decoder_state())  # as online training left it for that version
    size = model_size(info.width, info.height, short_side)
    shown = overlay_size(info.width, info.height)
    spans = in_effect = backward_spans(annotations.ids)  # `spans`: the passes this run makes (--previous: fewer)

    def check_cancel() -> None:
        if cancel and cancel():
            raise Cancelled("run cancelled")

    tmp = _hidden(out_dir, "partial")
    try:
        (tmp / "masks").mkdir(parents=True)
        # Boxes made into masks, the annotated frames for online training and the frames reverse passes need,
        # all before the model is fine-tuned.
        examples, cached = _read_annotated(video, info, annotations, spans, model, device, size, options, report,
                                           check_cancel, timings, previous)  # fmt: skip
        object_ids = annotations.object_ids
        for frame in annotations.frames:
            save_annotation(tmp, frame, annotations.at(frame))

        budget = budget_for(options.preset, device, options.online_seconds)
        if previous is not None:
            # A new version carries on from the decoder as online training left it for the previous one, on every
            # annotated frame (the corrected ones too) for a share of the preset: a correction then also teaches
            # the model what the object looks like there, for a fraction of a first run's cost.
            budget = OnlineBudget(budget.seconds / CORRECTION_SHARE, budget.iterations // CORRECTION_SHARE)
        t = time.perf_counter()
        if fault_hook:
            fault_hook("online training")

        def online_progress(done: int, total: int) -> None:
            elapsed = time.perf_counter() - t
            # The time left at the speed measured so far (the iterations are fixed; the cap rarely bites).
            eta = (total - done) * elapsed / done if done else None
            report(Progress("online training", done, total, eta))
            check_cancel()

        report(Progress("online training", 0, budget.iterations))
        changed = changed_frames(previous, annotations) if previous else []
        learnt = [frame for frame, _ in _example_frames(annotations)]  # the frames of `examples`, in order
        # A new version: the changed frames take more turns (the decoder has learnt the others already).
        shares = [1 + CORRECTION_FOCUS * (frame in changed) for frame in learnt]
        session = open_session(model, device, size, options, examples, budget, online_progress, shares)
        segmenter = session.segmenter  # the reverse passes fork it and --previous resumes it
        online = {**session.online_training, "objects": object_ids, "annotated_frames": learnt}
        if previous is not None:
            online["reused_from_version"] = previous.version
        save_decoder(tmp, model.decoder)
        timings["online_training"] = time.perf_counter() - t

        def mask_path(index: int) -> Path:
            names = info.frame_names
            name = names[index] if info.is_folder and index < len(names) else f"{index:05d}"
            return tmp / "masks" / f"{name}.png"

        # With a previous version: its masks are kept before `resume_at`, and the forward pass resumes there; it
        # stops (`settled`) where it gives the previous result again after the last changed annotation.
        resume_at = first_changed(previous, changed, max(info.frame_count, 1)) if previous else 0
        if changed:  # a resumed segmenter carries no masks: it starts where those still carried there were given
            resume_at = before_carried_masks(resume_at, annotations.frames)
        settle_after = changed[-1] if changed else None
        spans = [span for span in spans if span.frame >= resume_at]
        kept: dict[
            int, tuple[np.ndarray, np.ndarray]
        ] = {}  # annotated frames before resume_at, at model size
        recent: list[np.ndarray] = []
        reverse_frames = sum(span.frame - 1 - span.stop for span in spans)
        total = max(info.frame_count, 1) + reverse_frames
        rows: list[dict] = []
        count = stepped = agreeing = 0
        settled = None
        last_preview = 0.0
        propagation_started = time.perf_counter()
        # Without corrections the overlay is drawn as the masks come; with them, after the reverse passes.
        with (
            VideoWriter(tmp / "overlay.mp4", *shown, info.fps)
            if not spans and previous is None
            else contextlib.nullcontext() as writer
        ):
            # Before resume_at only the annotated frames and the last DELTA are looked at (resume's state).
            annotated = set(annotations.frames)
            frames = iter_frames(video, fps=options.fps,
                                 only=lambda index: index >= resume_at - DELTA or index in annotated)  # fmt: skip
            t = time.perf_counter()
            frame = next(frames, END)
            timings["decode"] += time.perf_counter() - t
            if frame is END:
                raise InputError(f"no frames could be decoded from {video}")
            while frame is not END:
                check_cancel()
                if count < resume_at:  # unchanged since the previous version
                    keep_frame(previous, tmp, count, mask_path(count).name)
                    if frame is not None:
                        small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
                        if count in annotated:
                            kept[count] = (small, annotations.at(count))
                        if count >= resume_at - DELTA:
                            recent = [*recent[-(DELTA - 1) :], small]
                    count += 1
                    report(Progress("propagation", count, total))
                    frame = next(frames, END)
                    continue
                if count == resume_at and count > 0:
                    segmenter.resume(count, kept, recent, previous.forward_ids(count - 1))
                if fault_hook:
                    fault_hook("propagation")
                t = time.perf_counter()
                labels = session.step(frame, annotations.at(count))
                timings["propagation"] += time.perf_counter() - t
                stepped += 1

                t = time.perf_counter()
                write_mask(mask_path(count), labels)
                ids = segmenter.state.model_size_ids()
                save_forward(tmp, count, ids)
                timings["write_masks"] += time.perf_counter() - t
                if settle_after is not None and count > settle_after:
                    agreeing = agreeing + 1 if agrees(ids, previous.forward_ids(count)) else 0
                    # Not inside a later reverse pass's reach: those frames keep the previous result whole.
                    if agreeing >= AGREE_FRAMES and all(s.stop >= count for s in spans if s.frame > count):
                        settled = count

                now = time.perf_counter()
                preview_due = now - last_preview > 1.0 or count == 0
                t = time.perf_counter()
                drawn = _draw(frame, labels, shown) if writer is not None or preview_due else None
                if writer is not None:
                    writer.write(drawn)
                    rows.extend(frame_rows(count, count / info.fps, labels, object_ids))
                timings["render"] += time.perf_counter() - t

                count += 1
                total = max(total, count + reverse_frames)
                rate = count / max(now - propagation_started, 1e-6)
                if preview_due:
                    last_preview = now
                report(
                    Progress(
                        "propagation", count, total, (total - count) / rate, drawn if preview_due else None
                    )
                )
                if settled is not None:
                    break

                t = time.perf_counter()
                frame = next(frames, END)
                timings["decode"] += time.perf_counter() - t
            getattr(frames, "close", lambda: None)()
            if settled is not None:  # the correction has faded: the rest is the previous version's
                spans = [span for span in spans if span.frame <= settled]
                reverse_frames = sum(span.frame - 1 - span.stop for span in spans)
                for index in range(count, previous.frame_count):
                    keep_frame(previous, tmp, index, mask_path(index).name)
                count = max(count, previous.frame_count)
                total = count + reverse_frames
            if writer is not None:
                report(Progress("encode", count, count))
                t = time.perf_counter()
        if writer is not None:
            timings["render"] += time.perf_counter() - t  # closing the writer flushes the encoder

        done = count
        for span in spans:
            done = _reverse_pass(span, segmenter, annotations, cached, mask_path, (info.width, info.height),
                                 timings, check_cancel, lambda n: report(Progress("propagation", n, total)), done)  # fmt: skip
        overlay_reused = 0
        if writer is None:
            rows, overlay_reused = _render(video, options, info, shown, count, mask_path, object_ids, tmp, timings,
                                           report, previous)  # fmt: skip
        cached.clear()

        write_csv(rows, tmp / "trajectory.csv")
        # Frames segmented again: forward from where it resumed, and back from each correction (a reverse pass
        # may redo frames kept from the previous version, or ones the forward pass did too: each counts once).
        recomputed = set(range(resume_at, resume_at + stepped))
        for span in spans:
            recomputed.update(range(span.stop + 1, span.frame))
        timings["total"] = time.perf_counter() - started
        summary = {
            "engine": f"stcnn {__version__}",
            # Each correction run from a previous result is a new version of it (versions.py).
            "version": previous.version + 1 if previous else 1,
            "previous": None
            if previous is None
            else {
                "version": previous.version,
                "reused_frames": count - len(recomputed),
                "recomputed_frames": len(recomputed),
                # Where the forward pass gave the previous result again and stopped (None: it ran to the end).
                "settled_at": settled,
                # Frames of the overlay and trajectory copied from it, not drawn again (versions.overlay_reuse).
                "overlay_reused_frames": overlay_reused,
            },  # fmt: skip
            "video": {
                "source": Path(video).name,
                "width": info.width,
                "height": info.height,
                "fps": info.fps,
                "frame_count": count,
                "codec": info.codec,
                "rotation": info.rotation,
            },
            "objects": object_ids,
            # Frames the user gave a mask or boxes for, and the frame where each object id first appears.
            "mask_frames": annotations.frames,
            "object_start_frames": {str(k): v for k, v in sorted(annotations.starts.items())},
            "boxes": [asdict(box) for box in annotations.boxes],
            "strokes": [asdict(stroke) for stroke in annotations.strokes],
            # Corrections: each reverse pass whose result the masks hold (made by this run or kept from the previous
            # version's), and per object the last frame that kept the forward result.
            "corrections": [
                {"frame": span.frame, "objects": {str(k): v for k, v in span.midpoints.items()}}
                for span in in_effect
            ],
            "model": {
                "name": "STCNN (EfficientNet-Lite0)",
                # The file's name only: summary.json is served and downloaded, so it names no server path.
                "weights": Path(options.weights or weights_path()).name,
                "weights_meta": {
                    k: weights_meta.get(k) for k in ("version", "trained", "stage", "iteration")
                },
                "internal_size": list(size),
                "runtime": segmenter.encode.runtime,  # what ran the frozen part (segmentation/frozen.py)
                "precision": segmenter.encode.precision,
            },
            "overlay_size": list(shown),
            # Earlier attempts that ran out of GPU memory, each with the device and size it had.
            "retries": retries,
            "device": _device_name(device),
            "options": {**options.model_dump(), "weights": options.weights and Path(options.weights).name},
            "online_training": online,
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
            "propagation_fps": round((stepped + reverse_frames) / max(timings["propagation"], 1e-6), 2),
            "object_stats": {
                str(k): v for k, v in object_stats(read_csv(tmp / "trajectory.csv"), info.fps).items()
            },
        }
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
        _publish(tmp, out_dir)
    except OSError as error:
        # Reads fail as InputError or WeightsError, so this is a write: disk full, file size limit, read-only.
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write the results to {out_dir}: {error.strerror or error}") from error
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary


def _draw(frame: np.ndarray, labels: np.ndarray, shown: tuple[int, int]) -> np.ndarray:
    """The overlay frame at the overlay's size."""
    if shown == (frame.shape[1], frame.shape[0]):
        return overlay(frame, labels)
    return overlay(
        cv2.resize(frame, shown, interpolation=cv2.INTER_AREA),
        cv2.resize(labels, shown, interpolation=cv2.INTER_NEAREST),
    )


def _example_frames(annotations: Annotations) -> list[tuple[int, list[int]]]:
    """The annotated frames online training learns from: all of them, or POOL spread evenly over them."""
    frames = annotations.frames
    if len(frames) > POOL:
        frames = [frames[round(i * (len(frames) - 1) / (POOL - 1))] for i in range(POOL)]
    return [(frame, annotations.ids[frame]) for frame in frames]


def _read_annotated(
    video, info, annotations, spans, model, device, size, options, report, check_cancel, timings, previous=None
):
    """Decodes up to the last annotated frame: makes the boxes into masks on their frames (or keeps the previous
    version's where its prompts there are the same), and returns the (frame, labels) examples for online training
    at the model's size and {frame: model-size frame} for the reverse passes."""
    wanted = {frame for frame, _ in _example_frames(annotations)}
    reverse = {t for span in spans for t in range(span.stop + 1, span.frame + 1)}
    last = annotations.frames[-1]
    examples, cached = [], {}
    t = time.perf_counter()
    needed = reverse | set(annotations.frames)
    frames = iter_frames(video, fps=options.fps, only=needed.__contains__)
    index = -1
    try:
        for index, frame in enumerate(frames):
            if index in annotations.frames:
                prompts = [*annotations.boxes_at(index), *annotations.strokes_at(index)]
                if prompts and previous is not None and previous.made_from_same_prompts(index, prompts):
                    annotations.resolve(index, previous.annotation(index))
                elif prompts:
                    made = mask_from_boxes(
                        model, device, frame, annotations.boxes_at(index), size, annotations.strokes_at(index)
                    )
                    annotations.resolve(index, made)
                if index in wanted:
                    labels = annotations.at(index)
                    examples.append((cv2.resize(frame, size, interpolation=cv2.INTER_AREA),
                                     cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)))  # fmt: skip
            if index in reverse:
                cached[index] = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            if last:
                report(Progress("decode", index + 1, last + 1))
                check_cancel()
            if index >= last:
                break
        else:
            if index < 0:
                raise InputError(f"no frames could be decoded from {video}")
            if index < last:
                late = [p for p in [*annotations.boxes, *annotations.strokes] if p.frame > index]
                what = f"{type(late[0]).__name__.lower()} for object {late[0].object_id}" if late else annotations.masks.later[last].name
                raise InputError(
                    f"{what}: names frame {last}, but the video has only {index + 1} frame(s) (0 to {index})"
                )
    finally:
        getattr(frames, "close", lambda: None)()
        timings["decode"] += time.perf_counter() - t
    return examples, cached


def _reverse_pass(
    span, forward, annotations, cached, mask_path, out_size, timings, check_cancel, report, done
):
    """Segments the frames before a correction again, from it backwards; each keeps the nearer annotation's
    result for the corrected objects. Returns the propagation frames done so far."""
    starts = annotations.starts
    known = sum(1 for o in forward.state.object_ids if starts[o] <= span.frame)
    backward = forward.fork(known, span.frame)
    start = read_mask(mask_path(span.frame))  # the correction with the other objects as propagated there
    backward.step(cached[span.frame], start, out_size=out_size, remember=False)
    for index in range(span.frame - 1, span.stop, -1):
        check_cancel()
        t = time.perf_counter()
        labels = backward.step(cached[index], out_size=out_size)
        timings["propagation"] += time.perf_counter() - t
        t = time.perf_counter()
        merged = read_mask(mask_path(index))
        for object_id, midpoint in span.midpoints.items():
            if index > midpoint:
                merged[merged == object_id] = 0
                merged[labels == object_id] = object_id
        write_mask(mask_path(index), merged)
        timings["write_masks"] += time.perf_counter() - t
        done += 1
        report(done)
    return done


def _render(video, options, info, shown, count, mask_path, object_ids, tmp, timings, report, previous=None):
    """The overlay video and trajectory rows from the final masks (after corrections changed earlier frames), and
    how many frames of them were copied from `previous` (versions.overlay_reuse) instead of drawn again."""
    t = time.perf_counter()
    reuse = None
    if previous is not None:
        try:
            names = [mask_path(index).name for index in range(count)]
            reuse = overlay_reuse(previous, tmp / "masks", names, object_ids, shown)
        except (InputError, ValueError, av.FFmpegError) as error:  # its files cannot be read
            log.warning("drawing the whole overlay again: %s", error)
    try:
        rows = _draw_overlay(video, options, info, shown, count, mask_path, object_ids, tmp, report, reuse)
    except SpliceError as error:  # the previous overlay would not splice after all
        log.warning("drawing the whole overlay again: %s", error)
        reuse = None
        rows = _draw_overlay(video, options, info, shown, count, mask_path, object_ids, tmp, report, None)
    timings["render"] += time.perf_counter() - t
    return rows, 0 if reuse is None else count - (reuse.stop - reuse.start)


def _draw_overlay(video, options, info, shown, count, mask_path, object_ids, tmp, report, reuse):
    start, stop = (reuse.start, reuse.stop) if reuse else (0, count)
    rows: list[dict] = []
    with VideoWriter(tmp / "overlay.mp4", *shown, info.fps) as writer:
        if reuse:
            writer.check_copy(reuse.overlay)  # before any frame is encoded
        if start > 0:
            writer.copy(reuse.overlay, 0, start)
        frames = iter_frames(video, fps=options.fps, only=lambda index: index >= start) if start < stop else iter(())
        for index, frame in zip(range(stop), frames):
            if index < start:
                continue
            labels = read_mask(mask_path(index))
            writer.write(_draw(frame, labels, shown))
            rows.extend(frame_rows(index, index / info.fps, labels, object_ids))
            report(Progress("encode", index + 1 - start, stop - start))
        getattr(frames, "close", lambda: None)()
        if stop < count:
            writer.copy(reuse.overlay, stop, count)
    return reuse.rows(rows) if reuse else rows


def _publish(tmp: Path, out_dir: Path) -> None:
    """Puts the finished folder in place; an old OUT (with --overwrite) is removed only after the new one is in."""
    if out_dir.exists():
        old = _hidden(out_dir, "old")
        out_dir.rename(old)
        try:
            tmp.rename(out_dir)
        except BaseException:
            old.rename(out_dir)  # the earlier result stays where it was
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out_dir)
