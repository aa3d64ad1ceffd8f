"""Several runs in one view, in real headless Chromium: Trajectories with two runs of different lengths,
Compare playing two runs from one clock; and the gallery, run and player pages' smaller promises (cards that
follow runs, search as you type, a word when the server is gone, scores shown as soon as they are in).

DASH_TEST_CHROMEPATH=/usr/bin/chromium .venv/bin/pytest --headless tests/test_pages_multi.py
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from dashboard_fixtures import (  # noqa: F401 - fixtures
    FAST_OPTIONS,
    post_run,
    screenshot,
    storage_dir,
    tiny_clip,
    wait_for_run,
    wait_until,
    weights,
)
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from dashboard.app import create_app

SHORT_FPS, LONG_FPS = 24.0, 6.0


@dataclass
class Runs:
    short: str  # 10 frames at 24 fps (tiny_clip)
    long: str  # 16 frames at 6 fps (2.7 s: long enough to watch both compare videos play)
    long_again: str  # the long clip once more, with another preset: same video, so masks are compared


@pytest.fixture(scope="module")
def runs(tmp_path_factory, weights, tiny_clip):  # noqa: F811
    """Finished runs in a storage shared by this module's tests (each test starts its own app on it)."""
    from segmentation.synthetic import make_clip

    base = tmp_path_factory.mktemp("multi")
    short = tiny_clip
    assert short.fps == SHORT_FPS
    long = make_clip(base / "long", n_frames=16, size=(96, 64), n_objects=2, seed=5, fps=LONG_FPS)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STCNN_STORAGE", str(base / "storage"))
        env.setenv("STCNN_DEMO", "0")
        env.delenv("REDIS_URL", raising=False)
        client = create_app().server.test_client()
        ids = [
            post_run(client, short, name="short").get_json()["id"],
            post_run(client, long, name="long").get_json()["id"],
            post_run(client, long, name="long", preset="balanced", online_seconds="0").get_json()["id"],
        ]
        for run_id in ids:
            assert wait_for_run(client, run_id)["status"] == "done"
        assert FAST_OPTIONS["preset"] == "fast"  # the labels below tell the two long runs apart by preset
        yield Runs(*ids)


def _video(dash_duo, player_id, what="currentTime"):
    return dash_duo.driver.execute_script(
        "const v = document.querySelector(arguments[0] + ' video'); return v ? v[arguments[1]] : null;",
        f"#{player_id}",
        what,
    )


def _video_ready(dash_duo, player_id):
    return dash_duo.driver.execute_script(
        "const v = document.querySelector(arguments[0] + ' video'); return v && v.readyState >= 2 && v.duration > 0;",
        f"#{player_id}",
    )


def _slider(dash_duo, slider_id, what="aria-valuenow"):
    handle = dash_duo.find_element(f"#{slider_id} [role=slider]")
    return int(float(handle.get_attribute(what)))


def _at_frame(dash_duo, player_id, run_id, frame, fps, timeout=15):
    wait_until(
        lambda: run_id in (_video(dash_duo, player_id, "currentSrc") or "")
        and abs(_video(dash_duo, player_id) - ((frame + 0.5) / fps if frame else 0.0)) < 1e-3,
        timeout,
        f"{player_id} on run {run_id} at frame {frame}",
    )


def _emit_3d_click(dash_duo, graph_id, run_id, frame):
    """Fire plotly_click on the 3D scene for the point of `run_id` at `frame`, as Plotly does on a real click
    (headless Chromium has no GPU to pick 3D points with); dcc.Graph turns it into clickData for the page's
    callbacks. The point is looked up by run (customdata[1]) and frame (z)."""
    dash_duo.wait_for_element(f"#{graph_id} .main-svg", timeout=20)
    found = dash_duo.driver.execute_script(
        """
        const gd = document.querySelector(arguments[0] + ' .js-plotly-plot');
        for (let c = 0; c < gd._fullData.length; c++) {
            const trace = gd._fullData[c];  // decoded arrays (gd.data may hold base64 'bdata' objects)
            const custom = trace.customdata || [];
            const i = custom.findIndex(d => d && d[1] === arguments[1] && d[0] === arguments[2]);
            if (i < 0 || trace.name === 'current frame') continue;
            gd.emit('plotly_click', {points: [{curveNumber: c, pointNumber: i, x: trace.x[i], y: trace.y[i],
                z: trace.z[i], customdata: custom[i], data: gd.data[c], fullData: trace}]});
            return true;
        }
        return false;
        """,
        f"#{graph_id}",
        run_id,
        frame,
    )
    assert found, f"no point of run {run_id} at frame {frame} in {graph_id}"


