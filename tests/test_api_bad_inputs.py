"""Bad inputs through the REST API: every one is a 4xx with a one-line JSON error (never a 500, a traceback or
a server path), and leaves nothing behind: no run in the index, no run folder, no upload part.

The engine's own bad-input suite (tests/test_bad_inputs.py) covers what the engine says about each file; here
each file goes through HTTP, the multipart parser and the storage folder. One app serves the whole module
(no runner: nothing here needs a run to execute), so the ~150 cases take well under a minute.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from bad_input_files import (
    H,
    W,
    box_mask,
    frame,
    png_of_size,
    write_audio_mp4,
    write_no_frames,
    write_png,
    write_video,
    write_wav,
    zip_of,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.app import create_app

HYPOTHESIS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
FAST = {"preset": "fast", "online_seconds": "0", "device": "cpu"}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("api-inputs")
    rng = np.random.default_rng(1)
    good = write_video(d / "video.mp4", n=4).read_bytes()
    long = write_video(d / "long.mp4", n=12, faststart=False).read_bytes()
    out = {"video": good, "mask": write_png(d / "mask.png", box_mask()).read_bytes()}
    out.update(
        {
            "empty.mp4": b"",
            "random.mp4": rng.integers(0, 256, 3000, dtype=np.uint8).tobytes(),
            "text.mp4": b"this is a text file, not a video\n" * 20,
            "png.mp4": write_png(d / "p.png", frame()).read_bytes(),
            "jpeg.mp4": write_png(d / "j.jpg", frame(), format="JPEG").read_bytes(),
            "wav.mp4": write_wav(d / "a.wav").read_bytes(),
            "audio.mp4": write_audio_mp4(d / "audio.mp4").read_bytes(),
            "noframes.mkv": write_no_frames(d / "noframes.mkv").read_bytes(),
            "zero_header.mp4": bytes(64) + good[64:],
            "garbled_moov.mp4": good[: good.index(b"moov")] + bytes(200) + good[good.index(b"moov") + 200 :],
        }
    )
    for percent in (10, 35, 60, 85):  # cut at several points, with the index last and first
        out[f"cut{percent}_noindex.mp4"] = long[: len(long) * percent // 100]
        out[f"cut{percent}_faststart.mp4"] = good[: len(good) * percent // 100]
    # One flipped byte in a box header: the file's first box, and the moov box that indexes the frames.
    for name, offset in (
        ("ftyp_size", 0),
        ("moov_size", good.index(b"moov") - 2),
        ("moov_type", good.index(b"moov")),
    ):
        damaged = bytearray(good)
        damaged[offset] ^= 0xFF
        out[f"flip_{name}.mp4"] = bytes(damaged)
    aa = box_mask().astype(float)
    aa[H // 4 - 1, :] = 128
    out.update(
        {
            "m_small.png": write_png(d / "s.png", box_mask(32, 24)).read_bytes(),
            "m_big.png": write_png(d / "b.png", box_mask(W * 2, H * 2)).read_bytes(),
            "m_empty.png": write_png(d / "e.png", np.zeros((H, W), np.uint8)).read_bytes(),
            "m_zero_bytes.png": b"",
            "m_rgb.png": write_png(d / "r.png", rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).read_bytes(),
            "m_aa.png": write_png(d / "aa.png", aa.astype(np.uint8)).read_bytes(),
            "m_16bit.png": write_png(d / "16.png", box_mask().astype(np.uint16) * 257).read_bytes(),
            "m_jpeg.png": write_png(d / "mj.png", box_mask(), format="JPEG").read_bytes(),
            "m_text.png": b"not a png\n" * 10,
            "m_cut.png": write_png(d / "c.png", rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).read_bytes()[
                :300
            ],
        }
    )
    return out


@pytest.fixture(scope="module")
def app(tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp("api-bad") / "storage"
    monkeypatch_module.setenv("STCNN_DEMO", "0")
    monkeypatch_module.setenv("STCNN_MAX_UPLOAD_MB", "1")  # small, so over-limit uploads stay cheap
    monkeypatch_module.delenv("REDIS_URL", raising=False)
    monkeypatch_module.delenv("STCNN_API_TOKEN", raising=False)
    return create_app(root, start_runner=False, seed_demo=False)


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture
def client(app):
    yield app.server.test_client()
    storage = storage_of(app)  # so that one failure does not fail every case after it
    for run in storage.list_runs():
        storage.delete_run(run.id)
    for path in storage.uploads_root.iterdir():
        path.unlink()


def storage_of(app):
    return app.server.extensions["stcnn"].storage


def assert_clean_4xx(app, answer, status=None, match=None):
    """A 4xx JSON error of one line, no traceback or server path, and nothing left in the storage folder."""
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.data[:300])
    if status:
        assert answer.status_code == status, answer.get_json()
    body = answer.get_json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], answer.data[:300]
    storage = storage_of(app)
    assert "Traceback" not in body["error"] and "\n" not in body["error"]
    assert str(storage.root) not in body["error"] and ".part" not in body["error"]
    if match:
        assert re.search(match, body["error"], re.I), body["error"]
    assert_nothing_left(app)


def assert_nothing_left(app):
    storage = storage_of(app)
    assert storage.list_runs() == []
    assert list(storage.runs_root.iterdir()) == []
    assert list(storage.uploads_root.iterdir()) == []


def post(client, video=None, mask=None, *, video_name="clip.mp4", mask_name="mask.png", extra=None, **form):
    data = {**FAST, **form}
    if video is not None:
        data["video"] = (io.BytesIO(video), video_name)
    if mask is not None:
        data["mask"] = (io.BytesIO(mask), mask_name)
    for key, value in (extra or {}).items():
        data[key] = value
    return client.post("/api/runs", data=data, content_type="multipart/form-data")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


BAD_VIDEOS = {
    "empty.mp4": r"empty.mp4: the file is empty \(0 bytes\)",
    "random.mp4": "not a video|no video|audio",
    "text.mp4": "not a video",
    "png.mp4": "still image",
    "jpeg.mp4": "still image",
    "wav.mp4": "audio",
    "audio.mp4": "audio",
    "noframes.mkv": "no frames|not a video",
    "zero_header.mp4": "not a video|corrupt|decode",
    "garbled_moov.mp4": "not a video|corrupt|decode|truncated",
    **{f"cut{p}_noindex.mp4": "" for p in (10, 35, 60, 85)},
    **{f"cut{p}_faststart.mp4": "" for p in (10, 35, 60, 85)},
    **{f"flip_{n}.mp4": "" for n in ("ftyp_size", "moov_size", "moov_type")},
}
BAD_MASKS = {
    "m_small.png": "32x24 but the video is 64x48",
    "m_big.png": "128x96 but the video is 64x48",
    "m_empty.png": "no object",
    "m_zero_bytes.png": "not a readable|empty",
    "m_rgb.png": "RGB mask",
    "m_aa.png": "grey levels",
    "m_16bit.png": "16-bit",
    "m_jpeg.png": "JPEG image, not a PNG",
    "m_text.png": "not a readable image",
    "m_cut.png": "not a readable image",
}
HOSTILE_NAMES = [
    "../../../../etc/passwd",
    "..\\..\\windows\\system32\\x.mp4",
    "/etc/passwd",
    "a\x00b.mp4",
    "é𝄞 视频 🎥.mp4",
    "x" * 5000 + ".mp4",
    "",
    ".",
    "..",
    "a/../../b.mp4",
    "%2e%2e%2fescape.mp4",
    "line\nbreak\r.mp4",
]


@pytest.mark.parametrize("name", sorted(BAD_VIDEOS))
def test_bad_video(app, client, files, name):
    answer = post(client, files[name], files["mask"], video_name=name)
    assert_clean_4xx(app, answer, 400, BAD_VIDEOS[name] or None)


@pytest.mark.parametrize("name", sorted(BAD_MASKS))
def test_bad_mask(app, client, files, name):
    answer = post(client, files["video"], files[name], mask_name=name)
    assert_clean_4xx(app, answer, 400, BAD_MASKS[name])


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_hostile_file_names_with_a_bad_file_are_clean_400s(app, client, files, name):
    assert_clean_4xx(app, post(client, files["random.mp4"], files["mask"], video_name=name), 400)
    assert_clean_4xx(app, post(client, files["video"], files["m_text.png"], mask_name=name), 400)


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_hostile_file_names_with_good_files_stay_inside_the_run_folder(app, client, files, name):
    """A name is display text: a good video with any name is accepted, stored as input/video.<ext> under
    its id, and the name comes back without control characters."""
    answer = post(client, files["video"], files["mask"], video_name=name, mask_name=name, name=name)
    if "\n" in name:  # a raw line break breaks the multipart header itself (browsers send %0A): no files seen
        assert_clean_4xx(app, answer, 400, "video")
        return
    assert answer.status_code == 202, answer.get_json()
    run_id = answer.get_json()["id"]
    storage = storage_of(app)
    try:
        stored = sorted(str(p.relative_to(storage.root)) for p in storage.root.rglob("*") if p.is_file())
        inputs = [p for p in stored if p.startswith("runs/")]
        assert inputs == sorted(
            [f"runs/{run_id}/check.png", f"runs/{run_id}/input/mask.png", f"runs/{run_id}/input/video.mp4"]
        ) or inputs == sorted(
            [f"runs/{run_id}/check.png", f"runs/{run_id}/input/mask.png", f"runs/{run_id}/input/video.bin"]
        )
        run = client.get(f"/api/runs/{run_id}").get_json()
        assert not re.search(r"[\x00-\x1f]", run["name"] + run["video_name"])
        assert len(run["name"]) <= 200 and len(run["video_name"]) <= 200
        assert list(storage.uploads_root.iterdir()) == []
    finally:
        assert client.delete(f"/api/runs/{run_id}").status_code == 204
    assert_nothing_left(app)


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("no_files", "video"),
        ("video_only", "mask"),
        ("mask_only", "video"),
        ("video_as_text_field", "video"),
        ("two_videos", "repeated: video"),
        ("two_masks", "repeated: mask"),
        ("two_names", "repeated: name"),
        ("two_presets", "repeated: preset"),
        ("unknown_file_field", "Unknown file field"),
        ("json_body", "video"),
        ("urlencoded_body", "video"),
        ("bad_preset", "preset"),
        ("bad_device", "device"),
        pytest.param("cuda_without_gpu", "This server has no CUDA GPU: ask for device auto or cpu",
                     marks=pytest.mark.skipif(_has_cuda(), reason="this machine has a GPU")),
        ("nan_seconds", r"online_seconds: online training seconds must be in 0\.\.3600, got nan"),
        ("inf_fps", "fps: fps must be a number above 0 and at most 1000, got inf"),
        ("negative_seconds", r"online_seconds: .* must be in 0\.\.3600, got -1"),
        ("word_seconds", "number"),
        ("gt_not_a_zip", "zip"),
        ("gt_zip_without_png", "no PNG"),
    ],
)
def test_missing_repeated_and_malformed_fields(app, client, files, case, match):
    video, mask = files["video"], files["mask"]
    empty_zip = io.BytesIO()
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("notes.txt", "no masks here")
    form = {
        "no_files": lambda: post(client),
        "video_only": lambda: post(client, video),
        "mask_only": lambda: post(client, None, mask),
        "video_as_text_field": lambda: post(client, None, mask, extra={"video": "clip.mp4"}),
        "two_videos": lambda: post(client, video, mask, extra={"video": [(io.BytesIO(video), "a.mp4"),
                                                                          (io.BytesIO(video), "b.mp4")]}),
        "two_masks": lambda: post(client, video, None, extra={"mask": [(io.BytesIO(mask), "a.png"),
                                                                        (io.BytesIO(mask), "b.png")]}),
        "two_names": lambda: post(client, video, mask, extra={"name": ["a", "b"]}),
        "two_presets": lambda: post(client, video, mask, extra={"preset": ["fast", "quality"]}),
        "unknown_file_field": lambda: post(client, video, mask, extra={"other": (io.BytesIO(b"x"), "x.bin")}),
        "json_body": lambda: client.post("/api/runs", json={"video": "clip.mp4", "mask": "mask.png"}),
        "urlencoded_body": lambda: client.post("/api/runs", data="video=a&mask=b",
                                               content_type="application/x-www-form-urlencoded"),
        "bad_preset": lambda: post(client, video, mask, preset="turbo"),
        "bad_device": lambda: post(client, video, mask, device="tpu"),
        "cuda_without_gpu": lambda: post(client, video, mask, device="cuda"),
        "nan_seconds": lambda: post(client, video, mask, online_seconds="nan"),
        "inf_fps": lambda: post(client, video, mask, fps="inf"),
        "negative_seconds": lambda: post(client, video, mask, online_seconds="-1"),
        "word_seconds": lambda: post(client, video, mask, online_seconds="ten"),
        "gt_not_a_zip": lambda: post(client, video, mask, extra={"gt": (io.BytesIO(b"PK not really"), "gt.zip")}),
        "gt_zip_without_png": lambda: post(client, video, mask, extra={"gt": (io.BytesIO(empty_zip.getvalue()), "gt.zip")}),
    }[case]  # fmt: skip
    assert_clean_4xx(app, form(), 400, match)


def test_uploads_over_the_size_limit(app, client, files):
    """The limit (1 MB here) is checked on the server: per file, for the whole request, for chunked uploads."""
    big = files["video"] + b"\0" * (1024 * 1024)
    assert_clean_4xx(app, post(client, big, files["mask"]), 413, "limit")
    assert_clean_4xx(app, post(client, files["video"], big, mask_name="m.png"), 413, "limit")
    huge = b"\0" * (18 * 1024 * 1024)  # beyond the request limit (file limit + 16 MB of form overhead)
    assert_clean_4xx(app, post(client, huge, files["mask"]), 413, "limit")
    token = client.post("/api/uploads", json={"filename": "v.mp4"}).get_json()["token"]
    answer = client.put(f"/api/uploads/{token}?offset=0", data=big)
    assert_clean_4xx(app, answer, 413, "limit")  # the partial upload is discarded too


def test_chunked_upload_misuse(app, client):
    token = client.post("/api/uploads", json={"filename": "v.mp4"}).get_json()["token"]
    for url, status in (
        (f"/api/uploads/{token}?offset=abc", 400),
        (f"/api/uploads/{token}?offset=-5", 409),
        (f"/api/uploads/{token}?offset=99", 409),
        (f"/api/uploads/{token}?offset={'9' * 5000}", 400),
        ("/api/uploads/" + "0" * 32 + "?offset=0", 404),
        ("/api/uploads/..%2F..%2Fetc%2Fpasswd?offset=0", 404),
        (f"/api/uploads/{token.upper()}?offset=0", 404),
    ):
        answer = client.put(url, data=b"abc")
        assert answer.status_code == status, (url, answer.get_json())
        assert "error" in answer.get_json()
    for body in ([1, 2], "just a string", {"filename": ["a", "b"]}, {"filename": "x\x00" * 500}, None):
        answer = client.post("/api/uploads", json=body)
        assert answer.status_code == 201, answer.data
        storage_of(app).discard_upload(answer.get_json()["token"])
    storage_of(app).discard_upload(token)
    assert_nothing_left(app)


RUN = "0123456789abcdef0123456789abcdef"
ROUTES = [
    ("GET", "/api/runs"), ("POST", "/api/runs"), ("GET", f"/api/runs/{RUN}"), ("DELETE", f"/api/runs/{RUN}"),
    ("GET", f"/api/runs/{RUN}/files/overlay"), ("POST", f"/api/runs/{RUN}/cancel"),
    ("POST", f"/api/runs/{RUN}/rerun"), ("POST", "/api/uploads"), ("PUT", f"/api/uploads/{RUN}"),
]  # fmt: skip


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("url", sorted({url for _, url in ROUTES}))
def test_wrong_methods_and_unknown_runs(app, client, method, url):
    if (method, url) in ROUTES and url in ("/api/runs", "/api/uploads"):
        pytest.skip("a right method: tested elsewhere")
    answer = client.open(url, method=method)
    expected = 404 if (method, url) in ROUTES else 405
    assert_clean_4xx(app, answer, expected)


@HYPOTHESIS
@given(
    run_id=st.text(min_size=0, max_size=80),
    kind=st.sampled_from(["overlay", "masks", "x", "../index.sqlite"]),
)
def test_any_run_id_in_any_route_is_a_json_404(app, run_id, kind):
    from urllib.parse import quote

    client = app.server.test_client()
    rid = quote(run_id, safe="")
    for method, url in (
        ("GET", f"/api/runs/{rid}"), ("DELETE", f"/api/runs/{rid}"), ("POST", f"/api/runs/{rid}/cancel"),
        ("POST", f"/api/runs/{rid}/rerun"), ("GET", f"/api/runs/{rid}/files/{quote(kind, safe='')}"),
        ("PUT", f"/api/uploads/{rid}?offset=0"),
    ):  # fmt: skip
        answer = client.open(url, method=method)
        # An empty id or one that decodes to a slash matches another route or none: 404 or 405, still JSON.
        assert answer.status_code in (404, 405), (method, url, answer.status_code)
        assert "error" in answer.get_json()
    assert_nothing_left(app)


@HYPOTHESIS
@given(
    form=st.dictionaries(
        # (not binarize: it makes an RGB or anti-aliased mask a good one)
        st.sampled_from(["name", "preset", "device", "online_seconds", "fps", "junk", ""]),
        st.text(max_size=40),
        max_size=6,
    ),
    video_name=st.text(max_size=300),
    which=st.sampled_from(sorted(BAD_VIDEOS) + sorted(BAD_MASKS)),
)
def test_random_fields_and_names_with_a_bad_file(app, files, form, video_name, which):
    client = app.server.test_client()
    video, mask = (files[which], files["mask"]) if which in BAD_VIDEOS else (files["video"], files[which])
    data = {"video": (io.BytesIO(video), video_name), "mask": (io.BytesIO(mask), video_name), **form}
    answer = client.post("/api/runs", data=data, content_type="multipart/form-data")
    assert_clean_4xx(app, answer, 400)


@HYPOTHESIS
@given(
    form=st.dictionaries(
        st.sampled_from(["name", "preset", "device", "online_seconds", "fps", "binarize"]),
        st.one_of(st.text(max_size=20), st.sampled_from(["fast", "cpu", "0", "1.5", "nan", "-0", "1e400"])),
        max_size=6,
    ),
)
def test_random_options_with_good_files_are_202_or_a_clean_400(app, files, form):
    client = app.server.test_client()
    data = {
        "video": (io.BytesIO(files["video"]), "v.mp4"),
        "mask": (io.BytesIO(files["mask"]), "m.png"),
        **form,
    }
    answer = client.post("/api/runs", data=data, content_type="multipart/form-data")
    if answer.status_code == 202:
        run = client.get(f"/api/runs/{answer.get_json()['id']}").get_json()
        assert run["status"] == "queued"
        assert client.delete(f"/api/runs/{run['id']}").status_code == 204
        assert_nothing_left(app)
    else:
        assert_clean_4xx(app, answer, 400)


def test_generated_cases_are_enough(request):
    """The issue asks for a generated suite: count what this module runs (hypothesis examples not included)."""
    cases = [item for item in request.session.items if Path(str(item.fspath)).name == Path(__file__).name]
    assert len(cases) >= 100, len(cases)


# -- issue 19: what an outside probe of the API found ----------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "match"),
    [
        ({"online_seconds": "3601"}, r"online_seconds: online training seconds must be in 0\.\.3600, got 3601"),
        ({"online_seconds": "1e300"}, r"online_seconds: online training seconds must be in 0\.\.3600, got 1e\+300"),
        ({"fps": "0"}, "fps: fps must be a number above 0 and at most 1000, got 0"),
        ({"short_side": "63"}, "short_side: internal resolution .* between 64 and 1080, got 63"),
        ({"short_side": "1081"}, "short_side: internal resolution .* between 64 and 1080, got 1081"),
        ({"preset": "turbo"}, "preset: unknown preset 'turbo'"),
    ],
    ids=["seconds_3601", "seconds_1e300", "fps_0", "short_side_63", "short_side_1081", "preset"],
)
def test_options_the_engine_refuses_are_refused_at_submission(app, client, files, form, match):
    """The API asks the engine's own option check, so a run it accepts never fails later for its options."""
    assert_clean_4xx(app, post(client, files["video"], files["mask"], **form), 400, match)


