"""Player: the overlay video, a frame slider and the 3D trajectory, linked every way in the browser
(assets/player.js); a per-frame panel; downloads; J and F when the run has ground truth. "Correct this frame"
draws on the frame shown (dashboard.drawing) and makes the run's next version in the background; a version
picker shows earlier versions (?version=N)."""

from __future__ import annotations

import dash_bootstrap_components as dbc
import dash_player
from dash import ClientsideFunction, Input, Output, State, dcc, html, no_update

from dashboard import drawing, figures, ui
from dashboard.context import ctx
from dashboard.results import evaluation, frame_table, trajectory
from dashboard.runs import version_facts
from dashboard.storage import Run

PATH, NAME = "/player", "Player"
FIX = "fix"  # the correction drawing's id prefix


def slider_marks(frame_count: int) -> dict:
    """At most eleven marks, evenly spaced, the first and the last frame among them."""
    last = frame_count - 1
    if last <= 0:
        return {0: "0"}
    step = max(1, -(-last // 10))
    # A mark too near the last one gives way to it.
    marks = {i: str(i) for i in range(0, last, step) if i == 0 or last - i > step / 2}
    marks[last] = str(last)
    return marks


def player_meta(run: Run, colours: dict | None = None, label: str | None = None) -> dict:
    """What the clientside callbacks need of a run: time base, object colours (as its figures draw them)."""
    from segmentation.masks import color_of

    fps = run.fps or 25.0
    frames = run.frame_count or 1
    if colours is None:
        colours = {o: ui.colour_css(color_of(o)) for o in run.objects or []}
    return {
        "run_id": run.id,
        "label": label or run.name,
        "fps": fps,
        "frame_count": frames,
        "duration": frames / fps,
        "colours": {str(o): c for o, c in colours.items()},
    }


def downloads(run_id: str, version: int | None = None) -> html.Div:
    items = [("overlay", "Overlay video (.mp4)"), ("masks", "Masks (.zip)"), ("trajectory", "Trajectory (.csv)"),
             ("summary", "Summary (.json)")]  # fmt: skip
    query = f"&version={version}" if version else ""
    return html.Div(
        [dbc.Button([html.Span("⬇ "), text], href=f"/api/runs/{run_id}/files/{kind}?download=1{query}", external_link=True,
                    color="secondary", outline=True, size="sm", className="me-2 mb-2", id=f"download-{kind}")
         for kind, text in items]
    )  # fmt: skip


def _scores(run: Run, scores) -> tuple[list, dict, dict]:
    """The ground-truth card's summary, per-frame chart and the chart's style, from the run's per-frame scores
    (an invitation to add ground truth when there are none)."""
    if scores is None:
        return ([html.P("Add ground-truth masks to score this run (J: region overlap, F: boundary accuracy).",
                        className="text-muted")], {}, {"display": "none"})  # fmt: skip
    summary = [dbc.Row([dbc.Col(html.Div([html.Div(ui.fmt_score(getattr(run, key)), className="score-value"),
                                          html.Div(label, className="score-label")]), width=4)
                        for key, label in (("j", "J (mean)"), ("f", "F (mean)"), ("jf", "J&F"))], id="scores-overall")]  # fmt: skip
    return summary, figures.per_frame_scores(scores, ("J", "F"), "Per-frame scores"), {}


def scores_card(run: Run, earlier: int | None = None):
    summary, figure, graph_style = _scores(run, evaluation(run))
    # Ground truth scores the latest version's masks: said so on an earlier version's page.
    header = f"Ground truth: scores of the latest version ({run.version})" if earlier else "Ground truth"
    return dbc.Card(
        [
            dbc.CardHeader(header),
            dbc.CardBody(
                [
                    html.Div(summary, id="scores-summary"),
                    dcc.Graph(id="score-graph", figure=figure, style=graph_style, config={"displayModeBar": False}),
                    html.Div(id="gtadd-file", className="chunked-upload mt-2", **{
                        "data-upload-store": "gtadd-upload", "data-upload-progress": "gtadd-progress",
                        "data-accept": ".zip"}),
                    dbc.Progress(id="gtadd-progress", value=0, className="mt-1", style={"height": "0.9rem"}),
                    dcc.Store(id="gtadd-upload"),
                    html.Div(id="gtadd-result", className="mt-2"),
                ]
            ),
        ],
        className="mt-3",
    )  # fmt: skip


def version_picker(run: Run, shown: int | None) -> html.Div:
    """Links to each version of the run (shown: an earlier one's number, None for the latest)."""
    earlier = ctx().storage.earlier_versions(run.id)
    if not earlier:
        return html.Div(id="version-picker")
    links = [dbc.NavItem(dbc.NavLink(f"{n}", href=f"/player?id={run.id}&version={n}", active=n == shown,
                                     id=f"version-{n}")) for n in earlier]  # fmt: skip
    latest = run.version if run.status == "done" else max(earlier) + 1
    links.append(dbc.NavItem(dbc.NavLink(f"{latest} (latest)", href=f"/player?id={run.id}", active=shown is None,
                                         id=f"version-{latest}")))  # fmt: skip
    compare = [] if shown is None or run.status != "done" else [
        dbc.Button(f"Compare with version {latest}", href=f"/compare?a={run.id}&b={run.id}&va={shown}",
                   id="compare-versions", color="link", size="sm")]  # fmt: skip
    return html.Div([html.Span("Version ", className="me-2 text-muted"), dbc.Nav(links, pills=True, className="d-inline-flex"),
                     *compare], id="version-picker", className="d-flex align-items-center mb-2")  # fmt: skip


def correction_card(run: Run) -> dbc.Card:
    return dbc.Card(
        dbc.CardBody(
            [
                dbc.Button("Correct this frame", id="correct-open", color="primary", outline=True, className="mb-2"),
                dbc.FormText(" Pause on a frame whose mask is wrong, press this and draw the object again (or add "
                             "one that comes into view there): the run gets a new version, made in the background "
                             "from this one.", className="ms-2"),
                drawing.panel(FIX, "Correct the frame"),
                dbc.Button("Make the corrected version", id="correct-submit", color="primary", className="mt-2",
                           style={"display": "none"}),
                html.Div(id="correct-result", className="mt-2"),
                dcc.Location(id="correct-redirect", refresh="callback-nav"),
            ]
        ),
        className="mt-3",
    )  # fmt: skip


def layout(id=None, version=None, **_query):  # noqa: A002
    storage = ctx().storage
    run = storage.find_run(id)
    if run is None:
        return ui.not_found()
    earlier = int(version) if str(version or "").isdigit() and int(version) in storage.earlier_versions(run.id) else None
    if run.status != "done" and earlier is None:
        return dbc.Alert([html.H4(f"{run.name} is {run.status}"),
                          dbc.Button("Follow the run", href=f"/run?id={run.id}", color="primary")], color="info")  # fmt: skip
    meta = player_meta(run)
    df = trajectory(run, earlier)
    frames = meta["frame_count"]
    query = f"?version={earlier}" if earlier else ""
    video = dbc.Card(
        dbc.CardBody(
            [
                version_picker(run, earlier),
                dash_player.DashPlayer(
                    id="player",
                    url=f"/api/runs/{run.id}/files/overlay{query}",
                    controls=True,
                    width="100%",
                    height="auto",
                    intervalCurrentTime=100,
                    className="video-player",
                ),  # fmt: skip
                html.Div(id="frame-label", className="frame-label mt-2"),
                dcc.Slider(
                    id="frame-slider",
                    min=0,
                    max=max(frames - 1, 0),
                    step=1,
                    value=0,
                    marks=slider_marks(frames),
                    updatemode="drag",
                    className="mt-1",
                ),  # fmt: skip
                html.Div(id="frame-panel", className="frame-panel"),
            ]
        )
    )
    run_time, _ = version_facts(ctx().storage, run, earlier)
    facts = [
        f"{run.width}×{run.height} px", f"{frames} frames", f"{meta['fps']:.3g} fps",
        f"{len(run.objects or [])} object(s)", f"{run.device or ''}", f"run time {ui.fmt_seconds(run_time)}",
        f"version {earlier or run.version}" + (" (an earlier one)" if earlier else ""),
    ]  # fmt: skip
    return html.Div(
        [
            dcc.Store(id="player-meta", data=meta),
            dcc.Store(id="player-frames", data=frame_table(df)),
            html.Div(
                [html.H2(run.name, className="d-inline me-3"), ui.status_badge(run.status)],
                className="mb-1",
            ),
            html.P(" · ".join(f for f in facts if f), className="text-muted"),
            dbc.Row(
                [
                    dbc.Col(video, lg=6),
                    dbc.Col(
                        [
                            dbc.Card(
                                [
                                    dbc.CardHeader(
                                        "Trajectory: x, y and frame — click a point to jump there"
                                    ),
                                    dbc.CardBody(
                                        dcc.Graph(
                                            id="traj-3d",
                                            figure=figures.trajectory_3d([(run, df)], height=460),
                                        )
                                    ),
                                ]
                            ),
                            html.Div(downloads(run.id, earlier), className="mt-3"),
                        ],
                        lg=6,
                    ),  # fmt: skip
                ],
                className="g-3",
            ),
            correction_card(run) if earlier is None else None,
            scores_card(run, earlier),
        ]
    )


def register_callbacks(app) -> None:
    register_correction(app)
    app.clientside_callback(
        ClientsideFunction("stcnn", "syncPlayer"),
        Output("player", "seekTo"),
        Output("frame-slider", "value"),
        Input("traj-3d", "clickData"),
        Input("score-graph", "clickData"),
        Input("frame-slider", "value"),
        Input("player", "currentTime"),
        State("player-meta", "data"),
        State("player", "duration"),
        prevent_initial_call=True,
    )
    app.clientside_callback(
        ClientsideFunction("stcnn", "showFrame"),
        Output("traj-3d", "figure"),
        Output("frame-panel", "children"),
        Output("frame-label", "children"),
        Input("frame-slider", "value"),
        State("traj-3d", "figure"),
        State("player-frames", "data"),
        State("player-meta", "data"),
    )

    @app.callback(
        Output("gtadd-result", "children"),
        Output("scores-summary", "children"),
        Output("score-graph", "figure"),
        Output("score-graph", "style"),
        Input("gtadd-upload", "data"),
        State("player-meta", "data"),
        background=True,
        running=[(Output("gtadd-result", "children"), dbc.Spinner(size="sm"), None)],
        prevent_initial_call=True,
    )
    def score_with_ground_truth(upload, meta):
        # A background callback: scoring reads every mask twice and may take a while on long videos.
        message, scored = add_ground_truth(upload, meta)
        if scored is None:
            return message, no_update, no_update, no_update
        return (message, *_scores(*scored))  # the chart at once, no reload

    _storage_root = str(app.server.extensions["stcnn"].storage.root)

    def add_ground_truth(upload, meta):
        """(A message, and (the run, its per-frame scores) once scored, else None)."""
        import pandas as pd

        from dashboard.runs import BadRequest, Conflict, add_ground_truth
        from dashboard.storage import RunNotFound, Storage

        if not upload or not isinstance(meta, dict):
            return None, None
        storage = Storage(_storage_root)  # background callbacks run outside the request, in another process
        # Both come from the browser: the run must exist and be done, the token must be one of our uploads.
        run = storage.find_run(meta.get("run_id"))
        if run is None or run.status != "done":
            return dbc.Alert("This run is gone or not finished.", color="warning"), None
        try:
            source = storage.upload_path(upload.get("token"))
        except RunNotFound:
            return dbc.Alert("The upload expired; pick the file again.", color="warning"), None
        try:
            scores = add_ground_truth(storage, run.id, source)
        except (BadRequest, Conflict) as exc:
            return dbc.Alert(str(exc), color="danger"), None
        finally:
            storage.discard_upload(upload["token"])
        message = dbc.Alert(f"J&F {scores['jf']:.3f} (J {scores['j']:.3f}, F {scores['f']:.3f}).", color="success")
        return message, (storage.find_run(run.id), pd.read_csv(storage.evaluation_path(run.id)))


def _run_frame(source: dict, _index: int = 0):
    """The frame to correct (the one the source names) and the run's masks on it, for the drawing."""
    from dashboard.runs import BadRequest
    from segmentation.masks import read_mask

    storage = ctx().storage
    run = storage.find_run(source.get("run_id"))
    if run is None or run.status != "done":
        raise BadRequest("This run is gone or making a new version: correct it once it is done.")
    frame = int(source.get("frame") or 0)
    masks = sorted((storage.result_dir(run.id) / "masks").glob("*.png"))
    if not 0 <= frame < len(masks):
        raise BadRequest(f"frame {frame}: the run has frames 0 to {len(masks) - 1}.")
    return drawing.read_frame(storage.input_video(run.id), frame), read_mask(masks[frame]), ("run", run.id, frame)


def register_correction(app) -> None:
    drawing.register(app, FIX, _run_frame)

    @app.callback(
        Output(f"{FIX}-source", "data"),
        Output(f"{FIX}-object", "options", allow_duplicate=True),  # (also the drawing's own "Add object")
        Output(f"{FIX}-object", "value", allow_duplicate=True),
        Output(f"{FIX}-title", "children"),
        Output("correct-submit", "style"),
        Input("correct-open", "n_clicks"),
        State("frame-slider", "value"),
        State("player-meta", "data"),
        prevent_initial_call=True,
    )
    def open_correction(_clicks, frame, meta):
        run = ctx().storage.find_run((meta or {}).get("run_id"))
        ids = (run.objects if run else None) or [1]
        source = {"run_id": meta["run_id"], "frame": int(frame or 0)}
        return source, drawing.object_options(ids), ids[0], f"Correct frame {int(frame or 0)}", {}

    @app.callback(
        Output("correct-redirect", "href"),
        Output("correct-result", "children"),
        Input("correct-submit", "n_clicks"),
        State(f"{FIX}-source", "data"),
        State(f"{FIX}-drawing", "data"),
        prevent_initial_call=True,
    )
    def submit_correction(_clicks, source, drawn):
        from dashboard.runs import BadRequest, Conflict, start_correction
        from dashboard.storage import RunNotFound
        from segmentation.errors import SegmentationError

        storage = ctx().storage
        try:
            if not source:
                raise BadRequest("Press Correct this frame first.")
            run = storage.get_run(source["run_id"])
            given = drawing.prompts(drawn or [], run.width, run.height, source["frame"])
            if given.problems:
                raise BadRequest(" ".join(given.problems))
            if not (given.boxes or given.polygons or given.strokes):
                raise BadRequest("Nothing is drawn: drag a box around the object to correct, or paint it.")
            version = start_correction(
                storage, ctx().runner, run.id, source["frame"], polygons=given.polygons, strokes=given.strokes,
                boxes=[[b.x0, b.y0, b.x1, b.y1] for b in given.boxes], objects=[b.object_id for b in given.boxes],
            )  # fmt: skip
        except RunNotFound:
            return no_update, dbc.Alert("This run was deleted: nothing to correct.", color="warning", id="correct-error")
        except (BadRequest, Conflict, SegmentationError) as exc:
            return no_update, dbc.Alert(str(exc), color="danger", id="correct-error")
        return f"/run?id={run.id}&version={version}", None
