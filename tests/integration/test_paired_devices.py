"""Paired devices as git remotes, in a real git-annex repository and a running daemon.

Spec pairing.md 6.6; issue 11: one remote per paired device and shared
repository, URL ``annexsync::paired:<device id>``, ``annex-uuid`` the peer's
repository uuid; plain git gets a clear refusal; an offline paired device is
pending work only when something is owed to it.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from core.api import Core
from core.daemon.timings import Timings
from core.devices.identity import load_or_create
from core.devices.paired import PairedDevice, PairedStore, PairSecret, SharedRepo, Transports
from core.remotes import RemoteKind, list_remotes
from core.repo.repository import AnnexRepo
from core.settings import Settings, save_settings
from core.status import Health
from tests.conftest import annex, git, run
from tests.integration.test_daemon import health, running, wait_for

pytestmark = pytest.mark.interop  # every test starts from a repository git-annex made

PEER = str(uuid.UUID(int=0xD35C))
PEER_UUID = str(uuid.UUID(int=0xBEEF))
FAST = Timings(push_delay=0.2, probe_interval=0.5, idle_tick=0.5, stop_grace=5.0,
               devices_refresh=0.2)


def _pair(config_dir: Path, repo: Path, name: str = "desk") -> PairedDevice:
    own = load_or_create(config_dir)
    device = PairedDevice(PEER, name, (SharedRepo(str(repo), PEER_UUID),),
                          Transports("alice@localhost/annexsync-0000d35c"))
    PairedStore(config_dir, own.device_id).add(device, PairSecret(b"s" * 32, b"k" * 32, 1.0))
    return device


def test_a_paired_device_is_a_remote_git_annex_accepts(annex_repo: Path, tmp_path: Path,
                                                       real_keyring: object) -> None:
    _pair(tmp_path / "cfg", annex_repo)
    _pair(tmp_path / "cfg", annex_repo)  # again: still one remote
    assert git(annex_repo, "config", "--get-regexp", r"remote\..*\.url").split("\n")[0] == (
        f"remote.desk.url annexsync::paired:{PEER}")
    assert git(annex_repo, "config", "remote.desk.annex-uuid").strip() == PEER_UUID
    with AnnexRepo.open(annex_repo) as r:
        (info,) = list_remotes(r)
    assert (info.kind, info.uuid) == (RemoteKind.PAIRED, PEER_UUID)
    annex(annex_repo, "info", "--fast")  # real git-annex reads the config without complaint
    out = run(["git", "fetch", "desk"], annex_repo, check=False)
    assert out.returncode != 0 and "paired device" in out.stderr, out.stderr
    PairedStore(tmp_path / "cfg", load_or_create(tmp_path / "cfg").device_id).forget(PEER)
    assert "desk" not in git(annex_repo, "remote")


@pytest.mark.asyncio
async def test_an_offline_paired_device_waits_only_when_owed(annex_repo: Path, tmp_path: Path,
                                                             real_keyring: object) -> None:
    cfg = tmp_path / "cfg"
    save_settings(cfg, Settings(repositories=(str(annex_repo),)))
    _pair(cfg, annex_repo)
    core = Core(cfg, timings=FAST)
    async with running(core):
        # never synced: our branches are owed to it, and it is offline
        await wait_for(lambda: core.status.devices and core.status.devices[0].owed, "owed")
        await wait_for(lambda: health(core) is Health.WAITING, "waiting for desk")
        assert "waiting for desk" in core.status.tooltip(0)
        (repo_status,) = core.status.repos
        assert all(r.kind != "paired" for r in repo_status.remotes)  # offline: not a remote now
        # the last sync left its refs: nothing owed, so the offline device is no work
        heads = git(annex_repo, "for-each-ref", "--format=%(refname:short) %(objectname)",
                    "refs/heads").split("\n")
        for ref, sha in (line.split() for line in heads if line):
            git(annex_repo, "update-ref", f"refs/remotes/desk/{ref}", sha)
        core.hub.refresh()
        await wait_for(lambda: not core.status.devices[0].owed, "nothing owed")
        await wait_for(lambda: health(core) is Health.SYNCED, "synced")
        d = core.status.devices[0]
        assert (d.name, d.paired, d.presence) == ("desk", True, "offline")
    await asyncio.sleep(0)


def test_status_json_lists_paired_devices_without_a_daemon(annex_repo: Path, tmp_path: Path,
                                                           real_keyring: object,
                                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    import json

    from core.cli import main

    cfg = tmp_path / "cfg"
    save_settings(cfg, Settings(repositories=(str(annex_repo),)))
    _pair(cfg, annex_repo)
    assert main(["--config-dir", str(cfg), "status", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [(d["name"], d["paired"], d["presence"]) for d in data["devices"]] == [
        ("desk", True, "unknown")]
    assert all(r["kind"] != "paired" for r in data["repos"][0]["remotes"])
    assert main(["--config-dir", str(cfg), "status"]) == 0
    assert "device desk: unknown, paired" in capsys.readouterr().out
