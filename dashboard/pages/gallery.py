"""Gallery: every run kept in storage, as cards; search, sort, delete; pick two to compare."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, dcc, html, no_update
from dash import ctx as callback_ctx

from dashboard import ui
from dashboard.context import ctx
from dashboard.storage import FINISHED

PATH, NAME = "/gallery", "Gallery"

SORTS = {
    "newest": (lambda run: run["created_at"], True),
    "oldest": (lambda run: run["created_at"], False),
    "name": (lambda run: run["name"].lower(), False),
    "jf": (lambda run: run["jf"] if run["jf"] is not None else -1, True),
    "runtime": (lambda run: run["run_time_s"] or 0, False),
    "frames": (lambda run: run["frame_count"] or 0, True),
}


def run_card(run: dict) -> dbc.Col:
    run_id, done = run["id"], run["status"] == "done"
    link = f"/player?id={run_id}" if done else f"/run?id={run_id}"
    picture = (
        dbc.CardImg(src=ui.thumb_url(run_id, run["updated_at"]), top=True, className="thumb")
        if done
        else html.Div(ui.status_badge(run["status"]), className="thumb thumb-placeholder")
    )
    facts = [
        ("Date", ui.fmt_date(run["created_at"])),
        ("Frames", run["frame_count"] or "–"),
        ("Size", f"{run['width']}×{run['height']}" if run["width"] else "–"),
        ("Model", run["model"] or "–"),
        ("Device", run["device"] or "–"),
        ("Run time", ui.fmt_seconds(run["run_time_s"])),
        ("J&F", ui.fmt_score(run["jf"])),
    ]
    return dbc.Col(
        dbc.Card(
            [
                html.A(picture, href=link),
                dbc.CardBody(
                    [
                        html.Div([html.H6(run["name"], className="card-title mb-1 text-truncate"),
                                  ui.status_badge(run["status"])], className="d-flex justify-content-between gap-2"),  # fmt: skip
                        html.Dl(sum(([html.Dt(k), html.Dd(str(v))] for k, v in facts), []), className="card-facts"),
                        html.Div(
                            [
                                dbc.Checkbox(id={"type": "pick-run", "id": run_id}, label="compare", value=False,
                                             disabled=not done, className="me-auto"),  # fmt: skip
                                dcc.ConfirmDialogProvider(
                                    dbc.Button("Delete", color="danger", outline=True, size="sm"),
                                    id={"type": "delete-run", "id": run_id},
                                    message=f"Delete the run '{run['name']}' and all its files?",
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
            dbc.Row(
                [
                    dbc.Col(html.H2("Gallery"), md=3),
                    dbc.Col(
                        dbc.Input(
                            id="gallery-search",
                            placeholder="Search by name or file…",
                            debounce=True,
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
            html.Div(id="gallery-grid"),
        ]
    )


def register_callbacks(app) -> None:
    @app.callback(
        Output("gallery-grid", "children"),
        Input("gallery-search", "value"),
        Input("gallery-sort", "value"),
        Input("gallery-refresh", "data"),
    )
    def show(search, sort, _refresh):
        runs = ctx().storage.list_runs(search=(search or "").strip() or None)
        if not runs:
            if search:
                return ui.empty_state("Nothing matches", f"No run name contains “{search}”.")
            return ui.empty_state("No runs yet", "Start one and it will be kept here.", "/upload", "New run")
        key, reverse = SORTS.get(sort, SORTS["newest"])
        active = [run for run in runs if run["status"] not in FINISHED]
        finished = sorted((run for run in runs if run["status"] in FINISHED), key=key, reverse=reverse)
        parts = []
        if active:
            parts += [
                html.H5("In progress"),
                dbc.Row([run_card(run) for run in active], className="g-3 mb-4"),
            ]
        parts.append(dbc.Row([run_card(run) for run in finished], className="g-3", id="gallery-cards"))
        return parts

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
        storage = ctx().storage
        run_id = callback_ctx.triggered_id["id"]
        run = storage.find_run(run_id)
        if run is None:
            return (refresh or 0) + 1
        if run["status"] not in FINISHED:
            storage.request_cancel(run_id)
        storage.delete_run(run_id)
        return (refresh or 0) + 1
