"""Progress of long work, reported to whoever shows it (command line, GUI).

The core calls a ``Progress`` with totals once and with advances as work goes
on; it never prints.  ``NullProgress`` is the default.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, what: str, items: int, total_bytes: int | None) -> None: ...

    def advance(self, items: int = 0, nbytes: int = 0, current: str = "") -> None: ...

    def finish(self) -> None: ...


class NullProgress:
    def start(self, what: str, items: int, total_bytes: int | None) -> None:
        pass

    def advance(self, items: int = 0, nbytes: int = 0, current: str = "") -> None:
        pass

    def finish(self) -> None:
        pass
