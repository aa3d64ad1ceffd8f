"""The runs index and the storage folder: ids, statuses, claims, cancel, rerun, delete, uploads. Every test
runs twice: on the embedded SQLite index and on a real PostgreSQL server (DATABASE_URL)."""

from __future__ import annotations

import io
import os
import threading
import zipfile

import pytest
import sqlalchemy as sa
from PIL import Image
from postgres_fixtures import *  # noqa: F403 - the fixtures: postgres_server, postgres_url

from dashboard.storage import RunNotFound, Storage, is_run_id


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, monkeypatch) -> str:
    """The index's URL: a SQLite file in the storage folder, or a fresh PostgreSQL database."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return f"sqlite:///{request.getfixturevalue('tmp_path') / 'storage' / 'index.sqlite'}"


@pytest.fixture
def storage(tmp_path, database):
    return Storage(tmp_path / "storage")


def _inputs(tmp_path, name="v"):
    video, mask = tmp_path / f"{name}.mp4", tmp_path / f"{name}.png"
    video.write_bytes(b"video bytes")
    mask.write_bytes(b"mask bytes")
    return video, mask


def _new_run(storage, tmp_path, name="run", **kwargs):
    video, mask = _inputs(tmp_path, name)
    return storage.create_run(name=name, video=video, mask=mask, video_name="My Holiday.MOV", **kwargs)


def test_create_run_moves_inputs_under_an_id_folder(storage, tmp_path):
    run_id = _new_run(storage, tmp_path, options={"preset": "fast"})
    run = storage.get_run(run_id)
    assert is_run_id(run_id) and run.status == "queued" and run.options == {"preset": "fast"}
    assert storage.input_video(run_id) == storage.runs_root / run_id / "input" / "video.mov"
    assert storage.input_video(run_id).read_bytes() == b"video bytes"
    assert storage.input_mask(run_id).read_bytes() == b"mask bytes"
    assert run.video_name == "My Holiday.MOV"  # kept for display only


def test_a_folder_of_masks_is_kept_as_input_masks(storage, tmp_path):
    video, _ = _inputs(tmp_path)
    staged = storage.new_staging()
    for name in ("00000.png", "00005.png"):
        (staged / name).write_bytes(name.encode())
    run_id = storage.create_run(name="later", video=video, mask=staged, video_name="v.mp4")
    assert storage.input_mask(run_id) == storage.runs_root / run_id / "input" / "masks"
    assert sorted(p.name for p in storage.input_mask(run_id).iterdir()) == ["00000.png", "00005.png"]
    assert not staged.exists()


def test_stale_uploads_and_staging_folders_are_cleaned_up(storage):
    token, staged = storage.new_upload("v.mp4"), storage.new_staging()
    (staged / "00000.png").write_bytes(b"mask")
    storage.cleanup_uploads()  # fresh: kept
    assert storage.upload_path(token).exists() and staged.exists()
    for path in storage.uploads_root.iterdir():
        os.utime(path, (1, 1))
    storage.cleanup_uploads()
    assert list(storage.uploads_root.iterdir()) == []


def test_unknown_extension_and_hostile_names_never_reach_paths(storage, tmp_path):
    video, mask = _inputs(tmp_path)
    run_id = storage.create_run(name="x", video=video, mask=mask, video_name="../../etc/passwd")
    assert storage.input_video(run_id).name == "video.bin"
    for bad in ("../" + run_id, run_id.upper(), "", None, run_id + "/.."):
        with pytest.raises(RunNotFound):
            storage.run_dir(bad)


def test_the_index_survives_a_new_storage_object(storage, tmp_path):
    run_id = _new_run(storage, tmp_path)
    storage.update_run(run_id, status="done", timings={"total": 1.5}, objects=[1, 2])
    again = Storage(storage.root)
    assert again.get_run(run_id).timings == {"total": 1.5}
    assert again.get_run(run_id).objects == [1, 2]
    assert [run.id for run in again.list_runs(statuses=("done",))] == [run_id]


def test_search_and_status_filters(storage, tmp_path):
    a = _new_run(storage, tmp_path, "dog on beach")
    _new_run(storage, tmp_path, "cat")
    assert [run.id for run in storage.list_runs(search="beach")] == [a]
    assert len(storage.list_runs(statuses=("queued",))) == 2


def test_claims_are_exclusive_across_threads(storage, tmp_path):
    ids = [_new_run(storage, tmp_path, f"run{i}") for i in range(4)]
    claimed: list[str] = []

    def worker():
        while run_id := storage.claim_next("test", max_running=10):
            claimed.append(run_id)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(ids)  # each run once


def test_claim_next_respects_the_parallel_limit_and_queue_order(storage, tmp_path):
    first = _new_run(storage, tmp_path, "first")
    _new_run(storage, tmp_path, "second")
    assert storage.claim_next("w", max_running=1) == first
    assert storage.claim_next("w", max_running=1) is None


def test_cancel_a_queued_run_is_immediate_a_running_one_is_flagged(storage, tmp_path):
    queued = _new_run(storage, tmp_path, "queued")
    running = _new_run(storage, tmp_path, "running")
    assert storage.claim(running, "w")
    assert storage.request_cancel(queued) == "cancelled"
    assert storage.request_cancel(running) == "running"
    assert storage.cancel_requested(running) and not storage.cancel_requested(queued)


def test_rerun_keeps_inputs_and_clears_results(storage, tmp_path):
    run_id = _new_run(storage, tmp_path)
    storage.claim(run_id, "w")
    with pytest.raises(ValueError):
        storage.requeue(run_id)  # still running
    (storage.result_dir(run_id)).mkdir()
    storage.update_run(run_id, status="failed", error="boom", progress=0.5)
    storage.requeue(run_id)
    run = storage.get_run(run_id)
    assert (run.status, run.error, run.progress) == ("queued", None, 0)
    assert storage.input_video(run_id).exists() and not storage.result_dir(run_id).exists()


def test_delete_removes_row_and_folder(storage, tmp_path):
    run_id = _new_run(storage, tmp_path)
    storage.delete_run(run_id)
    assert not storage.run_dir(run_id).exists()
    assert storage.find_run(run_id) is None
    assert storage.cancel_requested(run_id)  # a worker whose run vanished stops


def test_chunked_upload_appends_in_order_and_enforces_the_limit(storage):
    token = storage.new_upload("big.mp4")
    assert storage.append_upload(token, 0, iter([b"ab", b"cd"]), limit=10) == 4
    with pytest.raises(ValueError):
        storage.append_upload(token, 2, iter([b"x"]), limit=10)  # a resent or lost chunk is refused
    assert storage.append_upload(token, 4, iter([b"ef"]), limit=10) == 6
    with pytest.raises(OverflowError):
        storage.append_upload(token, 6, iter([b"0123456"]), limit=10)
    assert storage.upload_filename(token) == "big.mp4"
    storage.discard_upload(token)
    with pytest.raises(RunNotFound):
        storage.upload_path(token)


def test_ground_truth_zip_is_unpacked_flat_and_safely(storage, tmp_path):
    run_id = _new_run(storage, tmp_path)
    storage.update_run(run_id, width=8, height=6, frame_count=2)  # what the run's probe recorded
    png = io.BytesIO()
    Image.new("L", (8, 6)).save(png, format="PNG")
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("seq/00000.png", png.getvalue())
        archive.writestr("../../evil.png", png.getvalue())
        archive.writestr("notes.txt", b"skip")
        archive.writestr("__MACOSX/._00000.png", b"junk")
    storage.gt_zip(run_id).write_bytes(data.getvalue())
    gt = storage.unpack_gt(storage.get_run(run_id))
    assert sorted(p.name for p in gt.iterdir()) == ["00000.png", "evil.png"]
    assert not (storage.root.parent / "evil.png").exists()


def test_claim_next_keeps_the_parallel_limit_under_racing_claimers(storage, tmp_path):
    for i in range(6):
        _new_run(storage, tmp_path, f"run{i}")
    barrier = threading.Barrier(6)
    claimed: list[str | None] = []

    def claimer(n):
        barrier.wait()  # all at once: each must count the runs the others started
        claimed.append(storage.claim_next(f"w{n}", max_running=2))

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len([run_id for run_id in claimed if run_id]) == 2
    assert len(storage.list_runs(statuses=("running",))) == 2


def test_an_index_left_by_an_older_version_is_migrated_and_read_as_run_records(tmp_path, database):
    from dashboard.run_index import Run

    root = tmp_path / "storage"
    root.mkdir()
    old = sa.create_engine(database.replace("postgresql://", "postgresql+psycopg://"))
    with old.begin() as conn:  # the columns of the first index there ever was, less those added since
        conn.execute(sa.text("CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,"
                             " options TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL)"))
        conn.execute(sa.text("INSERT INTO runs VALUES (:id, 'old', 'done', NULL, 1, 1)"), {"id": "a" * 32})
    storage = Storage(root)
    run = storage.get_run("a" * 32)
    assert isinstance(run, Run)
    assert (run.status, run.version, run.heartbeat_at, run.objects, run.cancel_requested) == ("done", 1, None, [], False)
    storage.update_run(run.id, heartbeat_at=2.5, objects=[1, 2])
    assert (storage.get_run(run.id).heartbeat_at, storage.get_run(run.id).objects) == (2.5, [1, 2])
    with old.connect() as conn:
        columns = [column["name"] for column in sa.inspect(conn).get_columns("runs")]
    old.dispose()
    assert sorted(columns) == sorted(Run.__dataclass_fields__)  # the record and the table name the same columns
    with pytest.raises(ValueError, match="not updatable"):
        storage.update_run(run.id, created_at=5)


def test_nothing_absolute_is_kept_in_the_index(storage, tmp_path):
    """Another machine mounts the files elsewhere: a run's row names no path, its files come from its id."""
    run_id = _new_run(storage, tmp_path)
    storage.update_run(run_id, error="x", worker="celery:host:1")
    row = storage.get_run(run_id).to_dict()
    assert not [value for value in row.values() if isinstance(value, str) and "/" in value]
    elsewhere = tmp_path / "mounted-elsewhere"
    elsewhere.symlink_to(storage.root)
    other = Storage(elsewhere)
    assert other.root == elsewhere and other.input_video(run_id) == elsewhere / "runs" / run_id / "input" / "video.mov"
    assert other.get_run(run_id).name == "run"


def test_a_bad_database_url_is_one_clear_line(tmp_path, monkeypatch):
    from dashboard.config import check_index, load_settings

    with pytest.raises(ValueError, match="not a database URL"):
        Storage(tmp_path / "s", database="not a url")
    with pytest.raises(ValueError, match="SQLite or PostgreSQL"):
        Storage(tmp_path / "s", database="mysql://localhost/x")
    monkeypatch.setenv("DATABASE_URL", "postgresql://stcnn:secret@127.0.0.1:1/stcnn")  # nothing listens there
    with pytest.raises(SystemExit, match="cannot be opened: connection failed") as refused:
        check_index(load_settings(tmp_path / "s"))  # what the web server and the worker do before they start
    assert "secret" not in str(refused.value) and "\n" not in str(refused.value)
