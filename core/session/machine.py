"""The encrypted session between two paired devices, as a sans-IO machine.

Theory of operation
-------------------
One ``SessionMachine`` is one end of one session, whatever carries its bytes
(a TCP socket on the LAN, an XMPP in-band bytestream): bytes in
(``receive_data``), events out (``next_event``), bytes to send collected in
an outbox (``data_to_send``, h2 style), because the handshake answers from
inside ``next_event``.  No socket, clock or ``await`` in here.

The handshake is ``Noise_KKpsk2_25519_ChaChaPoly_SHA256`` (xmpp-sync.md C.4,
pairing.md 6.7): both static X25519 keys are pinned at pairing, the pair
secret is the PSK, so only the two paired devices can finish it.  On the
wire (see ``frames``)::

    initiator                                responder
    HELLO  "annexsync-session/1" 0 I 0 R  ->
    HANDSHAKE  -> e, es, ss                ->   (responder picks keys for I)
                                           <-   HANDSHAKE  <- e, ee, se, psk
    DATA  (empty: key confirmation)        ->
    DATA ...                              <->   DATA ...

The clear HELLO names both device ids so the responder knows whose keys to
use (a listener serves many peers); the prologue is the protocol name plus
the HELLO body, so a HELLO altered in transit, or a session for one pair
replayed to another, fails the handshake.  The initiator's empty first DATA
frame proves to the responder that the initiator holds the pair secret
(with KKpsk2 the responder could not otherwise tell before real data).

Rules (each enforced here and nowhere else):

- Legal moves are the ``_MOVES`` table; anything else is a protocol error
  and the machine is ``FAILED`` for good (h11 ``_state.py``).  Remote errors
  are ``RemoteProtocolError``; our own misuse is ``LocalProtocolError``.
- A peer that cannot prove the pairing (unknown device, wrong static key,
  wrong pair secret) is ``SessionRefused``; we queue a clear REFUSE frame
  saying why (advisory only: it is not authenticated, and a forged one can
  do no more than cutting the connection could).
- Transport nonces are Noise's counters: a tampered, dropped, reordered or
  replayed frame (also one from another session: other ephemeral keys) fails
  authentication, which is terminal; nothing of it is ever delivered.
- No rekey and no frame limit of our own: a session is one P2P connection,
  and the only limit, Noise's 2^64-1 nonces per direction, cannot be reached
  (at 150 MB/s of 64 KiB frames it would take millions of years;
  noiseprotocol raises ``NoiseMaxNonceError`` there).
"""

from __future__ import annotations

import enum
import logging
import re
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from noise.connection import Keypair, NoiseConnection

from core.errors import WRONG_DEVICE_REASON, LocalProtocolError, RemoteProtocolError, SessionRefused
from core.session.frames import MAX_FRAME, Frame, FrameBuffer, Kind, format_frame

logger = logging.getLogger(__name__)

PROTOCOL_NAME = b"Noise_KKpsk2_25519_ChaChaPoly_SHA256"
VERSION = b"annexsync-session/1"
TAG = 16
MAX_PLAINTEXT = MAX_FRAME - 1 - TAG  # one kind byte, one Poly1305 tag
_DEVICE_ID = re.compile(rb"[\x21-\x7e]{1,128}")


class State(enum.Enum):
    NEW = "new"  # initiator, before start()
    WAIT_HELLO = "wait-hello"  # responder
    WAIT_KEYS = "wait-keys"  # responder: who the peer is, known; its keys, not yet
    WAIT_MSG1 = "wait-msg1"  # responder
    WAIT_MSG2 = "wait-msg2"  # initiator
    WAIT_CONFIRM = "wait-confirm"  # responder
    OPEN = "open"
    CLOSED = "closed"  # clean end (peer's EOF or our close)
    FAILED = "failed"  # terminal: protocol error or refusal


