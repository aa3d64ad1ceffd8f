"""REST API against the real app (Flask test client), a temporary storage folder and the real engine."""

from __future__ import annotations

import io
import json
import re
import time
import zipfile

import numpy as np
import pytest
from dashboard_fixtures import *  # noqa: F403 - the fixtures: weights, tiny_clip, storage_dir
from dashboard_fixtures import FAST_OPTIONS, post_run, wait_for_run, wait_until
from PIL import Image

from dashboard.app import create_app
from segmentation.masks import write_mask


@pytest.fixture
def client(storage_dir):
    return create_app().server.test_client()


@pytest.fixture
def idle_client(storage_dir):
    """No runner: runs stay queued, for the queue-only endpoints."""
    return create_app(start_runner=False).server.test_client()


def test_a_run_through_the_api_produces_every_file(client, tiny_clip):
    answer = post_run(client, tiny_clip, name="api run")
    assert answer.status_code == 202, answer.get_json()
    run_id = answer.get_json()["id"]
    run = wait_for_run(client, run_id)
    assert run["status"] == "done", run["error"]
    assert (run["frame_count"], run["width"], run["height"], run["objects"]) == (10, 96, 64, [1, 2])
    assert run["input_hash"] and run["run_time_s"] > 0 and run["device"]

    overlay = client.get(f"/api/runs/{run_id}/files/overlay")
    assert overlay.status_code == 200 and overlay.mimetype == "video/mp4" and b"ftyp" in overlay.data[:16]
    ranged = client.get(f"/api/runs/{run_id}/files/overlay", headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206 and len(ranged.data) == 100  # browsers seek with ranges

    masks = zipfile.ZipFile(io.BytesIO(client.get(f"/api/runs/{run_id}/files/masks").data))
    assert len([n for n in masks.namelist() if n.endswith(".png")]) == 10
    csv = client.get(f"/api/runs/{run_id}/files/trajectory").data.decode()
    assert csv.splitlines()[0].startswith("frame,time_s,object_id,x,y")
    summary = json.loads(client.get(f"/api/runs/{run_id}/files/summary").data)
    assert summary["video"]["frame_count"] == 10
    assert client.get(f"/api/runs/{run_id}/files/thumbnail").mimetype == "image/jpeg"
    assert run_id in [r["id"] for r in client.get("/api/runs").get_json()["runs"]]

    # Ground truth added afterwards: a zip of the wrong size is refused and kept nowhere, a fitting one is scored.
    wrong, right = io.BytesIO(), io.BytesIO()
    with zipfile.ZipFile(wrong, "w") as archive:
        small = io.BytesIO()
        Image.new("L", (32, 32)).save(small, format="PNG")
        archive.writestr("00000.png", small.getvalue())
    with zipfile.ZipFile(right, "w") as archive:
        for png in sorted(tiny_clip.gt_dir.glob("*.png")):
            archive.write(png, png.name)
    url = f"/api/runs/{run_id}/ground-truth"
    refused = client.post(url, data={"gt": (io.BytesIO(wrong.getvalue()), "gt.zip")})
    assert refused.status_code == 400 and "32" in refused.get_json()["error"], refused.get_json()
    assert client.post(url, data={}).status_code == 400
    assert client.get(f"/api/runs/{run_id}").get_json()["jf"] is None
    scored = client.post(url, data={"gt": (io.BytesIO(right.getvalue()), "gt.zip")})
    assert scored.status_code == 200, scored.get_json()
    assert 0.5 < scored.get_json()["jf"] <= 1 and client.get(f"/api/runs/{run_id}").get_json()["jf"] == scored.get_json()["jf"]
    rows = client.get(scored.get_json()["evaluation"]).data.decode().splitlines()
    assert rows[0] == "object_id,frame,J,F,JF" and len(rows) == 1 + 2 * 8, rows[:3]  # DAVIS scores frames 1-8 of 10


def test_ground_truth_given_with_the_run_is_scored(client, tiny_clip, tmp_path, storage_dir, weights):
    gt_zip = tmp_path / "gt.zip"
    with zipfile.ZipFile(gt_zip, "w") as archive:
        for png in sorted(tiny_clip.gt_dir.glob("*.png")):
            archive.write(png, png.name)
    with open(tiny_clip.video, "rb") as video, open(tiny_clip.mask, "rb") as mask, open(gt_zip, "rb") as gt:
        data = {"video": (video, "clip.mp4"), "mask": (mask, "m.png"), "gt": (gt, "gt.zip"), **FAST_OPTIONS}
        run_id = client.post("/api/runs", data=data).get_json()["id"]
    run = wait_for_run(client, run_id)
    assert run["status"] == "done" and 0.5 < run["jf"] <= 1
    assert "evaluation" in run["files"]
    # Served files name no server path: not the storage folder, not the weights file's folder.
    summary = json.loads(client.get(f"/api/runs/{run_id}/files/summary").data)
    assert summary["model"]["weights"] == weights.name
    secrets = {str(storage_dir), str(storage_dir.resolve()), str(weights.resolve().parent), str(weights)}
    served = {kind: client.get(url).data for kind, url in run["files"].items()}
    served["run"], served["runs"] = client.get(f"/api/runs/{run_id}").data, client.get("/api/runs").data
    assert {"summary", "masks", "trajectory", "evaluation", "overlay", "thumbnail", "check"} <= set(served)
    for kind, data in served.items():
        for secret in secrets:
            assert secret.encode() not in data, (kind, secret)


@pytest.fixture(scope="module")
def later_clip(tmp_path_factory):
    """Object 2 comes into view at frame 4: masks/00000.png holds object 1, masks/00004.png object 2."""
    from segmentation.synthetic import make_clip

    folder = tmp_path_factory.mktemp("later")
    return make_clip(folder, n_frames=10, size=(96, 64), n_objects=2, seed=3, appear_at={2: 4})


def post_later_masks(client, clip, masks, mask=True):
    """POST the clip with frame 0's mask as 'mask' (unless mask=False) and `masks`: [(bytes, name)] as 'masks'."""
    data = {"video": (clip.video.open("rb"), "clip.mp4"), **FAST_OPTIONS}
    if mask:
        data["mask"] = ((clip.masks_dir / "00000.png").open("rb"), "first.png")
    data["masks"] = [(io.BytesIO(content), name) for content, name in masks]
    return client.post("/api/runs", data=data, content_type="multipart/form-data")


def test_a_mask_at_a_later_frame_starts_its_object_there(client, later_clip, storage_dir):
    later = (later_clip.masks_dir / "00004.png").read_bytes()
    answer = post_later_masks(client, later_clip, [(later, "4.png")])
    assert answer.status_code == 202, answer.get_json()
    run_id = answer.get_json()["id"]
    stored = storage_dir / "runs" / run_id / "input" / "masks"
    assert sorted(p.name for p in stored.iterdir()) == [
        "00000.png",
        "00004.png",
    ]  # named by frame, not by user
    assert list((storage_dir / "uploads").iterdir()) == []
    run = wait_for_run(client, run_id)
    assert run["status"] == "done", run["error"]
    assert run["objects"] == [1, 2]
    summary = json.loads(client.get(f"/api/runs/{run_id}/files/summary").data)
    assert summary["mask_frames"] == [0, 4] and summary["object_start_frames"] == {"1": 0, "2": 4}
    masks = zipfile.ZipFile(io.BytesIO(client.get(f"/api/runs/{run_id}/files/masks").data))
    ids = [set(np.unique(np.array(Image.open(masks.open(f"masks/{t:05d}.png"))))) for t in range(10)]
    assert all(2 not in found for found in ids[:4]) and all(2 in found for found in ids[4:])
    assert client.post(f"/api/runs/{run_id}/rerun").status_code == 202  # the inputs are kept for a rerun
    assert wait_for_run(client, run_id)["status"] == "done"


def test_later_masks_may_come_as_one_zip_with_frame_0(idle_client, later_clip, storage_dir):
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w") as archive:  # a DAVIS-style masks folder, zipped as is
        for png in sorted(later_clip.masks_dir.iterdir()):
            archive.write(png, f"judo/masks/{png.name}")
        archive.writestr("__MACOSX/judo/masks/._00004.png", b"resource fork")
    answer = post_later_masks(idle_client, later_clip, [(packed.getvalue(), "masks.zip")], mask=False)
    assert answer.status_code == 202, answer.get_json()
    stored = storage_dir / "runs" / answer.get_json()["id"] / "input" / "masks"
    assert sorted(p.name for p in stored.iterdir()) == ["00000.png", "00004.png"]


@pytest.mark.parametrize(
    ("later", "message"),
    [
        ("00012.png", r"00012.png: names frame 12, but the video has 10 frame"),
        ("object two.png", r"object two.png: a mask for a later frame is named by its frame number"),
        ("0.png", "first.png and 0.png: both are masks for frame 0"),
        ("small:00004.png", r"00004.png: mask is 48x32 but the video is 96x64"),
        ("empty:00004.png", "00004.png: mask has no object"),
    ],
    ids=["beyond_the_end", "not_a_frame_number", "frame_0_twice", "wrong_size", "empty"],
)
def test_a_bad_later_mask_is_a_readable_400_and_leaves_nothing_behind(
    idle_client, later_clip, storage_dir, tmp_path, later, message
):
    kind, _, name = later.rpartition(":")
    png = tmp_path / "later.png"
    labels = {"small": np.full((32, 48), 2, np.uint8), "empty": np.zeros((64, 96), np.uint8)}.get(kind)
    if labels is None:
        png.write_bytes((later_clip.masks_dir / "00004.png").read_bytes())
    else:
        write_mask(png, labels)
    answer = post_later_masks(idle_client, later_clip, [(png.read_bytes(), name)])
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert re.search(message, error), error
    assert str(storage_dir) not in error and ".staging" not in error and ".part" not in error
    assert idle_client.get("/api/runs").get_json()["runs"] == []
    assert list((storage_dir / "uploads").iterdir()) == [] and list((storage_dir / "runs").iterdir()) == []


def test_a_bad_mask_is_a_readable_400_and_leaves_nothing_behind(client, tiny_clip, storage_dir, tmp_path):
    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((64, 96), np.uint8)).save(black)
    with open(tiny_clip.video, "rb") as video, open(black, "rb") as mask:
        answer = client.post("/api/runs", data={"video": (video, "clip.mp4"), "mask": (mask, "black.png")})
    assert answer.status_code == 400
    assert "object" in answer.get_json()["error"].lower()
    assert client.get("/api/runs").get_json()["runs"] == []
    assert list((storage_dir / "uploads").iterdir()) == []


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({}, "video"),
        ({"preset": "turbo"}, "preset"),
        ({"device": "tpu"}, "device"),
        ({"online_seconds": "x"}, "number"),
    ],
)
def test_bad_requests_are_json_400s(client, tiny_clip, form, message):
    if form:
        answer = post_run(client, tiny_clip, **form)
    else:
        answer = client.post("/api/runs", data={"name": "no files"})
    assert answer.status_code == 400 and message in answer.get_json()["error"]


