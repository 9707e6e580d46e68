"""The buddy list: accounts, their annexsync devices, presence and last seen.

Spec: xmpp-sync.md A.7 (what the old one tracked), B.22 (stale after loss),
B.52 (JIDs normalised), C.1 (one of ours = disco feature).

Theory of operation
-------------------
Pure state, fed by the XMPP glue (``got_presence``, ``got_device``,
``lost_stream``) and read as frozen ``Device`` values.  Keys are full JIDs
normalised by ``payloads.bare`` + resource.  A resource enters the list only
once it proved to be one of ours (``got_device``: disco feature and hello
answered); chat clients never appear.  Presence: ``online`` for an available
resource, ``away`` when it says it is paused (``dnd``), ``offline`` after its
unavailable presence, ``unknown`` for everyone the moment our own stream is
lost (B.22) -- until their presence arrives again after reconnect.
``last_seen`` is the last time a resource was known available.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from core.xmpp.payloads import Hello, bare, resource_of

PresenceState = Literal["online", "away", "offline", "unknown"]


@dataclass(frozen=True)
class Device:
    jid: str  # full JID
    device_id: str
    name: str
    presence: PresenceState
    last_seen: float | None

    @property
    def account(self) -> str:
        return bare(self.jid)


def _key(jid: str) -> str:
    return f"{bare(jid)}/{resource_of(jid)}"


class Buddies:
    def __init__(self) -> None:
        self._devices: dict[str, Device] = {}
        self._seen: dict[str, tuple[PresenceState, float]] = {}  # presence before hello

    def got_presence(self, jid: str, available: bool, show: str, now: float) -> bool:
        """A presence from ``jid``; returns whether the list changed."""
        state: PresenceState = ("away" if show == "dnd" else "online") if available else "offline"
        key = _key(jid)
        self._seen[key] = (state, now)
        d = self._devices.get(key)
        if d is None:
            return False
        new = replace(d, presence=state, last_seen=now if available else d.last_seen)
        if available is False and d.presence in ("online", "away"):
            new = replace(new, last_seen=now)
        self._devices[key] = new
        return new != d

    def got_device(self, jid: str, hello: Hello, now: float) -> bool:
        """``jid`` proved to be one of ours (disco feature) and said who it is."""
        key = _key(jid)
        state, when = self._seen.get(key, ("online", now))
        old = self._devices.get(key)
        # a device that moved to a new resource name is one entry, not two
        for k, d in list(self._devices.items()):
            if d.device_id == hello.device_id and k != key:
                del self._devices[k]
        self._devices[key] = Device(key, hello.device_id, hello.name, state,
                                    when if state != "offline" else None)  # fmt: skip
        return self._devices[key] != old

    def lost_stream(self) -> None:
        """Our connection is gone: nobody's presence is known any more (B.22)."""
        self._seen.clear()
        for k, d in self._devices.items():
            if d.presence in ("online", "away"):
                self._devices[k] = replace(d, presence="unknown")

    def forget_account_data(self) -> None:
        self._devices.clear()
        self._seen.clear()

    def devices(self) -> tuple[Device, ...]:
        return tuple(sorted(self._devices.values(), key=lambda d: (d.account, d.name, d.jid)))

    def known(self, jid: str) -> bool:
        return _key(jid) in self._devices
