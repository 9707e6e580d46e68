"""Session framing: a two-byte length, a one-byte kind, the body.

Theory of operation
-------------------
Every frame on the wire is ``length (u16, big endian) ‖ kind (1 byte) ‖
body``, where ``length`` counts ``kind ‖ body``.  The length is the Noise
spec's own framing (Noise spec 13, "Application responsibilities": a 16-bit
big-endian length before each message), so a frame is never larger than a
Noise message (65535 bytes, ``MAX_FRAME``).  The kind byte tells the few
clear frames of the handshake from the encrypted ones; it is not
authenticated, but flipping it only yields a frame the state machine does not
expect, which is terminal like any tamper.

``FrameBuffer`` is the receive side (h11 ``_receivebuffer`` shape): bytes
in, whole frames out, nothing while a frame is incomplete.  Lengths are
checked strictly -- a length below ``MIN_FRAME`` or a kind we do not know is
a ``RemoteProtocolError`` at once, before any body is buffered -- and the
buffer never holds more than one frame plus one read (``max_buffer``): a
peer that sends faster than we consume is refused, not queued.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from core.errors import LocalProtocolError, RemoteProtocolError

MAX_FRAME = 65535  # Noise spec 3: no Noise message is longer
MIN_FRAME = 1  # the kind byte
HEADER = struct.Struct(">H")
DEFAULT_MAX_BUFFER = 4 * (MAX_FRAME + HEADER.size)


class Kind(enum.IntEnum):
    """What a frame carries (see ``machine`` for who sends which, when)."""

    HELLO = 0x48  # "H": clear, initiator -> responder: version and both device ids
    HANDSHAKE = 0x4E  # "N": a Noise handshake message
    REFUSE = 0x52  # "R": clear, advisory: why the sender gives up on the handshake
    DATA = 0x44  # "D": a Noise transport message


@dataclass(frozen=True, slots=True)
class Frame:
    kind: Kind
    body: bytes

    def __post_init__(self) -> None:
        if len(self.body) + 1 > MAX_FRAME:
            raise LocalProtocolError(f"frame body of {len(self.body)} bytes is too long")


def format_frame(frame: Frame) -> bytes:
    """The bytes of ``frame`` on the wire."""
    return HEADER.pack(len(frame.body) + 1) + bytes((frame.kind,)) + frame.body


class FrameBuffer:
    """Bytes in, ``Frame``s out; strict lengths, capped buffering."""

    def __init__(self, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self._data = bytearray()
        self._max = max_buffer

    def __len__(self) -> int:
        return len(self._data)

    def feed(self, data: bytes) -> None:
        """Append received bytes.

        Raises:
            RemoteProtocolError: more than ``max_buffer`` bytes would be waiting.
        """
        if len(self._data) + len(data) > self._max:
            raise RemoteProtocolError(
                f"peer sent more than {self._max} bytes that were not yet consumed")
        self._data += data

    def next_frame(self) -> Frame | None:
        """The next whole frame, or None while it is incomplete.

        Raises:
            RemoteProtocolError: a length or kind no frame may have.
        """
        if len(self._data) < HEADER.size + 1:
            return None
        (length,) = HEADER.unpack_from(self._data)
        if length < MIN_FRAME:
            raise RemoteProtocolError(f"frame length {length} is below {MIN_FRAME}")
        try:
            kind = Kind(self._data[HEADER.size])
        except ValueError:
            raise RemoteProtocolError(f"unknown frame kind {self._data[HEADER.size]:#04x}") from None
        end = HEADER.size + length
        if len(self._data) < end:
            return None
        body = bytes(self._data[HEADER.size + 1:end])
        del self._data[:end]
        return Frame(kind, body)


__all__ = ["DEFAULT_MAX_BUFFER", "MAX_FRAME", "Frame", "FrameBuffer", "Kind", "format_frame"]
