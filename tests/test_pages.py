"""The pages in real headless Chromium (dash_duo), with real runs on a tiny clip.

DASH_TEST_CHROMEPATH=/usr/bin/chromium .venv/bin/pytest --headless tests/test_pages.py
"""

from __future__ import annotations

import pytest
from dashboard_fixtures import *  # noqa: F403 - the fixtures: weights, tiny_clip, storage_dir
from dashboard_fixtures import post_run, screenshot, wait_for_run, wait_until
from selenium.webdriver.common.by import By

from dashboard.app import create_app

TIMEOUT = 120


def _seek_time(frame: int, fps: float) -> float:
    """Where the pages seek for a frame: its middle (its start would risk showing the frame before), 0 for 0."""
    return (frame + 0.5) / fps if frame else 0.0


def _video_time(dash_duo, player_id):
    return dash_duo.driver.execute_script(
        "const v = document.querySelector(arguments[0] + ' video'); return v ? v.currentTime : null;",
        f"#{player_id}",
    )


def _slider_value(dash_duo, slider_id):
    handle = dash_duo.find_element(f"#{slider_id} [role=slider]")
    return int(float(handle.get_attribute("aria-valuenow")))


def _video_ready(dash_duo, player_id):
    return dash_duo.driver.execute_script(
        "const v = document.querySelector(arguments[0] + ' video'); return v && v.readyState >= 2 && v.duration > 0;",
        f"#{player_id}",
    )


def _done_runs(storage_dir, clip, names):
    """Finished runs made through the API of a first app instance (as if from an earlier session)."""
    client = create_app().server.test_client()
    ids = [post_run(client, clip, name=name).get_json()["id"] for name in names]
    for run_id in ids:
        assert wait_for_run(client, run_id)["status"] == "done"
    return ids


def test_a_whole_run_through_the_pages(dash_duo, storage_dir, tiny_clip):
    dash_duo.start_server(create_app())
    dash_duo.wait_for_text_to_equal("h1", "Follow objects through a video", timeout=10)
    assert "Device:" in dash_duo.find_element("#device-found").text
    screenshot(dash_duo.driver, "home")

    dash_duo.driver.get(dash_duo.server_url + "/upload")
    dash_duo.find_element("#run-name").send_keys("pages run")
    dash_duo.find_element("#video-file input").send_keys(str(tiny_clip.video))
    dash_duo.find_element("#mask-file input").send_keys(str(tiny_clip.mask))
    dash_duo.wait_for_contains_text("#objects-found", "2 objects found", timeout=30)
    # A time limit out of range is refused with the field's name, not dropped for the preset's (as a browser
    # does with a number under an input's min); the files stay picked.
    seconds = dash_duo.find_element("#online-seconds")
    seconds.send_keys("-5")
    dash_duo.find_element("#start-run").click()
    dash_duo.wait_for_contains_text("#start-error", "Time limit for tuning: seconds must be in 0..3600, got -5", 15)
    assert "/upload" in dash_duo.driver.current_url
    seconds.clear()
    seconds.send_keys("0.5")
    dash_duo.find_element("label[for='_dbcprivate_radioitems_preset_input_fast']").click()
    dash_duo.find_element("#device").find_element(By.CSS_SELECTOR, "option[value='cpu']").click()
    screenshot(dash_duo.driver, "upload")
    dash_duo.find_element("#start-run").click()

    wait_until(lambda: "/run?id=" in dash_duo.driver.current_url, 15, "the run page")
    run_id = dash_duo.driver.current_url.split("id=")[1]
    from dashboard.storage import Storage

    assert Storage(storage_dir).get_run(run_id).options["online_seconds"] == 0.5  # a fraction arrives whole
    # The tiny run may be over before we look: accept any live status, then wait for the end.
    wait_until(
        lambda: dash_duo.find_element("#run-status-badge").text in ("queued", "running", "done"), 30, "status"
    )
    screenshot(dash_duo.driver, "run-progress")
    dash_duo.wait_for_text_to_equal("#run-status-badge", "done", timeout=TIMEOUT)
    screenshot(dash_duo.driver, "run-done")

    dash_duo.find_element("#run-open").click()
    wait_until(lambda: "/player?id=" + run_id in dash_duo.driver.current_url, 10, "the player page")
    wait_until(lambda: _video_ready(dash_duo, "player"), 30, "the overlay video to load")
    dash_duo.wait_for_contains_text("#frame-label", "Frame 0 / 9", timeout=10)
    assert "object 1" in dash_duo.find_element("#frame-panel").text
    screenshot(dash_duo.driver, "player")
    assert dash_duo.get_logs() in ([], None)


