"""Only files under the storage folder are served, only by run id; no user string reaches a path or a shell;
beyond loopback the app needs a token (REST: Bearer header; pages: a same-site cookie after one ?token= visit).
"""

from __future__ import annotations

import ast
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dashboard_fixtures import *  # noqa: F403 - the fixtures: weights, tiny_clip, storage_dir
from dashboard_fixtures import post_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.app import create_app
from dashboard.config import check_bind, load_settings

ROOT = Path(__file__).resolve().parent.parent
SECRET = b"TOP-SECRET-OUTSIDE-STORAGE"


@pytest.fixture
def secret(tmp_path):
    """A file beside (outside) the storage folder that must never be served."""
    path = tmp_path / "secret.txt"
    path.write_bytes(SECRET)
    return path


@pytest.fixture
def app_with_run(storage_dir, tiny_clip):
    app = create_app(start_runner=False)
    client = app.server.test_client()
    run_id = post_run(client, tiny_clip).get_json()["id"]
    return app, client, run_id


TRAVERSALS = [
    "../secret.txt", "..%2Fsecret.txt", "..%2F..%2Fsecret.txt", "%2e%2e/%2e%2e/secret.txt", "....//secret.txt",
    "..\\secret.txt", "%252e%252e%252fsecret.txt", "/etc/passwd", "%2Fetc%2Fpasswd", "..%00/secret.txt",
    "index.sqlite", "..%2Findex.sqlite", "..%2F..%2Findex.sqlite",
]  # fmt: skip


def test_path_traversal_in_every_route(app_with_run, secret):
    app, client, run_id = app_with_run
    templates = [
        "/api/runs/{x}", "/api/runs/{x}/files/overlay", "/api/runs/{id}/files/{x}", "/api/runs/{x}/cancel",
        "/api/runs/{x}/rerun", "/api/uploads/{x}?offset=0", "/assets/{x}", "/_dash-component-suites/dash/{x}",
        "/player?id={x}", "/run?id={x}", "/compare?a={x}&b={x}", "/{x}",
    ]  # fmt: skip
    for template in templates:
        for x in TRAVERSALS:
            url = template.format(x=x, id=run_id)
            for method in ("GET", "POST", "PUT", "DELETE"):
                answer = client.open(url, method=method)
                assert SECRET not in answer.data and b"SQLite format" not in answer.data, (method, url)
                assert b"root:x:0:0" not in answer.data, (method, url)
                assert answer.status_code != 500, (method, url)
    assert app.server.extensions["stcnn"].storage.get_run(run_id).status == "queued"  # nothing acted on it


@pytest.mark.parametrize("where", ["file", "result_dir", "run_dir"])
def test_symlinks_in_the_storage_folder_are_not_followed(app_with_run, secret, where):
    app, client, run_id = app_with_run
    storage = app.server.extensions["stcnn"].storage
    if where == "file":  # a planted link where a result file belongs
        storage.result_dir(run_id).mkdir()
        (storage.result_dir(run_id) / "summary.json").symlink_to(secret)
        (storage.run_dir(run_id) / "thumb.jpg").symlink_to(secret)
    elif where == "result_dir":  # the result folder itself points out
        storage.result_dir(run_id).symlink_to(secret.parent, target_is_directory=True)
        (secret.parent / "summary.json").write_bytes(SECRET)
        (secret.parent / "masks").mkdir()
        (secret.parent / "masks" / "00000.png").write_bytes(SECRET)
    else:  # the whole run folder is replaced by a link
        import shutil

        shutil.rmtree(storage.run_dir(run_id))
        storage.run_dir(run_id).symlink_to(secret.parent, target_is_directory=True)
        (secret.parent / "check.png").write_bytes(SECRET)
    storage.update_run(run_id, status="done")
    kinds = ["summary", "thumbnail", "masks", "overlay", "trajectory"]
    kinds += ["check"] if where == "run_dir" else []  # otherwise check.png is the run's own, real file
    for kind in kinds:
        answer = client.get(f"/api/runs/{run_id}/files/{kind}")
        assert answer.status_code == 404 and SECRET not in answer.data, kind
    assert SECRET not in client.get(f"/api/runs/{run_id}").data


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(name=st.text(min_size=1, max_size=300))
def test_upload_file_names_never_become_paths(storage_dir, tiny_clip, name):
    app = create_app(start_runner=False)
    client = app.server.test_client()
    storage = app.server.extensions["stcnn"].storage
    before = {p for p in storage_dir.parent.rglob("*")}
    token = client.post("/api/uploads", json={"filename": name}).get_json()["token"]
    client.put(f"/api/uploads/{token}?offset=0", data=b"abc")
    with open(tiny_clip.video, "rb") as video, open(tiny_clip.mask, "rb") as mask:
        data = {"video": (video, name), "mask": (mask, name), "name": name, "preset": "fast"}
        answer = client.post("/api/runs", data=data, content_type="multipart/form-data")
    created = {p for p in storage_dir.parent.rglob("*")} - before
    allowed = re.compile(
        r"(index\.sqlite(-wal|-shm|-journal)?|runs|uploads|runs/[0-9a-f]{32}(/check\.png|/input"
        r"|/input/mask\.png|/input/video\.(mp4|m4v|mov|avi|mkv|webm|mpg|mpeg|bin))?|uploads/[0-9a-f]{32}\.(part|json))"
    )
    for path in created:  # every new path is an id, a token or a fixed name inside the storage folder
        assert path.resolve().is_relative_to(storage.root), path
        assert allowed.fullmatch(path.relative_to(storage.root).as_posix()), path
    if answer.status_code == 202:
        client.delete(f"/api/runs/{answer.get_json()['id']}")
    storage.discard_upload(token)


