"""``jobs.moot`` against ``jobs.still_needed``: what lets the daemon forget a
cancelled or failed transfer (``RepoWorker._forget_moot``) is the content being
where it is wanted, never merely that the transfer cannot run any more.

Repositories made by real git-annex; the location log is read as the daemon reads it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.daemon import jobs
from core.repo.key import Key
from core.status import TransferStatus
from tests.conftest import annex, git

pytestmark = pytest.mark.interop


def test_an_upload_whose_content_left_here_is_not_moot(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    git(a, "init", "-q")
    annex(a, "init", "-q", "a")
    for name in ("copied.bin", "dropped.bin"):
        (a / name).write_bytes(name.encode() * 1000)
    annex(a, "add", "-q", ".")
    git(a, "commit", "-q", "-m", "files")
    git(tmp_path, "clone", "-q", str(a), str(b))
    annex(b, "init", "-q", "b")
    git(a, "remote", "add", "b", str(b))
    annex(a, "sync", "-q", "--no-content", "b")
    keys = {n: Key.parse(annex(a, "lookupkey", n).strip()) for n in ("copied.bin", "dropped.bin")}

    def both(name: str) -> tuple[bool, bool]:
        args = (str(a), "upload", keys[name], name, "b")
        cancelled = TransferStatus(7, str(a), name, str(keys[name]), "upload", "b", state="cancelled")
        return jobs.still_needed(*args), jobs.moot(str(a), [cancelled]) == (7,)

    assert both("copied.bin") == (True, False)  # wanted there, not there yet
    annex(a, "copy", "-q", "--to", "b", "copied.bin")
    assert both("copied.bin") == (False, True)  # there now: moot
    annex(a, "drop", "-q", "--force", "dropped.bin")
    assert both("dropped.bin") == (False, False)  # cannot run, yet b still lacks it
