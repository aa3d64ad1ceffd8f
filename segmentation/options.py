"""The options of a run: one model that says each option's type, range, default and help text, and checks them.

The CLI builds its flags from these fields, the REST API and the New run page check a submission with
`SegmentOptions.from_form`, the dashboard job and `segment()` pass them through `SegmentOptions.of`, and the
summary records them. No torch here: the web process imports this to check a submission.
"""

from __future__ import annotations

import os
import types
from collections.abc import Mapping
from typing import Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo

from .errors import InputError
from .paths import user_path

Device = Literal["auto", "cpu", "cuda"]
Runtime = Literal["auto", "torch", "openvino"]  # segmentation.frozen.RUNTIMES
Preset = Literal["fast", "balanced", "quality"]  # by name; each one's budget is online.PRESETS
Ablation = Literal["temporal", "mask", "online_gate"]  # decoder inputs model.decode can zero; the gated online loss
DEVICES, RUNTIMES, PRESETS = get_args(Device), get_args(Runtime), get_args(Preset)
ABLATIONS = get_args(Ablation)
_TRUE, _FALSE = ("1", "true", "on", "yes"), ("0", "false", "off", "no")


class OptionError(InputError):
    """A bad value for one option: `option` names it, `problem` says what is wrong (str: "option: problem")."""

    def __init__(self, option: str, problem: str):
        super().__init__(f"{option}: {problem}")
        self.option, self.problem = option, problem


