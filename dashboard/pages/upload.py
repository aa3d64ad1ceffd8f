"""New run: name, video, first-frame mask, masks for later frames, options; frame 0 with the mask drawn on it,
and where each object starts, before starting. Without a mask file, the objects are drawn instead (dashboard.drawing):
boxes and brush strokes the model makes into masks, or outlines, on frame 0 and, for an object that comes into view
later, on the frame where it does.

Files are sent by assets/upload.js in chunks to /api/uploads (not dcc.Upload, whose base64 payload breaks
on large videos); the page only receives the upload tokens.
"""

from __future__ import annotations

import base64
import shutil

import dash_bootstrap_components as dbc
from dash import Input, Output, State, dcc, html, no_update

from dashboard import drawing, ui
from dashboard.checks import in_words_of, user_message
from dashboard.context import ctx
from dashboard.runs import BadRequest, check_run_inputs, parse_options, probe_video, start_run
from dashboard.storage import RunNotFound
from segmentation.options import DEVICES, PRESETS, SegmentOptions

PATH, NAME = "/upload", "New run"
DRAW = "new"  # the drawing's id prefix
_FIELDS = SegmentOptions.model_fields  # the choices and defaults, as the engine has them
_DEVICE_LABELS = {"auto": "Automatic (GPU if any)", "cpu": "CPU", "cuda": "CUDA GPU"}


def _file_picker(kind: str, label: str, accept: str, help_text: str, multiple: bool = False) -> html.Div:
    return html.Div(
        [
            dbc.Label(label, html_for=f"{kind}-file", className="fw-semibold"),
            # assets/upload.js puts an <input type=file> in here (Dash has no plain file input component).
            html.Div(
                id=f"{kind}-file",
                className="chunked-upload",
                **{
                    "data-upload-store": f"{kind}-upload",
                    "data-upload-progress": f"{kind}-progress",
                    "data-accept": accept,
                    "data-multiple": "1" if multiple else "",
                },
            ),  # fmt: skip
            dbc.Progress(
                id=f"{kind}-progress", value=0, className="mt-2 upload-progress", style={"height": "1.1rem"}
            ),
            dbc.FormText(help_text),
            dcc.Store(id=f"{kind}-upload"),
        ],
        className="mb-3",
    )


def _device_options() -> list[dict]:
    # The GPU is no choice where the runs run on this machine and it has none (workers elsewhere may have one).
    no_gpu = getattr(ctx().runner, "has_gpu", None) is False
    return [
        {"label": _DEVICE_LABELS.get(device, device) + (" (none on this server)" if device == "cuda" and no_gpu
                                                        else ""),
         "value": device, "disabled": device == "cuda" and no_gpu}
        for device in DEVICES
    ]  # fmt: skip


def layout(**_query):
    options = dbc.Card(
        dbc.CardBody(
            [
                html.H5("Options"),
                dbc.Label("Quality", className="fw-semibold"),
                dbc.RadioItems(
                    id="preset",
                    value=_FIELDS["preset"].default,
                    inline=True,
                    options=[{"label": preset.capitalize(), "value": preset} for preset in PRESETS],
                ),  # fmt: skip
                dbc.FormText("More quality = longer tuning on the first frame.", className="d-block mb-2"),
                dbc.Label("Device", className="fw-semibold"),
                dbc.Select(
                    id="device",
                    value=_FIELDS["device"].default,
                    options=_device_options(),
                ),  # fmt: skip
                dbc.Checkbox(
                    id="binarize",
                    value=_FIELDS["binarize"].default,
                    className="mt-3",
                    label="Soft or RGB mask (grey edges, a photo editor's export): threshold it, everything painted = one object",
                ),  # fmt: skip
                dbc.Label("Time limit for tuning (seconds, optional)", className="fw-semibold mt-2"),
                # No min or max: a browser sends nothing for a number out of its bounds, which would run with the
                # preset's; the server's message says what the range is.
                # step "any": a browser also sends nothing for a value off the step (2.5 with step 1).
                dbc.Input(id="online-seconds", type="number", step="any", placeholder="from the preset"),
                dbc.FormText("Empty: the preset's. 0: no tuning, the fastest run.", className="d-block"),
                html.Hr(),
                _file_picker(
                    "gt",
                    "Ground truth (optional)",
                    ".zip",
                    "A .zip of PNG masks (00000.png, …) to score the run with J and F.",
                ),  # fmt: skip
            ]
        ),
        className="h-100",
    )
    inputs = dbc.Card(
        dbc.CardBody(
            [
                html.H5("Inputs"),
                dbc.Label("Name", html_for="run-name", className="fw-semibold"),
                dbc.Input(
                    id="run-name", placeholder="e.g. dog on the beach", className="mb-3", maxLength=200
                ),
                _file_picker(
                    "video",
                    "Video",
                    "video/*,.mp4,.mov,.avi,.mkv,.webm",
                    "Any length: the file is sent in pieces, with progress.",
                ),  # fmt: skip
                _file_picker(
                    "mask",
                    "First-frame mask (PNG)",
                    "image/png",
                    "Frame 0 with each object painted in its own colour on black; or draw the objects below.",
                ),  # fmt: skip
                _file_picker(
                    "masks",
                    "Masks at later frames (optional)",
                    ".png,.zip,image/png,application/zip",
                    "For objects that come into view later: PNGs named by frame number (00005.png = frame 5, "
                    "counting from 0), several at once or a .zip. A new colour there is a new object.",
                    multiple=True,
                ),  # fmt: skip
            ]
        ),
        className="h-100",
    )
    check = dbc.Card(
        dbc.CardBody(
            [
                html.H5("Check: the video and its objects"),
                dcc.Loading(
                    html.Div(
                        id="check-result",
                        children=html.P(
                            "Pick a video and a mask to see them together here.", className="text-muted"
                        ),
                    )
                ),  # fmt: skip
                html.Div(id="start-error"),
                dbc.Button(
                    "Start segmentation",
                    id="start-run",
                    color="primary",
                    size="lg",
                    disabled=True,
                    className="w-100 mt-2",
                ),  # fmt: skip
            ]
        ),
        className="h-100",
    )
    return html.Div(
        [
            html.H2("New run"),
            dbc.Row([dbc.Col(inputs, lg=4), dbc.Col(options, lg=3), dbc.Col(check, lg=5)], className="g-3"),
            dbc.Card(dbc.CardBody(drawing.panel(DRAW, "Draw the objects", frames=True)), className="mt-3"),
            dcc.Location(id="upload-redirect", refresh="callback-nav"),
        ]
    )


