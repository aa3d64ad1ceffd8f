"""Drawing the objects in the browser (dashboard.drawing) with real mouse drags, in headless Chromium.

DASH_TEST_CHROMEPATH=/usr/bin/chromium .venv/bin/pytest --headless tests/test_pages_draw.py
"""

from __future__ import annotations

import json
import re

import numpy as np
from dashboard_fixtures import *  # noqa: F403 - the fixtures: weights, tiny_clip, storage_dir
from dashboard_fixtures import screenshot, wait_until
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from dashboard.app import create_app
from dashboard.storage import Storage
from segmentation.masks import read_mask

TIMEOUT = 120


def object_box(mask_path, object_id) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(read_mask(mask_path) == object_id)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def _screen(dash_duo, graph_id, x, y) -> tuple[float, float]:
    """Where frame pixel (x, y) is on the screen, as offsets from the centre of the graph's drawing area."""
    return dash_duo.driver.execute_script(
        """
        const gd = document.querySelector(arguments[0] + ' .js-plotly-plot');
        const area = gd.querySelector('.nsewdrag').getBoundingClientRect();
        const xr = gd._fullLayout.xaxis.range, yr = gd._fullLayout.yaxis.range;
        const sx = (arguments[1] - xr[0]) / (xr[1] - xr[0]) * area.width;
        const sy = (arguments[2] - yr[1]) / (yr[0] - yr[1]) * area.height;
        return [sx - area.width / 2, sy - area.height / 2];
        """,
        f"#{graph_id}",
        x,
        y,
    )


def drag(dash_duo, graph_id, points) -> None:
    """A real mouse drag through frame pixels `points` (press at the first, release at the last)."""
    area = dash_duo.find_element(f"#{graph_id} .nsewdrag")
    # Wholly in view: actions measure from the centre of an element's visible part.
    dash_duo.driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", area
    )
    offsets = [_screen(dash_duo, graph_id, x, y) for x, y in points]
    chain = ActionChains(dash_duo.driver).move_to_element(area).move_by_offset(*offsets[0]).click_and_hold()
    for (x0, y0), (x1, y1) in zip(offsets, offsets[1:]):
        for _half in range(2):  # in steps, as a hand moves: plotly draws on mouse moves
            chain.move_by_offset((x1 - x0) / 2, (y1 - y0) / 2)
    chain.release().perform()


def drag_box(dash_duo, graph_id, box, margin=2) -> None:
    x0, y0, x1, y1 = box
    drag(dash_duo, graph_id, [(x0 - margin, y0 - margin), (x1 + margin, y1 + margin)])


def image_source(dash_duo, graph_id) -> str:
    return dash_duo.driver.execute_script(
        "const i = document.querySelector(arguments[0] + ' image'); return i ? i.getAttribute('href') : '';",
        f"#{graph_id}",
    )


def click(dash_duo, selector) -> None:
    element = dash_duo.find_element(selector)
    dash_duo.driver.execute_script(
        "arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", element
    )
    element.click()


def open_upload_with_video(dash_duo, clip) -> None:
    dash_duo.start_server(create_app())
    dash_duo.driver.get(dash_duo.server_url + "/upload")
    dash_duo.find_element("#video-file input").send_keys(str(clip.video))
    dash_duo.wait_for_element("#new-graph .nsewdrag", timeout=30)
    wait_until(lambda: image_source(dash_duo, "new-graph"), 30, "frame 0 on the drawing")


def choose_fast_options(dash_duo) -> None:
    dash_duo.find_element("#online-seconds").send_keys("0.5")
    dash_duo.find_element("label[for='_dbcprivate_radioitems_preset_input_fast']").click()
    dash_duo.find_element("#device").find_element(By.CSS_SELECTOR, "option[value='cpu']").click()


def wait_for_done_run(dash_duo) -> str:
    wait_until(lambda: "/run?id=" in dash_duo.driver.current_url, 20, "the run page")
    run_id = dash_duo.driver.current_url.split("id=")[1]
    dash_duo.wait_for_text_to_equal("#run-status-badge", "done", timeout=TIMEOUT)
    return run_id


def choose(dash_duo, radio_id, value) -> None:
    click(dash_duo, f"label[for='_dbcprivate_radioitems_{radio_id}_input_{value}']")


