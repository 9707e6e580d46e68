"""A push runner's internal error is said in words in the status, not only logged
(issue 13; style: errors are shown to the person): a real PushHub over a real git
repository whose scheduler refuses a move (a bug, ``LocalProtocolError``) when we
commit.  The commit's caller never sees the error; the status -- the object and its
JSON, what ``annexsync status --json`` prints -- names it, and health is "error"."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from core.devices.paired import PairedDevice, SharedRepo, Transports
from core.devices.pushes import PushHub
from core.errors import LocalProtocolError
from core.scheduler import events as ev
from core.scheduler.machine import Scheduler
from core.status import Health, Status, status_from_json, to_json
from tests.conftest import git

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(30)]


async def _until(cond: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.01)


async def test_an_internal_error_of_the_runner_is_said_in_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    repo = tmp_path / "r"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    git(repo, "config", "annex.uuid", "11111111-2222-3333-4444-555555555555")
    desktop = PairedDevice("dev-desktop", "desktop", (SharedRepo(str(repo), "uuid-d"),),
                           Transports("alice@localhost/annexsync-dev"))  # fmt: skip

    def broken(self: Scheduler, event: ev.LocalCommit, actions: list[ev.Action]) -> None:
        raise LocalProtocolError("job 7: no move 'end' from PENDING")

    monkeypatch.setitem(Scheduler._HANDLERS, ev.LocalCommit, broken)
    hub = PushHub("dev-laptop", lambda *a: None, on_change=lambda: None)  # type: ignore[arg-type, return-value]
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(hub.run())
        hub.set_records([desktop])
        await _until(lambda: str(repo) in hub._repos and hub._repos[str(repo)].ready)
        hub.branch_moved(str(repo))  # the worker's commit: it must not see the error
        (line,) = [p for p in hub.statuses() if p.outcome == "failed"]
        task.cancel()
    assert line.peer == "desktop" and line.stopped
    assert "pushes stopped after an internal error" in line.reason
    assert "no move 'end' from PENDING" in line.reason
    status = status_from_json(to_json(Status(pushes=hub.statuses(), repos=())))  # status --json
    (shown,) = status.pushes
    assert shown.reason == line.reason
    assert status.health(time.time()) is Health.ERROR
    assert "desktop: pushes stopped after an internal error" in status.headline(time.time())
    assert "push to desktop: failed (pushes stopped" in status.tooltip(time.time())
