"""The Pushes view and the tray over two real cores paired through a real prosody (issue 13).

Core "a" (the app) and core "b" sign in to one XMPP account, are paired with
each other (records, remotes, keyring secret) over two real repositories; on
connecting each is dirty for the other, advertises, and the other wants: a
push starts.  Core a's push job is injected (``DeviceHub.push_job``): it says it
waits for a block acknowledgement, then fails.  What the person sees is read
from the widgets: the countdown while it waits, then the outcome with its
reason, in the view, the tray tooltip and the tray menu.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from PySide6.QtGui import QAction

from core.devices.paired import PairedDevice, PairedStore, PairSecret, SharedRepo, Transports
from core.repo.repository import annex_uuid_at
from core.scheduler.events import Direction, Wait
from core.scheduler.runner import JobResult
from core.status import Health
from tests.gui.conftest import make_repo


def _pair(mine: Any, other: Any, my_repo: Path, other_repo: Path, name: str, account: str) -> None:
    store = PairedStore(mine.config_dir, mine.hub.identity.device_id)
    record = PairedDevice(other.hub.identity.device_id, name,
                          (SharedRepo(str(my_repo), annex_uuid_at(other_repo) or ""),),
                          Transports(account))  # fmt: skip
    store.add(record, PairSecret(b"\x01" * 32, b"\x02" * 32, 0.0))
    mine.hub.refresh()


def test_pushes_view_shows_the_countdown_then_the_outcome(
        make_app: Any, make_core: Any, run: Any, wait: Any, real_keyring: object,
        xmpp_server: Any, tmp_path: Path) -> None:  # fmt: skip
    alice = xmpp_server.register("alice", "alice-pw")
    where = {"server": xmpp_server.server, "ca_file": str(xmpp_server.cert)}
    release = asyncio.Event()

    async def stalling(device: Any, shared: Any, direction: Direction, control: Any) -> JobResult:
        if direction is Direction.INCOMING:
            return JobResult(True)
        control.waiting(Wait.ACK)
        await release.wait()
        return JobResult(False, "the device stopped answering")

    async def quick(device: Any, shared: Any, direction: Direction, control: Any) -> JobResult:
        return JobResult(True)

    core_a, core_b = make_core("a"), make_core("b")
    core_a.hub.push_job, core_b.hub.push_job = stalling, quick  # before their hubs start
    repo_a = make_repo(tmp_path / "repo-a", {"a.txt": "a"})
    repo_b = make_repo(tmp_path / "repo-b", {"b.txt": "b"})
    app = make_app("a", core=core_a, show=False)
    run(core_a.add_repository(str(repo_a), create=False))  # a folder synced: not first-run setup
    wait(lambda: core_a.hub.identity is not None and core_b.hub.identity is not None, 30)
    _pair(core_a, core_b, repo_a, repo_b, "desk", alice)
    _pair(core_b, core_a, repo_b, repo_a, "lap", alice)
    wait(lambda: all(any(d.paired for d in c.status.devices) for c in (core_a, core_b)), 30)
    run(core_b.xmpp_login(alice, "alice-pw", **where))
    run(core_a.xmpp_login(alice, "alice-pw", **where))
    window = app.open_window()
    view = window.pushes

    def row() -> list[str] | None:
        return next((r for r in view.texts() if r[1] == "sending to"), None)

    wait(lambda: (r := row()) is not None and "block acknowledgement" in r[2], 40, "a push waiting")
    first = row()
    assert first is not None and first[0] == "desk"
    assert first[2].startswith("waiting for block acknowledgement, times out in "), first
    wait(lambda: (r := row()) is not None and r[2] != first[2], 30, "the countdown moves")
    assert app.core.status.health(app.bridge.now()) is Health.SYNCING
    tip = app.tray.icon.toolTip()
    assert "push to desk: running, waiting for block acknowledgement, times out in" in tip, tip
    app.tray.rebuild_menu()
    lines = [a.text() for a in app.tray.menu.findChildren(QAction) if a.objectName().startswith("action-push-")]
    assert any("desk: sending, waiting for block acknowledgement, times out in" in t for t in lines), lines

    release.set()
    wait(lambda: (r := row()) is not None and r[2].startswith("failed"), 30, "the outcome")
    assert row() == ["desk", "sending to", "failed: the device stopped answering", "", row()[4]]  # type: ignore[index]
    wait(lambda: "push to desk: failed (the device stopped answering)" in app.tray.icon.toolTip(), 30)
    assert app.tray.health is Health.WAITING
    app.tray.rebuild_menu()
    lines = [a.text() for a in app.tray.menu.findChildren(QAction) if a.objectName().startswith("action-push-")]
    assert "   desk: sending, failed: the device stopped answering" in lines, lines