def _uploads(storage, video, mask, masks) -> dict:
    """The start_run arguments for the files picked on the page (RunNotFound when an upload has expired)."""
    return {
        "video": storage.upload_path(video["token"]),
        "video_name": video["filename"],
        "mask": storage.upload_path(mask["token"]) if mask else None,
        "mask_name": mask["filename"] if mask else "",
        "more_masks": [(storage.upload_path(m["token"]), m["filename"]) for m in masks or []],
    }


def _later_objects(facts: dict) -> list:
    """The later frames' masks in the preview: their frames, and each object that starts at one, as a chip."""
    from segmentation.masks import color_of

    if len(facts["mask_frames"]) < 2:
        return []
    shown = [html.Strong("Masks at frames "), ", ".join(map(str, facts["mask_frames"])) + ". "]
    later = sorted((frame, object_id) for object_id, frame in facts["starts"].items() if frame > 0)
    for frame, object_id in later:
        shown += [ui.object_chip(object_id, color_of(object_id)), f"from frame {frame}. "]
    if not later:
        shown.append("No new object: they redraw frame 0's objects.")
    return [html.P(shown, id="later-objects", className="mb-1")]


def register_callbacks(app) -> None:
    @app.callback(
        Output("check-result", "children"),
        Output("start-run", "disabled"),
        Input("video-upload", "data"),
        Input("mask-upload", "data"),
        Input("masks-upload", "data"),
        Input("binarize", "value"),
        prevent_initial_call=True,
    )
    def check(video, mask, masks, binarize):
        if not video:
            return no_update, True
        storage = ctx().storage
        from segmentation.errors import SegmentationError

        try:
            if not (mask or masks):  # the objects will be drawn: the video alone is checked now
                given = _uploads(storage, video, mask, masks)
                probe_video(given["video"], given["video_name"])
                hint = "Draw each object below (on frame 0, or where it comes into view), or pick a mask file."
                return html.P(hint, className="text-muted", id="draw-hint"), False
            facts, png = check_run_inputs(
                storage, **_uploads(storage, video, mask, masks), binarize=bool(binarize)
            )
        except RunNotFound:
            return dbc.Alert("The upload expired; pick the file again.", color="warning"), True
        except (SegmentationError, BadRequest) as exc:
            return dbc.Alert(
                [html.Strong("This will not work: "), in_words_of(str(exc), "page")], color="danger", id="check-error"
            ), True
        from segmentation.masks import color_of

        chips = [ui.object_chip(object_id, color_of(object_id)) for object_id in facts["objects"]]
        count = len(facts["objects"])
        return html.Div(
            [
                html.Img(
                    src="data:image/png;base64," + base64.b64encode(png).decode(), className="check-image"
                ),
                html.P(
                    [html.Strong(f"{count} object{'s' if count != 1 else ''} found: "), *chips],
                    id="objects-found",
                    className="mt-2 mb-1",
                ),  # fmt: skip
                *_later_objects(facts),
                html.P(
                    f"{facts['width']}×{facts['height']} px · {facts['frame_count']} frames · "
                    f"{facts['fps']:.3g} fps",
                    className="text-muted",
                ),  # fmt: skip
            ]
        ), False

    @app.callback(
        Output("upload-redirect", "href"),
        Output("start-error", "children"),
        Input("start-run", "n_clicks"),
        State("run-name", "value"),
        State("video-upload", "data"),
        State("mask-upload", "data"),
        State("masks-upload", "data"),
        State("gt-upload", "data"),
        State("preset", "value"),
        State("device", "value"),
        State("binarize", "value"),
        State("online-seconds", "value"),
        State(f"{DRAW}-drawing", "data"),
        prevent_initial_call=True,
    )
    def start(_clicks, name, video, mask, masks, gt, preset, device, binarize, online_seconds, drawn):
        from segmentation.errors import SegmentationError

        storage = ctx().storage
        staging = None
        try:
            options = parse_options({"preset": preset, "device": device, "binarize": bool(binarize),
                                     "online_seconds": online_seconds})  # fmt: skip
            if not video:
                raise BadRequest("Pick the video first.")
            given = _uploads(storage, video, mask, masks)
            if mask or masks:
                if drawn:
                    raise BadRequest("You picked a mask file and drew objects: clear the drawing or the mask.")
            else:
                staging = storage.new_staging()
                given.update(_drawn_objects(storage, video, drawn, staging))
            run_id = start_run(
                storage, ctx().runner, **given, name=name or "", options=options,
                gt_zip=storage.upload_path(gt["token"]) if gt else None,
            )  # fmt: skip
        except (SegmentationError, BadRequest) as exc:
            # The uploads stay where they are: fix one input and press Start again.
            return no_update, dbc.Alert(in_words_of(str(exc), "page"), color="danger")
        except (RunNotFound, TypeError):
            return no_update, dbc.Alert(
                "An upload is missing or expired; pick the files again.", color="warning"
            )
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        for upload in (video, mask, gt, *(masks or [])):
            if upload:
                storage.discard_upload(upload["token"])
        return f"/run?id={run_id}", None

    drawing.register(app, DRAW, _upload_frame)

    @app.callback(
        Output(f"{DRAW}-source", "data"),
        Output(f"{DRAW}-frame", "max"),
        Output(f"{DRAW}-frame", "marks"),
        Output(f"{DRAW}-frame", "value"),
        Input("video-upload", "data"),
        prevent_initial_call=True,
    )
    def show_frame(video):
        from dashboard.pages.player import slider_marks

        if not video:
            return None, 0, None, 0
        count = _frame_count(video)
        return {"token": video["token"], "filename": video["filename"]}, max(count - 1, 0), slider_marks(count), 0


