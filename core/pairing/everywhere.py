"""One pairing window held on the LAN and on the XMPP account at once (pairing.md 6.9:
ADVERTISING is "zeroconf + XMPP listener").

Both carriers hand their callers to one queue of one, served by one ``attempts``
loop, so the first joiner wins whichever way it came: while its attempt runs a
second caller is told ``busy`` on either carrier, a wrong code costs one of the
window's attempts whichever carrier carried it, and one success closes the
window on both.  Each carrier cleans up on its own as the block ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from core.pairing import lan, xmpp
from core.pairing.lan import STEP_TIMEOUT, Conn, Report, Storage, attempts
from core.pairing.machine import PairingResult, PairingWindow
from core.pairing.messages import Hello
from core.xmpp.client import XmppConfig

logger = logging.getLogger(__name__)


async def show(window: PairingWindow, own: Hello, storage: Storage, cfg: XmppConfig, *,
               host: str, friend: str | None = None, announce: bool = True,
               report: Report = lambda s: None,
               on_listening: Callable[[str, int], None] = lambda h, p: None,
               on_xmpp: Callable[[str], None] = lambda jid: None,
               step_timeout: float = STEP_TIMEOUT) -> PairingResult:  # fmt: skip
    """Hold ``window`` on ``host`` and on the account (or for ``friend``) until a
    device pairs over either, or the window closes.

    Raises:
        PairingFailed: EXPIRED or TOO_MANY_ATTEMPTS; XmppError: the account failed.
    """
    pending: asyncio.Queue[Conn] = asyncio.Queue(1)
    deadline = time.monotonic() + window.remaining(time.monotonic())
    async with lan.listening(window, pending, host=host, on_listening=on_listening,
                             announce=announce), \
            xmpp.holding(window, pending, cfg, friend=friend, report=report, on_listening=on_xmpp):  # fmt: skip
        return await attempts(window, own, storage, pending, deadline, report, step_timeout)
