"""REST API: correcting a finished run at one frame makes a new version of it, computed in the background from
the earlier one; earlier versions stay downloadable; bad corrections change nothing."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from dashboard_fixtures import *  # noqa: F403 - the fixtures: weights, tiny_clip, storage_dir
from dashboard_fixtures import FAST_OPTIONS, post_run, wait_for_run

from dashboard.app import create_app
from dashboard.storage import Storage
from segmentation.evaluate import jaccard
from segmentation.inference import CARRY_FRAMES
from segmentation.masks import read_mask, write_mask

FRAME = 6


@pytest.fixture
def client(storage_dir):
    return create_app().server.test_client()


def done_run(client, clip) -> str:
    run_id = post_run(client, clip, **FAST_OPTIONS).get_json()["id"]
    assert wait_for_run(client, run_id)["status"] == "done"
    return run_id


def truth(clip, frame: int) -> np.ndarray:
    return read_mask(clip.gt_dir / f"{frame:05d}.png")


def box_of(labels: np.ndarray, object_id: int) -> list[int]:
    ys, xs = np.nonzero(labels == object_id)
    return [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]


def correct(client, run_id, **fields):
    return client.post(f"/api/runs/{run_id}/corrections", data=fields, content_type="multipart/form-data")


def png_of(labels: np.ndarray, tmp_path) -> bytes:
    path = tmp_path / "correction.png"
    write_mask(path, labels)
    return path.read_bytes()


def test_corrections_make_versions_that_reuse_the_earlier_ones(client, tiny_clip, storage_dir, tmp_path):
    run_id = done_run(client, tiny_clip)
    storage = Storage(storage_dir)
    first = client.get(f"/api/runs/{run_id}/files/summary").get_json()
    assert first["version"] == 1
    box = box_of(truth(tiny_clip, FRAME), 1)

    answer = correct(client, run_id, frame=str(FRAME), boxes=json.dumps([box]), objects="[1]")
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["version"] == 2
    assert client.get(f"/api/runs/{run_id}/versions").get_json()["making"] in (2, None)  # None: done already
    run = wait_for_run(client, run_id)
    assert run["status"] == "done" and run["version"] == 2 and run["error"] is None, run["error"]

    listed = client.get(f"/api/runs/{run_id}/versions").get_json()
    numbers = [v["version"] for v in listed["versions"]]
    assert numbers == [1, 2] and listed["versions"][-1]["latest"] and listed["making"] is None
    second = client.get(listed["versions"][1]["files"]["summary"]).get_json()
    assert second["version"] == 2 and second["previous"]["version"] == 1
    assert FRAME in second["mask_frames"]
    # On this short clip the correction lies within the flow's reach of frame 0's mask (inference.CARRY_FRAMES),
    # so the forward pass resumes at frame 0 to carry that mask on as a full run would; each frame counts once.
    # (Resuming at a correction further on, with the earlier frames kept: tests/test_prompts.py.)
    reused, recomputed = second["previous"]["reused_frames"], second["previous"]["recomputed_frames"]
    assert FRAME < CARRY_FRAMES and (reused, recomputed) == (0, second["video"]["frame_count"])
    # Version 1 stays as it was, files and all.
    old = client.get(f"/api/runs/{run_id}/files/summary?version=1").get_json()
    assert old == first
    assert client.get(f"/api/runs/{run_id}/files/overlay?version=1").status_code == 200
    assert client.get(f"/api/runs/{run_id}/files/masks?version=1").mimetype == "application/zip"
    assert client.get(f"/api/runs/{run_id}/files/summary?version=9").status_code == 404
    # At its frame the correction is the result: the model's mask from the box, inside the box, on the object.
    corrected = read_mask(storage.result_dir(run_id) / "masks" / f"{FRAME:05d}.png") == 1
    given = read_mask(storage.result_dir(run_id) / "state" / "annotations" / f"{FRAME:05d}.png") == 1
    assert np.array_equal(corrected, given)
    x0, y0, x1, y1 = box
    assert corrected.any() and not corrected[:y0].any() and not corrected[y1 + 1 :].any()
    assert not corrected[:, :x0].any() and not corrected[:, x1 + 1 :].any()
    assert jaccard(corrected, truth(tiny_clip, FRAME) == 1) >= 0.4

    # A mask PNG for one object at another frame: the next version, the other object left as it was.
    latest = 2
    painted = np.where(truth(tiny_clip, 3) == 2, 2, 0).astype(np.uint8)
    answer = client.post(f"/api/runs/{run_id}/corrections", content_type="multipart/form-data",
                         data={"frame": "3", "mask": (io.BytesIO(png_of(painted, tmp_path)), "fix.png")})  # fmt: skip
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["version"] == latest + 1
    run = wait_for_run(client, run_id)
    assert run["status"] == "done" and run["version"] == latest + 1, run["error"]
    summary = client.get(f"/api/runs/{run_id}/files/summary").get_json()
    assert summary["version"] == latest + 1 and 3 in summary["mask_frames"]
    annotated = read_mask(storage.result_dir(run_id) / "state" / "annotations" / "00003.png")
    assert set(np.unique(annotated)) == {0, 2}  # only object 2 was corrected there
    assert [v["version"] for v in client.get(f"/api/runs/{run_id}/versions").get_json()["versions"]] == list(
        range(1, latest + 2)
    )
    assert client.get(f"/api/runs/{run_id}/files/thumbnail").status_code == 200


def _text(tree) -> str:
    """Every string in a Dash component tree, joined."""
    if isinstance(tree, str | int | float):
        return str(tree)
    children = getattr(tree, "children", None)
    return " ".join(_text(c) for c in (children if isinstance(children, list | tuple) else [children]) if c is not None)


def test_an_earlier_versions_pages_give_its_own_run_time(storage_dir, tiny_clip):
    from dashboard import ui
    from dashboard.pages import compare, player

    app = create_app()
    client = app.server.test_client()
    run_id = done_run(client, tiny_clip)
    first = client.get(f"/api/runs/{run_id}/files/summary").get_json()
    box = box_of(truth(tiny_clip, FRAME), 1)
    assert correct(client, run_id, frame=str(FRAME), boxes=json.dumps([box]), objects="[1]").status_code == 202
    assert wait_for_run(client, run_id)["status"] == "done"
    storage = Storage(storage_dir)
    run = storage.get_run(run_id)
    # Version 1's time made unmistakable: both versions of this tiny clip take a few seconds.
    kept = storage.version_dir(run_id, 1) / "summary.json"
    assert json.loads(kept.read_text()) == first
    kept.write_text(json.dumps({**first, "timings_s": {**first["timings_s"], "total": 4321.0}}))
    own, latest = ui.fmt_seconds(4321.0), ui.fmt_seconds(run.run_time_s)
    with app.server.app_context():
        earlier, newest = _text(player.layout(id=run_id, version="1")), _text(player.layout(id=run_id))
        page = compare.layout(a=run_id, b=run_id, va="1")
        pair = _text(page)
    assert f"run time {own} · version 1 (an earlier one)" in earlier, earlier
    assert f"run time {latest} · version 2" in newest, newest
    assert "scores of the latest version (2)" in earlier and "scores of the latest" not in newest
    # Side by side: version 1's own time, and no J&F of another version's masks.
    assert f"{own} · J&F –" in pair and f"{latest} · J&F" in pair, pair
    # The 3D legend groups each version's objects under its own number.
    figure = _find(page, "cmp-3d").figure
    groups = {(t.legendgroup, t.legendgrouptitle.text) for t in figure.data if t.legendgrouptitle.text}
    assert groups == {("0", "tiny v1"), ("1", "tiny v2")}, groups


def _find(tree, component_id):
    if getattr(tree, "id", None) == component_id:
        return tree
    children = getattr(tree, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        found = None if child is None or isinstance(child, str | int | float) else _find(child, component_id)
        if found is not None:
            return found
    return None


def test_bad_corrections_are_refused_and_change_nothing(client, tiny_clip, storage_dir, tmp_path):
    run_id = done_run(client, tiny_clip)
    storage = Storage(storage_dir)
    box = json.dumps([box_of(truth(tiny_clip, FRAME), 1)])
    empty = np.zeros((64, 96), np.uint8)
    cases = [
        ({"frame": str(FRAME), "boxes": "[]", "objects": "[]"}, 400, "boxes must be a JSON list"),
        ({"frame": "10", "boxes": box, "objects": "[1]"}, 400, "the video has frames 0 to 9"),
        ({"frame": "x", "boxes": box, "objects": "[1]"}, 400, "Send 'frame'"),
        ({"frame": str(FRAME), "boxes": box, "objects": "[0]"}, 400, "object 0: object ids go from 1 to"),
        ({"frame": str(FRAME), "boxes": box}, 400, "objects a list of as many ids"),
        ({"frame": str(FRAME), "boxes": "[[0, 0, 200, 40]]", "objects": "[1]"}, 400, "outside the 96x64 frame"),
        ({"frame": str(FRAME), "boxes": "[[10, 10, 10, 40]]", "objects": "[1]"}, 400, "has no area"),
        ({"frame": str(FRAME)}, 400, "Send the correction"),
        ({"frame": str(FRAME), "mask": (io.BytesIO(png_of(empty, tmp_path)), "fix.png")}, 400,
         "fix.png: mask has no object"),
        ({"frame": str(FRAME), "colour": "red"}, 400, "Unknown field(s): colour"),
    ]  # fmt: skip
    for fields, status, message in cases:
        answer = correct(client, run_id, **fields)
        assert answer.status_code == status, (fields, answer.get_json())
        assert message in answer.get_json()["error"], (fields, answer.get_json())
    run = client.get(f"/api/runs/{run_id}").get_json()
    assert run["status"] == "done" and run["version"] == 1
    assert [v["version"] for v in client.get(f"/api/runs/{run_id}/versions").get_json()["versions"]] == [1]
    assert not (storage.run_dir(run_id) / "input" / "corrections").exists()
    assert not [p for p in storage.uploads_root.iterdir() if p.name.endswith(".staging")]

    assert client.delete(f"/api/runs/{run_id}").status_code == 204
    answer = correct(client, run_id, frame=str(FRAME), boxes=box, objects="[1]")
    assert answer.status_code == 404 and "No run with that id" in answer.get_json()["error"]
    assert client.get(f"/api/runs/{run_id}/versions").status_code == 404


def test_a_run_still_going_cannot_be_corrected(storage_dir, tiny_clip):
    client = create_app(start_runner=False).server.test_client()  # no runner: the run stays queued
    run_id = post_run(client, tiny_clip, **FAST_OPTIONS).get_json()["id"]
    answer = correct(client, run_id, frame="1", boxes="[[10, 10, 40, 40]]", objects="[1]")
    assert answer.status_code == 409
    assert answer.get_json()["error"] == "The run is queued: correct it once it is done."
    assert client.get(f"/api/runs/{run_id}").get_json()["version"] == 1


def test_a_correction_in_progress_says_which_version_it_makes_and_counts_frames_plainly(monkeypatch):
    import time

    from dashboard.pages.run import _facts
    from dashboard.storage import Run

    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now)  # "so far" whatever pauses the machine makes
    # A correction of a 40-frame run, 5 frames of which its reverse pass segments a second time.
    run = Run(id="r", name="clip", created_at=now - 60, updated_at=now, status="running", stage="propagation",
              done=12, total=45, frame_count=40, width=64, height=48, run_time_s=9.5, started_at=now - 3,
              version=2, options={"preset": "fast", "device": "auto", "binarize": False, "gate": True})  # fmt: skip
    facts = dict(zip(*[iter(_text(item) for item in _facts(run))] * 2, strict=True))
    assert facts["Frames segmented"] == "12 / 45 (5 of them again, backward from a later mask)"
    assert facts["Version"] == "2: correcting version 1"
    assert facts["Run time"] == "3 s so far"  # not the previous version's 10 s
    assert facts["Options"] == "preset fast, device auto, gate"
    done = Run(**{**run.to_dict(), "status": "done", "stage": "done", "done": 40, "total": 40})
    facts = dict(zip(*[iter(_text(item) for item in _facts(done))] * 2, strict=True))
    assert facts["Frame"] == "40 / 40" and facts["Version"] == "2" and facts["Run time"] == "10 s"


def test_a_failed_correction_keeps_the_earlier_version_and_its_run_time(storage_dir, tiny_clip, monkeypatch):
    from dashboard import jobs
    from dashboard.runs import start_correction
    from segmentation import pipeline

    app = create_app(start_runner=False)
    client = app.server.test_client()
    run_id = post_run(client, tiny_clip, **FAST_OPTIONS).get_json()["id"]
    storage = Storage(storage_dir)
    assert jobs.run_job(run_id, storage) == "done"
    before = storage.get_run(run_id)

    class Submitted:
        def submit(self, _run_id):
            pass

    box = box_of(truth(tiny_clip, FRAME), 1)
    assert start_correction(storage, Submitted(), run_id, FRAME, boxes=[box], objects=[1]) == 2

    def fail(stage):
        raise RuntimeError(f"injected failure in {stage}")

    monkeypatch.setattr(pipeline, "fault_hook", fail)
    assert jobs.run_job(run_id, storage) == "done"  # the correction failed; the run is done at version 1
    after = storage.get_run(run_id)
    assert after.version == 1 and "The correction (version 2) failed" in after.error, after.error
    assert after.run_time_s == before.run_time_s  # version 1's, not the failed attempt's
