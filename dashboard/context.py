"""What the web app shares between its routes, pages and callbacks: settings, storage, runner, cache."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from flask_caching import Cache

from dashboard.config import Settings
from dashboard.storage import Storage


@dataclass
class AppContext:
    settings: Settings
    storage: Storage
    runner: object  # LocalRunner | CeleryRunner: both have submit(run_id)
    cache: Cache


def ctx() -> AppContext:
    """The context of the app serving the current request (several apps may live in one test process)."""
    return current_app.extensions["stcnn"]
