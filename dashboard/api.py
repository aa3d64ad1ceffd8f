"""REST API on the Dash app's Flask server. Errors are JSON with a 4xx status and a readable message.

POST   /api/runs                       multipart: video, mask | boxes, [masks...], [gt], name, preset, ... -> 202
GET    /api/runs                       all runs, newest first
GET    /api/runs/<id>                  status, stage, progress, error, results
GET    /api/runs/<id>/files/<kind>     overlay | masks | trajectory | summary | evaluation | preview | thumbnail | check
POST   /api/runs/<id>/cancel           stop a queued or running run
POST   /api/runs/<id>/rerun            run a finished run again with the same inputs
POST   /api/runs/<id>/corrections      multipart: frame, and boxes + objects (JSON) | mask -> 202, the new version
GET    /api/runs/<id>/versions         the run's versions, oldest first, with their files (?version=N)
POST   /api/runs/<id>/ground-truth     multipart: gt (a zip of mask PNGs named by frame) -> J, F, J&F
DELETE /api/runs/<id>
POST   /api/uploads                    {"filename"} -> {"token"}: start a chunked upload (used by the pages)
PUT    /api/uploads/<token>?offset=N   raw bytes appended at offset N -> {"size"}
"""

from __future__ import annotations

import errno
import logging
import re
import socket
import tempfile
from pathlib import Path

from flask import Blueprint, Request, current_app, jsonify, request, send_file
from werkzeug.exceptions import HTTPException

from dashboard.checks import in_words_of
from dashboard.context import ctx
from dashboard.forms import FormParser, FormTooLarge
from dashboard.runs import (
    FILE_KINDS,
    BadRequest,
    Conflict,
    add_ground_truth,
    clean_name,
    delete_run,
    describe,
    file_path,
    parse_boxes,
    parse_options,
    parse_strokes,
    rerun,
    start_correction,
    start_run,
    versions,
)
from dashboard.storage import RunNotFound

api = Blueprint("api", __name__, url_prefix="/api")
log = logging.getLogger(__name__)
CHUNK = 1024 * 1024
FILE_FIELDS = ("video", "mask", "masks", "gt")
TEXT_FIELDS = ("name", "boxes", "strokes")  # the form's fields that are not files or options
REPEATABLE = ("masks",)  # masks for later frames: PNGs named by frame (00005.png), or zips of them
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class StreamingRequest(Request):
    """Multipart files go straight to the storage folder in chunks (not to memory or /tmp), so a
    multi-gigabyte video costs neither RAM nor a second copy. Every file made is remembered, so that
    remove_parts() (after each request) deletes whatever was not moved into a run, even when parsing
    stopped half way (size limit, client gone)."""

    form_data_parser_class = FormParser  # limits that say which was broken

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        folder = current_app.extensions["stcnn"].storage.uploads_root
        stream = tempfile.NamedTemporaryFile("wb+", dir=folder, prefix="form-", suffix=".part", delete=False)
        self.__dict__.setdefault("stcnn_parts", []).append(stream)
        return stream

    def remove_parts(self) -> None:
        for stream in self.__dict__.pop("stcnn_parts", []):
            stream.close()
            Path(stream.name).unlink(missing_ok=True)  # moved into a run folder on success: already gone


def _error(status: int, message: str):
    return jsonify({"error": message}), status


def _os_error(exc: OSError):
    if exc.errno in _NO_SPACE:
        return _error(507, "The server's storage is full; nothing was saved. Try again later.")
    log.error("storage error: %s", exc)
    return _error(500, "The server could not write to its storage; nothing was saved.")


@api.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    if isinstance(exc, FormTooLarge):
        return _error(413, exc.description)
    if exc.code == 413:
        limit = ctx().settings.max_upload_mb
        return _error(413, f"The upload is larger than the limit of {limit} MB (STCNN_MAX_UPLOAD_MB).")
    return _error(exc.code or 500, exc.description or exc.name)


@api.app_errorhandler(404)
@api.app_errorhandler(405)
def _outside_routes(exc: HTTPException):
    # URLs under /api that match no route (e.g. an id with a slash) answer JSON too.
    if request.path.startswith("/api/"):
        return _error(exc.code, "No such API endpoint or run." if exc.code == 404 else exc.description)
    return exc


_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_BODY_METHODS = ("POST", "PUT", "PATCH")


