"""Three daemons, two on one account, with the real default push job (issue 13):
laptop and desktop on alice, phone on carol, each paired with the two others, real
prosody with TLS.  Each daemon commits a file at the same moment; the push
schedulers (core.devices.pushes, the default ``sync_job``: issue 12's P2P session)
carry the commits until all three hold all files and stand at one commit -- no
deadlock, no 120 s stall, no push that timed out, and the merges of merges end
(the agreed merge, core.ops.sync)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import git
from tests.integration.paired_helpers import Device, head_files, start, stop, three_devices, wait
from tests.xmpp_server import Prosody

pytestmark = [pytest.mark.interop, pytest.mark.slow, pytest.mark.timeout(110)]


def _online(d: Device, others: list[Device]) -> bool:
    core = d.core
    if core is None:
        return False
    seen = {s.device_id for s in core.status.devices if s.presence == "online"}
    return all(o.ident.device_id in seen for o in others)


def _head(d: Device) -> str:
    return git(d.repo, "rev-parse", "HEAD").strip()


def test_three_daemons_commit_at_once_and_converge_with_the_default_job(
        tmp_path: Path, xmpp_server: Prosody, real_keyring: object) -> None:  # fmt: skip
    devs = three_devices(tmp_path, xmpp_server)
    try:
        for d in devs:
            start(d)
        wait(lambda: all(_online(d, [o for o in devs if o is not d]) for d in devs), 20,
             "every daemon sees the two others")  # fmt: skip
        for d in devs:  # the daemons commit them
            (d.repo / f"{d.name}.txt").write_text(f"from {d.name}\n")
        want = {"README", "laptop.txt", "desktop.txt", "phone.txt"}
        # a bound below the 120 s idle limit: a stall or a deadlock fails here
        wait(lambda: all(want <= head_files(d.repo) for d in devs), 60, "all files on all three")
        wait(lambda: len({_head(d) for d in devs}) == 1, 30, "one commit on all three")
        for d in devs:
            assert d.core is not None
            pushes = d.core.status.pushes
            assert not [p for p in pushes if p.outcome == "timed out"], pushes
            assert any(p.outcome == "done" for p in pushes), pushes
    finally:
        for d in devs:
            stop(d)
