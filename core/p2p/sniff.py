"""Which protocol a connection to the TCP listener speaks, from its first bytes.

Theory of operation
-------------------
One listener serves two kinds of peers (issue 14): git-annex peers speak the
P2P protocol, whose first line is ``AUTH <uuid> <token>`` (p2p-protocol.md
4.2); paired devices open a session of ``core.session``, whose first frame is
a clear HELLO: a two-byte big-endian length, the kind byte ``H`` (0x48) and
``annexsync-session/1`` (``core.session.frames``, ``machine``).  The two
never look alike: a P2P message starts with an upper-case ASCII letter (its
command word), a HELLO with a zero byte (its length is below 256) and ``H``
third.  ``classify`` is pure (bytes in, verdict out); ``sniff`` reads at most
``SNIFF_BYTES`` within a deadline, and ``Replay`` hands the bytes it read back
to whichever side serves the connection.

Anything else -- a binary first byte that is not a HELLO -- is refused: the
listener answers one ``ERROR`` line (what a P2P peer shows) and closes;
nothing is served.  A peer silent past the deadline is closed without a word,
as the P2P listener always did with idle peers.  A line that starts like a P2P
command but is not AUTH goes to the P2P machine, which answers ``ERROR
unexpected command`` as git-annex's server does.
"""

from __future__ import annotations

import asyncio
import enum

from core.session.frames import Kind

SNIFF_BYTES = 3  # a HELLO's length and kind byte


class Speaks(enum.Enum):
    P2P = "p2p"
    SESSION = "session"
    UNKNOWN = "unknown"


REFUSAL = (b"ERROR this listener speaks the git-annex P2P protocol (AUTH) and annexsync "
           b"paired-device sessions only\n")  # fmt: skip


def classify(first: bytes) -> Speaks | None:
    """The protocol of a connection whose first bytes are ``first`` (None: need more)."""
    if not first:
        return None
    if 0x41 <= first[0] <= 0x5A:  # "A".."Z": a P2P command word
        return Speaks.P2P
    if first[0] != 0:
        return Speaks.UNKNOWN
    if len(first) < SNIFF_BYTES:
        return None
    return Speaks.SESSION if first[2] == Kind.HELLO else Speaks.UNKNOWN


async def sniff(reader: asyncio.StreamReader, timeout: float) -> tuple[Speaks, bytes]:
    """Read until ``classify`` decides, within ``timeout``; EOF or silence is UNKNOWN.

    Returns the verdict and the bytes read (to be replayed).
    """
    got = b""
    try:
        async with asyncio.timeout(timeout):
            while (verdict := classify(got)) is None:
                more = await reader.read(SNIFF_BYTES - len(got))
                if not more:
                    return Speaks.UNKNOWN, got
                got += more
    except TimeoutError:
        return Speaks.UNKNOWN, got
    except (ConnectionError, OSError):
        return Speaks.UNKNOWN, got
    return verdict, got


class Replay(asyncio.StreamReader):
    """``inner`` with ``first`` put back in front.

    Pull-based like ``core.session.stream.SecureReader``: the hook is
    ``StreamReader._wait_for_data``, where every read method waits, so no
    pump task exists and nothing is read ahead of the caller.
    """

    def __init__(self, first: bytes, inner: asyncio.StreamReader) -> None:
        super().__init__(limit=1 << 17)
        self._inner = inner
        if first:
            self.feed_data(first)

    async def _wait_for_data(self, func_name: str) -> None:
        try:
            data = await self._inner.read(1 << 16)
        except (ConnectionError, OSError):
            data = b""
        if data:
            self.feed_data(data)
        else:
            self.feed_eof()


__all__ = ["REFUSAL", "SNIFF_BYTES", "Replay", "Speaks", "classify", "sniff"]