def _click_3d_point(dash_duo, graph_id, curve, frame):
    """Fire plotly_click on the WebGL scene as Plotly does for a click on the point of `frame` (headless
    Chromium has no GPU to pick 3D points with); dcc.Graph turns it into clickData like a real click. The point
    is looked up by its frame (z), starting at trace `curve`: frames where an object is not visible have no
    point, so a point's index is not its frame."""
    dash_duo.wait_for_element(f"#{graph_id} .main-svg", timeout=20)
    found = dash_duo.driver.execute_script(
        """
        const gd = document.querySelector(arguments[0] + ' .js-plotly-plot');
        for (let c = arguments[1]; c < gd._fullData.length; c++) {
            const trace = gd._fullData[c];  // decoded arrays (gd.data may hold base64 'bdata' objects)
            const i = Array.from(trace.z || []).indexOf(arguments[2]);
            if (i < 0) continue;
            gd.emit('plotly_click', {points: [{curveNumber: c, pointNumber: i, x: trace.x[i], y: trace.y[i],
                z: trace.z[i], customdata: trace.customdata && trace.customdata[i], data: gd.data[c],
                fullData: trace}]});
            return true;
        }
        return false;
        """,
        f"#{graph_id}",
        curve,
        frame,
    )
    assert found, f"no point at frame {frame} in {graph_id}"


def _play_and_sample(dash_duo, player_id, slider_id, seconds):
    """Plays the player's video (muted, looped) for `seconds`, reading the video's time each time the slider's
    value changes; then pauses. ([(time s, slider value)], the page's server callbacks before and after)."""
    return dash_duo.driver.execute_async_script(
        """
        const [playerId, sliderId, seconds, done] = arguments;
        const video = document.querySelector('#' + playerId + ' video');
        const handle = document.querySelector('#' + sliderId + ' [role=slider]');
        const calls = () => performance.getEntriesByType('resource')
            .filter((e) => e.name.includes('_dash-update-component')).length;
        const before = calls(), samples = [];
        const moves = new MutationObserver(() => {
            if (!video.paused) { samples.push([video.currentTime, Number(handle.getAttribute('aria-valuenow'))]); }
        });
        moves.observe(handle, {attributes: true, attributeFilter: ['aria-valuenow']});
        video.muted = true;
        video.loop = true;
        video.play().then(() => setTimeout(() => {
            video.pause();
            moves.disconnect();
            setTimeout(() => done([samples, before, calls()]), 300);
        }, 1000 * seconds), (error) => done([[], before, String(error)]));
        """,
        player_id,
        slider_id,
        seconds,
    )


def _plotly_requests(dash_duo) -> list[str]:
    """The URLs the page requested that name plotly."""
    return dash_duo.driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).filter(n => /plotly/.test(n))"
    )