def _allowed_methods(path: str) -> list[str]:
    """The methods the API's own routes take at this path (the catch-all below matches every method)."""
    adapter = current_app.url_map.bind("localhost")
    allowed = []
    for method in _METHODS:
        try:
            endpoint, _ = adapter.match(path, method=method)
        except HTTPException:
            continue
        if endpoint != "api.no_such_endpoint":
            allowed.append(method)
    return allowed


@api.before_request
def _options():
    # Flask's automatic OPTIONS answer lists the methods of every rule matching the path, the catch-all's too.
    if request.method != "OPTIONS":
        return None
    allowed = _allowed_methods(request.path)
    if not allowed:
        return _error(404, "No such API endpoint or run.")
    answer = current_app.response_class(status=200)
    answer.headers["Allow"] = ", ".join([*allowed, *(["HEAD"] if "GET" in allowed else []), "OPTIONS"])
    return answer


def _half_close_after(body, sock):
    """The response body, then the socket's sending side shut: the client sees the end at once, while the
    server may still read (and drop) the unread request body, for a few seconds at most."""
    yield from body
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(2)
    except OSError:  # the client is gone already
        pass


@api.after_request
def _close_after_an_error(response):
    """A refused request's body may be unread (a bad multipart form, a 413 half way): end the connection after
    the answer, rather than leave a server thread waiting for a rest that may never come (werkzeug's dev server
    drains it before closing; gunicorn, which drops an app's Connection header, reads it before a next request
    on the same connection)."""
    if response.status_code >= 400 and request.method in _BODY_METHODS:
        if "werkzeug.socket" not in request.environ:  # (werkzeug's dev server says so on every answer)
            response.headers["Connection"] = "close"
        sock = request.environ.get("werkzeug.socket") or request.environ.get("gunicorn.socket")
        if isinstance(sock, socket.socket) and not response.is_streamed:
            response.response = _half_close_after(response.response, sock)
    return response


@api.route("/", methods=_METHODS, defaults={"rest": ""})
@api.route("/<path:rest>", methods=_METHODS)
def no_such_endpoint(rest: str):
    """Any other /api URL (e.g. GET on a POST-only route, or a trailing slash) is JSON, not the Dash page that
    the app's catch-all route would otherwise serve for it with a 200."""
    allowed = _allowed_methods(request.path)
    if allowed:
        answer, status = _error(405, f"Use {' or '.join(allowed)} for this URL.")
        answer.headers["Allow"] = ", ".join(allowed)
        return answer, status
    return _error(404, "No such API endpoint or run.")


@api.errorhandler(RunNotFound)
def _not_found(_exc):
    return _error(404, "No run with that id.")


@api.errorhandler(BadRequest)
def _bad_request(exc):
    return _error(400, str(exc))


@api.errorhandler(Conflict)
def _conflict(exc):
    return _error(409, str(exc))


@api.errorhandler(OSError)
def _storage_error(exc: OSError):
    return _os_error(exc)


@api.errorhandler(Exception)
def _bug(exc: Exception):
    # A bug must still answer JSON, and never show a traceback or a server path to the client.
    log.exception("API error on %s %s", request.method, request.path)
    return _error(500, f"Internal error ({type(exc).__name__}); it has been logged.")


def _engine_errors():
    from segmentation.errors import SegmentationError

    return SegmentationError


