"""Plotly figures: the 3D trajectory (x, y, frame), its 2D projections, scores per frame.

Every point carries customdata [frame, run index], which the clientside callbacks (assets/player.js) read
to seek players; the last trace of a 3D figure is the "current frame" highlight they move.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

DASHES = ("solid", "dash", "dot", "dashdot")
SYMBOLS = ("circle", "diamond", "square", "cross")


def _rgb(object_id: int) -> str:
    from segmentation.masks import color_of

    return "rgb({},{},{})".format(*color_of(int(object_id)))


def _series(runs: list[tuple[dict, pd.DataFrame]]):
    """(run index, run, object id, visible rows sorted by frame) for every object of every run."""
    for index, (run, df) in enumerate(runs):
        if df.empty:
            continue
        for object_id, rows in df[df["visible"]].sort_values("frame").groupby("object_id"):
            yield index, run, int(object_id), rows


def trajectory_3d(runs: list[tuple[dict, pd.DataFrame]], height: int = 520) -> go.Figure:
    fig = go.Figure()
    several = len(runs) > 1
    for index, run, object_id, rows in _series(runs):
        label = f"{run['name']} · object {object_id}" if several else f"object {object_id}"
        fig.add_trace(
            go.Scatter3d(
                x=rows["x"], y=rows["y"], z=rows["frame"], mode="lines+markers", name=label,
                customdata=[[int(f), index] for f in rows["frame"]],
                marker={"size": 3, "color": _rgb(object_id), "symbol": SYMBOLS[index % len(SYMBOLS)]},
                line={"color": _rgb(object_id), "width": 4, "dash": DASHES[index % len(DASHES)]},
                hovertemplate="frame %{z}<br>x %{x:.1f} px<br>y %{y:.1f} px<extra>" + label + "</extra>",
            )
        )  # fmt: skip
    fig.add_trace(
        go.Scatter3d(x=[], y=[], z=[], mode="markers", name="current frame", customdata=[], showlegend=False,
                     marker={"size": 9, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 6}},
                     hovertemplate="frame %{z}<extra>current</extra>")
    )  # fmt: skip
    width = max((run["width"] or 1) for run, _ in runs) if runs else 1
    height_px = max((run["height"] or 1) for run, _ in runs) if runs else 1
    fig.update_layout(
        height=height, margin={"l": 0, "r": 0, "t": 10, "b": 0}, uirevision="keep",
        legend={"orientation": "h", "y": 1.02, "x": 0},
        scene={
            "xaxis": {"title": "x (px)", "range": [0, width]},
            "yaxis": {"title": "y (px)", "range": [height_px, 0]},  # image rows grow downwards
            "zaxis": {"title": "frame"},
            "aspectmode": "manual", "aspectratio": {"x": 1, "y": height_px / width, "z": 1},
            "camera": {"eye": {"x": 1.6, "y": -1.6, "z": 0.9}},
        },
    )  # fmt: skip
    return fig


def projections(runs: list[tuple[dict, pd.DataFrame]], height: int = 520) -> go.Figure:
    """x-t, y-t and area-t side by side, one line per object per run."""
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("x over time", "y over time", "area over time"))  # fmt: skip
    several = len(runs) > 1
    for index, run, object_id, rows in _series(runs):
        label = f"{run['name']} · object {object_id}" if several else f"object {object_id}"
        for row, column in enumerate(("x", "y", "area_px"), start=1):
            fig.add_trace(
                go.Scatter(x=rows["frame"], y=rows[column], mode="lines+markers", name=label, legendgroup=label,
                           showlegend=row == 1, customdata=[[int(f), index] for f in rows["frame"]],
                           marker={"size": 4, "color": _rgb(object_id), "symbol": SYMBOLS[index % len(SYMBOLS)]},
                           line={"color": _rgb(object_id), "dash": DASHES[index % len(DASHES)]}),
                row=row, col=1,
            )  # fmt: skip
    fig.update_yaxes(title_text="x (px)", row=1, col=1)
    fig.update_yaxes(title_text="y (px)", autorange="reversed", row=2, col=1)
    fig.update_yaxes(title_text="area (px²)", row=3, col=1)
    fig.update_xaxes(title_text="frame", row=3, col=1)
    fig.update_layout(height=height, margin={"l": 50, "r": 10, "t": 30, "b": 40}, showlegend=False,
                      hovermode="x unified", uirevision="keep")  # fmt: skip
    return fig


def per_frame_scores(df: pd.DataFrame, columns: tuple[str, ...], title: str, height: int = 260) -> go.Figure:
    """Lines of per-frame scores (0..1), one per object and column."""
    fig = go.Figure()
    for object_id, rows in df.groupby("object_id"):
        for column in columns:
            fig.add_trace(go.Scatter(x=rows["frame"], y=rows[column], mode="lines+markers",
                                     name=f"{column} · object {object_id}", customdata=[[int(f), 0] for f in rows["frame"]],
                                     line={"color": _rgb(object_id) if str(object_id).isdigit() else "#333",
                                           "dash": "solid" if column in ("J", "iou") else "dot"}))  # fmt: skip
    fig.update_layout(title=title, height=height, margin={"l": 40, "r": 10, "t": 40, "b": 30},
                      yaxis={"range": [0, 1.02], "title": "score"}, xaxis={"title": "frame"},
                      shapes=[], uirevision="keep")  # fmt: skip
    return fig
