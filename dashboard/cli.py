"""stcnn-dashboard: serve the dashboard (and, without REDIS_URL, run segmentations in local processes)."""

from __future__ import annotations

import argparse
import logging
import os


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
    parser.add_argument("--debug", action="store_true", help="Dash dev tools and reloader")
    args = parser.parse_args(argv)
    if args.storage:
        os.environ["STCNN_STORAGE"] = args.storage
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from dashboard.app import create_app
    from dashboard.config import check_bind, load_settings

    check_bind(args.host, load_settings())  # before anything starts: a clear message, then exit
    app = create_app(seed_demo=False if args.no_demo else None)
    print(
        f"STCNN dashboard on http://{args.host}:{args.port}  (storage: {app.server.extensions['stcnn'].storage.root})"
    )
    app.run(host=args.host, port=args.port, debug=args.debug, use_reloader=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