def _click_2d_point(dash_duo, graph_id, index, run_id=None):
    """A real mouse click on the `index`-th drawn point of the first trace (of `run_id`, if given) of a 2D
    chart; returns the point's frame (its x: frames where an object is not visible have no point)."""
    point = dash_duo.driver.execute_script(
        """
        for (const g of document.querySelectorAll(arguments[0] + ' .scatterlayer .trace')) {
            const trace = g.__data__[0].trace;
            if (arguments[1] !== null && !(trace.customdata && trace.customdata[0][1] === arguments[1])) continue;
            return g.querySelectorAll('.points path')[arguments[2]] || null;
        }
        return null;
        """,
        f"#{graph_id}",
        run_id,
        index,
    )
    assert point is not None, f"no point {index} of run {run_id} in {graph_id}"
    frame = dash_duo.driver.execute_script("return arguments[0].__data__.x;", point)
    ActionChains(dash_duo.driver).move_to_element(point).click().perform()
    return int(frame)


def test_a_click_shows_the_clicked_run_in_the_small_player(dash_duo, runs):
    dash_duo.start_server(create_app())
    dash_duo.driver.get(f"{dash_duo.server_url}/trajectory?ids={runs.short},{runs.long}")
    wait_until(lambda: _video_ready(dash_duo, "tp-player"), 30, "the small player to load")
    dash_duo.wait_for_contains_text("#tp-run-name", "short", timeout=10)
    dash_duo.wait_for_contains_text("#tp-label", "Frame 0 / 9", timeout=10)

    # A frame the first (shorter) run does not have: the long run is shown there, with its own range.
    _emit_3d_click(dash_duo, "tp-3d", runs.long, 14)
    _at_frame(dash_duo, "tp-player", runs.long, 14, LONG_FPS)
    dash_duo.wait_for_contains_text("#tp-label", "Frame 14 / 15", timeout=10)
    dash_duo.wait_for_text_to_equal("#tp-run-name", "long", timeout=5)
    assert _slider(dash_duo, "tp-slider") == 14 and _slider(dash_duo, "tp-slider", "aria-valuemax") == 15
    assert "object 1" in dash_duo.find_element("#tp-panel").text
    # The highlight marks the shown run's objects at that frame.
    highlighted = dash_duo.driver.execute_script(
        "const gd = document.querySelector('#tp-3d .js-plotly-plot'); const t = gd._fullData.at(-1);"
        "return Array.from(t.customdata || []).map(d => d[1]);"
    )
    assert highlighted and set(highlighted) == {runs.long}
    screenshot(dash_duo.driver, "trajectory-two-runs")

    # The slider now reaches the long run's last frame.
    handle = dash_duo.find_element("#tp-slider [role=slider]")
    dash_duo.driver.execute_script("arguments[0].focus()", handle)
    handle.send_keys("\ue010")  # End
    _at_frame(dash_duo, "tp-player", runs.long, 15, LONG_FPS)

    # A click on the long run's own point seeks it; a real click on a 2D point of the short run switches back.
    _emit_3d_click(dash_duo, "tp-3d", runs.long, 2)
    _at_frame(dash_duo, "tp-player", runs.long, 2, LONG_FPS)
    frame = _click_2d_point(dash_duo, "tp-2d", 6, runs.short)
    _at_frame(dash_duo, "tp-player", runs.short, frame, SHORT_FPS)
    dash_duo.wait_for_contains_text("#tp-label", f"Frame {frame} / 9", timeout=10)
    assert _slider(dash_duo, "tp-slider", "aria-valuemax") == 9
    frame = _click_2d_point(dash_duo, "tp-2d", 12, runs.long)
    _at_frame(dash_duo, "tp-player", runs.long, frame, LONG_FPS)
    dash_duo.wait_for_contains_text("#tp-label", f"Frame {frame} / 15", timeout=10)


