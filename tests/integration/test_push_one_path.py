"""One path for git pushes to a paired device online on XMPP: the push scheduler
(core.devices.pushes, xmpp-sync C.5), never the repository worker's own push round
beside it (issue 13).  Two daemons on one account, real prosody with TLS; every
``push_remote`` to a paired device is recorded with whether the scheduler's job
made it (a context variable the job sets, carried into the worker thread)."""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Any

import pytest

import core.api
from core.daemon import jobs
from tests.conftest import git
from tests.integration.paired_helpers import device, head_files, make_repo, pair, start, stop, wait
from tests.xmpp_server import Prosody

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

_IN_SCHEDULER = contextvars.ContextVar("in_scheduler", default=False)


def test_the_scheduler_alone_pushes_to_an_online_paired_device(
        tmp_path: Path, xmpp_server: Prosody, real_keyring: object,
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    pushes: list[tuple[str, bool]] = []  # (remote, made by the scheduler's job)
    real_push, real_job = jobs.push_remote, core.api.sync_job

    def push_remote(repo: str, name: str) -> Any:
        pushes.append((name, _IN_SCHEDULER.get()))
        return real_push(repo, name)

    async def sync_job(*args: Any) -> Any:
        _IN_SCHEDULER.set(True)  # this task's context: the job's threads inherit it
        return await real_job(*args)

    monkeypatch.setattr(jobs, "push_remote", push_remote)
    monkeypatch.setattr(core.api, "sync_job", sync_job)
    alice = xmpp_server.register("alice", "pw")
    a_repo = make_repo(tmp_path / "a", "laptop")
    (a_repo / "README").write_text("shared\n")
    git(a_repo, "add", "README")
    git(a_repo, "commit", "-q", "-m", "start")
    a = device(tmp_path, "laptop", xmpp_server, alice, a_repo)
    b = device(tmp_path, "desk", xmpp_server, alice, make_repo(tmp_path / "b", "desk", a_repo))
    pair(a, b)
    try:
        start(a)
        start(b)
        # each online to the other first: a device not seen on XMPP within
        # the presence wait is the worker's to push to (on a loaded machine)
        for one in (a.core, b.core):
            assert one is not None
            wait(lambda c=one: any(d.presence == "online" and d.paired for d in c.status.devices),
                 30, "the other device online")  # fmt: skip
        (a.repo / "new.txt").write_text("from the laptop\n")  # the daemon commits it
        wait(lambda: "new.txt" in head_files(b.repo), 30, "the commit on B")
        assert a.core is not None
        core_a = a.core
        wait(lambda: any(p.direction == "outgoing" and p.outcome == "done" and p.peer == "desk"
                         for p in core_a.status.pushes), 10, "A's scheduler push done")
        def settled() -> bool:  # the job told the worker; its resync of the device ran
            (remote,) = [r for s in core_a.status.repos for r in s.remotes if r.kind == "paired"]
            return remote.last_sync is not None and not remote.pending
        wait(settled, 10, "the device's remote synced and owing nothing")
    finally:
        stop(a)
        stop(b)
    to_devices = [(name, by_job) for name, by_job in pushes if name in ("desk", "laptop")]
    assert to_devices, "no push to a paired device at all"
    assert all(by_job for _, by_job in to_devices), f"the worker pushed beside the scheduler: {pushes}"
