"""The multipart form's limits, and 413s that say which of them a request broke (werkzeug raises the same bare
413 for a too large body, a too large text field and too many parts)."""

from __future__ import annotations

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

# The multipart parser's limits (werkzeug's max_form_memory_size and max_form_parts, set as Flask config in
# app.py): one text field (name, preset, ...), and the parts of one form, files included. The field limit must
# stay well above the parser's 64 KB reads, which it also bounds.
MAX_FIELD_BYTES = 256 * 1024
MAX_FORM_PARTS = 1000


class FormTooLarge(RequestEntityTooLarge):
    """A 413 whose description says which of the form's limits was broken."""


class _CountedStream:
    """The body as the multipart parser reads it, counting part boundaries and bytes on the way, so that a 413
    from the parser can be told apart: too many parts, a too large text field, or the whole body."""

    def __init__(self, stream, boundary: bytes):
        self.stream, self.marker = stream, b"--" + boundary
        self.boundaries = self.bytes = 0
        self._tail = b""

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        seen = self._tail + data
        self.boundaries += seen.count(self.marker)  # (a marker inside the tail alone is too short to count)
        self._tail = seen[-(len(self.marker) - 1) :] if len(self.marker) > 1 else b""
        self.bytes += len(data)
        return data


class FormParser(FormDataParser):
    """werkzeug's form parser, whose 413s say which limit the form broke."""

    def _parse_multipart(self, stream, mimetype, content_length, options):
        counted = _CountedStream(stream, options.get("boundary", "").encode("ascii", "replace"))
        try:
            _counted, form, files = super()._parse_multipart(counted, mimetype, content_length, options)
            return stream, form, files
        except RequestEntityTooLarge:
            if counted.boundaries > (self.max_form_parts or 0):
                raise FormTooLarge(
                    f"The form has more than {self.max_form_parts} parts (fields and files); send masks for many "
                    "frames as one .zip."
                ) from None
            if self.max_content_length is not None and counted.bytes >= self.max_content_length:
                raise
            raise FormTooLarge(
                f"A form field is larger than the limit of {self.max_form_memory_size // 1024} KB; fields are "
                "short text (name, preset, ...), files go in file parts."
            ) from None

    def _parse_urlencoded(self, stream, mimetype, content_length, options):
        # werkzeug reads such a body whole into memory: no bigger than a text field (the API takes multipart).
        limit = self.max_form_memory_size
        if limit is not None and (content_length is None or content_length > limit):
            raise FormTooLarge(f"A form body of this kind may be at most {limit // 1024} KB; send multipart.")
        return super()._parse_urlencoded(stream, mimetype, content_length, options)
