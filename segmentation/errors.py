"""The errors the engine raises on purpose. Each message is one line that a user can act on."""


class SegmentationError(Exception):
    """Base class: str(error) is shown to the user as is (CLI, dashboard, REST API)."""


class InputError(SegmentationError):
    """The video, the mask or an option given by the user cannot be used."""


class WeightsError(SegmentationError):
    """The model checkpoint is missing or unreadable."""


class Cancelled(SegmentationError):
    """The caller asked the run to stop."""