class SegmentOptions(BaseModel):
    """How `segment()` runs. Strict: a number is a number (not a bool or a string), floats are finite, and an
    unknown option is refused. A bad value raises OptionError (an InputError) with one line naming the option."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    device: Device = Field("auto", description="where the model runs: auto picks the GPU if there is one")
    preset: Preset = Field(
        "balanced",
        description="how many online-training iterations (fast 60, balanced 200, quality 500 on a CPU): more fit "
        "the video's objects better and take longer",
    )
    online_seconds: float | None = Field(
        None,
        ge=0,
        le=3600,
        title="online training seconds",
        description="a time limit for online training instead of the preset's cap (which a normal machine does "
        "not reach); 0 turns online training off",
    )
    fps: float | None = Field(None, gt=0, le=1000, description="frame rate of a folder of frames; 24 if not given")
    binarize: bool = Field(
        False, description="threshold an RGB or anti-aliased mask at 50% instead of refusing it"
    )
    overwrite: bool = Field(False, description="replace the output folder if it exists")
    short_side: int = Field(
        256,
        ge=64,
        le=1080,
        title="internal resolution (short side, in pixels)",
        description="the model's internal resolution, as the short side in pixels; masks are upsampled to the "
        "video's size",
    )
    gate: bool = Field(
        True,
        description="keep a single object inside its dilated previous mask, with online training counting only "
        "that region (always on for 2+ objects)",
    )
    match: bool = Field(True, description="arbitrate between 2+ objects by their first-mask features")
    ablate: tuple[Ablation, ...] = Field(
        (), description="ablation studies only: decoder inputs fed zeros, in online training too (temporal, mask), or "
        "online training's loss over the whole frame although inference is gated (online_gate)"
    )
    weights: str | None = Field(
        None, description="model checkpoint (default: the shipped weights/stcnn.pt, or STCNN_WEIGHTS)"
    )
    runtime: Runtime = Field(
        "auto",
        description="what runs the frozen part of the model (backbone and temporal branch) on the CPU: auto "
        "takes OpenVINO where it is installed, torch is plain PyTorch; the GPU always runs PyTorch",
    )

    def __init__(self, **values):
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise _refusal(error, values) from None

    @field_validator("ablate", mode="before")
    @classmethod
    def _list_is_fine(cls, value):
        return tuple(value) if isinstance(value, list) else value  # as JSON and argparse give it

    @field_validator("weights", mode="before")
    @classmethod
    def _a_file_name(cls, value):
        if value is None:
            return None
        try:
            return os.fspath(user_path(value, "weights"))
        except InputError as error:
            raise ValueError(str(error)) from None

    @classmethod
    def of(cls, options: SegmentOptions | Mapping | None = None) -> SegmentOptions:
        """SegmentOptions as given, or made from a mapping of its fields (a JSON body, the stored options of a
        run, the CLI's arguments); None gives the defaults."""
        if options is None:
            return cls()
        if isinstance(options, cls):
            return options
        if not isinstance(options, Mapping):
            raise InputError(f"options must be SegmentOptions or a dict, got {type(options).__name__}")
        return cls(**{str(name): value for name, value in options.items()})

    @classmethod
    def from_form(cls, form: Mapping) -> SegmentOptions:
        """From a web form, whose values are text: numbers and true/false ("1", "on", "yes"...) are read as the
        fields' types and then checked as any other; an empty value means the default. Values that are not
        text (the New run page's) are checked as they are."""
        values = {}
        for name, value in form.items():
            if isinstance(value, str):
                value = value.strip()
                if value and name in cls.model_fields:
                    value = _from_text(cls.model_fields[name], value)
            if value is not None and not (isinstance(value, str) and not value):
                values[name] = value
        return cls.of(values)

    def replace(self, **changes) -> SegmentOptions:
        """A copy with these fields changed, checked like any other."""
        return type(self).of({**dict(self), **changes})


def kind(field: FieldInfo) -> type:
    """The field's type without None: bool, int, float, str or tuple (a list of choices)."""
    annotation = field.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        (annotation,) = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is Literal:
        return str
    return get_origin(annotation) or annotation


def choices(field: FieldInfo) -> tuple | None:
    """The values a choice field takes (a tuple field: its items'), or None."""
    annotation = field.annotation
    if kind(field) is tuple:
        annotation = get_args(annotation)[0]
    return get_args(annotation) if get_origin(annotation) is Literal else None


def bounds(field: FieldInfo) -> dict:
    """A number field's limits: {"ge": 0, "le": 3600}, {"gt": 0, "le": 1000}."""
    return {key: getattr(m, key) for m in field.metadata for key in ("ge", "gt", "le") if hasattr(m, key)}


def expected(field: FieldInfo, type_error: bool = False) -> str:
    """What a number field takes, in words ("in 0..3600", "a whole number between 64 and 1080")."""
    bound = bounds(field)
    if kind(field) is int:
        return f"a whole number between {bound['ge']} and {bound['le']}"
    if "gt" in bound:
        return f"a number above {bound['gt']:g} and at most {bound['le']:g}"
    return f"{'a number in' if type_error else 'in'} {bound['ge']:g}..{bound['le']:g}"


def _from_text(field: FieldInfo, text: str):
    """A form's text as the field's type where it reads as one; otherwise the text, which the check refuses."""
    wanted = kind(field)
    if wanted is bool:
        lower = text.lower()
        return True if lower in _TRUE else False if lower in _FALSE else text
    if wanted in (int, float):
        try:
            return wanted(text)
        except ValueError:
            return text
    return text


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:50]}... ({len(text)} characters)"


def _refusal(error: ValidationError, values: Mapping) -> InputError:
    """pydantic's errors as the engine's one line: every unknown option, or the first bad value and what the
    option takes."""
    problems = error.errors(include_url=False)
    fields = SegmentOptions.model_fields
    unknown = [str(p["loc"][0]) for p in problems if p["type"] == "extra_forbidden"]
    if unknown:
        return InputError(f"unknown option(s): {', '.join(sorted(unknown))} (options: {', '.join(fields)})")
    problem = problems[0]
    name = str(problem["loc"][0])
    field, value = fields[name], _shown(values.get(name, problem.get("input")))
    wanted, listed = kind(field), choices(field)
    if problem["type"] == "value_error":  # a check of our own (the weights' file name) said why
        return OptionError(name, str(problem["ctx"]["error"]))
    if wanted is tuple:
        return OptionError(name, f"{name} takes a list of {', '.join(listed)}, got {value}")
    if listed:
        return OptionError(name, f"unknown {name} {value}: use one of {', '.join(listed)}")
    if wanted is bool:
        return OptionError(name, f"{name} must be true or false, got {value}")
    if wanted in (int, float):
        type_error = problem["type"].endswith(("_type", "_parsing"))
        label = field.title or name
        return OptionError(name, f"{label} must be {expected(field, type_error)}, got {value}")
    return OptionError(name, f"{problem['msg']}, got {value}")
