"""Pairing for the facade (``core.api.Core``): show a code or join one, forget a device.

Theory of operation
-------------------
The tray app's wizards reach pairing only through ``Core.pair_show``,
``Core.pair_join`` and ``Core.forget_device``, which delegate here.  Both
devices share every configured repository, in the settings' order (the
hellos must offer the same number; pairing.md 6.5 step 4).

- ``show``: a new code and window; ``on_open`` hands the wizard the code,
  its expiry (wall clock, for the countdown) and the transport, before the
  carrier waits: the LAN (``lan.show``), the own account, or one friend
  (``xmpp.show``).  Cancelling the caller's task closes the window; each
  carrier cleans up in ``finally``.
- ``join``: the LAN first (DNS-SD for ``LAN_LOOK`` seconds, pairing.md
  6.9), then the XMPP account's devices and contacts, with ``on_progress``
  lines for the wizard ("looking on this network...", "asking your
  contacts...").  A window not found on one carrier is not a failed attempt,
  so the same machine goes on to the next.
- The outcome names the peer device and the carrier it was paired over.

Blocking parts (identity, keyring, repositories) run off the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.devices.identity import DeviceIdentity, load_or_create
from core.devices.paired import PairedStore
from core.errors import CoreError
from core.pairing import lan, result, xmpp
from core.pairing.machine import (
    WINDOW,
    PairingFailed,
    PairingMachine,
    PairingResult,
    PairingWindow,
    Reason,
)
from core.pairing.messages import Hello
from core.pairing.words import make_code, parse_code
from core.settings import Settings
from core.xmpp.account import load_config
from core.xmpp.client import XmppConfig

logger = logging.getLogger(__name__)

LAN_LOOK = 5.0
HOW = ("lan", "own", "friend")


@dataclass(frozen=True)
class OpenWindow:
    """What the wizard shows while a window is open (the code is for the person's eyes)."""

    code: str
    expires: float  # wall clock
    how: str  # "lan", "own" or "friend"


@dataclass(frozen=True)
class PairOutcome:
    device_id: str
    name: str
    transport: str  # "LAN" or "XMPP"


class Pairing:
    def __init__(self, config_dir: Path, settings: Callable[[], Settings],
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.config_dir = Path(config_dir)
        self.settings = settings
        self.clock = clock
        self.lan_look = LAN_LOOK

    def _prepare(self) -> tuple[DeviceIdentity, Hello, lan.Storage]:
        """Identity, hello and storage for the configured repositories (blocking)."""
        s = self.settings()
        identity = load_or_create(self.config_dir)
        offers = [result.repo_offer(Path(p)) for p in s.repositories]
        tops = [top for top, _ in offers]
        own_id = identity.device_id
        storage = lan.Storage(lambda r: result.store(self.config_dir, own_id, r, tops,
                                                     own_account=s.xmpp_account),
                              lambda st: result.undo(self.config_dir, own_id, st))  # fmt: skip
        return identity, result.own_hello(identity, [o for _, o in offers], s), storage

    def _account(self) -> XmppConfig:
        cfg = load_config(self.settings())
        if cfg is None:
            raise CoreError("no XMPP account is set up: sign in under Settings, Account")
        return cfg

    async def show(self, how: str, friend: str | None, on_open: Callable[[OpenWindow], None],
                   timeout: float = WINDOW) -> PairOutcome:  # fmt: skip
        """Open a window and wait for a device to join.

        Raises:
            PairingFailed: expired, too many wrong codes; CoreError: no account, bad address.
        """
        if how not in HOW:
            raise CoreError(f"unknown way to pair: {how!r}")
        if how == "friend":
            xmpp.check_friend(friend or "")
        _, hello, storage = await asyncio.to_thread(self._prepare)
        cfg = await asyncio.to_thread(self._account) if how != "lan" else None
        code = make_code()
        window = PairingWindow(code, time.monotonic(), timeout)
        on_open(OpenWindow(str(code), self.clock() + timeout, how))
        if cfg is None:
            got = await lan.show(window, hello, storage, host=self.settings().pairing_interface or "")
        else:
            got = await xmpp.show(window, hello, storage, cfg, friend=friend if how == "friend" else None)
        return _outcome(got, "LAN" if cfg is None else "XMPP")

    async def join(self, text: str, on_progress: Callable[[str], None]) -> PairOutcome:
        """Join the window of ``text``: on the LAN, then over XMPP.

        Raises:
            BadCode: not a code; PairingFailed: not paired, and why.
        """
        code = parse_code(text)
        _, hello, storage = await asyncio.to_thread(self._prepare)
        machine = PairingMachine.joiner(code, hello)
        on_progress("looking on this network…")
        targets = await lan.discover(code.nameplate, self.settings().pairing_interface or "",
                                     self.lan_look)  # fmt: skip
        if targets:
            return _outcome(await lan.join(machine, storage, targets=targets), "LAN")
        cfg = await asyncio.to_thread(load_config, self.settings())
        if cfg is None:
            raise PairingFailed(Reason.NO_WINDOW, "not on this network, and no XMPP account is set up")
        on_progress("asking your devices and contacts over XMPP…")
        return _outcome(await xmpp.join(machine, storage, cfg), "XMPP")

    async def forget(self, device_id: str) -> None:
        """Forget a paired device: its key, record and remotes (pairing.md 6.8)."""

        def forget() -> None:
            identity = load_or_create(self.config_dir)
            PairedStore(self.config_dir, identity.device_id).forget(device_id)

        await asyncio.to_thread(forget)


def _outcome(r: PairingResult, transport: str) -> PairOutcome:
    return PairOutcome(r.peer.device_id, r.peer.name, transport)
