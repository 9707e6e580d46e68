"""``core.repo.writeback``: the writeback of a file being written is started
a STEP at a time behind the writer, and a descriptor that cannot take the
hint turns it off without ever failing the writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.repo import writeback
from core.repo.writeback import STEP, Writeback

needs_call = pytest.mark.skipif(writeback._load() is None, reason="not on this system")


@needs_call
def test_writeback_follows_the_writer_a_step_at_a_time(tmp_path: Path) -> None:
    chunk = os.urandom(1 << 20)
    with open(tmp_path / "f", "wb", buffering=0) as f:
        f.write(chunk)  # an earlier attempt's bytes: not ours to start
        wb = Writeback(f.fileno(), len(chunk))
        for i in range(2 * STEP // len(chunk) + 3):
            f.write(chunk)
            wb.wrote(len(chunk))
            written = (i + 1) * len(chunk)
            assert wb.requested == len(chunk) + written // STEP * STEP
        os.fdatasync(f.fileno())
    assert (tmp_path / "f").stat().st_size == (2 * STEP // len(chunk) + 4) * len(chunk)


@needs_call
def test_a_descriptor_that_refuses_turns_it_off(tmp_path: Path) -> None:
    r, w = os.pipe()  # sync_file_range: ESPIPE
    try:
        wb = Writeback(w, 0)
        for _ in range(3):
            wb.wrote(STEP)  # never raises
        assert wb.requested == 0
    finally:
        os.close(r)
        os.close(w)
