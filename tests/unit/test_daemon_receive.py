"""The repository worker's receive step and what it tells the activity list."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from core.daemon.repoworker import RepoWorker
from core.daemon.timings import Timings
from tests.conftest import annex, git

pytestmark = pytest.mark.interop


class _Host:
    """The worker's host: activity lines recorded, everything else ignored."""

    timings = Timings()

    def __init__(self) -> None:
        self.lines: list[str] = []

    def activity(self, text: str) -> None:
        self.lines.append(text)

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def test_the_first_look_at_a_repository_is_not_a_merge(tmp_path: Path) -> None:
    """Starting on a repository, nothing was merged: the activity list must not
    say so (it did, at whatever moment the first round reached it).  A change
    that does arrive afterwards is still told."""
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    annex(repo, "init", "-q", "r")
    host = _Host()
    worker = RepoWorker(str(repo), host)  # type: ignore[arg-type]

    async def go() -> None:
        await worker._receive()
        assert host.lines == []
        annex(repo, "describe", "here", "renamed")  # the git-annex branch moves
        await worker._receive()
        assert host.lines == ["Merged changes into r"]

    asyncio.run(go())
