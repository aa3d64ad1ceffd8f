"""The errors the engine raises on purpose. Each message is one line that a user can act on."""

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SegmentationError(Exception):
    """Base class: str(error) is shown to the user as is (CLI, dashboard, REST API)."""

    def __str__(self) -> str:
        # Messages quote file names, which may hold newlines or other control characters: escape them so the
        # message stays one line wherever it is shown.
        return _CONTROL.sub(lambda m: repr(m.group())[1:-1], super().__str__())


class InputError(SegmentationError):
    """The video, the mask or an option given by the user cannot be used."""


class WeightsError(SegmentationError):
    """The model checkpoint is missing or unreadable."""


class Cancelled(SegmentationError):
    """The caller asked the run to stop."""


class OutputError(SegmentationError):
    """The results could not be written: disk full, file size limit, read-only or missing folder."""