@api.post("/runs")
def create_run():
    storage, settings = ctx().storage, ctx().settings
    files, form = request.files, request.form
    # (the files are removed after the request unless moved into the run: StreamingRequest.remove_parts)
    as_text = [key for key in FILE_FIELDS if key in form]
    if as_text:
        raise BadRequest(f"'{as_text[0]}' must be a file upload.")
    prompted = "boxes" in form or "strokes" in form
    if "video" not in files or ("mask" not in files and "masks" not in files and not prompted):
        raise BadRequest(
            "Send the video as 'video' and the first-frame mask PNG as 'mask' (multipart); masks for later "
            "frames, named by frame number (00005.png), as 'masks'; or instead of masks, 'boxes': a JSON list "
            "of [x0, y0, x1, y1] around each object in frame 0."
        )
    unknown = sorted(set(files) - set(FILE_FIELDS))
    if unknown:
        raise BadRequest(f"Unknown file field(s): {', '.join(unknown)}; send {', '.join(FILE_FIELDS)}.")
    repeated = sorted(
        key for key, values in [*files.lists(), *form.lists()] if len(values) > 1 and key not in REPEATABLE
    )
    if repeated:
        raise BadRequest(f"Send each field once; repeated: {', '.join(repeated)}.")
    for key, field in files.items(multi=True):
        if not hasattr(field.stream, "name"):  # only ever our files on disk: nothing else to trust
            raise BadRequest(f"'{key}' must be a file upload.")
        field.stream.flush()
        if Path(field.stream.name).stat().st_size > settings.max_upload_bytes:
            return _error(413, f"'{key}' is larger than the limit of {settings.max_upload_mb} MB.")
    video, mask = files["video"], files.get("mask")
    try:
        run_id = start_run(
            storage, ctx().runner,
            video=Path(video.stream.name), video_name=clean_name(video.filename, "video.mp4"),
            mask=None if mask is None else Path(mask.stream.name),  # (a FileStorage without a name is falsy)
            mask_name=clean_name(None if mask is None else mask.filename, "the mask"),
            more_masks=[(Path(f.stream.name), clean_name(f.filename, "a mask")) for f in files.getlist("masks")],
            name=form.get("name", ""), options=parse_options(form, TEXT_FIELDS),
            gt_zip=Path(files["gt"].stream.name) if "gt" in files else None,
            boxes=parse_boxes(form["boxes"]) if "boxes" in form else None,
            strokes=parse_strokes(form["strokes"]) if "strokes" in form else None,
        )  # fmt: skip
    except _engine_errors() as exc:
        raise BadRequest(in_words_of(str(exc), "api")) from None
    return jsonify({"id": run_id, "url": f"/api/runs/{run_id}"}), 202


@api.get("/runs")
def list_runs():
    storage = ctx().storage
    return jsonify({"runs": [describe(storage, run) for run in storage.list_runs()]})


@api.get("/runs/<run_id>")
def get_run(run_id: str):
    storage = ctx().storage
    return jsonify(describe(storage, storage.get_run(run_id)))


@api.get("/runs/<run_id>/files/<kind>")
def get_file(run_id: str, kind: str):
    storage = ctx().storage
    run = storage.get_run(run_id)
    if kind not in FILE_KINDS:
        return _error(404, f"Unknown file kind; use one of {', '.join(FILE_KINDS)}.")
    version = request.args.get("version", "")
    if version and (not version.isdigit() or int(version) not in storage.earlier_versions(run_id)):
        if not (version.isdigit() and int(version) == run.version and run.status == "done"):
            return _error(404, f"This run has no version {version[:20]!r}; GET /api/runs/{run_id}/versions.")
        version = ""  # the latest, by its number
    path = file_path(storage, run_id, kind, int(version) if version else None)
    if path is None:
        return _error(404, f"This run has no {kind} file (status: {run.status}).")
    _, mimetype, suffix = FILE_KINDS[kind]
    ranges = request.range
    if "Range" in request.headers and (ranges is None or ranges.units != "bytes" or len(ranges.ranges) != 1):
        # Several ranges, another unit or a malformed header: answer with the whole file, as servers do
        # (werkzeug would refuse with a 416); one bytes range is served as asked.
        request.environ.pop("HTTP_RANGE")
    inline = kind in ("overlay", "preview", "thumbnail", "check") and "download" not in request.args
    # "dog (balanced)" -> dog-balanced-overlay.mp4: each run of other characters becomes one hyphen.
    safe_name = re.sub(r"[^0-9A-Za-z_]+", "-", run.name).strip("-")[:60] or "run"
    response = send_file(
        path, mimetype=mimetype, as_attachment=not inline, download_name=f"{safe_name}-{suffix}",
        conditional=True, max_age=0,
    )  # fmt: skip
    return response


@api.post("/runs/<run_id>/cancel")
def cancel_run(run_id: str):
    status = ctx().storage.request_cancel(run_id)
    return jsonify({"id": run_id, "status": status})