def test_subprocess_calls_use_argument_lists_and_validated_ids():
    """Audit: no shell=True, os.system or os.popen anywhere in the dashboard; every subprocess call gets a list."""
    for path in sorted((ROOT / "dashboard").rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                assert name not in ("os.system", "os.popen", "os.execl", "os.spawnl"), (path, node.lineno)
                for keyword in node.keywords:
                    if keyword.arg == "shell":
                        raise AssertionError(f"{path}:{node.lineno} uses shell=")
                if name.startswith("subprocess."):
                    assert isinstance(node.args[0], ast.List), (path, node.lineno)
    from dashboard.runner import LocalRunner
    from dashboard.storage import Storage

    runner = LocalRunner(Storage(ROOT / "test-results" / "security-storage"))
    for bad in ("; rm -rf /", "../x", "--help", "A" * 32):
        with pytest.raises(ValueError):
            runner._spawn(bad)
    result = subprocess.run(
        [sys.executable, "-m", "dashboard.jobs", "; touch /tmp/stcnn-pwned"], capture_output=True, text=True,
        env={**os.environ, "STCNN_STORAGE": str(ROOT / "test-results" / "security-storage")}, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and "not a run id" in result.stderr
    assert not Path("/tmp/stcnn-pwned").exists()


# -- binding and the token -------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.com"])
def test_refuses_to_bind_beyond_loopback_without_a_token(monkeypatch, host):
    monkeypatch.delenv("STCNN_API_TOKEN", raising=False)
    with pytest.raises(SystemExit, match="STCNN_API_TOKEN"):
        check_bind(host, load_settings())
    monkeypatch.setenv("STCNN_API_TOKEN", "s3cret")
    check_bind(host, load_settings())  # fine with a token


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_token(monkeypatch, host):
    monkeypatch.delenv("STCNN_API_TOKEN", raising=False)
    check_bind(host, load_settings())


def test_the_cli_refuses_with_a_clear_message(storage_dir, monkeypatch):
    monkeypatch.delenv("STCNN_API_TOKEN", raising=False)
    result = subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "--host", "0.0.0.0", "--no-demo"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "Refusing to listen on 0.0.0.0" in result.stderr and "STCNN_API_TOKEN" in result.stderr


def test_gunicorn_config_refuses_too(monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("gconf", ROOT / "gunicorn.conf.py")
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)

    class Server:
        class cfg:
            bind = ["0.0.0.0:8050"]

    monkeypatch.delenv("STCNN_API_TOKEN", raising=False)
    with pytest.raises(SystemExit):
        conf.on_starting(Server)
    Server.cfg.bind = ["127.0.0.1:8050", "[::1]:8050", "unix:/tmp/x.sock"]
    conf.on_starting(Server)


def test_token_required_for_api_and_pages_and_the_cookie_lets_pages_upload(
    storage_dir, tiny_clip, monkeypatch
):
    monkeypatch.setenv("STCNN_API_TOKEN", "correct-horse")
    app = create_app(start_runner=False)
    anonymous = app.server.test_client()
    for method, url in (("GET", "/api/runs"), ("POST", "/api/uploads"), ("GET", "/"), ("GET", "/gallery"),
                        ("POST", "/_dash-update-component"), ("GET", "/api/runs?token=wrong")):  # fmt: skip
        answer = anonymous.open(url, method=method)
        assert answer.status_code == 401, (method, url)
    assert "token" in anonymous.get("/api/runs").get_json()["error"]
    wrong = {"Authorization": "Bearer correct-horsf"}
    assert anonymous.get("/api/runs", headers=wrong).status_code == 401

    # REST: the Bearer header.
    bearer = {"Authorization": "Bearer correct-horse"}
    assert anonymous.get("/api/runs", headers=bearer).status_code == 200
    with open(tiny_clip.video, "rb") as video, open(tiny_clip.mask, "rb") as mask:
        data = {"video": (video, "v.mp4"), "mask": (mask, "m.png"), "preset": "fast"}
        assert anonymous.post("/api/runs", data=data, headers=bearer).status_code == 202

    # Pages: one visit with ?token= sets an HttpOnly, SameSite=Strict cookie and drops the token from the URL.
    browser = app.server.test_client()
    answer = browser.get("/gallery?token=correct-horse&x=1")
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/gallery?x=1")
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "correct-horse" not in cookie
    assert browser.get("/gallery").status_code == 200
    token = browser.post("/api/uploads", json={"filename": "v.mp4"}).get_json()[
        "token"
    ]  # what upload.js does
    assert browser.put(f"/api/uploads/{token}?offset=0", data=io.BytesIO(b"abc")).get_json()["size"] == 3
