"""Home: what the dashboard does, how to use it, the demo result and the compute device."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html

from dashboard import ui
from dashboard.context import ctx
from dashboard.runner import local_device

PATH, NAME = "/", "Home"

STEPS = (
    ("1", "Upload", "A video and a PNG of the first frame with each object painted in its own colour."),
    ("2", "Segment", "A background worker follows every object through every frame; watch it live."),
    ("3", "Explore", "Play the masked video, scrub the 3D trajectory, compare runs in the gallery."),
)


def _demo_card():
    runs = ctx().storage.list_runs()
    done = [run for run in runs if run.status == "done"]
    demo = next((run for run in done if run.name.startswith("Demo")), done[0] if done else None)
    if demo is None:
        pending = next((run for run in runs if run.status in ("queued", "running")), None)
        text = "The demo run is being prepared…" if pending else "No result yet: start a new run."
        link = f"/run?id={pending.id}" if pending else "/upload"
        return dbc.Card(dbc.CardBody([html.H5("Demo"), html.P(text, className="text-muted"),
                                      dbc.Button("Follow it" if pending else "New run", href=link)]))  # fmt: skip
    return dbc.Card(
        [
            html.A(dbc.CardImg(src=ui.thumb_url(demo.id, demo.updated_at), top=True), href=f"/player?id={demo.id}"),
            dbc.CardBody([html.H5(demo.name), html.P(f"{demo.frame_count} frames · {demo.width}×{demo.height}",
                                                          className="text-muted mb-2"),
                          dbc.Button("Open in the player", href=f"/player?id={demo.id}", color="primary")]),
        ],
        className="demo-card",
    )  # fmt: skip


def layout(**_query):
    kind, detail = local_device()
    steps = [
        dbc.Col(dbc.Card(dbc.CardBody([html.Div(n, className="step-number"), html.H5(title), html.P(text)]),
                         className="h-100 step-card"), md=4)
        for n, title, text in STEPS
    ]  # fmt: skip
    return html.Div(
        [
            dbc.Row(
                [
                    dbc.Col(
                        [
                            html.H1("Follow objects through a video", className="display-6"),
                            html.P(
                                "Give the first frame's mask; STCNN segments the objects in every frame, and "
                                "this dashboard shows where they went.",
                                className="lead",
                            ),  # fmt: skip
                            dbc.Row(steps, className="g-3 mb-3"),
                            html.Div(
                                [
                                    dbc.Button(
                                        "Start a new run",
                                        href="/upload",
                                        color="primary",
                                        size="lg",
                                        className="me-2",
                                    ),
                                    dbc.Button(
                                        "Open the gallery",
                                        href="/gallery",
                                        color="secondary",
                                        outline=True,
                                        size="lg",
                                    ),
                                ]
                            ),  # fmt: skip
                            dbc.Alert(
                                [html.Strong(f"Device: {kind}"), f" — {detail}"],
                                id="device-found",
                                color="success" if kind == "GPU" else "info",
                                className="mt-4",
                            ),  # fmt: skip
                        ],
                        lg=8,
                    ),
                    dbc.Col(_demo_card(), lg=4),
                ],
                className="g-4",
            )
        ]
    )


def register_callbacks(app) -> None:
    pass
