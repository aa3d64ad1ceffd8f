"""Celery worker entry point:  celery -A dashboard.worker worker --loglevel=INFO --concurrency=1

Runs the same job function as the local runner, and the dashboard's background callbacks (which the
Dash app registers on this Celery app when it is created below).
"""

from __future__ import annotations

import os
import socket

from dashboard.celery_app import make_celery
from dashboard.config import check_index, load_settings
from dashboard.jobs import run_job
from dashboard.storage import Storage

settings = load_settings()
if not settings.redis_url:
    raise SystemExit("REDIS_URL is not set: the Celery worker needs Redis (e.g. redis://localhost:6379/0)")
check_index(settings)
celery_app = make_celery(settings.redis_url)
app = celery_app  # `celery -A dashboard.worker` finds `app` or `celery_app`


@celery_app.task(name="stcnn.run_job")
def run_job_task(run_id: str, *_older) -> str:
    # This machine's own storage root and run index, whoever sent the id (an older web process also sent its
    # own storage path: ignored, as this machine may mount the files elsewhere).
    storage = Storage(settings.storage)
    return run_job(run_id, storage, worker=f"celery:{socket.gethostname()}:{os.getpid()}")


def _register_background_callbacks() -> None:
    # Importing the Dash app defines its background callbacks as tasks on celery_app.
    from dashboard.app import create_app

    create_app(start_runner=False, seed_demo=False)


_register_background_callbacks()
