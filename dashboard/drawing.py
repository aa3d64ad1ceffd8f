"""Drawing objects on a frame in the browser: Plotly's own shape tools on a dcc.Graph, made into a mask.

A box drawn for an object becomes the model's mask of that object (segmentation.prompts.mask_from_boxes), shown on
the frame at once; a closed path (polygon) is painted as drawn; a brush stroke (an open path) is a prompt.Stroke,
positive when painting, negative when erasing, which the model refines the object's mask with. The drawing is kept
in a dcc.Store as a list of items {"key", "object", "frame", "kind": "box" | "path" | "stroke", and the shape in the
figure's coordinates; a stroke also has "positive" and "radius"}. The figure's shapes are drawn from the items of
the frame shown, each named by its item's key, so a shape the user has just drawn (it has no name yet) is told apart
from the ones already there, and a shape erased or moved in the browser is matched to its item.

Figure coordinates are go.Image's: pixel (i, j) of the frame is centred on x = i, y = j.

`panel(prefix)` is the drawing's layout and `register(app, prefix, load)` its callbacks; the New run page (any frame,
picked with the panel's slider) and the player's "Correct this frame" (the frame its source names) use one each,
under their own prefix.
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
from typing import NamedTuple

import dash_bootstrap_components as dbc
import numpy as np
import plotly.graph_objects as go
from dash import ClientsideFunction, Input, Output, State, dcc, html, no_update
from dash import ctx as callback_ctx

from dashboard import ui

# The model's internal size for previews: the engine's default short side keeps a box's mask within a second on
# a small CPU.
PREVIEW_SHORT_SIDE = 256
_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE]-?\d+)?"
_POINT = re.compile(rf"({_NUMBER}),({_NUMBER})")
_EDIT = re.compile(r"shapes\[(\d+)\]\.(x0|x1|y0|y1|path)")  # assets/drawing.js passes on the same edits
_model_lock = threading.Lock()
_masks_made: OrderedDict = OrderedDict()  # (frame key, boxes, strokes) -> labels: a redraw for another reason is free
TOOLS = {"box": "drawrect", "outline": "drawclosedpath", "paint": "drawopenpath", "erase": "drawopenpath"}
BRUSH_WIDTH = 9  # pixels of the frame, the engine's default stroke radius of 4 either side of the line
MODEBAR_PX = 30  # the drawing figure's strip above the frame for the toolbar


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


def _item(shape: dict, key: int, object_id: int, frame: int) -> dict | None:
    common = {"key": key, "object": object_id, "frame": frame}
    if shape.get("type") == "rect":
        coords = {k: float(shape[k]) for k in ("x0", "y0", "x1", "y1")}
        return {**common, "kind": "box", **coords}
    if shape.get("type") == "path" and shape.get("path"):
        path = str(shape["path"])
        # Plotly closes a drawn outline with Z; a freehand line (the brush) stays open.
        return {**common, "kind": "path" if path.rstrip().upper().endswith("Z") else "stroke", "path": path}
    return None


def at_frame(drawing: list[dict], frame: int) -> list[dict]:
    """The items drawn on `frame`, in the order drawn (the figure's shapes, when it shows that frame)."""
    return [item for item in drawing or [] if item.get("frame", 0) == frame]


def frames_of(drawing: list[dict]) -> list[int]:
    return sorted({item.get("frame", 0) for item in drawing or []})


def updated(
    drawing: list[dict], relayout: dict | None, current: int, frame: int = 0, tool: str = "box",
    brush: int = BRUSH_WIDTH,
) -> list[dict]:
    """The drawing after the browser's relayout event on `frame`: shapes drawn (for object `current`; a freehand
    line is a stroke of the `tool`, paint or erase, `brush` pixels wide), erased or edited. A new box for an object
    that has one there replaces it: one box per object and frame, as the model takes them. Other frames' items
    stay as they are."""
    drawing = list(drawing or [])
    if not relayout:
        return drawing
    others = [item for item in drawing if item.get("frame", 0) != frame]
    here = at_frame(drawing, frame)
    if "shapes" in relayout:
        by_key = {str(item["key"]): item for item in here}
        next_key = max((item["key"] for item in drawing), default=0) + 1
        kept, new = [], []
        for shape in relayout["shapes"] or []:
            name = str(shape.get("name") or "")
            if name in by_key:  # one of ours, perhaps moved
                old = by_key[name]
                kept.append({**old, **(_item(shape, old["key"], old["object"], frame) or {}), "kind": old["kind"]})
            elif (item := _item(shape, next_key, current, frame)) is not None:
                if item["kind"] == "stroke":
                    item.update(positive=tool != "erase", radius=max(1, int(brush or BRUSH_WIDTH) // 2))
                new.append(item)
                next_key += 1
        for item in new:
            if item["kind"] == "box":
                kept = [k for k in kept if not (k["kind"] == "box" and k["object"] == item["object"])]
            kept.append(item)
        return others + kept
    edits = [(_EDIT.fullmatch(key), value) for key, value in relayout.items()]
    for match, value in edits:
        if match and int(match[1]) < len(here):
            index, field = int(match[1]), match[2]
            here[index] = {**here[index], field: str(value) if field == "path" else float(value)}
    return others + here


def _shape(item: dict, scale: float) -> dict:
    """The item as a figure shape; `scale`: screen pixels per frame pixel, for a stroke's width."""
    from segmentation.masks import color_of

    line = {"color": ui.colour_css(color_of(item["object"])), "width": 2}
    if item["kind"] == "stroke":  # as wide as the brush; an eraser's line dotted
        line.update(width=_screen_width(2 * item["radius"] + 1, scale), dash="solid" if item["positive"] else "dot")
    common = {"name": str(item["key"]), "line": line, "editable": True}
    if item["kind"] == "stroke":  # the mask it makes shows through
        common["opacity"] = 0.45
    if item["kind"] == "box":
        return {"type": "rect", **{k: item[k] for k in ("x0", "y0", "x1", "y1")}, **common}
    return {"type": "path", "path": item["path"], **common}


def _screen_width(pixels: int, scale: float) -> float:
    return round(min(max(pixels * scale, 1.0), 80.0), 1)


# -- from the drawing to prompts and a mask ------------------------------------------------------------------


def _pixel(value: float, size: int) -> int:
    return min(max(math.floor(value + 0.5), 0), size - 1)


class Prompts(NamedTuple):
    """What is drawn on one frame, for the engine: boxes and strokes (segmentation.prompts), polygons ((object id,
    points (N, 2) float)), and problems (one-line messages about items left out)."""

    boxes: list
    polygons: list
    problems: list
    strokes: list


def prompts(drawing: list[dict], width: int, height: int, frame: int = 0) -> Prompts:
    """The prompts of the items on `frame` of a width x height video. A shape partly off the frame is cut at its
    edge; one wholly off it, or without an area, is a problem and left out."""
    from segmentation.errors import InputError
    from segmentation.prompts import Box, Stroke

    boxes, polygons, problems, strokes = [], [], [], []
    for item in at_frame(drawing, frame):
        name = f"object {item['object']}" + (f" at frame {frame}" if frame else "")
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
            continue
        points = np.array([(float(x), float(y)) for x, y in _POINT.findall(item["path"])]).reshape(-1, 2)
        inside = (points[:, 0] >= -0.5) & (points[:, 0] < width - 0.5)
        inside &= (points[:, 1] >= -0.5) & (points[:, 1] < height - 0.5)
        if item["kind"] == "stroke":
            what = "paint" if item["positive"] else "eraser"
            parts = _inside_parts(points, width, height) if len(points) else []
            if not len(points):
                problems.append(f"The {what} stroke for {name} has no points: draw it on the picture.")
            elif not parts:
                problems.append(f"The {what} stroke for {name} lies outside the frame: draw it on the picture.")
            for part in parts:
                strokes.append(Stroke(part, item["object"], bool(item["positive"]), frame, int(item["radius"])))
        elif len(points) < 3:
            problems.append(f"The outline for {name} needs at least three points.")
        elif not inside.any():
            problems.append(f"The outline for {name} lies outside the frame: draw it on the picture.")
        else:
            polygons.append((item["object"], points))
    return Prompts(boxes, polygons, problems, strokes)


def usable(drawing: list[dict], width: int, height: int) -> list[dict]:
    """The items that give the model something: not those that `prompts` leaves out as problems (a box without
    an area, a shape wholly off the frame), so an object is not counted as drawn by them alone."""
    return [item for item in drawing if not prompts([item], width, height, item.get("frame", 0)).problems]


def _inside_parts(points: np.ndarray, width: int, height: int) -> list[tuple]:
    """A freehand line's parts on the frame, in whole pixels: cut at the frame's edge, each stretch inside its own
    stroke (a line that leaves the frame and comes back is not joined across the outside)."""
    import cv2

    whole = [(math.floor(x + 0.5), math.floor(y + 0.5)) for x, y in points]
    segments = list(zip(whole, whole[1:])) or [(whole[0], whole[0])]
    parts: list[list] = []
    for start, end in segments:
        inside, a, b = cv2.clipLine((0, 0, width, height), start, end)
        if not inside:
            continue
        if parts and parts[-1][-1] == a:
            parts[-1].append(b)
        else:
            parts.append([a, b])
    # Repeated pixels say nothing more.
    return [tuple(p for i, p in enumerate(part) if i == 0 or p != part[i - 1]) for part in parts]


def for_the_model(boxes, strokes) -> list:
    """The strokes the model takes with these boxes: all but an eraser's on an object that no box or paint gives
    on its frame (that one erases pixels of a mask given otherwise: an outline, the run's own)."""
    given = {(p.object_id, p.frame) for p in [*boxes, *(s for s in strokes if s.positive)]}
    return [s for s in strokes if s.positive or (s.object_id, s.frame) in given]


def _from_prompts(frame_key, frame: np.ndarray, boxes, strokes) -> np.ndarray:
    import torch

    from segmentation.inference import model_size
    from segmentation.prompts import mask_from_boxes

    key = (frame_key, tuple(boxes), tuple(strokes))
    height, width = frame.shape[:2]
    with _model_lock:  # one preview at a time: the CPU is shared with the runs anyway
        if key in _masks_made:
            _masks_made.move_to_end(key)
            return _masks_made[key]
        labels = mask_from_boxes(_model(), torch.device("cpu"), np.ascontiguousarray(frame), list(boxes),
                                 model_size(width, height, PREVIEW_SHORT_SIDE), list(strokes))  # fmt: skip
        _masks_made[key] = labels
        while len(_masks_made) > 32:
            _masks_made.popitem(last=False)
    return labels


def labels_of(
    frame: np.ndarray, boxes, polygons, base: np.ndarray | None = None, frame_key=None, strokes=()
) -> np.ndarray:
    """uint8 labels of the frame: `base` (the current masks, when correcting) with each boxed object's pixels
    replaced by the model's mask from its box and strokes, and an object painted without a box given the model's
    mask from its paint strokes as well as its own pixels (paint adds). Then the polygons are painted over that, in
    the order drawn, and each eraser stroke takes its object's pixels under it away."""
    import cv2

    labels = np.zeros(frame.shape[:2], np.uint8) if base is None else base.copy()
    strokes = list(strokes)
    modelled = for_the_model(boxes, strokes)
    redrawn = {box.object_id for box in boxes} | {object_id for object_id, _ in polygons}
    labels[np.isin(labels, list(redrawn))] = 0
    if boxes or modelled:
        made = _from_prompts(frame_key, frame, boxes, modelled)
        for object_id in {p.object_id for p in [*boxes, *modelled]}:
            labels[made == object_id] = object_id
    for object_id, points in polygons:
        cv2.fillPoly(labels, [np.round(points * 16).astype(np.int32)], int(object_id), shift=4)
    height, width = labels.shape
    for stroke in strokes:
        if not stroke.positive:
            labels[stroke.paint(height, width) & (labels == stroke.object_id)] = 0
    return labels


# -- the figure ----------------------------------------------------------------------------------------------


def figure(
    frame: np.ndarray, labels: np.ndarray | None, drawing: list[dict], current: int, tool: str = "box",
    brush: int = BRUSH_WIDTH,
) -> go.Figure:
    """The frame with the labels' overlay and the shapes of `drawing` (the items on this frame); new shapes are
    drawn with `tool` in `current`'s colour, a brush stroke as wide as the brush."""
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
    shown_height = min(640, max(320, round(900 * height / width)))
    scale = shown_height / height  # screen pixels per frame pixel, near enough for a line's width
    newshape = {"line": {"color": colour, "width": 2}, "fillcolor": colour, "opacity": 0.25}
    if tool in ("paint", "erase"):
        width_px = _screen_width(2 * max(1, int(brush or BRUSH_WIDTH) // 2) + 1, scale)
        newshape = {"line": {"color": colour, "width": width_px, "dash": "solid" if tool == "paint" else "dot"},
                    "fillcolor": "rgba(0,0,0,0)", "opacity": 0.6}  # fmt: skip
    fig.update_layout(
        dragmode=TOOLS.get(tool, "drawrect"), shapes=[_shape(item, scale) for item in drawing],
        # A strip above the frame for plotly's toolbar, which otherwise covers the frame's top right corner.
        margin={"l": 0, "r": 0, "t": MODEBAR_PX, "b": 0}, newshape=newshape, height=shown_height + MODEBAR_PX,
        uirevision="drawing",
        xaxis={"visible": False, "range": [-0.5, width - 0.5]},
        yaxis={"visible": False, "range": [height - 0.5, -0.5], "scaleanchor": "x"},
    )  # fmt: skip
    return fig


# -- the panel and its callbacks -----------------------------------------------------------------------------


def panel(prefix: str, title: str, add_objects: bool = True, frames: bool = False) -> html.Div:
    """The drawing's layout: object picker, tools, the frame (hidden until a frame is set in {prefix}-source) and,
    with `frames`, a slider to draw on any frame of the video (its max set with the source)."""
    buttons = [
        dbc.Button("Add object", id=f"{prefix}-add", color="secondary", outline=True, size="sm", className="me-2",
                   style=None if add_objects else {"display": "none"}),
        dbc.Button("Undo", id=f"{prefix}-undo", color="secondary", outline=True, size="sm", className="me-2"),
        dbc.Button("Remove object", id=f"{prefix}-remove", color="secondary", outline=True, size="sm",
                   className="me-2"),
        dbc.Button("Clear", id=f"{prefix}-clear", color="secondary", outline=True, size="sm"),
    ]  # fmt: skip
    tools = [
        dbc.RadioItems(
            id=f"{prefix}-tool", value="box", inline=True, className="me-3",
            options=[{"label": "Box", "value": "box"}, {"label": "Outline", "value": "outline"},
                     {"label": "Paint", "value": "paint"}, {"label": "Erase", "value": "erase"}],
        ),
        dbc.Label("Brush width", html_for=f"{prefix}-brush", className="me-2 mb-0"),
        dbc.Input(id=f"{prefix}-brush", type="number", min=1, max=201, step=1, value=BRUSH_WIDTH, size="sm",
                  style={"width": "5.5rem"}, debounce=True),
        html.Span("px", className="ms-1 text-muted"),
    ]  # fmt: skip
    slider = html.Div(
        [
            html.Div(id=f"{prefix}-frame-label", className="text-muted small"),
            dcc.Slider(id=f"{prefix}-frame", min=0, max=0, step=1, value=0, marks=None,
                       tooltip={"placement": "bottom"}),
        ],
        style=None if frames else {"display": "none"},
    )  # fmt: skip
    return html.Div(
        [
            dcc.Store(id=f"{prefix}-source"),
            dcc.Store(id=f"{prefix}-drawing", data=[]),
            dcc.Store(id=f"{prefix}-edit"),  # the graph's shape edits (assets/drawing.js)
            html.H5(title, id=f"{prefix}-title"),
            dbc.FormText(
                "Drag a box around an object, outline it, or paint over it (Erase paints where it is not); "
                "its mask appears on the frame. Pick the object first."
                + (" An object that comes into view later: move the slider to that frame and draw it there." if frames else "")
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
            html.Div(tools, className="d-flex flex-wrap align-items-center mb-2"),
            slider,
            dcc.Loading(
                dcc.Graph(
                    id=f"{prefix}-graph",
                    config={
                        "displaylogo": False,
                        "scrollZoom": False,
                        "displayModeBar": True,
                        "modeBarButtonsToAdd": ["drawrect", "drawclosedpath", "drawopenpath", "eraseshape"],
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


def shown_frame(source: dict | None, slider) -> int:
    """The frame drawn on: the one the source names (a correction), else the slider's."""
    if source and source.get("frame") is not None:
        return int(source["frame"])
    return int(slider or 0)


def register(app, prefix: str, load) -> None:
    """The drawing's callbacks. `load(source, frame)` -> (frame RGB, base labels or None, frame key) for the
    store's source; it raises the engine's InputError or runs.BadRequest with a message for the user."""

    def ids(*pairs):
        return [(f"{prefix}-{name}", prop) for name, prop in pairs]

    app.clientside_callback(  # assets/drawing.js: the graph's events that change a shape, and no others
        ClientsideFunction("drawing", "shapeEdits"),
        Output(f"{prefix}-edit", "data"),
        Input(f"{prefix}-graph", "relayoutData"),
        prevent_initial_call=True,
    )

    @app.callback(
        # relayoutData is emptied after each event: the same shape drawn again (after an undo) is an event again.
        *(Output(*o) for o in ids(("graph", "figure"), ("drawing", "data"), ("count", "children"),
                                  ("message", "children"), ("panel", "style"), ("graph", "relayoutData"),
                                  ("frame-label", "children"))),
        *(Input(*i) for i in ids(("source", "data"), ("edit", "data"), ("object", "value"),
                                 ("undo", "n_clicks"), ("remove", "n_clicks"), ("clear", "n_clicks"),
                                 ("frame", "value"), ("tool", "value"), ("brush", "value"))),
        State(f"{prefix}-drawing", "data"),
        prevent_initial_call=True,
    )  # fmt: skip
    def draw(source, edit, current, _undo, _remove, _clear, slider, tool, brush, drawing):
        from dashboard.runs import BadRequest
        from segmentation.errors import SegmentationError

        if not source:
            return no_update, [], None, None, {"display": "none"}, None, None
        trigger = callback_ctx.triggered_id
        current = int(current or 1)
        index = shown_frame(source, slider)
        brush = int(brush) if isinstance(brush, (int, float)) and 1 <= brush <= 201 else BRUSH_WIDTH
        drawing = drawing or []
        if (
            f"{prefix}-source.data" in callback_ctx.triggered_prop_ids
        ):  # another video or frame to correct (perhaps another object)
            drawing = []
        elif trigger == f"{prefix}-edit":
            drawing = updated(drawing, (edit or {}).get("relayout"), current, index, tool, brush)
        elif trigger == f"{prefix}-undo":
            last = [item["key"] for item in at_frame(drawing, index)][-1:]  # the frame shown's latest item
            drawing = [item for item in drawing if item["key"] not in last]
        elif trigger == f"{prefix}-remove":
            drawing = [item for item in drawing if item["object"] != current]
        elif trigger == f"{prefix}-clear":
            drawing = []
        label = f"Frame {index}"
        try:
            frame, base, key = load(source, index)
        except (SegmentationError, BadRequest) as exc:
            return (no_update, drawing, None, dbc.Alert(str(exc), color="danger", id=f"{prefix}-problem"), {},
                    None, label)  # fmt: skip
        height, width = frame.shape[:2]
        drawn = prompts(drawing, width, height, index)
        given = drawn.boxes or drawn.polygons or drawn.strokes
        labels = labels_of(frame, drawn.boxes, drawn.polygons, base, key, drawn.strokes) if given else base
        problems = drawn.problems
        message = dbc.Alert(" ".join(problems), color="warning", id=f"{prefix}-problem") if problems else None
        shown = figure(frame, labels, at_frame(drawing, index), current, tool, brush)
        # Where the source fixes the frame (a correction), every object is drawn there: no start frames to tell.
        starts = source.get("frame") is None
        objects = drawn_objects(usable(drawing, width, height), prefix, starts)
        return shown, drawing, objects, message, {}, None, label

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


def drawn_objects(drawing: list[dict], prefix: str, starts: bool = True) -> html.P:
    """The objects drawn, each (with `starts`) with the frame it is first drawn on when that is not frame 0."""
    from segmentation.masks import color_of

    first: dict[int, int] = {}
    for item in sorted(drawing or [], key=lambda item: item.get("frame", 0)):
        first.setdefault(item["object"], item.get("frame", 0))
    chips = []
    for i in sorted(first):
        chips.append(ui.object_chip(i, color_of(i)))
        if starts and first[i]:
            chips.append(html.Span(f" from frame {first[i]} ", id=f"{prefix}-start-{i}", className="me-2"))
    text = f"{len(first)} object{'s' if len(first) != 1 else ''} drawn" + (": " if first else "")
    return html.P([html.Strong(text), *chips], id=f"{prefix}-objects", className="mb-1")
