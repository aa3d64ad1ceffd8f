"""Drawing objects on a frame in the browser: Plotly's own shape tools on a dcc.Graph, made into a mask.

A box drawn for an object becomes the model's mask of that object (segmentation.prompts.mask_from_boxes), shown on
the frame at once; a closed path (polygon) is painted as drawn. The drawing is kept in a dcc.Store as a list of
items {"key", "object", "kind": "box" | "path", and the shape in the figure's coordinates}. The figure's shapes are
drawn from it, each named by its item's key, so a shape the user has just drawn (it has no name yet) is told apart
from the ones already there, and a shape erased or moved in the browser is matched to its item.

Figure coordinates are go.Image's: pixel (i, j) of the frame is centred on x = i, y = j.

`panel(prefix)` is the drawing's layout and `register(app, prefix, load)` its callbacks; the New run page and the
player's "Correct this frame" use one each, under their own prefix.
"""

from __future__ import annotations

import base64
import io
import math
import re
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import dash_bootstrap_components as dbc
import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html, no_update
from dash import ctx as callback_ctx

from dashboard import ui

# The model's internal size for previews: the engine's default short side keeps a box's mask within a second on
# a small CPU.
PREVIEW_SHORT_SIDE = 256
_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE]-?\d+)?"
_POINT = re.compile(rf"({_NUMBER}),({_NUMBER})")
_EDIT = re.compile(r"shapes\[(\d+)\]\.(x0|x1|y0|y1|path)")
_model_lock = threading.Lock()
_masks_made: OrderedDict = OrderedDict()  # (frame key, boxes) -> labels: a redraw for another reason is free


@lru_cache(maxsize=1)
def _model():
    """The model, loaded once per web process, on the CPU (the GPU, if any, is the runs')."""
    import torch

    from segmentation.weights import load_model

    model, _meta = load_model(None, torch.device("cpu"))
    return model


def read_frame(video: Path, index: int) -> np.ndarray:
    """Frame `index` (RGB uint8) of a video file or frame folder; InputError past its end."""
    stamp = video.stat().st_mtime_ns
    return _read_frame(str(video), stamp, index)


@lru_cache(maxsize=8)
def _read_frame(video: str, _stamp: int, index: int) -> np.ndarray:
    from segmentation.errors import InputError
    from segmentation.video import iter_frames

    frames = iter_frames(video)
    try:
        for i, frame in enumerate(frames):
            if i == index:
                frame.setflags(write=False)  # shared by every caller of the cache
                return frame
    finally:
        getattr(frames, "close", lambda: None)()
    raise InputError(f"frame {index}: the video has fewer frames")


# -- from the figure's shapes to the drawing, and back -------------------------------------------------------


def _item(shape: dict, key: int, object_id: int) -> dict | None:
    if shape.get("type") == "rect":
        coords = {k: float(shape[k]) for k in ("x0", "y0", "x1", "y1")}
        return {"key": key, "object": object_id, "kind": "box", **coords}
    if shape.get("type") == "path" and shape.get("path"):
        return {"key": key, "object": object_id, "kind": "path", "path": str(shape["path"])}
    return None


def updated(drawing: list[dict], relayout: dict | None, current: int) -> list[dict]:
    """The drawing after the browser's relayout event: shapes drawn (for object `current`), erased or edited.
    A new box for an object that has one replaces it: one box per object and frame, as the model takes them."""
    drawing = list(drawing or [])
    if not relayout:
        return drawing
    if "shapes" in relayout:
        by_key = {str(item["key"]): item for item in drawing}
        next_key = max((item["key"] for item in drawing), default=0) + 1
        kept, new = [], []
        for shape in relayout["shapes"] or []:
            name = str(shape.get("name") or "")
            if name in by_key:  # one of ours, perhaps moved
                kept.append(
                    {**by_key[name], **(_item(shape, by_key[name]["key"], by_key[name]["object"]) or {})}
                )
            elif (item := _item(shape, next_key, current)) is not None:
                new.append(item)
                next_key += 1
        for item in new:
            if item["kind"] == "box":
                kept = [k for k in kept if not (k["kind"] == "box" and k["object"] == item["object"])]
            kept.append(item)
        return kept
    edits = [(_EDIT.fullmatch(key), value) for key, value in relayout.items()]
    for match, value in edits:
        if match and int(match[1]) < len(drawing):
            index, field = int(match[1]), match[2]
            drawing[index] = {**drawing[index], field: str(value) if field == "path" else float(value)}
    return drawing


