"""Small building blocks the pages share: badges, cards, number formats."""

from __future__ import annotations

import time

import dash_bootstrap_components as dbc
from dash import html

STATUS_COLOURS = {"queued": "secondary", "running": "primary", "done": "success", "failed": "danger",
                  "cancelled": "warning"}  # fmt: skip


# What each engine stage is, in the pages' words.
STAGE_NAMES = {
    "starting": "Starting",
    "decode": "Reading the video",
    "online training": "Tuning on the annotated frames",
    "propagation": "Segmenting the frames",
    "encode": "Writing the overlay video",
    "thumbnail": "Making the thumbnail",
    "done": "Done",
}


def stage_name(stage: str | None) -> str:
    return STAGE_NAMES.get(stage, stage or "")


def status_badge(status: str, **kwargs) -> dbc.Badge:
    return dbc.Badge(
        status, color=STATUS_COLOURS.get(status, "secondary"), className="status-badge", **kwargs
    )


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fmt_date(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp else "–"


def fmt_score(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def colour_css(rgb) -> str:
    return "rgb({},{},{})".format(*rgb)


def object_chip(object_id: int, rgb) -> html.Span:
    return html.Span([html.Span(className="swatch", style={"background": colour_css(rgb)}), f"object {object_id}"],
                     className="object-chip")  # fmt: skip


def empty_state(title: str, text: str, href: str | None = None, button: str | None = None) -> dbc.Card:
    body = [html.H4(title), html.P(text, className="text-muted")]
    if href:
        body.append(dbc.Button(button or "Go", href=href, color="primary"))
    return dbc.Card(dbc.CardBody(body, className="text-center py-5"), className="empty-state")


def not_found(what: str = "run") -> dbc.Alert:
    return dbc.Alert([html.H4(f"No such {what}"), html.P("It may have been deleted. "),
                      dbc.Button("Open the gallery", href="/gallery", color="primary")], color="warning")  # fmt: skip


def thumb_url(run_id: str, updated_at: float | None = None) -> str:
    # The timestamp busts the browser cache when a run is re-run.
    return f"/api/runs/{run_id}/files/thumbnail?v={int(updated_at or 0)}"
