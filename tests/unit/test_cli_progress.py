from __future__ import annotations

import io

from core.cli import TerminalProgress


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_rewrites_one_line() -> None:
    out = Tty()
    p = TerminalProgress(out, interval=0)
    p.start("get", 2, 2000)
    p.advance(1, 1000, "a.bin")
    p.advance(1, 1000, "b.bin")
    p.finish()
    text = out.getvalue()
    assert "get: 1/2 files 50%" in text and "get: 2/2 files 100%" in text
    assert "\r\x1b[K" in text and "\n" not in text


def test_progress_in_a_log_prints_lines_sparingly() -> None:
    out = io.StringIO()
    p = TerminalProgress(out, interval=0)
    p.start("add", 3, None)
    for _ in range(3):
        p.advance(1, 10, "f")
    p.finish()
    lines = out.getvalue().splitlines()
    assert 1 <= len(lines) <= 3 and lines[0].startswith("add: 1/3 files")