@pytest.mark.parametrize("field", ["video", "mask", "masks", "gt"])
def test_a_file_field_sent_as_text_is_refused(app, client, files, field):
    given = {"video": files["video"], "mask": files["mask"]}
    given.pop(field, None)
    answer = post(client, given.get("video"), given.get("mask"), extra={field: "clip.mp4"})
    assert_clean_4xx(app, answer, 400, f"^'{field}' must be a file upload\\.$")


def test_form_limits_say_which_limit_was_broken(app, client, files):
    answer = post(client, files["video"], files["mask"], name="n" * (1024 * 1024))
    assert_clean_4xx(app, answer, 413, "A form field is larger than the limit of 256 KB")
    fields = {f"field{i}": "x" for i in range(10_000)}
    answer = post(client, files["video"], files["mask"], extra=fields)
    assert_clean_4xx(app, answer, 413, "more than 1000 parts")
    many = [(io.BytesIO(b"x"), f"{i:05d}.png") for i in range(2000)]
    answer = post(client, files["video"], files["mask"], extra={"masks": many})
    assert_clean_4xx(app, answer, 413, "more than 1000 parts")
    assert answer.headers["Connection"] == "close"


@pytest.fixture(scope="module")
def huge_png():
    return png_of_size(12000, 12000)


def test_a_huge_mask_is_refused_from_its_header(app, client, files, huge_png, recwarn):
    """A 12000x12000 mask is refused for its size before a pixel is decoded: no decompression-bomb warning."""
    answer = post(client, files["video"], huge_png, mask_name="huge.png")
    assert_clean_4xx(app, answer, 400, f"huge.png: mask is 12000x12000 but the video is {W}x{H}")
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__], list(recwarn)