def test_clicking_a_trajectory_point_seeks_the_player_and_moves_the_slider(dash_duo, storage_dir, tiny_clip):
    (run_id,) = _done_runs(storage_dir, tiny_clip, ["click run"])
    dash_duo.start_server(create_app())
    dash_duo.driver.get(f"{dash_duo.server_url}/player?id={run_id}")
    wait_until(lambda: _video_ready(dash_duo, "player"), 30, "the overlay video to load")
    # The 3D plot is drawn by the partial plotly.js bundle in assets/, the only plotly.js the page loaded (the
    # first graph loads it: it may come after the video).
    scripts = wait_until(lambda: _plotly_requests(dash_duo), 30, "plotly.js loaded")
    assert len(scripts) == 1 and "/assets/vendor/plotly-stcnn.min.js" in scripts[0], scripts
    fps = 24.0
    for frame in (7, 3, 0):  # 3/24 s is under one second: dash-player reads it as a fraction unless handled
        _click_3d_point(dash_duo, "traj-3d", 0, frame)
        wait_until(
            lambda f=frame: abs(_video_time(dash_duo, "player") - _seek_time(f, fps)) < 1e-3,
            10,
            f"the player at frame {frame}",
        )
        wait_until(lambda f=frame: _slider_value(dash_duo, "frame-slider") == f, 10, f"the slider at {frame}")
        dash_duo.wait_for_contains_text("#frame-label", f"Frame {frame} / 9", timeout=5)
    # And the other way: the slider seeks the player.
    dash_duo.driver.execute_script(
        "arguments[0].focus()", dash_duo.find_element("#frame-slider [role=slider]")
    )
    dash_duo.find_element("#frame-slider [role=slider]").send_keys("\ue014" * 5)  # arrow right x5
    wait_until(
        lambda: abs(_video_time(dash_duo, "player") - 5.5 / fps) < 1e-3,
        10,
        "the player at frame 5 from the slider",
    )
    screenshot(dash_duo.driver, "player-after-click")

    # Playing (looped, the clip is short): the slider follows the video frame by frame, all in the browser. Each
    # time the slider moves, it shows the frame the video is on (or the one before: frames turn meanwhile).
    frames, callbacks_before, callbacks_after = _play_and_sample(dash_duo, "player", "frame-slider", seconds=2)
    # Frames behind (the video's frame less the slider's, across the loop's end).
    lags = sorted(abs((min(int(t * fps + 1e-3), 9) - value + 5) % 10 - 5) for t, value in frames)
    assert len(frames) >= 5, frames  # it moves along while the video plays
    assert lags[len(lags) // 2] <= 2, frames
    assert callbacks_after == callbacks_before  # no server callback per frame
    # Paused: the slider is on the video's frame, and the 3D highlight (held back while playing) catches up.
    # A video paused at its very end reports its duration: that is the last frame (9), as while playing.
    paused_at = min(int(_video_time(dash_duo, "player") * fps + 1e-3), 9)
    wait_until(lambda: _slider_value(dash_duo, "frame-slider") == paused_at, 5, f"the slider at {paused_at}")
    highlighted = "const gd = document.querySelector('#traj-3d .js-plotly-plot'); return gd.data[gd.data.length - 1].z;"
    wait_until(lambda: dash_duo.driver.execute_script(highlighted)[:1] == [paused_at], 5, "the highlight there")

    # The trajectory page: a real mouse click on a point of the 2D projections seeks its small player.
    dash_duo.driver.get(f"{dash_duo.server_url}/trajectory?ids={run_id}")
    wait_until(lambda: _video_ready(dash_duo, "tp-player"), 30, "the small player to load")
    dash_duo.wait_for_contains_text("#tp-label", "Frame 0 / 9", timeout=10)  # drawn with the page, no callback
    points = dash_duo.driver.find_elements(By.CSS_SELECTOR, "#tp-2d .scatterlayer .trace .points path")
    assert len(points) >= 10
    from selenium.webdriver.common.action_chains import ActionChains

    # The 7th drawn point; its frame is its x (frames where an object is not visible have no point, so the index
    # alone does not say which frame it is).
    frame = dash_duo.driver.execute_script("return arguments[0].__data__.x;", points[6])
    assert isinstance(frame, int | float)
    ActionChains(dash_duo.driver).move_to_element(points[6]).click().perform()
    wait_until(
        lambda: abs(_video_time(dash_duo, "tp-player") - _seek_time(frame, fps)) < 1e-3,
        10,
        f"the small player at frame {frame}",
    )
    screenshot(dash_duo.driver, "trajectory")


def _shown_picture(dash_duo, player_id):
    """The picture the video element shows (drawn onto a canvas), as RGB, once no seek is pending."""
    import base64
    import io

    import numpy as np
    from PIL import Image

    url = dash_duo.driver.execute_async_script(
        """
        const [selector, done] = arguments;
        const v = document.querySelector(selector + ' video');
        const grab = () => {
          const c = document.createElement('canvas');
          c.width = v.videoWidth; c.height = v.videoHeight;
          c.getContext('2d').drawImage(v, 0, 0);
          done(c.toDataURL('image/png'));
        };
        const wait = () => (v.seeking || v.readyState < 2 ? setTimeout(wait, 50) : requestAnimationFrame(grab));
        wait();
        """,
        f"#{player_id}",
    )
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",")[1]))).convert("RGB"), np.float32)