def test_unknown_runs_and_files_are_json_404s(client):
    for url in (
        "/api/runs/" + "0" * 32,
        "/api/runs/..passwd",
        "/api/runs/" + "0" * 32 + "/files/nope",
        "/api/runs/" + "0" * 32 + "/files/overlay",
    ):
        answer = client.get(url)
        assert answer.status_code == 404 and "error" in answer.get_json()


def test_queue_endpoints_cancel_rerun_delete(idle_client, tiny_clip, storage_dir):
    run_id = post_run(idle_client, tiny_clip).get_json()["id"]
    assert idle_client.get(f"/api/runs/{run_id}").get_json()["status"] == "queued"
    assert idle_client.get(f"/api/runs/{run_id}/files/overlay").status_code == 404
    assert idle_client.post(f"/api/runs/{run_id}/cancel").get_json()["status"] == "cancelled"
    assert idle_client.post(f"/api/runs/{run_id}/rerun").status_code == 202
    assert idle_client.post(f"/api/runs/{run_id}/rerun").status_code == 409  # already queued
    assert idle_client.delete(f"/api/runs/{run_id}").status_code == 204
    assert idle_client.get(f"/api/runs/{run_id}").status_code == 404
    assert not (storage_dir / "runs" / run_id).exists()


def test_chunked_upload_and_its_size_limit(storage_dir, monkeypatch):
    monkeypatch.setenv("STCNN_MAX_UPLOAD_MB", "1")
    client = create_app(start_runner=False).server.test_client()
    token = client.post("/api/uploads", json={"filename": "v.mp4"}).get_json()["token"]
    assert client.put(f"/api/uploads/{token}?offset=0", data=b"x" * 1000).get_json()["size"] == 1000
    assert client.put(f"/api/uploads/{token}?offset=0", data=b"x").status_code == 409
    too_big = client.put(f"/api/uploads/{token}?offset=1000", data=b"x" * (1024 * 1024))
    assert too_big.status_code == 413 and "limit" in too_big.get_json()["error"]


