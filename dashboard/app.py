"""The Dash app: pages, REST API, background work. `server` is the WSGI app for gunicorn.

gunicorn "dashboard.app:server"      (the app object is created on first import of `server`)
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import dash
import dash_bootstrap_components as dbc
import diskcache
from dash import DiskcacheManager, dcc, html
from flask_caching import Cache

from dashboard import auth, demo, pages
from dashboard.api import StreamingRequest, api
from dashboard.config import load_settings
from dashboard.context import AppContext
from dashboard.forms import MAX_FIELD_BYTES, MAX_FORM_PARTS
from dashboard.runner import make_runner
from dashboard.storage import Storage

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PLOTLY_JS = "vendor/plotly-stcnn.min.js"  # in ASSETS: the traces the pages draw, built by tools/plotly-bundle
log = logging.getLogger(__name__)


def _background_manager(settings):
    if settings.redis_url:
        from dash import CeleryManager

        from dashboard.celery_app import make_celery

        return CeleryManager(make_celery(settings.redis_url))
    return SpawningDiskcacheManager(diskcache.Cache(str(settings.storage / "cache" / "callbacks")))


class SpawningDiskcacheManager(DiskcacheManager):
    """Dash's diskcache manager, but each job starts in a fresh interpreter.

    Dash forks the web process for each job. A fork of a process with threads (the web server's, PyTorch's,
    OpenCV's) can inherit a lock some other thread held, and the job then hangs for ever; at exit the parent
    waits on that child, so the web process cannot stop either. A spawned child starts clean.
    """

    def call_job_fn(self, key, job_fn, args, context):
        import multiprocess

        process = multiprocess.get_context("spawn").Process(
            target=job_fn, args=(key, self._make_progress_key(key), args, context), daemon=True
        )
        process.start()
        return process.pid


def navbar() -> dbc.Navbar:
    links = [("Home", "/"), ("New run", "/upload"), ("Gallery", "/gallery"), ("Trajectories", "/trajectory")]
    return dbc.Navbar(
        dbc.Container(
            [
                dbc.NavbarBrand([html.Span("◉", className="brand-dot"), " STCNN segmentation"], href="/"),
                dbc.Nav([dbc.NavItem(dbc.NavLink(text, href=href, active="exact")) for text, href in links]),
            ],
            fluid=True,
        ),
        color="dark",
        dark=True,
        className="mb-3",
    )


class App(dash.Dash):
    """A Dash app that loads the partial plotly.js bundle in assets/ (1.8 MB) instead of the full one (4.8 MB), and
    only when a page's first graph mounts.

    Evaluating plotly.js was the largest part of a cold page load. dcc.Graph loads plotly.js itself where it is not
    there yet, so the bundle is no page script: what a page shows besides its plots (the video, the slider, the
    words) is drawn first, and a page without a graph never loads it. Dash is kept from adding its own bundle (it
    would add it to a list that all apps share).
    """

    def __init__(self, *args, full_plotly: bool = False, **kwargs):
        self.full_plotly = full_plotly
        kwargs["assets_ignore"] = re.escape(Path(PLOTLY_JS).name)
        super().__init__(*args, **kwargs)

    def _setup_plotlyjs(self):
        if self.full_plotly:
            self._plotlyjs_url = self.config.requests_pathname_prefix + "_stcnn/plotly.min.js"
            self.server.add_url_rule("/_stcnn/plotly.min.js", "full_plotly", _full_plotly)
        else:
            self._plotlyjs_url = self.get_asset_url(PLOTLY_JS)

    def _config(self):
        # The renderer hands dcc.Graph config.plotlyjs_url where components are not served locally, else the
        # stock bundle's path; the renderer reads serve_locally for nothing else (Dash 4.4.1, pinned).
        config = super()._config()
        config.update(serve_locally=False, plotlyjs_url=self._plotlyjs_url)
        return config


def _full_plotly():
    import plotly
    from flask import send_from_directory

    return send_from_directory(Path(plotly.__file__).parent / "package_data", "plotly.min.js", max_age=3600)


def create_app(
    storage_root=None, *, start_runner: bool = True, seed_demo: bool | None = None, full_plotly: bool = False
) -> dash.Dash:
    """The dashboard on `storage_root` (else the configured storage). `full_plotly` serves the stock plotly.js
    bundle instead of the partial one (benchmarks/page_load.py compares the two)."""
    settings = load_settings(storage_root)
    storage = Storage(settings.storage)
    storage.cleanup_uploads()
    app = App(
        __name__,
        full_plotly=full_plotly,
        use_pages=True,
        pages_folder="",  # pages are registered below, so that several apps can live in one process (tests)
        assets_folder=str(ASSETS),
        background_callback_manager=_background_manager(settings),
        suppress_callback_exceptions=True,
        title="STCNN video segmentation",
        update_title=None,
    )
    server = app.server
    server.request_class = StreamingRequest
    auth.install(server, settings.api_token)

    @server.errorhandler(dash.exceptions.DependencyException)
    def _unknown_component_file(_exc):
        # Dash refuses a component-suite path it did not register (e.g. ../ traversal) with an exception: a 404.
        return "Not found", 404

    @server.teardown_request
    def _remove_unused_uploads(_exc):
        # Multipart files not moved into a run (bad input, size limit, parse error): none left behind.
        from flask import request

        if isinstance(request, StreamingRequest):
            request.remove_parts()

    # Chunked uploads send a few MB per request; a one-shot multipart POST to /api/runs may be the whole video.
    server.config["MAX_CONTENT_LENGTH"] = settings.max_upload_bytes + 16 * 1024 * 1024
    server.config["MAX_FORM_MEMORY_SIZE"] = MAX_FIELD_BYTES
    server.config["MAX_FORM_PARTS"] = MAX_FORM_PARTS
    cache = Cache(
        server,
        config={
            "CACHE_TYPE": "FileSystemCache",
            "CACHE_DIR": str(settings.storage / "cache" / "derived"),
            "CACHE_DEFAULT_TIMEOUT": 24 * 3600,
            "CACHE_THRESHOLD": 2000,
        },
    )
    runner = make_runner(storage, settings)
    server.extensions["stcnn"] = AppContext(settings, storage, runner, cache)
    server.register_blueprint(api)
    pages.register(app)
    app.layout = html.Div([dcc.Location(id="url"), navbar(), dbc.Container(dash.page_container, fluid="xl")])
    if start_runner:
        runner.start()
    if settings.demo if seed_demo is None else seed_demo:
        demo.seed_in_background(storage, runner)
    return app


def __getattr__(name: str):
    """`dashboard.app:server` for gunicorn: the app is built when gunicorn asks for `server` (in the worker's
    main thread, where Dash's page registration works), not on import (the Celery worker and tests import
    this module too)."""
    if name == "server":
        globals()["server"] = create_app().server
        return globals()["server"]
    raise AttributeError(name)