def _frame_count(video: dict) -> int:
    """The uploaded video's frames, for the drawing's slider (1 when it cannot be read: the check says why)."""
    from segmentation.errors import SegmentationError
    from segmentation.video import probe

    try:
        return max(int(probe(ctx().storage.upload_path(video.get("token"))).frame_count or 1), 1)
    except (SegmentationError, RunNotFound, OSError):
        return 1


def _upload_frame(source: dict, index: int = 0):
    """Frame `index` of the uploaded video, for the drawing."""
    from segmentation.errors import SegmentationError

    storage = ctx().storage
    try:
        path = storage.upload_path(source.get("token"))
    except RunNotFound:
        raise BadRequest("The upload expired; pick the video again.") from None
    try:
        frame = drawing.read_frame(path, index)
    except SegmentationError as exc:  # named after the user's file, not the upload's stored part
        raise type(exc)(user_message(exc, {path: source.get("filename") or "the video"})) from None
    return frame, None, ("upload", source["token"], index)


def _drawn_objects(storage, video: dict, drawn: list | None, staging) -> dict:
    """start_run's arguments for what was drawn: boxes and strokes for the model, or, with outlines among them,
    each drawn frame's mask as shown (the model's masks with the outlines painted in), written into `staging`."""
    from segmentation.masks import write_mask

    drawn = drawn or []
    frames = drawing.frames_of(drawn)
    if not frames:
        raise BadRequest("Nothing is drawn: draw each object on the frame (box, outline or paint), or pick a mask file.")
    if frames[0] != 0:
        raise BadRequest(f"Nothing is drawn on frame 0: the run starts there. Draw what is in view on frame 0 "
                         f"(the drawing starts at frame {frames[0]}).")  # fmt: skip
    per_frame = {}
    for index in frames:
        frame, _base, key = _upload_frame(video, index)
        height, width = frame.shape[:2]
        per_frame[index] = (frame, key, drawing.prompts(drawn, width, height, index))
    problems = [problem for *_, given in per_frame.values() for problem in given.problems]
    if problems:
        raise BadRequest(" ".join(problems))
    if not any(given.polygons for *_, given in per_frame.values()):
        boxes = [box for *_, given in per_frame.values() for box in given.boxes]
        strokes = [s for *_, given in per_frame.values() for s in given.strokes]
        return {"boxes": boxes, "strokes": drawing.for_the_model(boxes, strokes)}
    for index, (frame, key, given) in per_frame.items():
        labels = drawing.labels_of(frame, given.boxes, given.polygons, frame_key=key, strokes=given.strokes)
        write_mask(staging / f"{index:05d}.png", labels)
    if frames == [0]:
        return {"mask": staging / "00000.png", "mask_name": "the drawing"}
    return {"mask": staging, "mask_name": "the drawing"}
