"""End-to-end encrypted sessions between paired devices, whatever the transport.

``machine`` is the sans-IO protocol (Noise KKpsk2 handshake, then encrypted
frames, see its docstring); ``frames`` the strict framing; ``stream`` the thin
asyncio adapter that turns any reader/writer pair into an encrypted one of the
same shape, so the P2P runtime runs over it unchanged (xmpp-sync.md C.4,
pairing.md 6.7).
"""

from __future__ import annotations

from core.errors import SessionRefused
from core.session.machine import (
    NEED_DATA,
    Closed,
    Data,
    Established,
    PeerCredentials,
    PeerHello,
    Refusal,
    SessionMachine,
    State,
)

__all__ = [
    "NEED_DATA", "Closed", "Data", "Established", "PeerCredentials", "PeerHello", "Refusal",
    "SessionMachine", "SessionRefused", "State",
]  # fmt: skip