class Input(enum.Enum):
    START = "start"
    ACCEPT = "accept"
    SEND = "send"
    CLOSE = "close"
    RX_HELLO = "rx-hello"
    RX_HANDSHAKE = "rx-handshake"
    RX_DATA = "rx-data"
    RX_EOF = "rx-eof"


_LOCAL = {Input.START, Input.ACCEPT, Input.SEND, Input.CLOSE}

_MOVES: dict[tuple[State, Input], State] = {
    (State.NEW, Input.START): State.WAIT_MSG2,
    (State.WAIT_HELLO, Input.RX_HELLO): State.WAIT_KEYS,
    (State.WAIT_KEYS, Input.ACCEPT): State.WAIT_MSG1,
    (State.WAIT_MSG1, Input.RX_HANDSHAKE): State.WAIT_CONFIRM,
    (State.WAIT_MSG2, Input.RX_HANDSHAKE): State.OPEN,
    (State.WAIT_CONFIRM, Input.RX_DATA): State.OPEN,
    (State.OPEN, Input.RX_DATA): State.OPEN,
    (State.OPEN, Input.SEND): State.OPEN,
    (State.OPEN, Input.RX_EOF): State.CLOSED,
    (State.OPEN, Input.CLOSE): State.CLOSED,
    (State.CLOSED, Input.CLOSE): State.CLOSED,
}


class Refusal(enum.Enum):
    """Why a handshake was refused; the value is the REFUSE frame's code."""

    UNKNOWN_PEER = 1
    PROOF_FAILED = 2
    WRONG_DEVICE = 3
    UNSUPPORTED = 4

    @property
    def text(self) -> str:
        return _REFUSAL_TEXT[self]


_REFUSAL_TEXT = {
    Refusal.UNKNOWN_PEER: "the device is not paired with this one",
    Refusal.PROOF_FAILED: "the device could not prove the pairing (wrong key or pair secret)",
    Refusal.WRONG_DEVICE: WRONG_DEVICE_REASON,
    Refusal.UNSUPPORTED: "the device speaks another session protocol version",
}


@dataclass(frozen=True, repr=False)
class PeerCredentials:
    """What pairing left us for one peer (pairing.md 6.6); no store needed.

    ``repr`` shows no secret, so these may appear in logs and tracebacks.
    """

    own_device_id: str
    own_private: X25519PrivateKey | bytes
    peer_device_id: str
    peer_public: X25519PublicKey | bytes
    psk: bytes = field(default=b"")

    def __post_init__(self) -> None:
        for name in ("own_device_id", "peer_device_id"):
            if not _DEVICE_ID.fullmatch(getattr(self, name).encode("ascii", "replace")):
                raise ValueError(f"{name} must be 1-128 printable ASCII characters")
        if len(self.psk) != 32 or len(_raw_private(self.own_private)) != 32:
            raise ValueError("the pair secret and the private key must be 32 bytes")
        if len(_raw_public(self.peer_public)) != 32:
            raise ValueError("the peer's public key must be 32 bytes")

    def __repr__(self) -> str:
        return f"PeerCredentials({self.own_device_id} -> {self.peer_device_id})"


def _raw_private(key: X25519PrivateKey | bytes) -> bytes:
    if isinstance(key, bytes):
        return key
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def _raw_public(key: X25519PublicKey | bytes) -> bytes:
    return key if isinstance(key, bytes) else key.public_bytes(Encoding.Raw, PublicFormat.Raw)


# --- events -------------------------------------------------------------------


@dataclass(frozen=True)
class PeerHello:
    """Responder only: the initiator says who it is; answer with ``accept``
    (its credentials) or ``refuse`` (unknown peer)."""

    peer_device_id: str
    own_device_id: str


@dataclass(frozen=True)
class Established:
    """The handshake is complete; data may flow.  ``handshake_hash`` is the
    Noise channel binding (the same on both ends)."""

    peer_device_id: str
    handshake_hash: bytes


@dataclass(frozen=True)
class Data:
    data: bytes