def test_runs_survive_a_restart_and_interrupted_ones_are_queued_again(storage_dir, tiny_clip):
    first = create_app(start_runner=False)
    run_id = post_run(first.server.test_client(), tiny_clip).get_json()["id"]
    storage = first.server.extensions["stcnn"].storage
    # As if a local worker process died with the server: running, owned by a pid that no longer exists.
    assert storage.claim(run_id, "local:x:1")
    import socket

    storage.update_run(run_id, worker=f"local:{socket.gethostname()}:999999999")
    restarted = create_app()  # its runner finds the orphan, queues it again and runs it
    run = wait_for_run(restarted.server.test_client(), run_id)
    assert run["status"] == "done", run["error"]


def test_a_failed_run_says_why_keeps_its_inputs_and_runs_again(client, tiny_clip, weights, monkeypatch):
    monkeypatch.setenv("STCNN_WEIGHTS", str(weights.parent / "missing.pt"))  # the job process inherits it
    run_id = post_run(client, tiny_clip).get_json()["id"]
    run = wait_for_run(client, run_id)
    assert run["status"] == "failed" and "weights not found" in run["error"]
    monkeypatch.setenv("STCNN_WEIGHTS", str(weights))
    assert client.post(f"/api/runs/{run_id}/rerun").status_code == 202
    run = wait_for_run(client, run_id)
    assert run["status"] == "done" and run["error"] is None


