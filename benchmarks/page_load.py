"""Cold load of the Player and Trajectories pages in headless Chromium, stage by stage, for a done run.

A run of a synthetic clip (100 frames, 854x480 by default) is made once with the real pipeline in --storage and
reused after. The app is served in this process; a hook on the Flask app times every Dash callback request on
the server (which outputs, milliseconds, response bytes). Each load is in a fresh browser (empty HTTP cache), which
records in the page, from navigation start: the page's HTML, the page layout in (its player), plotly.js
evaluated, the video's first frame shown, the 3D plot drawn, the frame label filled (ready: all of the last
three). Each page is loaded with the dashboard's partial plotly.js bundle and with the stock one, interleaved.

Usage: python benchmarks/page_load.py [--storage /tmp/stcnn-page-load] [--frames 100] [--loads 3]
(--chrome /usr/bin/chromium). Machines differ and a busy one is slower: run it on a quiet machine, compare
figures of one run only.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import threading
import time
from pathlib import Path

# In the page from its first script on: when each part of the page is ready (ms since navigation start).
PROBE = """
window.__ready = {};
(function poll() {
  const now = performance.now(), r = window.__ready;
  const mark = (name, ok) => { if (ok && r[name] === undefined) { r[name] = now; } };
  mark("plotly.js", !!window.Plotly);
  mark("layout", !!document.querySelector("#player, #tp-player"));
  const video = document.querySelector("#player video, #tp-player video");
  mark("video", !!video && video.readyState >= 2);
  const plot = document.querySelector("#traj-3d .js-plotly-plot, #tp-3d .js-plotly-plot");
  mark("3d plot", !!plot && !!plot._fullLayout && !!plot.querySelector(".gl-container canvas, .main-svg")
       && (plot._fullData || []).length > 1);
  const label = document.querySelector("#frame-label, #tp-label");
  mark("frame label", !!label && label.textContent.startsWith("Frame"));
  if (["video", "3d plot", "frame label"].every((k) => r[k] !== undefined)) { r.ready = now; return; }
  requestAnimationFrame(poll);
})();
"""
STAGES = ("html", "layout", "plotly.js", "video", "3d plot", "frame label", "ready")


def done_run(storage: Path, frames: int, size: tuple[int, int]) -> str:
    """The id of a done run of the benchmark's clip in storage, made with the real pipeline if there is none."""
    from dashboard.app import create_app
    from segmentation.synthetic import make_clip

    name = f"page-load {frames}f {size[0]}x{size[1]}"
    app = create_app(storage, seed_demo=False)
    client = app.server.test_client()
    for run in client.get("/api/runs").get_json()["runs"]:
        if run["name"] == name and run["status"] == "done":
            return run["id"]
    clip = make_clip(Path(tempfile.mkdtemp()), n_frames=frames, size=size, n_objects=2, seed=5)
    with open(clip.video, "rb") as video, open(clip.mask, "rb") as mask:
        data = {"video": (video, "clip.mp4"), "mask": (mask, "mask.png"), "name": name, "preset": "fast",
                "online_seconds": "1", "device": "cpu"}  # fmt: skip
        run_id = client.post("/api/runs", data=data, content_type="multipart/form-data").get_json()["id"]
    print(f"making the run {run_id} ({frames} frames, {size[0]}x{size[1]}) ...", flush=True)
    while (run := client.get(f"/api/runs/{run_id}").get_json())["status"] not in ("done", "failed", "cancelled"):
        time.sleep(1)
    if run["status"] != "done":
        raise SystemExit(f"the run is {run['status']}: {run.get('error')}")
    return run_id


