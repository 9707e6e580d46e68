"""With prosody's rate limit on (mod_limits, 10 KiB/s per connection, Debian's
default), a small commit still reaches the paired device: the sync converges
within a bound, and nothing says "timed out" while bytes flow (every wait of
the session, P2P and IBB layers is per block or per message, never for the
whole transfer).  Issue 12's must-show."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import git
from tests.integration.paired_helpers import (
    cli,
    device,
    head_files,
    make_repo,
    pair,
    start,
    stop,
    wait,
)
from tests.xmpp_server import Prosody, available, prosody

pytestmark = [pytest.mark.interop, pytest.mark.timeout(110)]


@pytest.fixture
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prosody]:
    if not available():
        pytest.fail("prosody is not installed")
    with prosody(tmp_path_factory.mktemp("prosody-limited"), limits="10kb/s") as server:
        yield server


def test_a_small_commit_converges_at_10_kib_per_second(
        tmp_path: Path, limited: Prosody, real_keyring: object,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    caplog.set_level(logging.INFO)
    alice = limited.register("alice", "pw")
    a_repo = make_repo(tmp_path / "a", "laptop")
    (a_repo / "README").write_text("start\n")
    git(a_repo, "add", "README")
    git(a_repo, "commit", "-q", "-m", "start")
    a = device(tmp_path, "laptop", limited, alice, a_repo)
    b = device(tmp_path, "desk", limited, alice, make_repo(tmp_path / "b", "desk", a_repo))
    pair(a, b)
    try:
        start(b)
        (a.repo / "notes.txt").write_bytes(os.urandom(6_000).hex().encode())  # ~12 KB, random
        git(a.repo, "add", "notes.txt")
        git(a.repo, "commit", "-q", "-m", "notes")
        started = time.monotonic()
        assert cli(a, monkeypatch, "sync") == 0
        wait(lambda: "notes.txt" in head_files(b.repo), 60 - (time.monotonic() - started),
             "the commit on B within 60 s")
    finally:
        stop(b)
    out = capsys.readouterr()
    said = [r.getMessage() for r in caplog.records] + [out.out, out.err]
    assert not [s for s in said if "timed out" in s.lower()], said
