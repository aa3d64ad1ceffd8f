"""Gallery: every run kept in storage, as cards; search as you type, sort, delete; pick two to compare.
Cards of runs in progress follow them (stage, progress, latest masked frame) while the page is open."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, dcc, html, no_update
from dash import ctx as callback_ctx

from dashboard import ui
from dashboard.context import ctx
from dashboard.runs import delete_run
from dashboard.storage import FINISHED, Run, RunNotFound

PATH, NAME = "/gallery", "Gallery"

SORTS = {
    "newest": (lambda run: run.created_at, True),
    "oldest": (lambda run: run.created_at, False),
    "name": (lambda run: run.name.lower(), False),
    "jf": (lambda run: run.jf if run.jf is not None else -1, True),
    "runtime": (lambda run: run.run_time_s or 0, False),
    "frames": (lambda run: run.frame_count or 0, True),
}


def _picture(run: Run):
    run_id = run.id
    if run.status == "done":
        return dbc.CardImg(src=ui.thumb_url(run_id, run.updated_at), top=True, className="thumb")
    if run.status == "running" and ctx().storage.preview_path(run_id).exists():
        return dbc.CardImg(src=f"/api/runs/{run_id}/files/preview?v={run.updated_at}", top=True,
                           className="thumb")  # fmt: skip
    return html.Div(ui.status_badge(run.status), className="thumb thumb-placeholder")


def _progress(run: Run) -> list:
    """Stage and share done, for a card of a run in progress."""
    if run.status == "queued":
        return [html.Div("waiting in the queue", className="small text-muted mb-1")]
    percent = round(100 * (run.progress or 0))
    return [
        html.Div(ui.stage_name(run.stage) or "Starting", className="small text-muted mb-1 card-stage"),
        dbc.Progress(value=percent, label=f"{percent} %", striped=True, animated=True, className="mb-1",
                     style={"height": "1rem"}),
    ]  # fmt: skip


def run_card(run: Run, picked: bool = False) -> dbc.Col:
    run_id, done = run.id, run.status == "done"
    link = f"/player?id={run_id}" if done else f"/run?id={run_id}"
    facts = [
        ("Date", ui.fmt_date(run.created_at)),
        ("Preset", (run.options or {}).get("preset") or "–"),
        ("Frames", run.frame_count or "–"),
        ("Size", f"{run.width}×{run.height}" if run.width else "–"),
        ("Model", run.model or "–"),
        ("Device", run.device or "–"),
        ("Run time", ui.fmt_seconds(run.run_time_s)),
        ("J&F", ui.fmt_score(run.jf)),
        ("Version", run.version or 1),
    ]
    in_progress = [] if run.status in FINISHED else _progress(run)
    picture = _picture(run)
    return dbc.Col(
        dbc.Card(
            [
                html.A(picture, href=link),
                dbc.CardBody(
                    [
                        html.Div([html.H6(run.name, className="card-title mb-1 text-truncate"),
                                  ui.status_badge(run.status)], className="d-flex justify-content-between gap-2"),  # fmt: skip
                        *in_progress,
                        html.Dl(sum(([html.Dt(k), html.Dd(str(v))] for k, v in facts), []), className="card-facts"),
                        html.Div(
                            [
                                dbc.Checkbox(id={"type": "pick-run", "id": run_id}, label="compare", value=picked and done,
                                             disabled=not done, className="me-auto"),  # fmt: skip
                                dcc.ConfirmDialogProvider(
                                    dbc.Button("Delete", color="danger", outline=True, size="sm"),
                                    id={"type": "delete-run", "id": run_id},
                                    message=f"Delete the run '{run.name}' and all its files?",
                                ),
                            ],
                            className="d-flex align-items-center",
                        ),
                    ]
                ),
            ],
            className="run-card h-100",
            id=f"card-{run_id}",
        ),
        sm=6, md=4, xl=3,
    )  # fmt: skip


def layout(**_query):
    return html.Div(
        [
            dcc.Store(id="gallery-refresh", data=0),
            dcc.Store(id="gallery-shown"),  # what the finished cards were drawn from: redrawn only on a change
            dcc.Interval(id="gallery-poll", interval=1500, disabled=True),
            dbc.Row(
                [
                    dbc.Col(html.H2("Gallery"), md=3),
                    dbc.Col(
                        dbc.Input(
                            id="gallery-search",
                            placeholder="Search by name or file…",
                            debounce=300,  # as you type, once a pause says the word is there
                            type="search",
                        ),
                        md=4,
                    ),  # fmt: skip
                    dbc.Col(
                        dbc.Select(
                            id="gallery-sort",
                            value="newest",
                            options=[
                                {"label": "Newest first", "value": "newest"},
                                {"label": "Oldest first", "value": "oldest"},
                                {"label": "Name", "value": "name"},
                                {"label": "Best J&F", "value": "jf"},
                                {"label": "Fastest", "value": "runtime"},
                                {"label": "Most frames", "value": "frames"},
                            ],
                        ),
                        md=2,
                    ),  # fmt: skip
                    dbc.Col(
                        dbc.Button(
                            "Compare the 2 picked",
                            id="compare-button",
                            color="primary",
                            disabled=True,
                            href="/compare",
                            className="w-100",
                        ),
                        md=3,
                    ),  # fmt: skip
                ],
                className="g-2 align-items-center mb-3",
            ),
            html.Div([html.Div(id="gallery-active"), html.Div(id="gallery-finished")], id="gallery-grid"),
        ]
    )


def register_callbacks(app) -> None:
    @app.callback(
        Output("gallery-active", "children"),
        Output("gallery-finished", "children"),
        Output("gallery-shown", "data"),
        Output("gallery-poll", "disabled"),
        Input("gallery-search", "value"),
        Input("gallery-sort", "value"),
        Input("gallery-refresh", "data"),
        Input("gallery-poll", "n_intervals"),
        State("gallery-shown", "data"),
        State({"type": "pick-run", "id": ALL}, "value"),
        State({"type": "pick-run", "id": ALL}, "id"),
    )
    def show(search, sort, _refresh, _n, shown, pick_values, pick_ids):
        runs = ctx().storage.list_runs(search=(search or "").strip() or None)
        if not runs:
            if search:
                return None, ui.empty_state("Nothing matches", f"No run's name or video file contains “{search}”."), None, True
            empty = ui.empty_state("No runs yet", "Start one and it will be kept here.", "/upload", "New run")
            return None, empty, None, True
        key, reverse = SORTS.get(sort, SORTS["newest"])
        active = [run for run in runs if run.status not in FINISHED]
        finished = sorted((run for run in runs if run.status in FINISHED), key=key, reverse=reverse)
        active_cards = [
            html.H5("In progress"),
            dbc.Row([run_card(run) for run in active], className="g-3 mb-4"),
        ] if active else None  # fmt: skip
        # Redrawing the finished cards would reset what is picked to compare: only when they change, and
        # with the picks kept.
        drawn = [[run.id, run.status, run.updated_at] for run in finished]
        if drawn == shown:
            return active_cards, no_update, no_update, not active
        picked = {i["id"] for i, value in zip(pick_ids, pick_values, strict=False) if value}
        cards = dbc.Row([run_card(run, run.id in picked) for run in finished], className="g-3", id="gallery-cards")
        return active_cards, cards, drawn, not active

    @app.callback(
        Output("compare-button", "disabled"),
        Output("compare-button", "href"),
        Output("compare-button", "children"),
        Input({"type": "pick-run", "id": ALL}, "value"),
        State({"type": "pick-run", "id": ALL}, "id"),
    )
    def pick(values, ids):
        picked = [i["id"] for i, value in zip(ids, values, strict=False) if value]
        if len(picked) == 2:
            return False, f"/compare?a={picked[0]}&b={picked[1]}", "Compare the 2 picked"
        return True, no_update, f"Pick 2 runs to compare ({len(picked)} picked)"

    @app.callback(
        Output("gallery-refresh", "data"),
        Input({"type": "delete-run", "id": ALL}, "submit_n_clicks"),
        State("gallery-refresh", "data"),
        prevent_initial_call=True,
    )
    def delete(clicks, refresh):
        if not callback_ctx.triggered_id or not any(clicks):
            return no_update
        try:
            delete_run(ctx().storage, callback_ctx.triggered_id["id"])
        except RunNotFound:
            pass  # deleted from another tab or the API meanwhile: the same outcome
        return (refresh or 0) + 1
