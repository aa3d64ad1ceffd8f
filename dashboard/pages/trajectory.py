"""Trajectories: the 3D view full size and the x-t, y-t, area-t projections for one or more runs, linked
to a small player that shows the run of the point last clicked (the first picked run to begin with)."""

from __future__ import annotations

import dash_bootstrap_components as dbc
import dash_player
from dash import ClientsideFunction, Input, Output, State, dcc, html, no_update

from dashboard import figures, ui
from dashboard.context import ctx
from dashboard.pages.player import player_meta, slider_marks
from dashboard.results import frame_table, trajectory

PATH, NAME = "/trajectory", "Trajectories"


def layout(ids=None, **_query):
    done = ctx().storage.list_runs(statuses=("done",))
    if not done:
        return ui.empty_state(
            "No finished run yet", "Trajectories appear here once a run is done.", "/upload", "New run"
        )
    chosen = [i for i in (ids or "").split(",") if any(run.id == i for run in done)] or [done[0].id]
    options = [
        {"label": f"{run.name} ({ui.fmt_date(run.created_at)})", "value": run.id} for run in done
    ]
    # The chosen runs are drawn into the layout itself (show_runs is for later picks): no second round trip
    # before the figures and the video can load.
    fig_3d, fig_2d, url, meta, frames, last, marks, shown, title = runs_view(chosen)
    last, marks = (1, None) if last is no_update else (last, marks)  # the runs went meanwhile
    return html.Div(
        [
            dcc.Store(id="tp-meta", data=meta),
            dcc.Store(id="tp-frames", data=frames),
            dcc.Store(id="tp-runs-data", data=shown),
            dbc.Row(
                [
                    dbc.Col(html.H2("Trajectories"), md=4),
                    dbc.Col(
                        dcc.Dropdown(
                            id="tp-runs",
                            options=options,
                            value=chosen,
                            multi=True,
                            placeholder="Pick one or more runs",
                        ),
                        md=8,
                    ),  # fmt: skip
                ],
                className="align-items-center mb-2",
            ),
            dbc.Row(
                [
                    dbc.Col(dbc.Card(dbc.CardBody(dcc.Graph(id="tp-3d", figure=fig_3d, style={"height": "640px"}))),
                            lg=7),  # fmt: skip
                    dbc.Col(
                        [
                            dbc.Card(
                                dbc.CardBody(
                                    [
                                        html.Div(title, id="tp-run-name", className="fw-semibold mb-1"),
                                        dash_player.DashPlayer(
                                            id="tp-player",
                                            url=url,
                                            controls=True,
                                            width="100%",
                                            height="auto",
                                            intervalCurrentTime=100,
                                        ),
                                        html.Div(id="tp-label", className="frame-label mt-1"),
                                        dcc.Slider(
                                            id="tp-slider", min=0, max=last, marks=marks, step=1, value=0,
                                            updatemode="drag",
                                        ),  # fmt: skip
                                        html.Div(id="tp-panel", className="frame-panel small"),
                                    ]
                                )
                            ),
                        ],
                        lg=5,
                    ),  # fmt: skip
                ],
                className="g-3",
            ),
            dbc.Card(dbc.CardBody(dcc.Graph(id="tp-2d", figure=fig_2d)), className="mt-3"),
        ]
    )


def _run_title(label: str, colour: str | None) -> list:
    """The small player's heading: which run it shows (with that run's colour when several are drawn)."""
    return [html.Span(className="swatch", style={"background": colour}), label] if colour else [label]


def runs_view(run_ids) -> tuple:
    """The figures, small player and stores for these runs (the outputs of show_runs, in its order)."""
    storage = ctx().storage
    runs = [run for run in (storage.find_run(i) for i in run_ids or []) if run and run.status == "done"]
    if not runs:
        return {}, {}, None, None, None, no_update, no_update, None, None
    pairs = [(run, trajectory(run)) for run in runs]
    colours, labels = figures.run_colours(pairs), figures.run_labels(runs)
    several = len(runs) > 1
    # Everything the small player needs to show any of these runs, so a click switches it in the browser.
    shown = {
        run.id: {
            "meta": player_meta(run, colours[index], labels[index]),
            "frames": frame_table(df),
            "url": f"/api/runs/{run.id}/files/overlay",
            "marks": slider_marks(run.frame_count or 1),
            "title": _run_title(labels[index], figures.run_colour(index) if several else None),
        }
        for index, (run, df) in enumerate(pairs)
    }
    first = shown[runs[0].id]
    return (
        figures.trajectory_3d(pairs, height=640), figures.projections(pairs, height=560), first["url"],
        first["meta"], first["frames"], max(first["meta"]["frame_count"] - 1, 0), first["marks"], shown,
        first["title"],
    )  # fmt: skip


def register_callbacks(app) -> None:
    @app.callback(
        Output("tp-3d", "figure"),
        Output("tp-2d", "figure"),
        Output("tp-player", "url"),
        Output("tp-meta", "data"),
        Output("tp-frames", "data"),
        Output("tp-slider", "max"),
        Output("tp-slider", "marks"),
        Output("tp-runs-data", "data"),
        Output("tp-run-name", "children"),
        Input("tp-runs", "value"),
        prevent_initial_call=True,  # the layout has the first pick's
    )
    def show_runs(run_ids):
        return runs_view(run_ids)

    app.clientside_callback(
        ClientsideFunction("stcnn", "pickRun"),
        Output("tp-player", "url", allow_duplicate=True),
        Output("tp-meta", "data", allow_duplicate=True),
        Output("tp-frames", "data", allow_duplicate=True),
        Output("tp-slider", "max", allow_duplicate=True),
        Output("tp-slider", "marks", allow_duplicate=True),
        Output("tp-slider", "value", allow_duplicate=True),
        Output("tp-run-name", "children", allow_duplicate=True),
        Input("tp-3d", "clickData"),
        Input("tp-2d", "clickData"),
        State("tp-runs-data", "data"),
        State("tp-meta", "data"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        ClientsideFunction("stcnn", "syncPlayer"),
        Output("tp-player", "seekTo"),
        Output("tp-slider", "value"),
        Input("tp-3d", "clickData"),
        Input("tp-2d", "clickData"),
        Input("tp-slider", "value"),
        Input("tp-player", "currentTime"),
        State("tp-meta", "data"),
        State("tp-player", "duration"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        ClientsideFunction("stcnn", "showRunFrame"),
        Output("tp-3d", "figure", allow_duplicate=True),
        Output("tp-panel", "children"),
        Output("tp-label", "children"),
        Input("tp-slider", "value"),
        Input("tp-frames", "data"),  # another run shown at the same frame number
        State("tp-3d", "figure"),
        State("tp-meta", "data"),
        prevent_initial_call="initial_duplicate",  # the first run's frame 0 as the page opens
    )
