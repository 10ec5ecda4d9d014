"""Progress bars: redrawn in place on a terminal, a few plain lines in a log file."""

import io
import sys

from learn2adapt.progress import progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_plain_lines_not_thousands_of_redraws(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    for _ in progress_bar(range(20_000), desc="fit", unit="epoch", leave=True):
        pass
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert 1 <= len(lines) <= 3 and "20000/20000" in lines[-1] and lines[-1].startswith("fit")


def test_a_terminal_gets_the_live_bar_and_quiet_gets_nothing(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    bar = progress_bar(total=3, desc="eval", mininterval=0)
    for _ in range(3):
        bar.update(1)
    bar.close()
    assert "\r" in terminal.getvalue() and "3/3" in terminal.getvalue()
    quiet = io.StringIO()
    monkeypatch.setattr(sys, "stderr", quiet)
    with progress_bar(total=3, enabled=False) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""