def test_each_run_has_its_own_colours_named_in_the_legend_and_hover(dash_duo, runs):
    dash_duo.start_server(create_app())
    dash_duo.driver.get(f"{dash_duo.server_url}/trajectory?ids={runs.long},{runs.long_again}")
    dash_duo.wait_for_element("#tp-3d .main-svg", timeout=20)
    traces = dash_duo.driver.execute_script(
        "const gd = document.querySelector('#tp-3d .js-plotly-plot');"
        "return gd._fullData.filter(t => t.showlegend).map(t => ({run: t.customdata[0][1], name: t.name,"
        " group: t.legendgrouptitle.text, colour: t.line.color, hover: t.hovertemplate}));"
    )
    assert len(traces) == 4  # two objects in each run
    by_run = {run: [t for t in traces if t["run"] == run] for run in (runs.long, runs.long_again)}
    # Same names: the legend and the hover tell the runs apart by preset.
    assert {t["group"] for t in by_run[runs.long]} == {"long (fast)"}
    assert {t["group"] for t in by_run[runs.long_again]} == {"long (balanced)"}
    assert all(t["group"] in t["hover"] for t in traces)
    colours = [t["colour"] for t in traces]
    assert len(set(colours)) == 4  # no colour shared between runs or objects

    def hue(colour):
        import colorsys

        r, g, b = (int(v) / 255 for v in colour[4:-1].split(","))
        return colorsys.rgb_to_hsv(r, g, b)[0]

    hues = {run: [hue(t["colour"]) for t in rows] for run, rows in by_run.items()}
    # One hue family per run: a run's objects are close in hue, the two runs far apart.
    assert all(max(h) - min(h) < 0.05 for h in hues.values())
    assert abs(hues[runs.long][0] - hues[runs.long_again][0]) > 0.2


def test_compare_plays_both_videos_from_one_clock(dash_duo, runs):
    dash_duo.start_server(create_app())
    dash_duo.driver.get(f"{dash_duo.server_url}/compare?a={runs.long}&b={runs.long_again}")
    dash_duo.wait_for_contains_text("#iou-mean", "Mean IoU", timeout=30)
    wait_until(
        lambda: _video_ready(dash_duo, "cmp-player-a") and _video_ready(dash_duo, "cmp-player-b"),
        30,
        "both players",
    )
    # The IoU chart: one line per object and one for all of them, the background left out.
    dash_duo.wait_for_element("#cmp-iou .main-svg", timeout=20)
    lines = dash_duo.driver.execute_script(
        "return document.querySelector('#cmp-iou .js-plotly-plot')._fullData"
        ".map(t => ({name: t.name, colour: t.line.color, dash: t.line.dash}));"
    )
    assert [line["name"] for line in lines] == ["object 1", "object 2", "all objects"]
    assert lines[-1]["colour"] == "black" and lines[-1]["dash"] == "dash"
    assert len({line["colour"] for line in lines}) == 3
    # Its title stays clear of Plotly's toolbar.
    title, toolbar = (
        dash_duo.driver.execute_script("return arguments[0].getBoundingClientRect().toJSON();", element)
        for element in (
            dash_duo.find_element("#cmp-iou .gtitle"),
            dash_duo.find_element("#cmp-iou .modebar"),
        )
    )
    assert title["bottom"] <= toolbar["top"] or title["top"] >= toolbar["bottom"] or (
        title["right"] <= toolbar["left"]
    ), (title, toolbar)

    # Play with the left video's controls: the right one plays along, nudged, not seeked again and again.
    dash_duo.driver.execute_script(
        "window.seeks = {a: [], b: []}; const [a, b] = ['a', 'b'].map(k => document.querySelector('#cmp-player-' + k + ' video'));"
        "for (const [k, v] of [['a', a], ['b', b]]) {"
        "  v.addEventListener('seeking', () => { window.seeks[k].push([performance.now() | 0, a.currentTime, b.currentTime, b.readyState]); });"
        "} a.play();"
    )
    samples = []
    for _ in range(8):  # about 1.5 s of the 2.7 s video: both still playing
        time.sleep(0.15)
        samples.append(
            dash_duo.driver.execute_script(
                "const [a, b] = ['a', 'b'].map(k => document.querySelector('#cmp-player-' + k + ' video'));"
                "return [a.currentTime, b.currentTime, a.paused, b.paused];"
            )
        )
    screenshot(dash_duo.driver, "compare-playing")
    times_a, times_b = [s[0] for s in samples], [s[1] for s in samples]
    assert times_a[-1] - times_a[0] > 0.7 and times_b[-1] - times_b[0] > 0.7, samples
    assert all(b2 >= b1 for b1, b2 in zip(times_b, times_b[1:], strict=False)), samples
    assert all(abs(a - b) < 0.3 for a, b, *_ in samples), samples
    assert not any(s[3] for s in samples[1:]), samples  # B never stopped while A played
    # A is never seeked (the slider following its time seeks nothing); B once onto A's time as A starts, and
    # at most once more on this busy machine (the old code seeked it about 4 times a second).
    seeks = dash_duo.driver.execute_script("return window.seeks;")
    assert len(seeks["a"]) == 0 and len(seeks["b"]) <= 2, (seeks, samples)

    # Pause together, on the same time.
    dash_duo.driver.execute_script("document.querySelector('#cmp-player-a video').pause();")
    wait_until(lambda: _video(dash_duo, "cmp-player-b", "paused"), 5, "the right video to pause")
    wait_until(
        lambda: abs(_video(dash_duo, "cmp-player-a") - _video(dash_duo, "cmp-player-b")) < 1e-3,
        5,
        "both paused on one time",
    )

    # Seek together: a real click on the IoU chart, then the shared slider.
    frame = _click_2d_point(dash_duo, "cmp-iou", 3)
    for player in ("cmp-player-a", "cmp-player-b"):
        wait_until(
            lambda p=player: abs(_video(dash_duo, p) - (frame + 0.5) / LONG_FPS) < 1e-3, 10, f"{player} at {frame}"
        )
    wait_until(lambda: _slider(dash_duo, "cmp-slider") == frame, 10, "the shared slider")
    handle = dash_duo.find_element("#cmp-slider [role=slider]")
    dash_duo.driver.execute_script("arguments[0].focus()", handle)
    handle.send_keys("\ue014" * 2)  # arrow right x2
    for player in ("cmp-player-a", "cmp-player-b"):
        wait_until(
            lambda p=player: abs(_video(dash_duo, p) - (frame + 2.5) / LONG_FPS) < 1e-3,
            10,
            f"{player} at {frame + 2} from the slider",
        )
    screenshot(dash_duo.driver, "compare-paused")
    assert dash_duo.get_logs() in ([], None)