def test_the_player_shows_the_frame_the_slider_names(dash_duo, storage_dir, tiny_clip):
    # The picture on screen, not only the video's time: a seek to a frame's very start showed the frame before
    # it about one time in three.
    import av
    import numpy as np

    (run_id,) = _done_runs(storage_dir, tiny_clip, ["picture run"])
    (overlay,) = [p for p in storage_dir.rglob("overlay.mp4") if run_id in str(p)]
    with av.open(str(overlay)) as container:
        frames = [f.to_ndarray(format="rgb24").astype(np.float32) for f in container.decode(video=0)]
    dash_duo.start_server(create_app())
    dash_duo.driver.get(f"{dash_duo.server_url}/player?id={run_id}")
    wait_until(lambda: _video_ready(dash_duo, "player"), 30, "the overlay video to load")
    handle = dash_duo.find_element("#frame-slider [role=slider]")
    dash_duo.driver.execute_script("arguments[0].focus()", handle)
    shown = []
    for frame in [*range(1, len(frames)), 0]:
        handle.send_keys("\ue014" if frame else "\ue011")  # arrow right: the next frame; Home: frame 0
        wait_until(lambda f=frame: _slider_value(dash_duo, "frame-slider") == f, 10, f"the slider at {frame}")
        wait_until(
            lambda f=frame: abs(_video_time(dash_duo, "player") - _seek_time(f, 24)) < 1e-3, 10, f"seeked to {frame}"
        )
        picture = _shown_picture(dash_duo, "player")
        errors = [float(np.abs(picture - other).mean()) for other in frames]
        shown.append((frame, int(np.argmin(errors)), round(min(errors), 2)))
    assert all(frame == best for frame, best, _ in shown), shown


def test_the_gallery_lists_runs_after_a_restart_and_compares_two(dash_duo, storage_dir, tiny_clip):
    first, second = _done_runs(storage_dir, tiny_clip, ["gallery one", "gallery two"])
    dash_duo.start_server(create_app())  # a new app on the same storage: a restart
    dash_duo.driver.get(dash_duo.server_url + "/gallery")
    dash_duo.wait_for_element(f"#card-{first}", timeout=10)
    dash_duo.wait_for_element(f"#card-{second}", timeout=10)
    assert "gallery one" in dash_duo.find_element(f"#card-{first}").text
    screenshot(dash_duo.driver, "gallery")
    assert _plotly_requests(dash_duo) == []  # a page without a graph never loads plotly.js

    for run_id in (first, second):
        dash_duo.find_element(f"#card-{run_id} input[type=checkbox]").click()
    dash_duo.wait_for_text_to_equal("#compare-button", "Compare the 2 picked", timeout=5)
    dash_duo.find_element("#compare-button").click()
    wait_until(lambda: "/compare?" in dash_duo.driver.current_url, 10, "the compare page")
    dash_duo.wait_for_contains_text("#iou-mean", "Mean IoU", timeout=30)  # same video: masks compared
    wait_until(
        lambda: _video_ready(dash_duo, "cmp-player-a") and _video_ready(dash_duo, "cmp-player-b"),
        30,
        "both players",
    )
    _click_3d_point(dash_duo, "cmp-3d", 0, 4)  # both players go to frame 4, in step
    for player in ("cmp-player-a", "cmp-player-b"):
        wait_until(lambda p=player: abs(_video_time(dash_duo, p) - 4.5 / 24) < 1e-3, 10, f"{player} at frame 4")
    wait_until(lambda: _slider_value(dash_duo, "cmp-slider") == 4, 10, "the shared slider at 4")
    screenshot(dash_duo.driver, "compare")

    dash_duo.driver.get(dash_duo.server_url + "/gallery")
    dash_duo.wait_for_element(f"#card-{first}", timeout=10)
    dash_duo.driver.find_element(By.CSS_SELECTOR, f"#card-{first} .btn-outline-danger").click()
    dash_duo.driver.switch_to.alert.accept()
    wait_until(
        lambda: not dash_duo.driver.find_elements(By.CSS_SELECTOR, f"#card-{first}"), 10, "the card to go"
    )
    assert dash_duo.driver.find_elements(By.CSS_SELECTOR, f"#card-{second}")


