"""XEP-0047 in-band bytestreams as a pure machine: one stream, one peer, one sid.

Spec: xmpp-sync.md C.3 (IBB over IQs to one full JID, block-size 4096 by
default, never above 65535, seq 0..65535 wrapping, each block acknowledged,
a block error or a missing ack ends the session), XEP-0047 sections 2-3.

Theory of operation
-------------------
``IbbStream`` holds what both ends of one stream must agree on: the peer's
full JID, the sid, the negotiated block size, the next seq to send and the
next seq expected.  It is role-blind: the opener and the acceptor hold the
same kind of object.  The adapter (``core.xmpp.bytestream``) feeds it the
attributes of each incoming ``<data/>`` / ``<close/>`` IQ and gets bytes
back, or an ``IbbError`` naming the XMPP error condition to answer with.
Any error leaves the stream ``ABORTED`` for good: nothing more is read from
it, so nothing of a broken stream can reach the reader (and a new stream
needs a new sid).  Outgoing data is cut into ``Block`` values of at most
the block size, numbered by the machine; the adapter sends one IQ per block
and waits for its ack before the next (flow control by acknowledgement).

Strictness: seq and block-size are plain decimal digits (no sign, space or
underscore, which ``int()`` would take); base64 is decoded in strict mode
(no stray characters, correct padding); a block longer than the block size
is refused.  XEP-0047 says seq wraps from 65535 to 0.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from enum import Enum

from core.errors import RemoteProtocolError

NAMESPACE = "http://jabber.org/protocol/ibb"
DEFAULT_BLOCK_SIZE = 4096
MAX_BLOCK_SIZE = 65535  # XEP-0047 section 2.1: block-size is a 16-bit value
SEQ_MODULO = 65536
_DIGITS = re.compile(r"[0-9]{1,5}")
_SID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class IbbError(RemoteProtocolError):
    """A stanza the stream must refuse; ``condition`` is the XMPP error to answer."""

    def __init__(self, message: str, condition: str = "bad-request") -> None:
        super().__init__(message)
        self.condition = condition


class StreamState(Enum):
    OPEN = "open"
    CLOSED = "closed"  # closed politely, by either side
    ABORTED = "aborted"  # broken: never read again


@dataclass(frozen=True)
class Block:
    seq: int
    data: bytes

    def encoded(self) -> str:
        return binascii.b2a_base64(self.data, newline=False).decode("ascii")


def parse_number(text: str | None, what: str, lowest: int, highest: int) -> int:
    if text is None or not _DIGITS.fullmatch(text):
        raise IbbError(f"{what} {text!r} is not a number")
    value = int(text)
    if not lowest <= value <= highest:
        raise IbbError(f"{what} {value} is outside {lowest}..{highest}")
    return value


def check_sid(sid: str | None) -> str:
    if sid is None or not _SID.fullmatch(sid):
        raise IbbError(f"stream id {sid!r} is not acceptable")
    return sid


def parse_open(sid: str | None, block_size: str | None, stanza: str | None,
               most: int = MAX_BLOCK_SIZE) -> tuple[str, int]:  # fmt: skip
    """An ``<open/>``: the sid and block size, or the error to answer.

    Raises:
        IbbError: ``bad-request`` for bad attributes, ``not-acceptable`` for
            message stanzas, ``resource-constraint`` for a block size above
            ``most`` (XEP-0047 2.2: the opener may retry smaller).
    """
    sid = check_sid(sid)
    size = parse_number(block_size, "block-size", 1, MAX_BLOCK_SIZE)
    if stanza not in (None, "iq"):
        raise IbbError("only IQ stanzas carry blocks here", "not-acceptable")
    if size > most:
        raise IbbError(f"block-size {size} is above {most}", "resource-constraint")
    return sid, size


def decode(text: str | None) -> bytes:
    try:
        return binascii.a2b_base64((text or "").encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise IbbError("the block is not valid base64") from None


class IbbStream:
    """One open bytestream (see the module docstring)."""

    def __init__(self, peer: str, sid: str, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        self.peer = peer
        self.sid = check_sid(sid)
        self.block_size = parse_number(str(block_size), "block-size", 1, MAX_BLOCK_SIZE)
        self.state = StreamState.OPEN
        self._send_seq = 0
        self._recv_seq = 0
        self.bytes_in = 0  # payload taken in order (for the status)
        self.bytes_out = 0  # payload cut into blocks to send

    def _check(self, peer: str, sid: str | None) -> None:
        if peer != self.peer or sid != self.sid:
            raise IbbError(f"no stream {sid!r} from {peer}", "item-not-found")
        if self.state is not StreamState.OPEN:
            raise IbbError(f"stream {sid!r} is {self.state.value}", "item-not-found")

    def _abort(self, error: IbbError) -> IbbError:
        self.state = StreamState.ABORTED
        return error

    def receive_block(self, peer: str, sid: str | None, seq: str | None,
                      text: str | None) -> bytes:  # fmt: skip
        """The payload of one ``<data/>``, in order, or ``IbbError`` (stream aborted).

        A wrong peer or sid does not touch this stream: that stanza is
        someone else's (``item-not-found``) and is refused alone.
        """
        self._check(peer, sid)
        try:
            got = parse_number(seq, "seq", 0, SEQ_MODULO - 1)
            if got != self._recv_seq:
                raise IbbError(f"block {got} arrived, {self._recv_seq} was expected "
                               "(lost, repeated or reordered)", "unexpected-request")  # fmt: skip
            data = decode(text)
            if len(data) > self.block_size:
                raise IbbError(f"a block of {len(data)} bytes is over the block size "
                               f"{self.block_size}", "policy-violation")  # fmt: skip
        except IbbError as e:
            raise self._abort(e) from None
        self._recv_seq = (self._recv_seq + 1) % SEQ_MODULO
        self.bytes_in += len(data)
        return data

    def receive_close(self, peer: str, sid: str | None) -> None:
        self._check(peer, sid)
        self.state = StreamState.CLOSED

    def blocks(self, data: bytes) -> list[Block]:
        """Cut ``data`` into numbered blocks to send, in order."""
        if self.state is not StreamState.OPEN:
            raise IbbError(f"stream {self.sid!r} is {self.state.value}", "item-not-found")
        out = []
        for i in range(0, len(data), self.block_size):
            out.append(Block(self._send_seq, data[i : i + self.block_size]))
            self._send_seq = (self._send_seq + 1) % SEQ_MODULO
        self.bytes_out += len(data)
        return out

    def close(self) -> None:
        if self.state is StreamState.OPEN:
            self.state = StreamState.CLOSED

    def abort(self, why: str) -> IbbError:
        """End the stream as broken (stall, block error); returns the error to raise."""
        return self._abort(IbbError(why, "recipient-unavailable"))


__all__ = [
    "DEFAULT_BLOCK_SIZE", "MAX_BLOCK_SIZE", "NAMESPACE", "Block", "IbbError", "IbbStream",
    "StreamState", "check_sid", "decode", "parse_number", "parse_open",
]  # fmt: skip