def test_compare_reaches_every_frame_of_the_longer_video(dash_duo, runs):
    # The short run (10 frames) on the left, the long one (16) on the right: the long one leads, so the shared
    # slider reaches its last frame, and the short video waits at its end.
    dash_duo.start_server(create_app())
    dash_duo.driver.get(f"{dash_duo.server_url}/compare?a={runs.short}&b={runs.long}")
    wait_until(
        lambda: _video_ready(dash_duo, "cmp-player-a") and _video_ready(dash_duo, "cmp-player-b"),
        30,
        "both players",
    )
    assert runs.long in _video(dash_duo, "cmp-player-a", "currentSrc")
    columns = dash_duo.driver.find_elements(By.CSS_SELECTOR, ".card-header")
    assert "follows the other video" in columns[0].text and "controls both videos" in columns[1].text
    assert _slider(dash_duo, "cmp-slider", "aria-valuemax") == 15
    handle = dash_duo.find_element("#cmp-slider [role=slider]")
    dash_duo.driver.execute_script("arguments[0].focus()", handle)
    handle.send_keys("\ue010")  # End: the last frame
    _at_frame(dash_duo, "cmp-player-a", runs.long, 15, LONG_FPS)
    wait_until(
        lambda: abs(_video(dash_duo, "cmp-player-b") - _video(dash_duo, "cmp-player-b", "duration")) < 0.05,
        10,
        "the short video at its end",
    )
    # A click on the short run's point at frame 6 (24 fps) puts both videos at that frame's time: the short
    # video shows its frame 6, the long one (6 fps) and the slider are at frame 1 (not at the long run's 6).
    _emit_3d_click(dash_duo, "cmp-3d", runs.short, 6)
    wait_until(lambda: abs(_video(dash_duo, "cmp-player-a") - 6.5 / SHORT_FPS) < 1e-3, 10, "the leader at 6.5/24 s")
    wait_until(lambda: _slider(dash_duo, "cmp-slider") == 1, 10, "the slider at the long run's frame 1")
    wait_until(lambda: abs(_video(dash_duo, "cmp-player-b") - 6.5 / SHORT_FPS) < 0.02, 10, "the short video there")
    assert dash_duo.get_logs() in ([], None)