def _bad_zips(files, huge_png) -> dict[str, tuple[bytes, str]]:
    """name -> (zip, the message it must get), for both a ground-truth zip and a masks zip."""
    good = files["mask"]
    return {
        "too_many_members": (
            zip_of({f"{i:05d}.png": good for i in range(200)}), "holds 200 PNG files, but the video has 4 frames"
        ),
        "member_bigger_than_a_mask": (
            zip_of({"00000.png": good[:64] + bytes(20 * 1024 * 1024)}),
            rf"00000.png unpacks to 20.0 MB, more than a {W}x{H} PNG mask can take",
        ),
        "huge_png_member": (zip_of({"00000.png": huge_png}), f"00000.png is 12000x12000 but the video is {W}x{H}"),
        "wrong_size_member": (
            zip_of({"00000.png": files["m_small.png"]}), f"00000.png is 32x24 but the video is {W}x{H}"
        ),
        "not_a_png_member": (zip_of({"00000.png": b"not a png at all"}), "00000.png is not a PNG image"),
    }


@pytest.mark.parametrize("field", ["gt", "masks"])
@pytest.mark.parametrize(
    "case", ["too_many_members", "member_bigger_than_a_mask", "huge_png_member", "wrong_size_member",
             "not_a_png_member"],
)  # fmt: skip
def test_zips_are_judged_against_the_video_before_unpacking(app, client, files, huge_png, recwarn, field, case):
    packed, match = _bad_zips(files, huge_png)[case]
    extra = {field: (io.BytesIO(packed), f"{field}.zip")}
    answer = post(client, files["video"], files["mask"] if field == "gt" else None, extra=extra)
    assert_clean_4xx(app, answer, 400, match)
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


