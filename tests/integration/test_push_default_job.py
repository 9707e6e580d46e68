"""The default push job (core.devices.pushes.sync_job) against a paired device's remote
that cannot be reached (this device has no identity, so no session can open): the job
fails with the reason in words (the status shows it), it does not raise."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.devices.paired import PairedDevice, SharedRepo
from core.devices.pushes import PushControl, sync_job
from core.scheduler.events import Direction, Wait
from tests.conftest import annex, git

pytestmark = pytest.mark.interop


class _Job:
    def __init__(self) -> None:
        self.waits: list[Wait] = []

    def waiting(self, wait: Wait) -> None:
        self.waits.append(wait)


def test_default_job_fails_with_not_reachable(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    annex(repo, "init", "-q", "here")
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "a")
    git(repo, "remote", "add", "desktop", "annexsync::paired:dev-b")
    device = PairedDevice("dev-b", "desktop", (SharedRepo(str(repo), "uuid-b"),))
    control = PushControl(_Job(), None)  # type: ignore[arg-type]
    result = asyncio.run(sync_job(device, device.repos[0], Direction.OUTGOING, control))
    assert not result.ok
    assert result.reason.startswith("desktop is not reachable: ")
    assert "no identity" in result.reason, result.reason
