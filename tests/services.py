"""Servers some tests start themselves (Redis, PostgreSQL). Where one is not installed its tests are skipped on a
developer's machine; in CI (CI set, where `make test` installs them) that is an error instead, so the Celery and
PostgreSQL paths can never pass there without having run."""

from __future__ import annotations

import os
import shutil

import pytest


def missing(what: str) -> None:
    """Skips the test, or in CI fails it: `what` is not installed."""
    message = f"{what} is not installed (make system-packages, or apt-get install it)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run the tests that need it")
    pytest.skip(message)


def redis_server() -> str:
    """redis-server's path, for a test that starts one: skipped where it is missing, failed there in CI."""
    path = shutil.which("redis-server")
    if path is None:
        missing("redis-server")
    return path