def serve(storage: Path, log: list, full_plotly: bool = False) -> str:
    """The app in a thread of this process; each Dash callback request is appended to `log`."""
    from flask import g, request
    from werkzeug.serving import make_server

    from dashboard.app import create_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns the table
    app = create_app(storage, start_runner=False, seed_demo=False, full_plotly=full_plotly)
    server = app.server

    @server.before_request
    def _start():
        g.started = time.perf_counter()

    @server.after_request
    def _record(response):
        if request.path.startswith("/_dash-update-component"):
            body = request.get_json(silent=True) or {}
            output = body.get("output", "?")
            output = output if len(output) < 60 else output[:57] + "..."
            log.append((output, 1000 * (time.perf_counter() - g.started), response.calculate_content_length()))
        return response

    httpd = make_server("127.0.0.1", 0, server, threaded=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_port}"


def browser(chrome: str):
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--autoplay-policy=no-user-gesture-required"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": PROBE})
    return driver


def load(chrome: str, url: str, log: list) -> tuple[dict, list]:
    """(Stage -> ms since navigation start, the callbacks the server answered meanwhile)."""
    driver = browser(chrome)
    try:
        driver.get(url.split("/")[0] + "//" + url.split("/")[2] + "/api/runs")  # the browser up first
        del log[:]
        driver.get(url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = driver.execute_script("return window.__ready")
            if ready and "ready" in ready:
                break
            time.sleep(0.05)
        else:
            raise SystemExit(f"{url}: not ready after 60 s: {ready}")
        ready["html"] = driver.execute_script("return performance.getEntriesByType('navigation')[0].responseEnd")
        ready["resources"] = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => [e.name.split('/').pop().split('?')[0], "
            "Math.round(e.startTime), Math.round(e.responseEnd), e.encodedBodySize])")
        return ready, list(log)
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--storage", type=Path, default=Path(tempfile.gettempdir()) / "stcnn-page-load")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", default="854x480")
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--resources", action="store_true", help="list the last load's requests too")
    parser.add_argument("--chrome", default="/usr/bin/chromium")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    run_id = done_run(args.storage, args.frames, size)
    log: list = []
    bases = {bundle: serve(args.storage, log, full_plotly=bundle == "full") for bundle in ("partial", "full")}
    pages = {}
    for bundle, base in bases.items():  # each page with each plotly.js bundle, loads interleaved below
        pages[f"player {bundle}"] = f"{base}/player?id={run_id}"
        pages[f"traj. {bundle}"] = f"{base}/trajectory?ids={run_id}"
    results = {}
    for n in range(args.loads):
        for page, url in pages.items():
            stages, callbacks = load(args.chrome, url, log)
            results.setdefault(page, []).append(stages)
            if n == args.loads - 1 and "partial" in page:
                print(f"\n{page}, load {n + 1}: server callbacks")
                for output, ms, size_bytes in callbacks:
                    print(f"  {ms:7.0f} ms {size_bytes or 0:>9} B  {output}")
                print(f"  {sum(ms for _, ms, _ in callbacks):7.0f} ms in all")
            if n == args.loads - 1 and args.resources:
                print(f"  {page} requests: start - end ms, bytes")
                for name, start, end, size_bytes in stages["resources"]:
                    print(f"  {start:7} - {end:5} {size_bytes:>9} B  {name[:60]}")
    print(f"\nms from navigation start (median of {args.loads} cold loads; first load in brackets)")
    print(f"{'stage':<12}" + "".join(f"{page:>19}" for page in pages))
    for stage in STAGES:
        cells = []
        for page in pages:
            values = [r.get(stage) for r in results[page] if r.get(stage) is not None]
            cells.append(f"{statistics.median(values):7.0f} ({values[0]:6.0f})" if values else "–")
        print(f"{stage:<12}" + "".join(f"{c:>19}" for c in cells))
    for page in ("player", "traj."):
        ready = [statistics.median(r["ready"] for r in results[f"{page} {b}"]) for b in ("partial", "full")]
        print(f"{page} ready, partial bundle / full bundle: {ready[0] / ready[1]:.2f}")
    print(json.dumps({"run": run_id, "frames": args.frames, "size": args.size}))


if __name__ == "__main__":
    main()
