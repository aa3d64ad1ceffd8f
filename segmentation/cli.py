"""`stcnn`: segment, eval, benchmark, train and average weights from the command line.

Errors the user can fix print one line (`stcnn: error: ...`) and exit with status 2; nothing else is printed.
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import SegmentationError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is the same one line as every other error (usage stays on --help)."""

    def error(self, message: str):
        text = str(SegmentationError(message))  # escapes control characters: one line whatever was typed
        self.exit(2, f"stcnn: error: {text} (see: {self.prog} --help)\n")


def _add_option(p: argparse.ArgumentParser, name: str, flag: str | None = None) -> None:
    """A flag for one SegmentOptions field, whose type, choices, default and help come from the model, so the
    command line cannot drift from what the engine takes. A switch that is on by default becomes --no-NAME."""
    from .options import SegmentOptions, choices, expected, kind

    field = SegmentOptions.model_fields[name]
    wanted, default, listed = kind(field), field.default, choices(field)
    text = field.description.replace("%", "%%")  # argparse %-formats help
    if wanted is bool:
        flag = flag or f"--{'no-' if default else ''}{name.replace('_', '-')}"
        action = "store_false" if default else "store_true"
        p.add_argument(flag, dest=name, action=action, help=f"do not {text}" if default else text)
    else:
        flag = flag or f"--{name.replace('_', '-')}"
        shown = [expected(field)] if wanted in (int, float) else []
        shown += [f"default {default}"] if default not in (None, ()) else []
        help_text = f"{text} ({'; '.join(shown)})" if shown else text
        kwargs = {"nargs": "+"} if wanted is tuple else {"type": wanted}
        if not listed:
            kwargs["metavar"] = flag.lstrip("-").replace("-", "_").upper()  # --size SIZE, not SHORT_SIDE
        p.add_argument(flag, dest=name, choices=listed, default=default, help=help_text, **kwargs)
    p.set_defaults(option_flags={**(p.get_default("option_flags") or {}), name: flag})


def _options(args: argparse.Namespace):
    """The SegmentOptions the command line asks for; a bad value is named by its flag (--size, not short_side)."""
    from .errors import InputError
    from .options import OptionError, SegmentOptions

    flags = args.option_flags
    try:
        return SegmentOptions.of({name: getattr(args, name) for name in flags})
    except OptionError as error:
        raise InputError(f"{flags[error.option]}: {error.problem}") from None