def test_ground_truth_added_on_the_player_page_shows_its_chart_at_once(dash_duo, runs, tiny_clip, tmp_path):  # noqa: F811
    import shutil

    gt_zip = shutil.make_archive(str(tmp_path / "gt"), "zip", tiny_clip.gt_dir.parent, tiny_clip.gt_dir.name)
    dash_duo.start_server(create_app())
    dash_duo.driver.get(f"{dash_duo.server_url}/player?id={runs.short}")
    dash_duo.wait_for_contains_text("#scores-summary", "Add ground-truth masks", timeout=15)
    wait_until(  # (dcc.Graph takes its style once its lazily loaded code is in)
        lambda: dash_duo.driver.execute_script(
            "return getComputedStyle(document.querySelector('#score-graph')).display;"
        ) == "none",
        10,
        "no chart before there are scores",
    )
    dash_duo.wait_for_element("#gtadd-file input", timeout=10).send_keys(str(gt_zip))
    dash_duo.wait_for_contains_text("#gtadd-result", "J&F", timeout=60)
    # No reload: the overall scores and the per-frame chart are there.
    dash_duo.wait_for_element("#scores-overall", timeout=10)
    dash_duo.wait_for_element("#score-graph .main-svg", timeout=10)
    names = dash_duo.driver.execute_script(
        "return document.querySelector('#score-graph .js-plotly-plot')._fullData.map(t => t.name);"
    )
    assert names == ["J · object 1", "F · object 1", "J · object 2", "F · object 2"]


def test_the_run_page_says_what_it_waits_for_and_when_the_server_is_gone(dash_duo, storage_dir, tiny_clip):  # noqa: F811
    app = create_app(start_runner=False)  # nothing runs: the runs stay queued
    client = app.server.test_client()
    waiting, cancelled = (post_run(client, tiny_clip, name=name).get_json()["id"] for name in ("waiting", "gone"))
    dash_duo.start_server(app)

    # Cancelled before any frame was segmented: a word, not a broken image.
    dash_duo.driver.get(f"{dash_duo.server_url}/run?id={cancelled}")
    dash_duo.wait_for_text_to_equal("#run-status-badge", "queued", timeout=15)
    dash_duo.find_element("#run-cancel").click()
    dash_duo.wait_for_text_to_equal("#run-status-badge", "cancelled", timeout=15)
    dash_duo.wait_for_contains_text("#run-preview-placeholder", "No masked frame", timeout=5)
    assert not dash_duo.driver.find_elements(By.CSS_SELECTOR, "img#run-preview")

    dash_duo.driver.get(f"{dash_duo.server_url}/run?id={waiting}")
    dash_duo.wait_for_text_to_equal("#run-status-badge", "queued", timeout=15)
    dash_duo.wait_for_contains_text("#run-preview-placeholder", "appears here once", timeout=5)
    assert not dash_duo.driver.find_elements(By.CSS_SELECTOR, "#run-connection-lost")
    time.sleep(6)  # polls answered: no false alarm
    assert not dash_duo.driver.find_elements(By.CSS_SELECTOR, "#run-connection-lost")

    dash_duo.server.stop()
    dash_duo.wait_for_contains_text("#run-connection-lost", "Lost the connection to the server", timeout=20)
    screenshot(dash_duo.driver, "run-connection-lost")


def test_gallery_cards_follow_runs_in_progress_and_search_as_you_type(dash_duo, storage_dir, tiny_clip):  # noqa: F811
    from dashboard.storage import Storage

    app = create_app(start_runner=False)
    client = app.server.test_client()
    walk, ride = (post_run(client, tiny_clip, name=name).get_json()["id"] for name in ("walk", "ride"))
    dash_duo.start_server(app)
    dash_duo.driver.get(dash_duo.server_url + "/gallery")
    dash_duo.wait_for_contains_text(f"#card-{walk}", "waiting in the queue", timeout=15)
    assert "Preset\nfast" in dash_duo.find_element(f"#card-{walk}").text

    # The worker reports progress (as jobs.py does, through the runs index): the open page follows it.
    Storage(storage_dir).update_run(walk, status="running", stage="online training", done=5, total=240,
                                    progress=0.2)  # fmt: skip
    dash_duo.wait_for_contains_text(f"#card-{walk}", "Tuning on the annotated frames", timeout=10)
    dash_duo.wait_for_contains_text(f"#card-{walk} .progress", "20 %", timeout=5)
    screenshot(dash_duo.driver, "gallery-in-progress")

    dash_duo.find_element("#gallery-search").send_keys("wal")  # no Enter
    wait_until(lambda: not dash_duo.driver.find_elements(By.CSS_SELECTOR, f"#card-{ride}"), 10, "ride filtered out")
    assert dash_duo.driver.find_elements(By.CSS_SELECTOR, f"#card-{walk}")
