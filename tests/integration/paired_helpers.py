"""Paired devices for the XMPP sync tests: config dirs, records through
``PairedStore``'s API, a daemon (``Core``) per device on a loop in a thread,
and the command line run in-process as that device."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core import secrets
from core.api import Core
from core.daemon.timings import Timings
from core.devices.identity import DeviceIdentity, load_or_create
from core.devices.paired import PairedDevice, PairedStore, PairSecret, SharedRepo, Transports
from core.devices.remote import LoopThread
from core.repo.repository import annex_uuid_at
from core.settings import ENV_CONFIG_DIR, Settings, save_settings
from core.xmpp.account import PASSWORD_SERVICE
from core.xmpp.payloads import bare, resource_name
from tests.conftest import annex, git
from tests.xmpp_server import Prosody

FAST = Timings(push_delay=0.2, probe_interval=0.5, idle_tick=0.5, stop_grace=5.0,
               devices_refresh=0.5, xmpp_backoff_first=0.05, xmpp_backoff_most=0.4)


@dataclass
class Device:
    name: str
    cfg: Path
    repo: Path
    jid: str  # the account (bare)
    ident: DeviceIdentity
    core: Core | None = None
    thread: LoopThread | None = None
    running: list[asyncio.Future[None]] = field(default_factory=list)

    @property
    def full_jid(self) -> str:
        return f"{self.jid}/{resource_name(self.ident.device_id)}"

    @property
    def uuid(self) -> str:
        found = annex_uuid_at(self.repo)
        assert found
        return found


def make_repo(path: Path, description: str, origin: Path | None = None) -> Path:
    """A git-annex repository (a clone of ``origin`` without the remote, or new)."""
    if origin is None:
        path.mkdir()
        git(path, "init", "-q", "-b", "main")
    else:
        git(path.parent, "clone", "-q", str(origin), str(path))
        git(path, "remote", "remove", "origin")
    annex(path, "init", "-q", description)
    return path


def device(tmp_path: Path, name: str, server: Prosody, jid: str, repo: Path) -> Device:
    cfg = tmp_path / f"cfg-{name}"
    ident = load_or_create(cfg, name)
    save_settings(cfg, Settings(repositories=(str(repo),), xmpp_account=jid,
                                xmpp_server=server.server, xmpp_ca_file=str(server.cert)))
    secrets.store(PASSWORD_SERVICE, jid, "pw")
    return Device(name, cfg, repo, jid, ident)


def pair(a: Device, b: Device, psk: bytes = b"p" * 32) -> None:
    """Each device's record of the other, made through the store's API."""
    for me, other in ((a, b), (b, a)):
        record = PairedDevice(other.ident.device_id, other.name,
                              (SharedRepo(str(me.repo), other.uuid),),
                              Transports(other.full_jid), own=bare(me.jid) == bare(other.jid),
                              created=time.time())  # fmt: skip
        PairedStore(me.cfg, me.ident.device_id).add(
            record, PairSecret(psk, other.ident.public_key, time.time()))


def three_devices(root: Path, server: Prosody) -> list[Device]:
    """laptop and desktop on alice, phone on carol, each paired with the two others;
    one shared history (a README) in git-annex repositories cloned from the laptop's."""
    alice, carol = server.register("alice", "pw"), server.register("carol", "pw")
    first = make_repo(root / "laptop", "laptop")
    (first / "README").write_text("shared\n")
    git(first, "add", "README")
    git(first, "commit", "-q", "-m", "start")
    devs = [device(root, "laptop", server, alice, first)]
    devs += [device(root, name, server, jid, make_repo(root / name, name, first))
             for name, jid in (("desktop", alice), ("phone", carol))]  # fmt: skip
    for i, a in enumerate(devs):
        for b in devs[i + 1:]:
            pair(a, b)
    return devs


def start(d: Device) -> None:
    """Run the device's daemon on a loop in a thread, online on XMPP."""
    d.thread = LoopThread(f"daemon {d.name}")
    d.core = Core(d.cfg, timings=FAST)
    d.running.append(asyncio.run_coroutine_threadsafe(d.core.run(), d.thread.loop))
    wait(lambda: d.core is not None and d.core.hub.link is not None
         and d.core.hub.link.state.value == "online", 15, f"{d.name} online")


def stop(d: Device) -> None:
    if d.core is not None and d.thread is not None:
        d.thread.run(d.core.stop(), 30)
        for f in d.running:
            f.result(30)
        d.thread.stop()
    d.core = None


def sees(a: Device, b: Device) -> bool:
    """a's daemon has b's daemon in its buddy list (proved one of ours)."""
    link = a.core.hub.link if a.core else None
    return link is not None and link.buddies.known(b.full_jid)


def wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def acting_as(d: Device, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The in-process command line runs as device ``d`` in its repository."""
    with monkeypatch.context() as m:
        m.setenv(ENV_CONFIG_DIR, str(d.cfg))
        m.chdir(d.repo)
        yield


def cli(d: Device, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    from core.cli import main

    with acting_as(d, monkeypatch):
        return main(list(args))


def has_content(repo: Path, path: str) -> bool:
    return annex(repo, "find", "--in=here", path).strip() == path


def head_files(repo: Path) -> set[str]:
    return set(git(repo, "ls-tree", "-r", "--name-only", "HEAD").split())


__all__ = ["FAST", "Device", "acting_as", "cli", "device", "has_content", "head_files",
           "make_repo", "pair", "sees", "start", "stop", "wait"]

