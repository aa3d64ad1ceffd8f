"""Run progress: stage, frame i/N, ETA, the latest masked frame, Cancel / Rerun.

The page only reads the runs index (dcc.Interval): the run itself lives in a worker process, so leaving
or reloading this page never touches it. When the server stops answering, the page says so.
"""

from __future__ import annotations

import time

import dash_bootstrap_components as dbc
from dash import ClientsideFunction, Input, Output, State, dcc, html, no_update

from dashboard import ui
from dashboard.context import ctx
from dashboard.runs import rerun
from dashboard.storage import FINISHED, Run

PATH, NAME = "/run", "Run"


def layout(id=None, **_query):  # noqa: A002 - the query parameter is called id
    run = ctx().storage.find_run(id)
    if run is None:
        return ui.not_found()
    return html.Div(
        [
            dcc.Store(id="run-id", data=run.id),
            dcc.Interval(id="run-poll", interval=1000),
            dcc.Store(id="run-answered"),  # the poll count the server last answered
            html.Div(id="run-connection"),
            html.Div(
                [html.H2(run.name, className="d-inline me-3"), html.Span(id="run-status")],
                className="mb-3",
            ),
            dbc.Row(
                [
                    dbc.Col(
                        dbc.Card(
                            dbc.CardBody(
                                [
                                    html.H5("Progress"),
                                    dbc.Progress(
                                        id="run-progress",
                                        value=0,
                                        style={"height": "1.6rem"},
                                        className="mb-3",
                                    ),
                                    html.Dl(id="run-facts", className="row run-facts"),
                                    html.Div(id="run-error"),
                                    html.Div(
                                        [
                                            dbc.Button(
                                                "Cancel",
                                                id="run-cancel",
                                                color="danger",
                                                outline=True,
                                                className="me-2",
                                            ),
                                            dbc.Button(
                                                "Run again",
                                                id="run-rerun",
                                                color="secondary",
                                                className="me-2",
                                            ),
                                            dbc.Button(
                                                "Open in the player",
                                                id="run-open",
                                                color="primary",
                                                href=f"/player?id={run.id}",
                                            ),
                                        ]
                                    ),
                                ]
                            )
                        ),
                        lg=5,
                    ),  # fmt: skip
                    dbc.Col(
                        dbc.Card(
                            [
                                dbc.CardHeader("Latest masked frame"),
                                dbc.CardBody(html.Div(id="run-preview-box")),
                            ]
                        ),
                        lg=7,
                    ),  # fmt: skip
                ],
                className="g-3",
            ),
            html.Details(
                [
                    html.Summary("First frame and mask as given"),
                    html.Img(src=f"/api/runs/{run.id}/files/check", className="check-image mt-2"),
                ],
                className="mt-3",
            ),  # fmt: skip
        ]
    )


def _step(run: Run) -> tuple[str, str]:
    """The row saying how far the current stage is: tuning counts iterations against a time budget."""
    if run.stage == "online training":
        if not run.total:
            return "Tuning", "–"
        return "Tuning", f"iteration {run.done} of {run.total}"
    if not run.total:
        return "Frame", "–"
    backward = run.total - (run.frame_count or run.total) if run.stage == "propagation" else 0
    if backward > 0:  # reverse passes from corrections segment some frames a second time
        return "Frames segmented", f"{run.done} / {run.total} ({backward} of them again, backward from a later mask)"
    return "Frame", f"{run.done} / {run.total}"


_OPTION_WORDS = {"online_seconds": "tuning limit (s)", "short_side": "internal size"}


def _options_text(options: dict) -> str:
    """The run's options as words ("preset fast, device auto, gate"): switches only when on."""
    words = []
    for name, value in options.items():
        if value is True:
            words.append(name)
        elif value is not False and value is not None:
            words.append(f"{_OPTION_WORDS.get(name, name)} {value}")
    return ", ".join(words) or "–"