@dataclass(frozen=True)
class Closed:
    """The peer ended the session cleanly (EOF after the handshake)."""


class _NeedData(enum.Enum):
    NEED_DATA = "need-data"


NEED_DATA = _NeedData.NEED_DATA
Event = PeerHello | Established | Data | Closed


def hello_body(initiator_id: str, responder_id: str) -> bytes:
    return b"\0".join((VERSION, initiator_id.encode("ascii"), responder_id.encode("ascii")))


class SessionMachine:
    """One end of an encrypted session (see the module docstring).

    Build with ``SessionMachine.initiator(creds)`` or
    ``SessionMachine.responder(creds)``; a responder without credentials
    emits ``PeerHello`` and waits for ``accept``.
    """

    def __init__(self, state: State, creds: PeerCredentials | None, max_buffer: int | None,
                 own_device_id: str | None = None) -> None:  # fmt: skip
        self.state = state
        self.creds = creds
        self._own_id = creds.own_device_id if creds else own_device_id
        self.peer_device_id = creds.peer_device_id if creds else ""
        self._rx = FrameBuffer() if max_buffer is None else FrameBuffer(max_buffer)
        self._out = bytearray()
        self._eof = False
        self._noise: NoiseConnection | None = None
        self._hello = b""
        self._closed_reported = False
        self._confirm_pending = False

    @classmethod
    def initiator(cls, creds: PeerCredentials, *, max_buffer: int | None = None) -> SessionMachine:
        return cls(State.NEW, creds, max_buffer)

    @classmethod
    def responder(cls, creds: PeerCredentials | None = None, *, max_buffer: int | None = None,
                  own_device_id: str | None = None) -> SessionMachine:  # fmt: skip
        """``own_device_id`` (without ``creds``): a HELLO meant for another device
        is refused as WRONG_DEVICE before any ``PeerHello``."""
        return cls(State.WAIT_HELLO, creds, max_buffer, own_device_id)

    # --- moves ----------------------------------------------------------------

    def _move(self, what: Input) -> None:
        """Take the move for ``what`` or fail for good."""
        if self.state is State.FAILED:
            raise LocalProtocolError("the session has failed and takes no more input")
        nxt = _MOVES.get((self.state, what))
        if nxt is None:
            why = f"{what.value} is not allowed in state {self.state.value}"
            self._fail()
            raise (LocalProtocolError if what in _LOCAL else RemoteProtocolError)(why)
        self.state = nxt

    def _fail(self) -> None:
        self.state = State.FAILED
        self._noise = None

    def _refused(self, reason: Refusal, *, by_peer: bool, tell: bool = True) -> SessionRefused:
        self._fail()
        if tell:
            self._queue(Kind.REFUSE, bytes((reason.value,)))
        peer = self.peer_device_id or "unknown device"
        return SessionRefused(peer, reason.text, by_peer=by_peer)

    def _queue(self, kind: Kind, body: bytes) -> None:
        self._out += format_frame(Frame(kind, body))

    # --- our side -------------------------------------------------------------

    def start(self) -> None:
        """Initiator: queue HELLO and the first handshake message."""
        self._move(Input.START)
        assert self.creds is not None
        self._hello = hello_body(self.creds.own_device_id, self.creds.peer_device_id)
        self._noise = _noise(self.creds, self._hello, initiator=True)
        self._queue(Kind.HELLO, self._hello)
        self._queue(Kind.HANDSHAKE, bytes(self._noise.write_message()))

    def accept(self, creds: PeerCredentials) -> None:
        """Responder, after ``PeerHello``: these are the peer's credentials.

        Raises:
            LocalProtocolError: not after a ``PeerHello``, or for another peer.
        """
        if self.state is State.WAIT_KEYS and creds.peer_device_id != self.peer_device_id:
            self._fail()
            raise LocalProtocolError("credentials for another device than the one that said hello")
        self._move(Input.ACCEPT)
        self.creds = creds
        self._noise = _noise(creds, self._hello, initiator=False)

    def refuse(self, reason: Refusal = Refusal.UNKNOWN_PEER) -> SessionRefused:
        """Give up on the handshake; queues a REFUSE frame and returns the
        error to raise (the machine is ``FAILED``)."""
        if self.state in (State.OPEN, State.CLOSED, State.FAILED):
            was = self.state
            self._fail()
            raise LocalProtocolError(f"cannot refuse in state {was.value}")
        return self._refused(reason, by_peer=False)

    def send(self, data: bytes) -> None:
        """Queue ``data`` as encrypted frames (split at ``MAX_PLAINTEXT``)."""
        self._move(Input.SEND)
        assert self._noise is not None
        for at in range(0, len(data), MAX_PLAINTEXT):
            self._queue(Kind.DATA, self._noise.encrypt(bytes(data[at:at + MAX_PLAINTEXT])))

    def close(self) -> None:
        """We are done sending; nothing more goes out or is delivered."""
        self._move(Input.CLOSE)
        self._noise = None

    def data_to_send(self) -> bytes:
        """Everything queued for the peer since the last call."""
        out, self._out = bytes(self._out), bytearray()
        return out

    # --- their side -----------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the peer; ``b""`` means end of stream.

        Raises:
            RemoteProtocolError: too much unread input (the machine fails).
        """
        if self.state is State.FAILED:
            raise LocalProtocolError("the session has failed and takes no more input")
        if not data:
            self._eof = True
            return
        if self._eof:
            self._fail()
            raise LocalProtocolError("data after end of stream")
        try:
            self._rx.feed(data)
        except RemoteProtocolError:
            self._fail()
            raise

    def next_event(self) -> Event | _NeedData:
        """The next event, or ``NEED_DATA``.

        Raises:
            RemoteProtocolError: the peer broke the protocol, or a frame
                failed authentication (the machine is ``FAILED``).
            SessionRefused: the handshake failed (either side refused).
        """
        if self.state is State.FAILED:
            raise LocalProtocolError("the session has failed and takes no more input")
        if self.state is State.WAIT_KEYS:
            return NEED_DATA  # waiting for accept(), not for bytes
        try:
            frame = self._rx.next_frame()
        except RemoteProtocolError:
            self._fail()
            raise
        if frame is not None:
            return self._on_frame(frame)
        if self._eof and len(self._rx) == 0 and self.state is not State.CLOSED:
            return self._on_eof()
        if self._eof:
            if len(self._rx):
                self._fail()
                raise RemoteProtocolError("the stream ended inside a frame")
            return self._closed_once()
        return NEED_DATA

    def _closed_once(self) -> Closed | _NeedData:
        if self._closed_reported:
            return NEED_DATA
        self._closed_reported = True
        return Closed()

    def _on_eof(self) -> Event | _NeedData:
        if self.state is not State.OPEN:
            self._fail()
            raise RemoteProtocolError(
                f"{self.peer_device_id or 'the peer'} closed the connection during the handshake")
        self._move(Input.RX_EOF)
        return self._closed_once()

    def _on_frame(self, frame: Frame) -> Event | _NeedData:
        if frame.kind is Kind.REFUSE:
            return self._on_refuse(frame.body)
        if frame.kind is Kind.HELLO:
            self._move(Input.RX_HELLO)
            return self._on_hello(frame.body)
        if frame.kind is Kind.HANDSHAKE:
            self._move(Input.RX_HANDSHAKE)
            return self._on_handshake(frame.body)
        self._move(Input.RX_DATA)
        return self._on_data(frame.body)

    def _on_refuse(self, body: bytes) -> Event:
        if self.state not in (State.WAIT_MSG2, State.WAIT_CONFIRM):
            self._fail()
            raise RemoteProtocolError(f"REFUSE frame in state {self.state.value}")
        try:
            reason = Refusal(body[0]) if len(body) == 1 else Refusal.PROOF_FAILED
        except ValueError:
            reason = Refusal.PROOF_FAILED
        raise self._refused(reason, by_peer=True, tell=False)

    def _on_hello(self, body: bytes) -> Event | _NeedData:
        parts = body.split(b"\0")
        if len(parts) != 3 or parts[0] != VERSION:
            raise self._refused(Refusal.UNSUPPORTED, by_peer=False)
        if not all(_DEVICE_ID.fullmatch(p) for p in parts[1:]):
            self._fail()
            raise RemoteProtocolError("malformed device id in HELLO")
        self._hello = body
        self.peer_device_id = parts[1].decode("ascii")
        own = parts[2].decode("ascii")
        if self._own_id is not None and own != self._own_id:
            raise self._refused(Refusal.WRONG_DEVICE, by_peer=False)
        if self.creds is None:
            return PeerHello(self.peer_device_id, own)
        if self.peer_device_id != self.creds.peer_device_id:
            raise self._refused(Refusal.UNKNOWN_PEER, by_peer=False)
        self.state = State.WAIT_KEYS
        self.accept(self.creds)
        return self.next_event()

    def _on_handshake(self, body: bytes) -> Event | _NeedData:
        assert self._noise is not None
        try:
            payload = self._noise.read_message(body)
        except Exception:  # noqa: BLE001 - any failure to read it means no proof
            raise self._refused(Refusal.PROOF_FAILED, by_peer=False) from None
        if payload:
            self._fail()
            raise RemoteProtocolError("handshake message carries a payload")
        if self.state is State.WAIT_CONFIRM:  # responder: answer, await the proof
            self._queue(Kind.HANDSHAKE, bytes(self._noise.write_message()))
            self._confirm_pending = True
            return self.next_event()
        self._queue(Kind.DATA, self._noise.encrypt(b""))  # initiator: key confirmation
        return self._established()

    def _established(self) -> Established:
        assert self._noise is not None
        return Established(self.peer_device_id, bytes(self._noise.get_handshake_hash()))

    def _on_data(self, body: bytes) -> Event:
        assert self._noise is not None
        confirming, self._confirm_pending = self._confirm_pending, False
        try:
            plain = self._noise.decrypt(body)
        except Exception:  # noqa: BLE001 - InvalidMessage, or a short body
            if confirming:
                raise self._refused(Refusal.PROOF_FAILED, by_peer=False) from None
            self._fail()
            raise RemoteProtocolError("a frame failed authentication "
                                      "(tampered, lost, reordered or replayed)") from None
        if confirming:
            if plain:
                self._fail()
                raise RemoteProtocolError("key confirmation carries data")
            return self._established()
        if not plain:
            self._fail()
            raise RemoteProtocolError("empty data frame")
        return Data(plain)


def _noise(creds: PeerCredentials, hello: bytes, *, initiator: bool) -> NoiseConnection:
    """A Noise handshake state for ``creds``; the prologue binds the protocol
    name, our version and both device ids (the HELLO body)."""
    conn = NoiseConnection.from_name(PROTOCOL_NAME)
    if initiator:
        conn.set_as_initiator()
    else:
        conn.set_as_responder()
    conn.set_psks(psk=creds.psk)
    conn.set_prologue(PROTOCOL_NAME + b"\0" + hello)
    conn.set_keypair_from_private_bytes(Keypair.STATIC, _raw_private(creds.own_private))
    conn.set_keypair_from_public_bytes(Keypair.REMOTE_STATIC, _raw_public(creds.peer_public))
    conn.start_handshake()
    return conn


__all__ = [
    "MAX_PLAINTEXT", "NEED_DATA", "PROTOCOL_NAME", "VERSION", "Closed", "Data", "Established",
    "Event", "PeerCredentials", "PeerHello", "Refusal", "SessionMachine", "State",
]  # fmt: skip
