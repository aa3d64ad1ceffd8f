"""The one options model (segmentation/options.py) and every place that asks for options: the CLI, the REST API,
the New run page, the dashboard job and the summary. One table of bad values goes through the model, the CLI
and the API; each must be refused with one line that names the option (the CLI: its flag), and leave nothing.
"""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from bad_input_files import box_mask, leftovers, write_png, write_video
from dashboard_fixtures import *  # noqa: F403 - the fixtures: weights, tiny_clip, storage_dir

from segmentation.cli import _options, main, parser
from segmentation.errors import InputError
from segmentation.options import (
    ABLATIONS,
    DEVICES,
    PRESETS,
    OptionError,
    SegmentOptions,
    choices,
)

FIELDS = SegmentOptions.model_fields
# option: (the CLI's flag, or None where the CLI has no value to give: a switch)
FLAGS = {
    "online_seconds": "--online-seconds", "fps": "--fps", "short_side": "--size", "preset": "--preset",
    "device": "--device", "binarize": None, "gate": None, "match": None,
}  # fmt: skip
# (option, as a form or the command line gives it, what the message says)
BAD = [
    ("online_seconds", "3601", r"online training seconds must be in 0\.\.3600, got 3601"),
    ("online_seconds", "1e300", r"in 0\.\.3600, got 1e\+300"),
    ("online_seconds", "-1", r"in 0\.\.3600, got -1"),
    ("online_seconds", "nan", r"in 0\.\.3600, got nan"),
    ("online_seconds", "ten", r"a number in 0\.\.3600, got 'ten'"),
    ("fps", "0", "above 0 and at most 1000, got 0"),
    ("fps", "inf", "above 0 and at most 1000, got inf"),
    ("fps", "1001", "above 0 and at most 1000, got 1001"),
    ("short_side", "63", "whole number between 64 and 1080, got 63"),
    ("short_side", "1081", "whole number between 64 and 1080, got 1081"),
    ("short_side", "256.5", "whole number between 64 and 1080, got '256.5'"),
    ("preset", "foo", "unknown preset 'foo': use one of fast, balanced, quality"),
    ("device", "tpu", "unknown device 'tpu': use one of auto, cpu, cuda"),
    ("binarize", "maybe", "binarize must be true or false, got 'maybe'"),
    ("gate", "maybe", "gate must be true or false, got 'maybe'"),
    ("match", "2", "match must be true or false, got '2'"),
]
BAD_IDS = [f"{name}={text}" for name, text, _ in BAD]
# Values the Python API must refuse although a form's text of them would be read: the model is strict.
STRICT = [
    ("online_seconds", True), ("online_seconds", "3"), ("online_seconds", math.inf), ("fps", math.nan),
    ("fps", False), ("short_side", 256.0), ("short_side", "256"), ("short_side", True), ("binarize", 1),
    ("binarize", "true"), ("overwrite", None), ("gate", 0), ("match", "no"), ("preset", None), ("preset", ["fast"]),
    ("device", 0), ("ablate", "mask"), ("ablate", ["backbone"]), ("weights", 3), ("weights", "w\0.pt"),
]  # fmt: skip


def _typed(name: str, text: str):
    """The text as the Python value a caller would pass (the numbers as numbers)."""
    kind = {"online_seconds": float, "fps": float, "short_side": int}.get(name)
    try:
        return kind(text) if kind else text
    except ValueError:
        return text


@pytest.mark.parametrize(("name", "text", "message"), BAD, ids=BAD_IDS)
def test_a_bad_value_is_one_line_naming_the_option(name, text, message):
    for given in (lambda: SegmentOptions(**{name: _typed(name, text)}),
                  lambda: SegmentOptions.of({name: _typed(name, text)}),
                  lambda: SegmentOptions.from_form({name: text})):  # fmt: skip
        with pytest.raises(OptionError) as info:
            given()
        error = info.value
        assert isinstance(error, InputError) and error.option == name
        assert str(error).startswith(f"{name}: ") and "\n" not in str(error)
        assert re.search(message, str(error)), str(error)


@pytest.mark.parametrize(("name", "value"), STRICT, ids=[f"{n}={v!r}" for n, v in STRICT])
def test_the_model_is_strict_about_types(name, value):
    with pytest.raises(OptionError, match=f"^{name}: ") as info:
        SegmentOptions(**{name: value})
    assert "\n" not in str(info.value)