def _segment(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from .errors import InputError
    from .pipeline import segment
    from .prompts import Box

    options = _options(args)
    bar: tqdm | None = None
    bar_stage = ""  # kept here: a disabled tqdm (no terminal) has no .desc

    def progress(p) -> None:  # one bar per stage; the previous stage's bar is closed when the next starts
        nonlocal bar, bar_stage
        if bar is not None and bar_stage != p.stage:
            bar.close()
            bar = None
        if p.stage in ("decode", "done"):  # decode is a 0/1 placeholder: a bar would precede any input error
            return
        if bar is None:
            unit = "it" if p.stage == "online training" else "frame"
            # disable=None: no bars when stderr is not a terminal, so logs and pipes get only the one-line error.
            bar = tqdm(total=p.total, desc=p.stage, unit=unit, dynamic_ncols=True, disable=None)
            bar_stage = p.stage
        bar.total = max(bar.total or 0, p.total)
        bar.update(p.done - bar.n)

    if args.mask is not None and args.box:
        raise InputError("give the objects either as a mask or as --box, not both")
    if args.mask is None and not args.box:
        raise InputError(
            "give the objects to track: a mask PNG (or a folder of masks), or --box X0,Y0,X1,Y1 each"
        )
    boxes = [Box.parse(text, object_id=i) for i, text in enumerate(args.box, start=1)]
    try:
        summary = segment(
            args.video, args.mask, args.out, options, progress, boxes=boxes, previous=args.previous
        )
    except BaseException:
        if bar is not None:
            bar.leave = False  # erase the unfinished bar: the error line is what the user needs to see
            bar.close()
        raise
    if bar is not None:
        bar.close()
    t = summary["timings_s"]
    print(
        f"{summary['video']['frame_count']} frames, {len(summary['objects'])} object(s) -> {args.out}  "
        f"(online training {t['online_training']:.1f} s, propagation {summary['propagation_fps']:.1f} frames/s, "
        f"total {t['total']:.1f} s on {summary['device']})"
    )
    if summary["previous"]:
        reused = summary["previous"]
        print(f"version {summary['version']}: {reused['reused_frames']} frames kept from version {reused['version']}, "
              f"{reused['recomputed_frames']} segmented again"
              + (f" (the correction had faded by frame {reused['settled_at']})" if reused.get("settled_at") is not None else ""))  # fmt: skip
    if len(summary["mask_frames"]) > 1:
        starts = ", ".join(f"{k} from frame {v}" for k, v in summary["object_start_frames"].items())
        print(f"masks at frames {', '.join(map(str, summary['mask_frames']))}; objects: {starts}")
    for retry in summary.get("retries", []):
        size = "x".join(map(str, retry["internal_size"]))
        print(
            f"note: {retry['error']} on {retry['device']} at internal size {size}; retried, see summary.json"
        )


def _eval(args: argparse.Namespace) -> None:
    from .evaluate import evaluate_dataset

    table, mean = evaluate_dataset(args.data, args.pred, args.sequences or None)
    shown = table.copy()
    for column in ("J", "F", "JF"):
        shown[column] = (100 * shown[column]).round(1)
    print(shown.to_string(index=False))
    print(f"mean over {mean['sequences']} sequence(s): J {100 * mean['J']:.1f}  F {100 * mean['F']:.1f}  "
          f"J&F {100 * mean['JF']:.1f}")  # fmt: skip


def _benchmark(args: argparse.Namespace) -> None:
    from .benchmark import run_benchmark

    run_benchmark(
        args.data, args.sequences or None, _options(args), out=args.out, baseline=not args.no_baseline
    )


def _train(args: argparse.Namespace) -> None:
    from .train import TrainConfig, train

    config = TrainConfig(
        data=args.data, out=args.out, val=args.val, temporal_iters=args.temporal_iters,
        joint_iters=args.joint_iters, batch=args.batch, checkpoint_every=args.checkpoint_every,
        max_hours=args.max_hours, stop_after=args.stop_after, export=args.export, synthetic=args.synthetic, distractors=args.distractors,
        new_backgrounds=args.new_backgrounds, prompts=args.prompts, init=args.init, figures=args.figures,
        by_error=args.by_error, val_online=args.val_online, still=args.still, riders=args.riders,
    )  # fmt: skip
    train(config, device=args.device, resume=args.resume, resume_from=args.resume_from)


def _average(args: argparse.Namespace) -> None:
    from .weights import average_weights, save_weights

    model, meta = average_weights(args.first, args.second, args.share)
    save_weights(model, args.out, meta)
    print(f"{args.out}: {1 - args.share:g} x {args.first} + {args.share:g} x {args.second}")


def parser() -> argparse.ArgumentParser:
    from .options import DEVICES

    top = _Parser(prog="stcnn", description="STCNN video object segmentation")
    sub = top.add_subparsers(dest="command", required=True)

    def model_options(p: argparse.ArgumentParser) -> None:
        for name in ("device", "runtime", "preset", "online_seconds"):
            _add_option(p, name)
        _add_option(p, "short_side", "--size")
        _add_option(p, "weights")

    p = sub.add_parser("segment", help="segment a video from its first-frame mask or boxes (and later masks)")
    p.add_argument("video", help="video file, or a folder of JPEG/PNG frames sorted by name")
    p.add_argument("mask", nargs="?", help="first-frame mask: binary 0/255 PNG, or palette PNG with object ids "
                   "1..N; or a folder of such masks named by frame (00000.png, 00005.png, ...) for objects that "
                   "appear later, and corrections: a known id drawn again at a later frame")  # fmt: skip
    p.add_argument("--box", action="append", default=[], metavar="X0,Y0,X1,Y1",
                   help="instead of a mask: a box around an object in frame 0 (pixels, inclusive); once per "
                   "object, ids 1..N in the order given")  # fmt: skip
    p.add_argument("-o", "--out", required=True, help="output folder (must not exist, unless --overwrite)")
    p.add_argument("--previous", metavar="OUT_BEFORE", default=None,
                   help="an earlier result of this video: keep what the new masks cannot change, segment the rest")  # fmt: skip
    for name in ("fps", "binarize", "overwrite", "gate", "match"):
        _add_option(p, name)
    model_options(p)
    p.set_defaults(run=_segment)

    p = sub.add_parser("eval", help="DAVIS J&F of predicted masks against ground truth")
    p.add_argument("data", help="ground truth in DAVIS layout: <seq>/masks/*.png")
    p.add_argument("pred", help="predictions: <seq>/*.png or <seq>/masks/*.png")
    p.add_argument("--sequences", nargs="*", help="only these sequences")
    p.set_defaults(run=_eval)

    p = sub.add_parser("benchmark", help="segment every sequence and print accuracy and speed")
    p.add_argument("data", help="DAVIS layout: <seq>/frames/*.jpg and <seq>/masks/*.png")
    p.add_argument("--sequences", nargs="*", help="only these sequences")
    p.add_argument("--out", default=None, help="also keep the predicted masks here")
    p.add_argument("--no-baseline", action="store_true", help="skip the optical-flow baseline")
    _add_option(p, "gate")
    _add_option(p, "ablate")
    model_options(p)
    p.set_defaults(run=_benchmark)

    p = sub.add_parser("train", help="train the model (temporal pretraining, then the joint stage)")
    p.add_argument("data", nargs="+", help="DAVIS-layout folders")
    p.add_argument("--out", default="checkpoints", help="checkpoint folder")
    p.add_argument("--val", nargs="*", default=[], help="sequences kept aside for validation")
    p.add_argument("--temporal-iters", type=int, default=1500)
    p.add_argument("--joint-iters", type=int, default=6000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--max-hours", type=float, default=0.0,
                   help="the whole run's hours over every sitting: the schedule decays by them, then it stops")  # fmt: skip
    p.add_argument("--stop-after", type=float, default=0.0, metavar="HOURS",
                   help="end this sitting with a checkpoint after this long; the schedule is not shortened")  # fmt: skip
    p.add_argument("--export", default="",
                   help="keep the fp16 weights here, with the run's place (written at every checkpoint)")  # fmt: skip
    p.add_argument("--synthetic", type=int, default=0, help="add this many synthetic sequences to the data")
    p.add_argument("--distractors", type=float, default=0.0,
                   help="share of samples (0-1) with another sequence's object pasted in as a distractor")  # fmt: skip
    p.add_argument("--new-backgrounds", type=float, default=0.0,
                   help="share of samples (0-1) with the target moved onto another sequence's background")  # fmt: skip
    p.add_argument("--prompts", type=float, default=0.0,
                   help="share of samples (0-1) whose prior is a box or strokes on a still frame, as prompts give")  # fmt: skip
    p.add_argument("--figures", type=int, default=0,
                   help="add this many synthetic sequences of articulated figures with thin limbs")  # fmt: skip
    p.add_argument("--riders", type=int, default=0,
                   help="add this many synthetic sequences of figures carrying a rider that is not the object")  # fmt: skip
    p.add_argument("--by-error", type=float, default=0.0,
                   help="share of samples (0-1) whose sequence is drawn by the model's recent error on it")  # fmt: skip
    p.add_argument("--still", type=float, default=0.0,
                   help="share (0-1) of the samples without a prompt prior that stand still as online training's do")  # fmt: skip
    p.add_argument("--val-online", type=int, default=0, metavar="ITERATIONS",
                   help="validate after this much online training on each sequence's first mask (CPU fast preset: 60)")  # fmt: skip
    p.add_argument("--init", default="", help="start from these weights (--temporal-iters 0: joint only)")
    p.add_argument("--resume", action="store_true", help="carry on from OUT/last.pt")
    p.add_argument("--resume-from", default="", metavar="WEIGHTS",
                   help="carry a run on from its exported weights (optimisers start again, with a warm-up)")  # fmt: skip
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.set_defaults(run=_train)

    p = sub.add_parser("average", help="average two weights files tensor by tensor (a run and where it started)")
    p.add_argument("first", help="weights, e.g. the ones a run started from")
    p.add_argument("second", help="weights, e.g. the run's own; the output keeps its metadata")
    p.add_argument("--share", type=float, default=0.5, help="the second file's share, 0-1 (default 0.5)")
    p.add_argument("-o", "--out", required=True, help="the averaged weights file")
    p.set_defaults(run=_average)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from .runtime import tune_allocator

    tune_allocator()
    try:
        args.run(args)
    except SegmentationError as error:
        print(f"stcnn: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stcnn: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # a bug, not the user's doing: still one line, the traceback only on request
        if os.environ.get("STCNN_DEBUG"):
            raise
        text = str(SegmentationError(f"{error.__class__.__name__}: {error}"))
        print(f"stcnn: error: internal error ({text}); rerun with STCNN_DEBUG=1 for details", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
