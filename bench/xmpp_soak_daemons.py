"""The push soak (bench/xmpp_soak.py) through three real daemons and the real default
push job (issue 13): laptop and desktop on one account, phone on another, each a
``Core`` with its own config dir, identity, keyring secrets (a private Secret
Service) and git-annex repository, paired with the two others.  Pushes run the P2P
session of issue 12 (``pushes.sync_job``); the daemons commit the files the rounds
write.  Laptop and phone reach prosody through relays that a kill cuts, their
visitor sessions included.  Same figures and goals as xmpp_soak.py.

    .venv/bin/python bench/xmpp_soak_daemons.py [--rounds 100] [--kills 100] [--stall 20]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from xmpp_soak import Soak  # noqa: E402

from core.devices.pushes import PushHub  # noqa: E402
from core.settings import load_settings, save_settings  # noqa: E402
from core.xmpp.client import XmppLink  # noqa: E402
from tests.conftest import isolate_home  # noqa: E402
from tests.integration.paired_helpers import Device, start, stop, three_devices  # noqa: E402
from tests.integration.xmpp_helpers import Relay  # noqa: E402
from tests.secret_service import secret_service  # noqa: E402
from tests.xmpp_server import Prosody, prosody  # noqa: E402


@dataclass
class _Jobs:
    """What the soak reads of a device's push jobs."""

    dev: Device
    log: list[object] = field(default_factory=list)

    @property
    def running(self) -> int:
        core = self.dev.core
        return 0 if core is None else sum(1 for p in core.status.pushes if p.phase == "running")


@dataclass
class DaemonDev:
    """A daemon seen through the soak's ``Dev`` shape."""

    dev: Device

    def __post_init__(self) -> None:
        self.job = _Jobs(self.dev)

    @property
    def name(self) -> str:
        return self.dev.name

    @property
    def path(self) -> Path:
        return self.dev.repo

    @property
    def id(self) -> str:
        return self.dev.ident.device_id

    @property
    def hub(self) -> PushHub:
        assert self.dev.core is not None and self.dev.core.hub.pushes is not None
        return self.dev.core.hub.pushes

    @property
    def link(self) -> XmppLink:
        assert self.dev.core is not None and self.dev.core.hub.link is not None
        return self.dev.core.hub.link

    async def commit(self, filename: str, text: str = "x\n") -> None:
        """Write the file; the daemon commits it (and its scheduler advertises)."""
        (self.path / filename).write_text(text)


def _devices(root: Path, server: Prosody, via: dict[str, str]) -> list[Device]:
    devs = three_devices(root, server)
    for d in devs:
        if d.name in via:
            save_settings(d.cfg, load_settings(d.cfg).replace(xmpp_server=via[d.name]))
    return devs


async def soak(server: Prosody, root: Path, rounds: int, kills: int, stall: float) -> int:
    async with Relay(server.port) as r1, Relay(server.port) as r2:
        relays = {"laptop": r1, "phone": r2}
        devs = _devices(root, server, {k: r.address for k, r in relays.items()})
        try:
            for d in devs:
                await asyncio.to_thread(start, d)
            s = Soak([DaemonDev(d) for d in devs], relays, stall)  # type: ignore[arg-type]
            await s.run(rounds, kills, every=True)
            await s.look()
            return s.report()
        finally:
            for d in devs:
                await asyncio.to_thread(stop, d)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--stall", type=float, default=20.0)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so prosody is stopped in `finally`
    mp = pytest.MonkeyPatch()
    with tempfile.TemporaryDirectory() as d, secret_service(Path(d) / "secrets"):
        try:
            (Path(d) / "home").mkdir()
            isolate_home(Path(d) / "home", mp)
            with prosody(Path(d) / "prosody") as server:
                root = Path(d) / "repos"
                root.mkdir()
                sys.exit(asyncio.run(soak(server, root, args.rounds, args.kills, args.stall)))
        finally:
            mp.undo()


if __name__ == "__main__":
    main()
