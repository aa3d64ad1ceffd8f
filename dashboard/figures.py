"""Plotly figures: the 3D trajectory (x, y, frame), its 2D projections, scores per frame.

Every point carries customdata [frame, run id], which the clientside callbacks (assets/player.js) read to
show that run at that frame; the last trace of a 3D figure is the "current frame" highlight they move.

One run is drawn in the overlay video's object colours. Several runs get one hue each (blues, oranges, …),
with each run's objects from dark to light in it, so a run is told apart at a glance and object 1 is the
darkest shade of every run.
"""

from __future__ import annotations

from html import escape

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import sample_colorscale, sequential
from plotly.subplots import make_subplots

from dashboard.run_index import Run

DASHES = ("solid", "dash", "dot", "dashdot")
SYMBOLS = ("circle", "diamond", "square", "cross")
FAMILIES = (sequential.Blues, sequential.Oranges, sequential.Greens, sequential.Purples, sequential.Reds,
            sequential.Greys)  # fmt: skip
# Where a run's objects sit on its colour scale: the light end of these scales vanishes on white.
DARKEST, LIGHTEST = 0.9, 0.5


def _rgb(object_id: int) -> str:
    from segmentation.masks import color_of

    return "rgb({},{},{})".format(*color_of(int(object_id)))


def _object_ids(run: Run, df: pd.DataFrame) -> list[int]:
    ids = set(run.objects or []) | {int(i) for i in df["object_id"].unique()}
    return sorted(int(i) for i in ids)


def run_colour(index: int) -> str:
    """The colour that stands for run `index` of several (its family's middle shade)."""
    return sample_colorscale(FAMILIES[index % len(FAMILIES)], [(DARKEST + LIGHTEST) / 2])[0]


def run_colours(runs: list[tuple[dict, pd.DataFrame]]) -> list[dict[int, str]]:
    """Per run, object id -> CSS colour, as every figure of these runs draws it."""
    if len(runs) <= 1:
        return [{object_id: _rgb(object_id) for object_id in _object_ids(run, df)} for run, df in runs]
    out = []
    for index, (run, df) in enumerate(runs):
        ids = _object_ids(run, df)
        steps = [DARKEST - (DARKEST - LIGHTEST) * k / max(len(ids) - 1, 1) for k in range(len(ids))]
        shades = sample_colorscale(FAMILIES[index % len(FAMILIES)], steps) if ids else []
        out.append(dict(zip(ids, shades, strict=True)))
    return out


def run_labels(runs: list[dict]) -> list[str]:
    """Names to tell runs apart by: a run's name, with its preset (then its position) where names repeat."""
    names = [run.name for run in runs]
    labels = [
        f"{run.name} ({(run.options or {}).get('preset', 'default')})" if names.count(run.name) > 1
        else run.name
        for run in runs
    ]  # fmt: skip
    return [f"{label} #{i + 1}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]


def _series(runs: list[tuple[dict, pd.DataFrame]], labels: list[str] | None = None):
    """(run index, run, label, object id, colour, visible rows sorted by frame) for every object of every run;
    `labels` name the runs where run_labels would not tell them apart (two versions of one run)."""
    labels = labels or run_labels([run for run, _ in runs])
    colours = run_colours(runs)
    for index, (run, df) in enumerate(runs):
        if df.empty:
            continue
        for object_id, rows in df[df["visible"]].sort_values("frame").groupby("object_id"):
            object_id = int(object_id)
            yield index, run, escape(labels[index]), object_id, colours[index].get(object_id, "#888"), rows


def _legend(fig: go.Figure) -> None:
    # Runs group their objects under the run's name; a click still hides one object, not its whole run.
    fig.update_layout(legend={"orientation": "h", "y": 1.02, "x": 0, "groupclick": "toggleitem"})


def trajectory_3d(
    runs: list[tuple[dict, pd.DataFrame]], height: int = 520, labels: list[str] | None = None
) -> go.Figure:
    fig = go.Figure()
    several = len(runs) > 1
    for index, run, label, object_id, colour, rows in _series(runs, labels):
        fig.add_trace(
            go.Scatter3d(
                x=rows["x"], y=rows["y"], z=rows["frame"], mode="lines+markers", name=f"object {object_id}",
                # Grouped by position: two versions of one run are two groups.
                legendgroup=str(index), legendgrouptitle={"text": label} if several else None,
                customdata=[[int(f), run.id] for f in rows["frame"]],
                marker={"size": 3, "color": colour, "symbol": SYMBOLS[index % len(SYMBOLS)]},
                line={"color": colour, "width": 5, "dash": DASHES[index % len(DASHES)]},
                hovertemplate=f"<b>{label}</b> · object {object_id}<br>frame %{{z}}<br>x %{{x:.1f}} px<br>"
                              "y %{y:.1f} px<extra></extra>",
            )
        )  # fmt: skip
    fig.add_trace(
        go.Scatter3d(x=[], y=[], z=[], mode="markers", name="current frame", customdata=[], showlegend=False,
                     marker={"size": 9, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 6}},
                     hovertemplate="frame %{z}<extra>current</extra>")
    )  # fmt: skip
    width = max((run.width or 1) for run, _ in runs) if runs else 1
    height_px = max((run.height or 1) for run, _ in runs) if runs else 1
    fig.update_layout(
        height=height, margin={"l": 0, "r": 0, "t": 10, "b": 0}, uirevision="keep",
        scene={
            # Few ticks on the short image axis: at its length seven labels ran into each other.
            "xaxis": {"title": "x (px)", "range": [0, width], "nticks": 6},
            "yaxis": {"title": "y (px)", "range": [height_px, 0], "nticks": 4},  # image rows grow downwards
            "zaxis": {"title": "frame"},
            "aspectmode": "manual", "aspectratio": {"x": 1, "y": height_px / width, "z": 1},
            "camera": {"eye": {"x": 1.6, "y": -1.6, "z": 0.9}},
        },
    )  # fmt: skip
    _legend(fig)
    return fig