@pytest.mark.parametrize("full", [False, True])
def test_plotly_js_is_no_page_script_but_the_bundle_the_first_graph_loads(storage_dir, full):
    import json
    import re

    client = create_app(start_runner=False, seed_demo=False, full_plotly=full).server.test_client()
    page = client.get("/").get_data(as_text=True)
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert scripts and not [src for src in scripts if "plotly" in src], scripts
    config = json.loads(re.search(r'<script id="_dash-config" type="application/json">(.*?)</script>', page)[1])
    url = config["plotlyjs_url"]  # what the renderer gives dcc.Graph to load
    assert url.startswith("/_stcnn/plotly.min.js" if full else "/assets/vendor/plotly-stcnn.min.js"), url
    body = client.get(url).get_data(as_text=True)
    partial = body.startswith("/*! plotly.js v4.1.1 (scatter, scatter3d, image)")
    assert partial is not full
    assert len(body) > 1_000_000


@pytest.mark.parametrize("path", ["/player?id=" + "0" * 32, "/run?id=nope", "/compare?a=1&b=2"])
def test_unknown_ids_show_a_friendly_message(dash_duo, storage_dir, path):
    dash_duo.start_server(create_app(start_runner=False))
    dash_duo.driver.get(dash_duo.server_url + path)
    dash_duo.wait_for_contains_text("h4", "No such", timeout=10)


def test_a_wrong_mask_is_caught_before_starting_and_the_video_is_kept(
    dash_duo, storage_dir, tiny_clip, tmp_path
):
    import numpy as np
    from PIL import Image

    black = tmp_path / "empty-mask.png"
    Image.fromarray(np.zeros((64, 96), np.uint8)).save(black)
    dash_duo.start_server(create_app(start_runner=False))
    dash_duo.driver.get(dash_duo.server_url + "/upload")
    dash_duo.find_element("#video-file input").send_keys(str(tiny_clip.video))
    dash_duo.find_element("#mask-file input").send_keys(str(black))
    dash_duo.wait_for_contains_text("#check-error", "no object", timeout=30)
    message = dash_duo.find_element("#check-error").text
    assert str(storage_dir) not in message and ".part" not in message and "empty-mask.png" in message
    assert not dash_duo.find_element("#start-run").is_enabled()
    screenshot(dash_duo.driver, "upload-bad-mask")
    # Only the mask is picked again: the uploaded video is still there.
    dash_duo.find_element("#mask-file input").send_keys(str(tiny_clip.mask))
    dash_duo.wait_for_contains_text("#objects-found", "2 objects found", timeout=30)
    assert dash_duo.find_element("#start-run").is_enabled()


def test_a_file_that_is_no_video_is_caught_before_drawing(dash_duo, storage_dir, tiny_clip, tmp_path):
    # Without a mask the objects are drawn: the video is checked as soon as it is picked, and every message
    # names the user's file, not the upload's stored part.
    text = tmp_path / "notavideo.mp4"
    text.write_text("this is a text file, not a video\n" * 20)
    dash_duo.start_server(create_app(start_runner=False))
    dash_duo.driver.get(dash_duo.server_url + "/upload")
    dash_duo.find_element("#video-file input").send_keys(str(text))
    dash_duo.wait_for_contains_text("#check-error", "notavideo.mp4: not a video", timeout=30)
    assert not dash_duo.find_element("#start-run").is_enabled()
    dash_duo.wait_for_contains_text("#new-problem", "notavideo.mp4", timeout=30)
    for shown in ("#check-error", "#new-problem"):
        message = dash_duo.find_element(shown).text
        assert ".part" not in message and str(storage_dir) not in message, message
    # A real video then: the hint to draw, and Start.
    dash_duo.find_element("#video-file input").send_keys(str(tiny_clip.video))
    dash_duo.wait_for_element("#draw-hint", timeout=30)
    assert dash_duo.find_element("#start-run").is_enabled()