def test_a_zip_member_never_writes_more_than_it_declares(app, client, files):
    """A member whose header declares the mask's size but whose data inflates to 5 MB more is cut at the
    declared size (and checked there), not written whole."""
    import struct
    import zlib

    mask = files["mask"]
    packed = bytearray(zip_of({"00000.png": mask + bytes(5 * 1024 * 1024)}))
    crc = struct.pack("<I", zlib.crc32(mask))
    size = struct.pack("<I", len(mask))
    local = packed.index(b"PK\x03\x04")
    packed[local + 14 : local + 18], packed[local + 22 : local + 26] = crc, size
    central = packed.index(b"PK\x01\x02")
    packed[central + 16 : central + 20], packed[central + 24 : central + 28] = crc, size
    answer = post(client, files["video"], None, extra={"masks": (io.BytesIO(bytes(packed)), "masks.zip")})
    assert answer.status_code == 202, answer.get_json()
    storage = storage_of(app)
    run_id = answer.get_json()["id"]
    stored = storage.run_dir(run_id) / "input" / "masks" / "00000.png"
    assert stored.read_bytes() == mask
    assert client.delete(f"/api/runs/{run_id}").status_code == 204


def test_options_lists_only_the_methods_of_the_route(app, client):
    expected = {
        "/api/runs": "GET, POST, HEAD, OPTIONS",
        f"/api/runs/{RUN}": "GET, DELETE, HEAD, OPTIONS",
        f"/api/runs/{RUN}/files/overlay": "GET, HEAD, OPTIONS",
        f"/api/runs/{RUN}/cancel": "POST, OPTIONS",
        f"/api/runs/{RUN}/rerun": "POST, OPTIONS",
        "/api/uploads": "POST, OPTIONS",
        f"/api/uploads/{RUN}": "PUT, OPTIONS",
    }
    for url, allow in expected.items():
        answer = client.options(url)
        assert answer.status_code == 200 and answer.headers["Allow"] == allow, (url, answer.headers.get("Allow"))
    assert_clean_4xx(app, client.options("/api/nothing/here"), 404)