def _shape(item: dict) -> dict:
    from segmentation.masks import color_of

    line = {"color": ui.colour_css(color_of(item["object"])), "width": 2}
    common = {"name": str(item["key"]), "line": line, "editable": True}
    if item["kind"] == "box":
        return {"type": "rect", **{k: item[k] for k in ("x0", "y0", "x1", "y1")}, **common}
    return {"type": "path", "path": item["path"], **common}


# -- from the drawing to prompts and a mask ------------------------------------------------------------------


def _pixel(value: float, size: int) -> int:
    return min(max(math.floor(value + 0.5), 0), size - 1)


def prompts(drawing: list[dict], width: int, height: int, frame: int = 0):
    """(boxes: segmentation.prompts.Box, polygons: (object id, points (N, 2) float), problems: one-line
    messages) of the drawing on a width x height frame. A shape partly off the frame is cut at its edge; one
    wholly off it, or without an area, is a problem and left out."""
    from segmentation.errors import InputError
    from segmentation.prompts import Box

    boxes, polygons, problems = [], [], []
    for item in drawing or []:
        name = f"object {item['object']}"
        if item["kind"] == "box":
            xs, ys = sorted((item["x0"], item["x1"])), sorted((item["y0"], item["y1"]))
            if xs[1] < -0.5 or ys[1] < -0.5 or xs[0] >= width - 0.5 or ys[0] >= height - 0.5:
                problems.append(f"The box for {name} lies outside the frame: draw it on the picture.")
                continue
            box = Box(_pixel(xs[0], width), _pixel(ys[0], height), _pixel(xs[1], width), _pixel(ys[1], height),
                      object_id=item["object"], frame=frame)  # fmt: skip
            try:
                box.check(width, height)
            except InputError as exc:
                problems.append(f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
                continue
            boxes.append(box)
        else:
            points = np.array([(float(x), float(y)) for x, y in _POINT.findall(item["path"])])
            if len(points) < 3:
                problems.append(f"The outline for {name} needs at least three points.")
                continue
            inside = (points[:, 0] >= -0.5) & (points[:, 0] < width - 0.5)
            inside &= (points[:, 1] >= -0.5) & (points[:, 1] < height - 0.5)
            if not inside.any():
                problems.append(f"The outline for {name} lies outside the frame: draw it on the picture.")
                continue
            polygons.append((item["object"], points))
    return boxes, polygons, problems


def _from_boxes(frame_key, frame: np.ndarray, boxes) -> np.ndarray:
    import torch

    from segmentation.inference import model_size
    from segmentation.prompts import mask_from_boxes

    key = (frame_key, tuple(boxes))
    height, width = frame.shape[:2]
    with _model_lock:  # one preview at a time: the CPU is shared with the runs anyway
        if key in _masks_made:
            _masks_made.move_to_end(key)
            return _masks_made[key]
        labels = mask_from_boxes(_model(), torch.device("cpu"), np.ascontiguousarray(frame), list(boxes),
                                 model_size(width, height, PREVIEW_SHORT_SIDE))  # fmt: skip
        _masks_made[key] = labels
        while len(_masks_made) > 32:
            _masks_made.popitem(last=False)
    return labels


def labels_of(
    frame: np.ndarray, boxes, polygons, base: np.ndarray | None = None, frame_key=None
) -> np.ndarray:
    """uint8 labels of the frame: `base` (the current masks, when correcting) with each drawn object's pixels
    replaced by the model's mask from its box, then the polygons painted over that, in the order drawn."""
    import cv2

    labels = np.zeros(frame.shape[:2], np.uint8) if base is None else base.copy()
    drawn = {box.object_id for box in boxes} | {object_id for object_id, _ in polygons}
    labels[np.isin(labels, list(drawn))] = 0
    if boxes:
        made = _from_boxes(frame_key, frame, boxes)
        for object_id in {box.object_id for box in boxes}:
            labels[made == object_id] = object_id
    for object_id, points in polygons:
        cv2.fillPoly(labels, [np.round(points * 16).astype(np.int32)], int(object_id), shift=4)
    return labels


# -- the figure ----------------------------------------------------------------------------------------------


def figure(frame: np.ndarray, labels: np.ndarray | None, drawing: list[dict], current: int) -> go.Figure:
    """The frame with the labels' overlay and the drawing's shapes; new shapes are drawn in `current`'s colour."""
    from PIL import Image

    from segmentation.masks import color_of
    from segmentation.render import overlay

    shown = frame if labels is None else overlay(frame, labels)
    png = io.BytesIO()
    Image.fromarray(shown).save(png, format="PNG")
    source = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    height, width = frame.shape[:2]
    fig = go.Figure(go.Image(source=source, hoverinfo="none"))
    colour = ui.colour_css(color_of(current))
    fig.update_layout(
        dragmode="drawrect", shapes=[_shape(item) for item in drawing], margin={"l": 0, "r": 0, "t": 0, "b": 0},
        newshape={"line": {"color": colour, "width": 2}, "fillcolor": colour, "opacity": 0.25},
        height=min(640, max(320, round(900 * height / width))), uirevision="drawing",
        xaxis={"visible": False, "range": [-0.5, width - 0.5]},
        yaxis={"visible": False, "range": [height - 0.5, -0.5], "scaleanchor": "x"},
    )  # fmt: skip
    return fig


# -- the panel and its callbacks -----------------------------------------------------------------------------


def panel(prefix: str, title: str, add_objects: bool = True) -> html.Div:
    """The drawing's layout: object picker, tools, the frame (hidden until a frame is set in {prefix}-source)."""
    buttons = [
        dbc.Button("Add object", id=f"{prefix}-add", color="secondary", outline=True, size="sm", className="me-2",
                   style=None if add_objects else {"display": "none"}),
        dbc.Button("Undo", id=f"{prefix}-undo", color="secondary", outline=True, size="sm", className="me-2"),
        dbc.Button("Remove object", id=f"{prefix}-remove", color="secondary", outline=True, size="sm",
                   className="me-2"),
        dbc.Button("Clear", id=f"{prefix}-clear", color="secondary", outline=True, size="sm"),
    ]  # fmt: skip
    return html.Div(
        [
            dcc.Store(id=f"{prefix}-source"),
            dcc.Store(id=f"{prefix}-drawing", data=[]),
            html.H5(title, id=f"{prefix}-title"),
            dbc.FormText(
                "Drag a box around an object (or pick the outline tool above the frame for a polygon); "
                "its mask appears on the frame. Pick the object first."
            ),  # fmt: skip
            html.Div(
                [
                    dbc.RadioItems(
                        id=f"{prefix}-object",
                        value=1,
                        inline=True,
                        options=[{"label": "object 1", "value": 1}],
                        className="me-3",
                    ),
                    *buttons,
                ],
                className="d-flex flex-wrap align-items-center my-2",
            ),  # fmt: skip
            dcc.Loading(
                dcc.Graph(
                    id=f"{prefix}-graph",
                    config={
                        "displaylogo": False,
                        "scrollZoom": False,
                        "displayModeBar": True,
                        "modeBarButtonsToAdd": ["drawrect", "drawclosedpath", "eraseshape"],
                        "modeBarButtonsToRemove": ["lasso2d", "select2d", "autoScale2d"],
                    },
                ),  # fmt: skip
                delay_show=400,
            ),
            html.Div(id=f"{prefix}-count", className="mt-1"),
            html.Div(id=f"{prefix}-message"),
        ],
        id=f"{prefix}-panel",
        style={"display": "none"},
    )


def object_options(ids) -> list[dict]:
    from segmentation.masks import color_of

    return [{"label": ui.object_chip(i, color_of(i)), "value": i} for i in ids]


def register(app, prefix: str, load) -> None:
    """The drawing's callbacks. `load(source)` -> (frame RGB, base labels or None, frame key) for the store's
    source; it raises the engine's InputError or runs.BadRequest with a message for the user."""

    def ids(*pairs):
        return [(f"{prefix}-{name}", prop) for name, prop in pairs]

    @app.callback(
        # relayoutData is emptied after each event: the same shape drawn again (after an undo) is an event again.
        *(Output(*o) for o in ids(("graph", "figure"), ("drawing", "data"), ("count", "children"),
                                  ("message", "children"), ("panel", "style"), ("graph", "relayoutData"))),
        *(Input(*i) for i in ids(("source", "data"), ("graph", "relayoutData"), ("object", "value"),
                                 ("undo", "n_clicks"), ("remove", "n_clicks"), ("clear", "n_clicks"))),
        State(f"{prefix}-drawing", "data"),
        prevent_initial_call=True,
    )  # fmt: skip
    def draw(source, relayout, current, _undo, _remove, _clear, drawing):
        from dashboard.runs import BadRequest
        from segmentation.errors import SegmentationError

        if not source:
            return no_update, [], None, None, {"display": "none"}, None
        trigger = callback_ctx.triggered_id
        current = int(current or 1)
        drawing = drawing or []
        if (
            f"{prefix}-source.data" in callback_ctx.triggered_prop_ids
        ):  # another frame (perhaps another object)
            drawing = []
        elif trigger == f"{prefix}-graph":
            drawing = updated(drawing, relayout, current)
        elif trigger == f"{prefix}-undo":
            drawing = drawing[:-1]
        elif trigger == f"{prefix}-remove":
            drawing = [item for item in drawing if item["object"] != current]
        elif trigger == f"{prefix}-clear":
            drawing = []
        try:
            frame, base, key = load(source)
        except (SegmentationError, BadRequest) as exc:
            return (
                no_update,
                drawing,
                None,
                dbc.Alert(str(exc), color="danger", id=f"{prefix}-problem"),
                {},
                None,
            )
        height, width = frame.shape[:2]
        boxes, polygons, problems = prompts(drawing, width, height)
        labels = labels_of(frame, boxes, polygons, base, key) if boxes or polygons else base
        message = dbc.Alert(" ".join(problems), color="warning", id=f"{prefix}-problem") if problems else None
        shown = figure(frame, labels, drawing, current)
        return shown, drawing, drawn_objects(drawing, prefix), message, {}, None

    @app.callback(
        Output(f"{prefix}-object", "options"),
        Output(f"{prefix}-object", "value"),
        Input(f"{prefix}-add", "n_clicks"),
        State(f"{prefix}-object", "options"),
        prevent_initial_call=True,
    )
    def add_object(_clicks, options):
        from segmentation.masks import MAX_OBJECTS

        ids = [option["value"] for option in options or []]
        if len(ids) >= MAX_OBJECTS:
            return no_update, no_update
        new = max(ids, default=0) + 1
        return object_options([*ids, new]), new


def drawn_objects(drawing: list[dict], prefix: str) -> html.P:
    from segmentation.masks import color_of

    ids = sorted({item["object"] for item in drawing})
    chips = [ui.object_chip(i, color_of(i)) for i in ids]
    text = f"{len(ids)} object{'s' if len(ids) != 1 else ''} drawn" + (": " if ids else "")
    return html.P([html.Strong(text), *chips], id=f"{prefix}-objects", className="mb-1")