def test_edges_and_lenient_forms_are_accepted():
    edges = SegmentOptions(online_seconds=0, fps=1000, short_side=64, ablate=["mask"], weights=Path("w.pt"))
    assert edges.online_seconds == 0.0 and isinstance(edges.online_seconds, float)
    assert edges.ablate == ("mask",) and edges.weights == "w.pt"
    assert SegmentOptions(online_seconds=3600, short_side=1080).short_side == 1080
    form = SegmentOptions.from_form(
        {"online_seconds": " 0.5 ", "fps": "", "short_side": "64", "binarize": "on", "gate": "false", "match": "0"}
    )
    assert (form.online_seconds, form.fps, form.short_side) == (0.5, None, 64)
    assert (form.binarize, form.gate, form.match) == (True, False, False)


def test_unknown_options_and_wrong_kinds_are_refused():
    with pytest.raises(InputError, match=r"unknown option\(s\): gate2, speed \(options: device, preset"):
        SegmentOptions.of({"gate2": True, "speed": 1})
    with pytest.raises(InputError, match="options must be SegmentOptions or a dict, got str"):
        SegmentOptions.of("fast")
    with pytest.raises(OptionError, match="short_side"):
        SegmentOptions().replace(short_side=10)  # a changed copy is checked too
    with pytest.raises(Exception, match="frozen"):
        SegmentOptions().short_side = 10  # so no unchecked value can be set afterwards


def test_long_values_are_cut_in_the_message():
    with pytest.raises(OptionError) as info:
        SegmentOptions(preset="x" * 10_000)
    assert len(str(info.value)) < 200 and "10002 characters" in str(info.value)


def test_every_option_has_help_and_the_lists_agree_with_the_engine():
    from segmentation.model import ABLATIONS as MODEL_ABLATIONS
    from segmentation.online import PRESETS as BUDGETS

    for name, field in FIELDS.items():
        assert field.description and len(field.description) > 15, name
    # What the model's decode can switch off, and online training's gated loss (inference.online_gated).
    assert PRESETS == tuple(BUDGETS) and ABLATIONS == (*MODEL_ABLATIONS, "online_gate")
    assert choices(FIELDS["preset"]) == PRESETS and choices(FIELDS["device"]) == DEVICES
    assert choices(FIELDS["ablate"]) == ABLATIONS and choices(FIELDS["fps"]) is None


def test_importing_the_options_does_not_import_torch():
    """The web process checks a submission with the model: that must not load torch."""
    code = "import segmentation.options, dashboard.runs, sys; assert 'torch' not in sys.modules, 'torch'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)


# -- the CLI -------------------------------------------------------------------------------------------------------


def _actions(command: str) -> dict:
    sub = next(a for a in parser()._actions if a.dest == "command").choices[command]
    return {action.dest: action for action in sub._actions}


def test_cli_defaults_help_and_choices_are_the_models():
    segment = parser().parse_args(["segment", "v.mp4", "m.png", "-o", "out"])
    benchmark = parser().parse_args(["benchmark", "data"])
    assert _options(segment) == SegmentOptions() and _options(benchmark) == SegmentOptions()
    actions = {**_actions("segment"), **_actions("benchmark")}
    assert set(FIELDS) <= set(actions), set(FIELDS) - set(actions)  # every option has a flag somewhere
    for name, field in FIELDS.items():
        action = actions[name]
        assert field.description.replace("%", "%%") in action.help, name
        assert action.default == field.default, name
        assert (tuple(action.choices) if action.choices else None) == choices(field), name


BAD_CLI = [(case, case_id) for case, case_id in zip(BAD, BAD_IDS) if FLAGS[case[0]]]


@pytest.mark.parametrize(("name", "text", "message"), [c for c, _ in BAD_CLI], ids=[i for _, i in BAD_CLI])
def test_cli_refuses_each_bad_value_naming_its_flag(tmp_path, capsys, name, text, message):
    out = tmp_path / "out"
    argv = ["segment", str(tmp_path / "v.mp4"), str(tmp_path / "m.png"), "-o", str(out), f"{FLAGS[name]}={text}"]
    try:
        rc = main(argv)
    except SystemExit as exit:  # argparse's own refusals (a choice, a type) exit by themselves
        rc = exit.code
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and err.startswith("stcnn: error: "), err
    flag = FLAGS[name]
    # The model's message with the flag for the field, or argparse's for a choice or a number it cannot read.
    assert re.search(rf"{flag}: .*{message.split(', got')[0]}", err) or re.search(
        rf"argument {flag}: invalid (choice|int value|float value)", err
    ), err
    assert not out.exists() and leftovers(tmp_path) == []


# -- the REST API --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from dashboard.app import create_app

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STCNN_DEMO", "0")
        patch.delenv("REDIS_URL", raising=False)
        patch.delenv("STCNN_API_TOKEN", raising=False)
        yield create_app(tmp_path_factory.mktemp("options") / "storage", start_runner=False, seed_demo=False)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("options-clip")
    return {
        "video": write_video(folder / "video.mp4", n=4).read_bytes(),
        "mask": write_png(folder / "mask.png", box_mask()).read_bytes(),
    }