def _facts(run: Run) -> list:
    running = run.status == "running"
    stage = ui.stage_name(run.stage) if running and run.stage else run.status
    rows = [
        ("Stage", stage),
        _step(run),
        ("Time left", ui.fmt_seconds(run.eta_s) if running else "–"),
        (
            "Video",
            f"{run.width}×{run.height} px, {run.frame_count} frames"
            if run.width
            else run.video_name,
        ),
        ("Options", _options_text(run.options)),
        # While it runs: the time so far (run_time_s is still the previous version's for a correction).
        ("Run time", f"{ui.fmt_seconds(time.time() - run.started_at)} so far" if running and run.started_at
         else "–" if run.status not in FINISHED else ui.fmt_seconds(run.run_time_s)),
    ]
    if run.version > 1:  # a correction of a done run makes its next version
        making = run.status not in FINISHED
        rows.append(("Version", f"{run.version}: correcting version {run.version - 1}" if making
                     else str(run.version)))
    out = []
    for term, value in rows:
        out += [
            html.Dt(term, className="col-sm-4"),
            html.Dd(value, className="col-sm-8", id=f"fact-{term.lower().replace(' ', '-')}"),
        ]
    return out


def _preview(src: str | None, status: str, stage: str | None) -> html.Div:
    """The latest masked frame, or a word on when there will be one (none for a run that stopped first)."""
    if src:
        return html.Img(id="run-preview", src=src, className="preview-image", alt="The latest masked frame")
    if status in FINISHED:
        text, spinner = "No masked frame: the run stopped before segmenting one.", None
    elif stage == "online training":
        text, spinner = "Tuning on the annotated frames; masked frames follow.", dbc.Spinner(size="sm", color="light")
    else:
        text, spinner = "The first masked frame appears here once segmentation starts.", dbc.Spinner(
            size="sm", color="light"
        )
    return html.Div([spinner, html.Span(text, className="ms-2")] if spinner else text,
                    className="preview-image preview-placeholder", id="run-preview-placeholder")  # fmt: skip


def register_callbacks(app) -> None:
    @app.callback(
        Output("run-status", "children"),
        Output("run-progress", "value"),
        Output("run-progress", "label"),
        Output("run-progress", "animated"),
        Output("run-progress", "striped"),
        Output("run-progress", "color"),
        Output("run-facts", "children"),
        Output("run-preview-box", "children"),
        Output("run-error", "children"),
        Output("run-cancel", "disabled"),
        Output("run-rerun", "disabled"),
        Output("run-open", "disabled"),
        Output("run-poll", "disabled"),
        Output("run-answered", "data"),
        Input("run-poll", "n_intervals"),
        Input("run-id", "data"),
    )
    def poll(n, run_id):
        storage = ctx().storage
        run = storage.find_run(run_id)
        if run is None:
            return (ui.status_badge("deleted"), 0, "", False, False, "secondary", [], None, None, True, True, True,
                    True, n)  # fmt: skip
        status = run.status
        finished = status in FINISHED
        percent = round(100 * (run.progress or 0))
        preview = None
        if storage.preview_path(run_id).exists():
            preview = f"/api/runs/{run_id}/files/preview?v={run.updated_at}"
        if status == "done" and storage.thumbnail_path(run_id).exists():
            preview = ui.thumb_url(run_id, run.updated_at)
        error = None
        if status in ("failed", "cancelled"):
            error = dbc.Alert([html.Strong("Failed: " if status == "failed" else "Cancelled. "), run.error or "",
                               html.Div("The inputs are kept: press Run again to retry.", className="small mt-1")],
                              color="danger" if status == "failed" else "warning", id="run-error-message")  # fmt: skip
        colour = {"done": "success", "failed": "danger", "cancelled": "warning"}.get(status, "primary")
        label = f"{percent} %" if status != "queued" else "waiting in the queue"
        return (
            ui.status_badge(status, id="run-status-badge"), percent if status != "queued" else 100, label,
            not finished, not finished, colour if status != "queued" else "secondary", _facts(run),
            _preview(preview, status, run.stage), error, finished, not finished, status != "done", finished, n,
        )  # fmt: skip

    app.clientside_callback(
        ClientsideFunction("stcnn", "connection"),
        Output("run-connection", "children"),
        Input("run-poll", "n_intervals"),
        State("run-answered", "data"),
        State("run-poll", "interval"),
        prevent_initial_call=True,
    )

    @app.callback(
        Output("run-poll", "disabled", allow_duplicate=True),
        Input("run-cancel", "n_clicks"),
        State("run-id", "data"),
        prevent_initial_call=True,
    )
    def cancel(_clicks, run_id):
        ctx().storage.request_cancel(run_id)
        return False

    @app.callback(
        Output("run-poll", "disabled", allow_duplicate=True),
        Input("run-rerun", "n_clicks"),
        State("run-id", "data"),
        prevent_initial_call=True,
    )
    def run_again(_clicks, run_id):
        try:
            rerun(ctx().storage, ctx().runner, run_id)
        except ValueError:
            return no_update
        return False
