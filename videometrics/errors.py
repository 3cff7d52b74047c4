"""The one exception type the metrics package raises for unusable input."""

from __future__ import annotations


class VideoMetricsError(Exception):
    """A video could not be measured; the message is one line that says why.

    Callers (the CLI, the upload API) show the message to a person as is, so it never holds a
    traceback or a newline.
    """

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