def _post(app, clip, **form):
    data = {"video": (io.BytesIO(clip["video"]), "v.mp4"), "mask": (io.BytesIO(clip["mask"]), "m.png"), **form}
    return app.server.test_client().post("/api/runs", data=data, content_type="multipart/form-data")


def _assert_nothing_stored(app):
    storage = app.server.extensions["stcnn"].storage
    assert storage.list_runs() == []
    assert list(storage.runs_root.iterdir()) == [] and list(storage.uploads_root.iterdir()) == []


@pytest.mark.parametrize(("name", "text", "message"), BAD, ids=BAD_IDS)
def test_api_refuses_each_bad_value_with_400_naming_the_option(app, clip, name, text, message):
    answer = _post(app, clip, **{name: text})
    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert error.startswith(f"{name}: ") and re.search(message, error), error
    _assert_nothing_stored(app)


@pytest.mark.parametrize("field", ["gate2", "weights", "overwrite", "ablate", ""])
def test_api_refuses_options_a_run_cannot_be_given(app, clip, field):
    """Unknown fields, and the options that are not the web's to set (a server path, the job's own folder)."""
    answer = _post(app, clip, **{field: "/etc/passwd"})
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error.startswith(f"Unknown field(s): {field!r}; a run's options are device, preset"), error
    _assert_nothing_stored(app)


def test_api_stores_every_option_typed_and_the_job_reads_them_back(app, clip):
    form = {"name": "all options", "device": "cpu", "preset": "fast", "online_seconds": "0.5", "fps": "25",
            "short_side": "64", "binarize": "on", "gate": "false", "match": "0"}  # fmt: skip
    answer = _post(app, clip, **form)
    assert answer.status_code == 202, answer.get_json()
    client, run_id = app.server.test_client(), answer.get_json()["id"]
    stored = client.get(f"/api/runs/{run_id}").get_json()["options"]
    assert stored == {"device": "cpu", "preset": "fast", "online_seconds": 0.5, "fps": 25.0, "binarize": True,
                      "short_side": 64, "gate": False, "match": False}  # fmt: skip
    options = {key: value for key, value in form.items() if key != "name"}
    assert SegmentOptions.of(stored) == SegmentOptions.from_form(options)  # what dashboard.jobs runs
    defaults = _post(app, clip).get_json()["id"]
    assert SegmentOptions.of(client.get(f"/api/runs/{defaults}").get_json()["options"]) == SegmentOptions()
    for run in (run_id, defaults):
        assert client.delete(f"/api/runs/{run}").status_code == 204
    _assert_nothing_stored(app)


# -- the New run page ----------------------------------------------------------------------------------------------


def _component(tree, component_id):
    if getattr(tree, "id", None) == component_id:
        return tree
    children = getattr(tree, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            found = _component(child, component_id)
            if found is not None:
                return found
    return None


def test_the_new_run_page_offers_the_models_choices_and_defaults(storage_dir):
    from dashboard.app import create_app
    from dashboard.pages.upload import layout

    app = create_app()
    with app.server.app_context():
        page = layout()
    for name in ("preset", "device", "binarize"):
        component = _component(page, name)
        assert component.value == FIELDS[name].default, name
        if choices(FIELDS[name]):
            assert tuple(option["value"] for option in component.options) == choices(FIELDS[name])
    # No bounds in the browser, which sends nothing for a number out of them (the run would take the preset's):
    # the server refuses it with the range in its message.
    seconds = _component(page, "online-seconds")
    assert getattr(seconds, "min", None) is None and getattr(seconds, "max", None) is None
    # The GPU is offered only where the runs can have it (runs run on this machine without REDIS_URL).
    import torch

    (gpu,) = [option for option in _component(page, "device").options if option["value"] == "cuda"]
    assert gpu["disabled"] is (not torch.cuda.is_available())


# -- the summary ---------------------------------------------------------------------------------------------------


def test_the_summary_records_the_options_with_the_weights_as_a_file_name(tiny_clip, tmp_path, weights):
    from segmentation.pipeline import segment

    given = {"online_seconds": 0, "short_side": 64, "device": "cpu", "weights": str(weights)}
    summary = segment(tiny_clip.video, tiny_clip.mask, tmp_path / "out", given)
    recorded = json.loads((tmp_path / "out" / "summary.json").read_text())["options"]
    assert summary["options"] == {**SegmentOptions(**given).model_dump(), "weights": weights.name}
    assert recorded == {**SegmentOptions(**given).model_dump(mode="json"), "weights": weights.name}
    assert str(weights.parent) not in json.dumps(recorded)