def test_range_requests_other_than_one_bytes_range_get_the_whole_file(app, client, files):
    answer = post(client, files["video"], files["mask"])
    run_id = answer.get_json()["id"]
    url = f"/api/runs/{run_id}/files/check"
    whole = client.get(url).data
    try:
        for header in ("bytes=0-9,20-29", "items=0-9", "bytes=abc", "bytes=0-9, 5-"):
            answer = client.get(url, headers={"Range": header})
            assert answer.status_code == 200 and answer.data == whole, header
        answer = client.get(url, headers={"Range": "bytes=0-9"})
        assert answer.status_code == 206 and answer.data == whole[:10]
        assert client.get(url, headers={"Range": f"bytes={len(whole) + 10}-"}).status_code == 416
    finally:
        assert client.delete(f"/api/runs/{run_id}").status_code == 204


def test_a_put_to_an_unknown_upload_token_says_so(app, client):
    for token in ("0" * 32, "not-a-token"):
        answer = client.put(f"/api/uploads/{token}?offset=0", data=b"abc")
        assert_clean_4xx(app, answer, 404, r"^No upload with that token\.$")


def test_simultaneous_deletes_of_a_running_run_succeed_once(app, client, files):
    import threading

    storage = storage_of(app)
    run_id = post(client, files["video"], files["mask"]).get_json()["id"]
    assert storage.claim(run_id, "local:elsewhere:1")  # running, as if a worker had it
    barrier, answers = threading.Barrier(10), []

    def delete():
        own = app.server.test_client()
        barrier.wait()
        answers.append(own.delete(f"/api/runs/{run_id}").status_code)

    threads = [threading.Thread(target=delete) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(answers) == [204] + [404] * 9
    assert_nothing_left(app)


def test_messages_replace_paths_once(app, client, files):
    """A ground-truth frame the run has no mask for: the message names the user's things, each once, and leaves
    a file name that merely contains "gt" alone."""
    from dashboard.jobs import _message, evaluate_run
    from segmentation.errors import InputError
    from segmentation.masks import write_mask

    storage = storage_of(app)
    run_id = post(client, files["video"], files["mask"]).get_json()["id"]
    try:
        storage.update_run(run_id, width=W, height=H, frame_count=4)
        storage.gt_zip(run_id).write_bytes(zip_of({"pwned_gt_00000.png": files["mask"]}))
        write_mask(storage.result_dir(run_id) / "masks" / "00000.png", (box_mask() > 0).astype(np.uint8))
        with pytest.raises(InputError) as info:
            evaluate_run(storage, run_id)
        message = _message(info.value, storage, storage.get_run(run_id))
        assert message == "the run's masks: no prediction for ground-truth frame pwned_gt_00000.png", message
    finally:
        storage.delete_run(run_id)


def test_a_refused_body_ends_the_connection_on_a_real_server(app):
    """Against werkzeug's server over a socket: after a 400/413 for a malformed body the server ends the
    connection at once, even when the client has not sent all it declared (else a thread waits for it)."""
    import socket
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    parts = b"".join(b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nv\r\n' % i for i in range(10_000))
    cases = {
        "no boundary": (b"multipart/form-data", b"1000", b"x" * 1000),
        "length -1": (b"multipart/form-data; boundary=b", b"-1", b"x" * 1000),
        "length abc": (b"multipart/form-data; boundary=b", b"abc", b"x" * 1000),
        "10,000 parts, more declared": (b"multipart/form-data; boundary=b", b"%d" % (len(parts) * 2), parts),
        "1 MB field, more declared": (
            b"multipart/form-data; boundary=b", b"%d" % (4 * 1024 * 1024),
            b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\n' + b"n" * (1024 * 1024),
        ),
    }  # fmt: skip
    try:
        for case, (kind, length, body) in cases.items():
            with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as conn:
                head = b"POST /api/runs HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %s\r\n\r\n"
                conn.sendall(head % (kind, length) + body)
                received = b""
                try:
                    while chunk := conn.recv(65536):  # until the server ends the connection
                        received += chunk
                except TimeoutError:
                    raise AssertionError(f"{case}: connection still open") from None
            status = received.split(b"\r\n", 1)[0]
            assert status.split()[1] in (b"400", b"413"), (case, status)
            assert b"Connection: close" in received and b'"error"' in received, case
    finally:
        server.shutdown()
    assert_nothing_left(app)