def projections(runs: list[tuple[dict, pd.DataFrame]], height: int = 520) -> go.Figure:
    """x-t, y-t and area-t side by side, one line per object per run."""
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        subplot_titles=("x over time", "y over time", "area over time"))  # fmt: skip
    several = len(runs) > 1
    for index, run, label, object_id, colour, rows in _series(runs):
        name = f"{label} · object {object_id}" if several else f"object {object_id}"
        for row, column in enumerate(("x", "y", "area_px"), start=1):
            fig.add_trace(
                go.Scatter(x=rows["frame"], y=rows[column], mode="lines+markers", name=name,
                           hovertemplate=f"frame %{{x}}: %{{y:.1f}}<extra>{name}</extra>" if several else None,
                           legendgroup=f"{run.id}-{object_id}", showlegend=row == 1,
                           customdata=[[int(f), run.id] for f in rows["frame"]],
                           marker={"size": 5, "color": colour, "symbol": SYMBOLS[index % len(SYMBOLS)]},
                           line={"color": colour, "dash": DASHES[index % len(DASHES)]}),
                row=row, col=1,
            )  # fmt: skip
    fig.update_yaxes(title_text="x (px)", row=1, col=1)
    fig.update_yaxes(title_text="y (px)", autorange="reversed", row=2, col=1)
    fig.update_yaxes(title_text="area (px²)", row=3, col=1)
    fig.update_xaxes(title_text="frame", row=3, col=1)
    # One run: a frame's values side by side. Several: the point under the mouse alone, so that a click
    # (whose first point says which run to show) is on the run clicked, not on whichever run was drawn first.
    fig.update_layout(height=height, margin={"l": 50, "r": 10, "t": 30, "b": 40}, showlegend=False,
                      hovermode="closest" if several else "x unified", uirevision="keep")  # fmt: skip
    return fig


def per_frame_scores(df: pd.DataFrame, columns: tuple[str, ...], title: str, height: int = 280) -> go.Figure:
    """Lines of per-frame scores (0..1), one per object and column; the union of objects ("all") in black."""
    fig = go.Figure()
    ids = sorted((str(i) for i in df["object_id"].unique() if str(i) not in ("0", "all")), key=int)
    for object_id in ids + (["all"] if (df["object_id"].astype(str) == "all").any() else []):
        rows = df[df["object_id"].astype(str) == object_id]
        for column in columns:
            dash = "solid" if column in ("J", "iou") else "dot"
            name = "all objects" if object_id == "all" else f"object {object_id}"
            fig.add_trace(go.Scatter(
                x=rows["frame"], y=rows[column], mode="lines+markers",
                name=f"{column} · {name}" if len(columns) > 1 else name,
                customdata=[[int(f)] for f in rows["frame"]],
                marker={"size": 5},
                line={"color": "black", "dash": "dash", "width": 2.5} if object_id == "all"
                else {"color": _rgb(int(object_id)), "dash": dash},
            ))  # fmt: skip
    # The title sits low enough (and left) to stay clear of Plotly's toolbar in the top right corner.
    fig.update_layout(title={"text": title, "x": 0, "xref": "paper", "y": 1, "yref": "paper", "yanchor": "bottom",
                             "pad": {"b": 10}, "font": {"size": 14}},
                      height=height, margin={"l": 40, "r": 10, "t": 64, "b": 30},
                      yaxis={"range": [0, 1.02], "title": "score"}, xaxis={"title": "frame"},
                      shapes=[], uirevision="keep")  # fmt: skip
    return fig