@api.post("/runs/<run_id>/corrections")
def correct_run(run_id: str):
    """One frame corrected: the run's next version is made in the background, reusing what it can."""
    import json

    storage = ctx().storage
    storage.get_run(run_id)  # 404 before the form is judged
    files, form = request.files, request.form
    unknown = sorted((set(files) - {"mask"}) | (set(form) - {"frame", "boxes", "objects"}))
    if unknown:
        raise BadRequest(f"Unknown field(s): {', '.join(unknown)}; send frame, and boxes with objects or mask.")
    frame = form.get("frame", "")
    if not frame.strip().isdigit():
        raise BadRequest("Send 'frame': the number of the frame corrected, counting from 0.")
    correction = {}
    if "mask" in files:
        if "boxes" in form:
            raise BadRequest("Give the correction either as boxes or as a mask, not both.")
        correction = {"mask": Path(files["mask"].stream.name), "mask_name": clean_name(files["mask"].filename, "the mask")}
    elif "boxes" in form:
        try:
            correction = {"boxes": json.loads(form["boxes"]), "objects": json.loads(form.get("objects", "null"))}
        except ValueError:
            raise BadRequest("boxes and objects must be JSON: [[x0, y0, x1, y1], ...] and [id, ...].") from None
    else:
        raise BadRequest("Send the correction: 'boxes' (JSON [[x0, y0, x1, y1]]) with 'objects' (JSON [ids]), or a 'mask' PNG.")
    try:
        version = start_correction(storage, ctx().runner, run_id, int(frame), **correction)
    except _engine_errors() as exc:
        raise BadRequest(str(exc)) from None
    return jsonify({"id": run_id, "version": version, "url": f"/api/runs/{run_id}"}), 202


@api.get("/runs/<run_id>/versions")
def list_versions(run_id: str):
    storage = ctx().storage
    run = storage.get_run(run_id)
    making = run.version if run.status in ("queued", "running") else None
    return jsonify({"id": run_id, "status": run.status, "version": run.version, "making": making,
                    "versions": versions(storage, run)})


@api.post("/runs/<run_id>/rerun")
def rerun_run(run_id: str):
    try:
        rerun(ctx().storage, ctx().runner, run_id)
    except ValueError as exc:
        return _error(409, str(exc))
    return jsonify({"id": run_id, "status": "queued"}), 202


@api.post("/runs/<run_id>/ground-truth")
def score_run(run_id: str):
    """Ground truth for a done run: scored at once (J, F, J&F), per frame in its evaluation file."""
    storage, files = ctx().storage, request.files
    storage.get_run(run_id)  # 404 before the form is judged
    unknown = sorted((set(files) - {"gt"}) | set(request.form))
    if "gt" not in files or unknown or len(files.getlist("gt")) > 1:
        raise BadRequest("Send one file, 'gt': a zip of ground-truth mask PNGs named by frame (00000.png, ...).")
    part = files["gt"]
    if not hasattr(part.stream, "name"):
        raise BadRequest("'gt' must be a file upload.")
    part.stream.flush()
    if Path(part.stream.name).stat().st_size > ctx().settings.max_upload_bytes:
        return _error(413, f"'gt' is larger than the limit of {ctx().settings.max_upload_mb} MB.")
    scores = add_ground_truth(storage, run_id, Path(part.stream.name))
    return jsonify({"id": run_id, **scores, "evaluation": f"/api/runs/{run_id}/files/evaluation"})


@api.delete("/runs/<run_id>")
def remove_run(run_id: str):
    delete_run(ctx().storage, run_id)
    return "", 204


@api.post("/uploads")
def new_upload():
    body = request.get_json(silent=True)
    filename = body.get("filename") if isinstance(body, dict) else None
    return jsonify({"token": ctx().storage.new_upload(clean_name(filename, "upload"))}), 201


@api.put("/uploads/<token>")
def append_upload(token: str):
    storage, settings = ctx().storage, ctx().settings
    try:
        offset = int(request.args.get("offset", "0"))
    except ValueError:
        return _error(400, "offset must be an integer")

    def chunks():
        while chunk := request.stream.read(CHUNK):
            yield chunk

    try:
        size = storage.append_upload(token, offset, chunks(), settings.max_upload_bytes)
    except RunNotFound:
        return _error(404, "No upload with that token.")
    except OverflowError:
        storage.discard_upload(token)
        return _error(413, f"The file is larger than the limit of {settings.max_upload_mb} MB.")
    except ValueError as exc:
        return _error(409, str(exc))
    except OSError as exc:
        storage.discard_upload(token)  # disk full: a half-written upload is no use to anyone
        return _os_error(exc)
    return jsonify({"token": token, "size": size})
