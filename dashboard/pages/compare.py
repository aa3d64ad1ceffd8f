"""Compare two runs: players side by side kept in sync, both trajectories in one 3D plot, and for runs of
the same video (same input hash) the per-frame IoU between their masks."""

from __future__ import annotations

import dash_bootstrap_components as dbc
import dash_player
from dash import ClientsideFunction, Input, Output, State, dcc, html

from dashboard import figures, ui
from dashboard.context import ctx
from dashboard.pages.player import player_meta, slider_marks
from dashboard.results import mask_iou, trajectory

PATH, NAME = "/compare", "Compare"


def _side(run: dict, key: str) -> dbc.Col:
    facts = (f"{run['frame_count']} frames · {run['width']}×{run['height']} · {run['device'] or ''} · "
             f"{ui.fmt_seconds(run['run_time_s'])} · J&F {ui.fmt_score(run['jf'])}")  # fmt: skip
    return dbc.Col(
        dbc.Card(
            [
                dbc.CardHeader(html.A(run["name"], href=f"/player?id={run['id']}")),
                dbc.CardBody([
                    dash_player.DashPlayer(id=f"cmp-player-{key}", url=f"/api/runs/{run['id']}/files/overlay",
                                           controls=key == "a", muted=True, width="100%", height="auto",
                                           intervalCurrentTime=100),
                    html.Div(facts, className="text-muted small mt-1"),
                ]),
            ]
        ),
        md=6,
    )  # fmt: skip


def layout(a=None, b=None, **_query):
    storage = ctx().storage
    run_a, run_b = storage.find_run(a), storage.find_run(b)
    if not run_a or not run_b or run_a["status"] != "done" or run_b["status"] != "done":
        return ui.not_found("pair of finished runs")
    meta = player_meta(run_a)
    meta["frame_count"] = min(run_a["frame_count"] or 1, run_b["frame_count"] or 1)
    same_video = run_a["input_hash"] and run_a["input_hash"] == run_b["input_hash"]
    if same_video:
        iou = mask_iou(run_a, run_b)
        iou_figure = figures.per_frame_scores(iou, ("iou",), "Per-frame IoU between the two runs' masks")
        mean = iou[iou["object_id"] == "all"]["iou"].mean()
        iou_note = html.P(f"Mean IoU over all objects: {mean:.3f}", id="iou-mean")
        style = {}
    else:
        iou_figure, style = {}, {"display": "none"}
        iou_note = dbc.Alert("These runs segment different videos, so their masks cannot be compared pixel by pixel.",
                             color="light")  # fmt: skip
    pairs = [(run_a, trajectory(run_a)), (run_b, trajectory(run_b))]
    return html.Div(
        [
            dcc.Store(id="cmp-meta", data=meta),
            html.H2("Compare runs"),
            dbc.Row([_side(run_a, "a"), _side(run_b, "b")], className="g-3"),
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
                                dbc.CardHeader("Both trajectories (solid: first run, dashed: second)"),
                                dbc.CardBody(
                                    dcc.Graph(id="cmp-3d", figure=figures.trajectory_3d(pairs, height=480))
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
        Output("cmp-player-b", "seekTo"),
        Output("cmp-slider", "value"),
        Output("cmp-player-b", "playing"),
        Input("cmp-3d", "clickData"),
        Input("cmp-iou", "clickData"),
        Input("cmp-slider", "value"),
        Input("cmp-player-a", "currentTime"),
        Input("cmp-player-a", "playing"),
        State("cmp-meta", "data"),
        State("cmp-player-a", "duration"),
        State("cmp-player-b", "duration"),
        State("cmp-player-b", "currentTime"),
        prevent_initial_call=True,
    )
