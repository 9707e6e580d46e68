"""Errors carry what the person needs to read (core.errors)."""

from __future__ import annotations

from core.errors import MergeFailed


def test_merge_failed_says_what_git_said() -> None:
    local = ("error: Your local changes to the following files would be overwritten by merge:\n"
             "\tdoc.txt\nPlease commit your changes or stash them before you merge.\nAborting\n")
    e = MergeFailed("refs/heads/synced/main", ["merge"], 1, local)
    assert str(e) == ("could not merge refs/heads/synced/main: Your local changes to the "
                      "following files would be overwritten by merge:")
    e = MergeFailed("x", ["merge"], 128, "fatal: Not possible to fast-forward, aborting.\n")
    assert e.reason == "Not possible to fast-forward, aborting."
    assert str(MergeFailed("x", ["merge"], 1, "")) == "could not merge x: git merge failed (1)"