def changed(dash_duo, graph_id, before: str, what: str) -> str:
    return wait_until(lambda: (now := image_source(dash_duo, graph_id)) != before and now, 20, what)


def test_boxes_and_brush_strokes_on_two_frames_become_the_run(dash_duo, storage_dir, tiny_clip):
    from selenium.webdriver.common.keys import Keys

    later = 4  # object 2 is drawn here, as if it came into view at this frame
    open_upload_with_video(dash_duo, tiny_clip)
    dash_duo.find_element("#run-name").send_keys("drawn run")
    choose_fast_options(dash_duo)
    click(dash_duo, "#start-run")  # nothing drawn yet: said so, nothing started
    dash_duo.wait_for_contains_text("#start-error", "Nothing is drawn", timeout=30)
    assert Storage(storage_dir).list_runs() == []

    plain = image_source(dash_duo, "new-graph")
    x0, y0, x1, y1 = object_box(tiny_clip.mask, 1)
    drag_box(dash_duo, "new-graph", (x0, y0, x1, y1))
    dash_duo.wait_for_contains_text("#new-objects", "1 object drawn", timeout=20)
    boxed = changed(dash_duo, "new-graph", plain, "the mask drawn on the frame")

    # Paint from inside object 1 to beyond its box: the mask grows there; an eraser stroke takes a part away.
    choose(dash_duo, "new-tool", "paint")
    cy = (y0 + y1) // 2
    drag(dash_duo, "new-graph", [((x0 + x1) // 2, cy), (min(x1 + 8, 95), cy), (min(x1 + 8, 95), min(cy + 4, 63))])
    painted = changed(dash_duo, "new-graph", boxed, "the painted stroke in the mask")
    choose(dash_duo, "new-tool", "erase")
    drag(dash_duo, "new-graph", [(x0 + 1, y1 - 1), ((x0 + x1) // 2, y1 - 1)])
    changed(dash_duo, "new-graph", painted, "the erased part gone from the mask")
    screenshot(dash_duo.driver, "draw-brush")
    click(dash_duo, "#new-undo")  # undo takes the eraser stroke back, and what it erased
    wait_until(lambda: image_source(dash_duo, "new-graph") == painted, 20, "the eraser stroke undone")

    dash_duo.find_element("#new-frame [role=slider]").send_keys(*[Keys.ARROW_RIGHT] * later)
    dash_duo.wait_for_text_to_equal("#new-frame-label", f"Frame {later}", timeout=20)
    frame_later = changed(dash_duo, "new-graph", painted, f"frame {later} on the drawing")
    click(dash_duo, "#new-add")  # object 2, in its own colour, on the later frame
    choose(dash_duo, "new-tool", "box")
    truth = tiny_clip.gt_dir / f"{later:05d}.png"
    drag_box(dash_duo, "new-graph", object_box(truth, 2))
    dash_duo.wait_for_contains_text("#new-objects", "2 objects drawn", timeout=20)
    dash_duo.wait_for_contains_text("#new-start-2", f"from frame {later}", timeout=30)
    changed(dash_duo, "new-graph", frame_later, "object 2's mask")

    click(dash_duo, "#start-run")
    run_id = wait_for_done_run(dash_duo)
    storage = Storage(storage_dir)
    boxes = json.loads(storage.input_boxes_path(run_id).read_text())
    assert [(box["object_id"], box["frame"]) for box in boxes] == [(1, 0), (2, later)]
    for box in boxes:  # the drag, as frame pixels: around the object, within the margin and a pixel
        mask = tiny_clip.mask if box["frame"] == 0 else truth
        x0, y0, x1, y1 = object_box(mask, box["object_id"])
        assert abs(box["x0"] - (x0 - 2)) <= 1 and abs(box["y1"] - (y1 + 2)) <= 1, box
    strokes = json.loads(storage.input_strokes_path(run_id).read_text())
    assert [(s["object_id"], s["positive"], s["frame"], s["radius"]) for s in strokes] == [(1, True, 0, 4)]
    assert storage.get_run(run_id).objects == [1, 2]
    summary = json.loads((storage.result_dir(run_id) / "summary.json").read_text())
    assert summary["object_start_frames"] == {"1": 0, "2": later}
    masks = storage.result_dir(run_id) / "masks"
    assert not any((read_mask(masks / f"{i:05d}.png") == 2).any() for i in range(later))  # nothing backward
    assert dash_duo.get_logs() in ([], None)


def test_only_shape_edits_call_the_drawing_s_callback(dash_duo, storage_dir, tiny_clip):
    # Dash drops a callback's call in flight when the callback is called again: a relayout event that changes no
    # shape (autosize when plotly first draws, a tool on the mode bar) once lost the frame of the call before it.
    open_upload_with_video(dash_duo, tiny_clip)
    dash_duo.driver.execute_script(
        """
        window.drawCalls = 0;
        const fetch = window.fetch;
        window.fetch = function (url, init) {
          if (String(url).includes('_dash-update-component') && String((init || {}).body).includes('new-graph.figure')) {
            window.drawCalls += 1;
          }
          return fetch.apply(this, arguments);
        };
        const gd = document.querySelector('#new-graph .js-plotly-plot');
        Plotly.relayout(gd, {dragmode: 'pan'}).then(function () { return Plotly.relayout(gd, {autosize: true}); });
        """
    )
    wait_until(lambda: dash_duo.driver.execute_script(
        "return document.querySelector('#new-graph .js-plotly-plot')._fullLayout.dragmode") == "pan",
        10, "the pan tool")  # fmt: skip
    dash_duo.driver.execute_script("return new Promise(function (done) { setTimeout(done, 1500); })")
    assert dash_duo.driver.execute_script("return window.drawCalls") == 0
    dash_duo.driver.execute_script(  # a box, as the box tool draws it: this one reaches the server
        "Plotly.relayout(document.querySelector('#new-graph .js-plotly-plot'),"
        " {shapes: [{type: 'rect', x0: 10, y0: 10, x1: 40, y1: 30}]})"
    )
    dash_duo.wait_for_contains_text("#new-objects", "1 object drawn", timeout=20)
    assert dash_duo.driver.execute_script("return window.drawCalls") == 1


def test_an_outline_becomes_frame_0_s_mask(dash_duo, storage_dir, tiny_clip):
    open_upload_with_video(dash_duo, tiny_clip)
    choose_fast_options(dash_duo)
    choose(dash_duo, "new-tool", "outline")
    wait_until(lambda: dash_duo.driver.execute_script(
        "return document.querySelector('#new-graph .js-plotly-plot')._fullLayout.dragmode") == "drawclosedpath",
        10, "the outline tool")  # fmt: skip
    x0, y0, x1, y1 = object_box(tiny_clip.mask, 1)
    drag(dash_duo, "new-graph", [(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    dash_duo.wait_for_contains_text("#new-objects", "1 object drawn", timeout=20)
    click(dash_duo, "#start-run")
    run_id = wait_for_done_run(dash_duo)
    mask = read_mask(Storage(storage_dir).run_dir(run_id) / "input" / "mask.png")
    painted = np.argwhere(mask == 1)
    assert painted.size and set(np.unique(mask)) == {0, 1}
    # The outline's corners, within a pixel: the mask is the polygon as drawn.
    assert abs(painted[:, 1].min() - x0) <= 1 and abs(painted[:, 0].max() - y1) <= 1


def test_a_frame_corrected_from_the_player_makes_a_new_version(dash_duo, storage_dir, tiny_clip, tmp_path):
    from types import SimpleNamespace

    from dashboard_fixtures import post_run, wait_for_run
    from selenium.webdriver.common.keys import Keys

    from segmentation.masks import write_mask

    # A finished run of object 1 alone, as if from an earlier session: object 2 is added from the player.
    first = read_mask(tiny_clip.mask)
    write_mask(tmp_path / "one.png", np.where(first == 1, 1, 0).astype(np.uint8))
    client = create_app().server.test_client()
    one_object = SimpleNamespace(video=tiny_clip.video, mask=tmp_path / "one.png")
    run_id = post_run(client, one_object, name="to correct").get_json()["id"]
    assert wait_for_run(client, run_id)["status"] == "done"
    dash_duo.start_server(create_app())
    dash_duo.driver.get(f"{dash_duo.server_url}/player?id={run_id}")
    dash_duo.wait_for_contains_text("#frame-label", "Frame 0 / 9", timeout=30)
    dash_duo.find_element("#frame-slider [role=slider]").send_keys(*[Keys.ARROW_RIGHT] * 6)
    dash_duo.wait_for_contains_text("#frame-label", "Frame 6 / 9", timeout=10)

    click(dash_duo, "#correct-open")
    dash_duo.wait_for_text_to_equal("#fix-title", "Correct frame 6", timeout=10)
    dash_duo.wait_for_element("#fix-graph .nsewdrag", timeout=30)
    wait_until(lambda: image_source(dash_duo, "fix-graph"), 30, "frame 6 with its masks")
    shown = image_source(dash_duo, "fix-graph")
    click(dash_duo, "#correct-submit")  # nothing drawn: said so, nothing queued
    dash_duo.wait_for_contains_text("#correct-error", "Nothing is drawn", timeout=30)

    truth = read_mask(tiny_clip.gt_dir / "00006.png")
    ys, xs = np.nonzero(truth == 1)
    drag_box(dash_duo, "fix-graph", (int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())), margin=1)
    dash_duo.wait_for_contains_text("#fix-objects", "1 object drawn", timeout=20)
    boxed = changed(dash_duo, "fix-graph", shown, "the corrected mask on the frame")
    click(dash_duo, "#fix-add")  # a new object, painted where it is on this frame
    dash_duo.wait_for_contains_text("#fix-object", "object 2", timeout=30)
    choose(dash_duo, "fix-tool", "paint")
    ys, xs = np.nonzero(truth == 2)
    cy = int(ys.mean())
    drag(dash_duo, "fix-graph", [(int(xs.min()) + 2, cy), (int(xs.max()) - 2, cy)])
    dash_duo.wait_for_contains_text("#fix-objects", "2 objects drawn", timeout=20)
    changed(dash_duo, "fix-graph", boxed, "the new object's mask on the frame")
    screenshot(dash_duo.driver, "correct-frame")
    click(dash_duo, "#correct-submit")

    wait_for_done_run(dash_duo)
    storage = Storage(storage_dir)
    run = storage.get_run(run_id)
    assert run.version == 2 and run.error is None
    assert run.objects == [1, 2]
    summary = json.loads((storage.result_dir(run_id) / "summary.json").read_text())
    assert 6 in summary["mask_frames"] and summary["object_start_frames"] == {"1": 0, "2": 6}
    masks = storage.result_dir(run_id) / "masks"
    assert (read_mask(masks / "00009.png") == 2).any()  # tracked from the correction on
    assert not any((read_mask(masks / f"{i:05d}.png") == 2).any() for i in range(6))

    dash_duo.driver.get(f"{dash_duo.server_url}/player?id={run_id}")
    dash_duo.wait_for_contains_text("#version-picker", "2 (latest)", timeout=20)
    click(dash_duo, "#version-1")
    wait_until(lambda: "version=1" in dash_duo.driver.current_url, 10, "version 1 in the player")
    dash_duo.wait_for_contains_text("#frame-label", "Frame 0 / 9", timeout=20)
    # The video's source follows the version picked in a callback of its own, so it is polled (read in the page:
    # the element may be drawn anew between a lookup and a read of it).
    source = "const v = document.querySelector('#player video'); return v ? v.getAttribute('src') : '';"
    wait_until(
        lambda: (dash_duo.driver.execute_script(source) or "").endswith("/files/overlay?version=1"),
        20,
        "version 1's overlay in the player",
    )

    click(dash_duo, "#compare-versions")  # the two versions side by side, with their per-frame IoU
    dash_duo.wait_for_contains_text("#iou-mean", "Mean IoU over all objects", timeout=30)
    header = dash_duo.find_element(".card-header").text
    assert "to correct v1" in header

    dash_duo.driver.get(f"{dash_duo.server_url}/gallery")
    card = f"#card-{run_id}"
    wait_until(
        lambda: re.search(r"Version\s*2", dash_duo.find_element(card).text), 20, "version 2 in the gallery"
    )
    assert dash_duo.get_logs() in ([], None)