def test_masks_for_later_frames_are_checked_previewed_and_run(dash_duo, storage_dir, tmp_path):
    import json

    from segmentation.synthetic import make_clip

    clip = make_clip(tmp_path / "clip", n_frames=10, size=(96, 64), n_objects=2, seed=3, appear_at={2: 4})
    later, beyond = tmp_path / "4.png", tmp_path / "00040.png"  # named by frame number
    for path in (later, beyond):
        path.write_bytes((clip.masks_dir / "00004.png").read_bytes())
    dash_duo.start_server(create_app())
    dash_duo.driver.get(dash_duo.server_url + "/upload")
    dash_duo.find_element("#video-file input").send_keys(str(clip.video))
    dash_duo.find_element("#mask-file input").send_keys(str(clip.masks_dir / "00000.png"))
    dash_duo.wait_for_contains_text("#objects-found", "1 object found", timeout=30)

    dash_duo.find_element("#masks-file input").send_keys(str(beyond))
    dash_duo.wait_for_contains_text(
        "#check-error", "00040.png: names frame 40, but the video has 10", timeout=30
    )
    assert str(storage_dir) not in dash_duo.find_element("#check-error").text
    assert not dash_duo.find_element("#start-run").is_enabled()

    # Only the later masks are picked again (the video and frame 0's mask stay): a bad name, then good masks.
    dash_duo.driver.execute_script("document.querySelector('#masks-file input').value = ''")
    dash_duo.find_element("#masks-file input").send_keys(f"{later}")
    dash_duo.wait_for_contains_text("#objects-found", "2 objects found", timeout=30)
    shown = " ".join(dash_duo.find_element("#later-objects").text.split())
    assert shown == "Masks at frames 0, 4. object 2 from frame 4.", shown
    dash_duo.wait_for_text_to_equal("#masks-progress .progress-bar", "uploaded", timeout=10)
    screenshot(dash_duo.driver, "upload-later-masks")
    dash_duo.find_element("#online-seconds").send_keys("0")
    dash_duo.find_element("#device").find_element(By.CSS_SELECTOR, "option[value='cpu']").click()
    dash_duo.find_element("#start-run").click()
    wait_until(lambda: "/run?id=" in dash_duo.driver.current_url, 15, "the run page")
    run_id = dash_duo.driver.current_url.split("id=")[1]
    dash_duo.wait_for_text_to_equal("#run-status-badge", "done", timeout=TIMEOUT)
    summary = json.loads((storage_dir / "runs" / run_id / "result" / "summary.json").read_text())
    assert summary["object_start_frames"] == {"1": 0, "2": 4}
    # The run's uploads are used up; the replaced pick (00040.png) waits for the daily clean-up, as any does.
    assert len(list((storage_dir / "uploads").glob("*.part"))) == 1
    assert not list((storage_dir / "uploads").glob("*.staging"))


def test_ground_truth_added_on_the_player_page_is_scored(dash_duo, storage_dir, tiny_clip, tmp_path):
    import zipfile

    (run_id,) = _done_runs(storage_dir, tiny_clip, ["scored run"])
    gt_zip = tmp_path / "gt.zip"
    with zipfile.ZipFile(gt_zip, "w") as archive:
        for png in sorted(tiny_clip.gt_dir.glob("*.png")):
            archive.write(png, f"gt/{png.name}")
    dash_duo.start_server(create_app())
    dash_duo.driver.get(f"{dash_duo.server_url}/player?id={run_id}")
    dash_duo.find_element("#gtadd-file input").send_keys(str(gt_zip))
    dash_duo.wait_for_contains_text("#gtadd-result", "J&F", timeout=120)  # a background callback scored it
    dash_duo.driver.refresh()
    dash_duo.wait_for_element("#scores-overall", timeout=15)
    dash_duo.wait_for_element("#score-graph .main-svg", timeout=15)
    screenshot(dash_duo.driver, "player-scores")


def test_a_large_video_is_sent_in_chunks_with_progress(dash_duo, storage_dir, tiny_clip, tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(tiny_clip.video.read_bytes() + b"\0" * (20 * 1024 * 1024))  # 3 chunks of 8 MB
    dash_duo.start_server(create_app(start_runner=False))
    dash_duo.driver.get(dash_duo.server_url + "/upload")
    dash_duo.find_element("#video-file input").send_keys(str(big))
    dash_duo.wait_for_text_to_equal("#video-progress .progress-bar", "uploaded", timeout=60)
    parts = list((storage_dir / "uploads").glob("*.part"))
    assert [p.stat().st_size for p in parts] == [big.stat().st_size]
    assert parts[0].read_bytes() == big.read_bytes()


@pytest.mark.parametrize("frames", [*range(1, 200), 1000, 4999])
def test_frame_sliders_mark_the_first_and_the_last_frame(frames):
    from dashboard.pages.player import slider_marks

    marks = sorted(slider_marks(frames))
    assert marks[0] == 0 and marks[-1] == frames - 1 and len(marks) <= 12
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    assert not gaps or min(gaps) >= max(gaps) / 2  # no two labels run into each other
