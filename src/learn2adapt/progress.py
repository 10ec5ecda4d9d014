"""Progress bars that suit both a terminal and a log file.

On a terminal a bar redraws itself in place. Redirected to a file (``nohup learn2adapt train
... > run.log``) the same redraws pile up as carriage-return-separated updates, ten a second:
a paper-scale run used to leave 1.6 MB of them, unreadable with ``tail``. There each update is
written as a line of its own instead, at most one a minute, so a log stays small and says
where the run is.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm.auto import tqdm

#: Seconds between two updates written to a log file (on a terminal: tqdm's default).
LOG_INTERVAL = 60.0


class _LineWriter:
    """A stream for tqdm that turns its in-place redraws into plain lines."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:  # a redraw that only clears the line writes nothing
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable: Iterable[Any] | None = None, *, enabled: bool = True, **kwargs: Any) -> tqdm:
    """A tqdm bar (``kwargs`` as tqdm's) on stderr: live on a terminal, one line a minute in a file.

    Args:
        iterable: what to iterate over, if the bar wraps a loop.
        enabled: False: no output at all (``--quiet``).
    """
    stream: TextIO | _LineWriter = sys.stderr
    if not sys.stderr.isatty():
        kwargs.setdefault("mininterval", LOG_INTERVAL)
        stream = _LineWriter(sys.stderr)
    return tqdm(iterable, disable=not enabled, file=stream, **kwargs)
