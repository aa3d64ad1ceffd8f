"""The Celery application, shared by the web app (to send runs) and the worker (to execute them)."""

from __future__ import annotations

from functools import cache

from celery import Celery


@cache
def make_celery(redis_url: str) -> Celery:
    app = Celery("stcnn_dashboard", broker=redis_url, backend=redis_url)
    app.conf.update(
        # A run takes minutes: hand one at a time to each worker process and acknowledge it only when
        # finished, so a worker killed mid-run leaves the message for another worker.
        worker_prefetch_multiplier=1,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        broker_connection_retry_on_startup=True,
    )
    return app
