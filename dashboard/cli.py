"""stcnn-dashboard: serve the dashboard (and, without REDIS_URL, run segmentations in local processes).

The pages are served by gunicorn, the production WSGI server the Procfile uses too: one worker process (it also
starts the local runs) with several threads, so uploads, video streaming and the pages' callbacks go at once.
`--debug` serves with Flask's development server and Dash's dev tools instead.
"""

from __future__ import annotations

import argparse
import logging
import os

THREADS = 8


def _device_line() -> str:
    from dashboard.runner import local_device

    kind, detail = local_device()
    return f"GPU ({detail})" if kind == "GPU" else f"CPU, {detail}; runs take longer than on a GPU"


def _banner(host: str, port: int, settings) -> str:
    where = f"Celery workers through {settings.redis_url}" if settings.redis_url else (
        f"on this machine, {settings.max_parallel_runs} at a time (STCNN_MAX_PARALLEL_RUNS)"
    )  # fmt: skip
    reach = (
        "Local single-user mode: only this machine can connect (see the README to serve others)."
        if host in ("127.0.0.1", "localhost", "::1")
        else f"Listening on {host}: other machines can connect with the token (STCNN_API_TOKEN)."
    )
    return "\n".join(
        [
            f"STCNN dashboard: open http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}",
            f"  Device: {_device_line()}",
            f"  Storage: {settings.storage}",
            f"  Runs: {where}",
            f"  {reach} Stop with Ctrl-C.",
        ]
    )


def serve(host: str, port: int, seed_demo: bool | None, banner: str) -> None:
    """gunicorn in this process's foreground; the app is built in its worker (where Dash registers pages)."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self):
            address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            for key, value in {
                "bind": address, "workers": 1, "worker_class": "gthread", "threads": THREADS,
                # a long upload or video stream must not be taken for a hung worker
                "timeout": 120, "graceful_timeout": 10, "loglevel": "warning",
                "post_worker_init": lambda _worker: print(banner, flush=True),
            }.items():  # fmt: skip
                self.cfg.set(key, value)

        def load(self):
            from dashboard.app import create_app

            return create_app(seed_demo=seed_demo).server

    Server().run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stcnn-dashboard", description=__doc__)
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)"
    )
    parser.add_argument("--port", type=int, default=8050)
    parser.add_argument("--storage", help="storage folder (default: $STCNN_STORAGE or ./storage)")
    parser.add_argument(
        "--no-demo", action="store_true", help="do not queue the demo run on an empty gallery"
    )
    parser.add_argument("--debug", action="store_true", help="Flask's development server, Dash dev tools")
    args = parser.parse_args(argv)
    if args.storage:
        os.environ["STCNN_STORAGE"] = args.storage
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from dashboard.config import check_bind, check_index, load_settings

    settings = load_settings()
    check_bind(args.host, settings)  # before anything starts: a clear message, then exit
    check_index(settings)
    seed_demo = False if args.no_demo else None
    banner = _banner(args.host, args.port, settings)
    if args.debug:
        from dashboard.app import create_app

        app = create_app(seed_demo=seed_demo)
        print(banner, flush=True)
        app.run(host=args.host, port=args.port, debug=True, use_reloader=False)
    else:
        serve(args.host, args.port, seed_demo, banner)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