def test_cancelling_a_running_run_stops_it(client, tiny_clip):
    run_id = post_run(client, tiny_clip, preset="quality", online_seconds="30").get_json()["id"]
    # Wait until the engine reports progress (it checks for cancellation between training iterations and between
    # frames): the run is running then, not still queued.
    def started():
        run = client.get(f"/api/runs/{run_id}").get_json()
        return run["status"] == "running" and run["stage"] != "starting" and run["done"] > 0

    wait_until(started, 120, "running")
    assert client.post(f"/api/runs/{run_id}/cancel").status_code == 200
    run = wait_for_run(client, run_id, timeout=20)
    assert run["status"] == "cancelled" and run["finished_at"]


def test_engine_messages_name_the_users_file_not_server_paths(client, tiny_clip, storage_dir, tmp_path):
    not_png = tmp_path / "mask.png"
    not_png.write_text("not an image")
    with open(tiny_clip.video, "rb") as video, open(not_png, "rb") as mask:
        answer = client.post("/api/runs", data={"video": (video, "clip.mp4"), "mask": (mask, "m.png")})
    assert answer.status_code == 400
    message = answer.get_json()["error"]
    assert str(storage_dir) not in message and ".part" not in message and "m.png" in message


def test_the_first_start_queues_a_demo_run_once(storage_dir):
    app = create_app(seed_demo=True, start_runner=False)  # the demo's segmentation itself is like any run's
    client = app.server.test_client()
    deadline = time.monotonic() + 30
    while not (runs := client.get("/api/runs").get_json()["runs"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    (demo,) = runs
    assert demo["name"].startswith("Demo") and demo["status"] == "queued"
    storage = app.server.extensions["stcnn"].storage
    assert storage.gt_zip(demo["id"]).exists()  # scored with J&F once done
    assert client.get(f"/api/runs/{demo['id']}/files/check").mimetype == "image/png"
    create_app(seed_demo=True, start_runner=False)  # a second start does not queue another
    time.sleep(1)
    assert len(client.get("/api/runs").get_json()["runs"]) == 1


def test_download_names_read_like_the_run(client, tiny_clip):
    run_id = post_run(client, tiny_clip, name="dog (balanced)").get_json()["id"]
    assert wait_for_run(client, run_id)["status"] == "done"
    answer = client.get(f"/api/runs/{run_id}/files/overlay?download=1")
    assert 'filename=dog-balanced-overlay.mp4' in answer.headers["Content-Disposition"]


def test_messages_name_the_apis_own_controls(client, tiny_clip, tmp_path):
    soft = np.zeros((64, 96), np.uint8)
    soft[10:30, 10:30], soft[30:32, 10:30] = 255, 128  # an anti-aliased edge
    path = tmp_path / "soft.png"
    Image.fromarray(soft).save(path)
    with open(tiny_clip.video, "rb") as video, open(path, "rb") as mask:
        data = {"video": (video, "clip.mp4"), "mask": (mask, "soft.png"), **FAST_OPTIONS}
        answer = client.post("/api/runs", data=data, content_type="multipart/form-data")
    error = answer.get_json()["error"]
    assert answer.status_code == 400 and "send binarize=true" in error and "--binarize" not in error, error
