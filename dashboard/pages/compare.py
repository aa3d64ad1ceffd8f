"""Compare two runs: players side by side on one clock (the longer video's controls play, pause and seek both),
both trajectories in one 3D plot, and for runs of the same video (same input hash) the per-frame IoU between
their masks. `va` / `vb` pick an earlier version of either run, so two versions of one run compare alike
(/compare?a=ID&b=ID&va=1)."""

from __future__ import annotations

import dash_bootstrap_components as dbc
import dash_player
from dash import ClientsideFunction, Input, Output, State, dcc, html

from dashboard import figures, ui
from dashboard.context import ctx
from dashboard.pages.player import player_meta, slider_marks
from dashboard.results import mask_iou, trajectory
from dashboard.runs import version_facts
from dashboard.storage import Run

PATH, NAME = "/compare", "Compare"


def _swatch(colour: str) -> html.Span:
    return html.Span(className="swatch", style={"background": colour})


def _version(storage, run: Run | None, text) -> int | None:
    """An earlier version of the run asked for in the query, or None for the latest."""
    if run is None or not str(text or "").isdigit():
        return None
    return int(text) if int(text) in storage.earlier_versions(run.id) else None


def _side(run: Run, key: str, label: str, colour: str, version: int | None = None) -> dbc.Col:
    run_time, jf = version_facts(ctx().storage, run, version)
    facts = (f"{run.frame_count} frames · {run.width}×{run.height} · {run.device or ''} · "
             f"{ui.fmt_seconds(run_time)} · J&F {ui.fmt_score(jf)}")  # fmt: skip
    query = f"?version={version}" if version else ""
    player = dash_player.DashPlayer(id=f"cmp-player-{key}", url=f"/api/runs/{run.id}/files/overlay{query}",
                                    controls=key == "a", muted=True, width="100%", height="auto",
                                    intervalCurrentTime=100)  # fmt: skip
    if key == "b":
        # assets/player.js plays this video from the leading one's clock.
        player = html.Div(player, **{"data-follows": "cmp-player-a"})
    hint = "controls both videos" if key == "a" else "follows the other video"
    return dbc.Col(
        dbc.Card(
            [
                dbc.CardHeader([_swatch(colour), html.A(label, href=f"/player?id={run.id}{query.replace('?', '&')}"),
                                html.Span(f" · {hint}", className="text-muted fw-normal small")]),
                dbc.CardBody([player, html.Div(facts, className="text-muted small mt-1")]),
            ]
        ),
        md=6,
    )  # fmt: skip


def layout(a=None, b=None, va=None, vb=None, **_query):
    storage = ctx().storage
    run_a, run_b = storage.find_run(a), storage.find_run(b)
    version_a, version_b = _version(storage, run_a, va), _version(storage, run_b, vb)
    if not run_a or not run_b or run_a.status != "done" or run_b.status != "done":
        return ui.not_found("pair of finished runs")
    pairs = [(run_a, trajectory(run_a, version_a)), (run_b, trajectory(run_b, version_b))]
    label_a, label_b = figures.run_labels([run_a, run_b])
    if run_a.id == run_b.id or version_a or version_b:  # versions of a run: told apart by their numbers
        label_a = f"{run_a.name} v{version_a or run_a.version}"
        label_b = f"{run_b.name} v{version_b or run_b.version}"
    colour_a, colour_b = figures.run_colour(0), figures.run_colour(1)
    # The longer video leads (player "a": the slider, clicks and its controls drive it, the other follows its
    # clock), so every frame of both can be reached; the left side stays the first run asked for.
    meta_a, meta_b = player_meta(run_a), player_meta(run_b)
    leads_left = meta_a["duration"] >= meta_b["duration"]
    leader, meta = (run_a, meta_a) if leads_left else (run_b, meta_b)
    meta["frame_count"] = leader.frame_count or 1
    meta["fps_of"] = {run_a.id: meta_a["fps"], run_b.id: meta_b["fps"]}  # a clicked point's frame rate
    same_video = run_a.input_hash and run_a.input_hash == run_b.input_hash
    if same_video:
        iou = mask_iou(run_a, run_b, version_a, version_b)
        iou_figure = figures.per_frame_scores(iou, ("iou",), "Per-frame IoU between the two runs' masks")
        mean = iou[iou["object_id"] == "all"]["iou"].mean()
        iou_note = html.P(f"Mean IoU over all objects: {mean:.3f}", id="iou-mean")
        style = {}
    else:
        iou_figure, style = {}, {"display": "none"}
        iou_note = dbc.Alert("These runs segment different videos, so their masks cannot be compared pixel by pixel.",
                             color="light")  # fmt: skip
    return html.Div(
        [
            dcc.Store(id="cmp-meta", data=meta),
            html.H2("Compare runs"),
            dbc.Row([_side(run_a, "a" if leads_left else "b", label_a, colour_a, version_a),
                     _side(run_b, "b" if leads_left else "a", label_b, colour_b, version_b)], className="g-3"),  # fmt: skip
            dcc.Slider(
                id="cmp-slider",
                min=0,
                max=meta["frame_count"] - 1,
                step=1,
                value=0,
                updatemode="drag",
                marks=slider_marks(meta["frame_count"]),
                className="mt-3",
            ),  # fmt: skip
            dbc.Row(
                [
                    dbc.Col(
                        dbc.Card(
                            [
                                dbc.CardHeader(["Both trajectories: ", _swatch(colour_a), f"{label_a}, solid · ",
                                                _swatch(colour_b), f"{label_b}, dashed"]),
                                dbc.CardBody(
                                    dcc.Graph(id="cmp-3d", figure=figures.trajectory_3d(pairs, height=480, labels=[label_a, label_b]))
                                ),
                            ]
                        ),
                        lg=6,
                    ),
                    dbc.Col(
                        dbc.Card(
                            [
                                dbc.CardHeader("Mask agreement"),
                                dbc.CardBody(
                                    [iou_note, dcc.Graph(id="cmp-iou", figure=iou_figure, style=style)]
                                ),
                            ]
                        ),
                        lg=6,
                    ),
                ],
                className="g-3 mt-1",
            ),  # fmt: skip
        ]
    )


def register_callbacks(app) -> None:
    app.clientside_callback(
        ClientsideFunction("stcnn", "syncPair"),
        Output("cmp-player-a", "seekTo"),
        Output("cmp-slider", "value"),
        Input("cmp-3d", "clickData"),
        Input("cmp-iou", "clickData"),
        Input("cmp-slider", "value"),
        Input("cmp-player-a", "currentTime"),
        State("cmp-meta", "data"),
        State("cmp-player-a", "duration"),
        prevent_initial_call=True,
    )
