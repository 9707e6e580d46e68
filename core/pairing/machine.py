"""The pairing handshake as a sans-IO machine (pairing.md 6.5, 6.9).

Theory of operation
-------------------
One ``PairingMachine`` is one attempt at one end: bytes in
(``receive_data``), events out (``next_event``), bytes to send in an outbox
(``data_to_send``).  No socket, clock or ``await`` here; the carrier
(``core.pairing.lan``) pumps bytes, bounds every wait and owns the window
(``PairingWindow``: expiry and attempts, clock injected).

The *shower* displays the code and waits; the *joiner* typed it.  Turns
strictly alternate, so any frame out of turn is a protocol error::

    joiner                                      shower
    pake   {np, SPAKE2 message}            ->
                                           <-   pake   {np, SPAKE2 message}
    confirm  HMAC(k_confirm, "joiner"...)  ->   wrong: refused "wrong-code", one attempt used
                                           <-   confirm  HMAC(k_confirm, "shower"...)
    hello  sealed (k_joiner, nonce 0)      ->
                                           <-   hello  sealed (k_shower, nonce 0)
    [joiner stores]   done sealed (nonce 1) ->
                                                [shower stores]
                                           <-   done  sealed (nonce 1)
    paired, close                          ->   (clean end of stream) paired

Rules (each enforced here and nowhere else):

- The password is the canonical code, nameplate included (``words.Code``);
  SPAKE2 (symmetric, id ``annexsync/pair/v1``) gives K.  HKDF-SHA256 over K,
  salted with both PAKE messages (sorted), gives ``k_confirm``, one payload
  key per role and the 32-byte pair secret.
- Why a recorded transcript gives no offline test of a guessed code: the
  only code-dependent values on the wire are the SPAKE2 messages
  ``X* = x*G + pw*M``, blinded by a random scalar ``x`` nobody but its maker
  knows, and values keyed by K.  To compute K from a guess an eavesdropper
  needs ``x`` or ``y`` (the discrete log problem); without K neither the
  MACs nor the boxes can be checked.  An active attacker runs SPAKE2 with
  one guess per connection, and a wrong guess is a failed attempt: three
  close the window (``MAX_ATTEMPTS``), so at most 3/65536 per window.
- Key confirmation is directional and bound to the transcript (role,
  nameplate, both PAKE messages), so a reflected or replayed confirm fails.
  The shower answers only a valid confirm: a wrong guess learns nothing
  beyond "wrong", and costs an attempt.
- Everything after confirmation is sealed (ChaCha20-Poly1305, one key per
  sender, the nonce is the message's position: 0 hello, 1 done; the type is
  the associated data).  A tampered, replayed or reordered message fails to
  open and is terminal.
- Two-phase finish: a side stores only once it holds the other's valid
  hello *and* knows the other accepted ours (the joiner: the shower's hello
  is sent only after the shower accepted the joiner's; the shower: the
  joiner's done, sent after the joiner stored).  ``StoreNow`` asks the
  carrier to store, ``stored`` sends done.  The joiner is paired on the
  shower's done and then closes the stream; the shower is paired on that
  clean end of stream (``WAIT_CLOSE``), so it learns the joiner got its done.
  A side that stored and then fails (silence past the step timeout, a reset,
  a ``refused``, anything but that clean end) undoes what it stored; the
  carrier does, in ``finally``, and a joiner that gives up after storing
  says ``refused`` before closing so the shower undoes too.  So: joiner's
  done lost -> the shower never stored, the joiner undoes; shower's done
  lost -> the joiner undoes and says so (or goes silent: the shower times
  out), the shower undoes.  No finite exchange closes every gap (two
  generals): the one left is the joiner's closing FIN lost after it got
  done (the shower undoes while the joiner keeps); the joiner's first
  session is then refused ("no longer trusts this device") and pairing
  again replaces its record.  A joiner that crashes after storing closes
  cleanly too: both keep a consistent pairing.
- ``refused`` messages are advisory (unauthenticated): they only explain why
  the other side is about to hang up.
- After any failure the machine is ``FAILED`` and takes no more input.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from spake2 import SPAKE2_Symmetric
from spake2.ed25519_basic import NotOnCurve
from spake2.spake2 import SPAKEError

from core.errors import CoreError, LocalProtocolError, RemoteProtocolError
from core.pairing.messages import VERSION, FrameBuffer, Hello, b64, format_frame, parse_hello, unb64
from core.pairing.words import Code

logger = logging.getLogger(__name__)

PAKE_ID = b"annexsync/pair/v1"
PAKE_MESSAGE_SIZE = 33  # spake2 0.9, Ed25519 group: one side byte and a point
PAKE_SIDE = b"S"  # the side byte of SPAKE2_Symmetric
MAX_ATTEMPTS = 3
WINDOW = 600.0  # pairing.md 6.3: ten minutes


class Role(enum.Enum):
    SHOWER = "shower"
    JOINER = "joiner"


class Reason(enum.Enum):
    """Why pairing did not happen; the value is the ``refused`` message's ``why``."""

    WRONG_CODE = "wrong-code"
    EXPIRED = "expired"
    TOO_MANY_ATTEMPTS = "too-many-attempts"
    PEER_GONE = "peer-gone"
    NO_WINDOW = "no-window"
    BUSY = "busy"
    MISMATCH = "mismatch"
    INVALID = "invalid"
    STORE_FAILED = "store-failed"

    @property
    def text(self) -> str:
        return _REASON_TEXT[self]


_REASON_TEXT = {
    Reason.WRONG_CODE: "the code did not match (a wrong or mistyped code)",
    Reason.EXPIRED: "the pairing window expired; show a new code",
    Reason.TOO_MANY_ATTEMPTS: "too many wrong codes; the window is closed, show a new code",
    Reason.PEER_GONE: "the other device went away before pairing finished; nothing was kept",
    Reason.NO_WINDOW: "no pairing window with that number is open there",
    Reason.BUSY: "the other device is busy with another pairing attempt; try again",
    Reason.MISMATCH: "the two devices offer a different number of repositories",
    Reason.INVALID: "the other device sent something invalid",
    Reason.STORE_FAILED: "the other device could not store the pairing",
}
_BY_VALUE = {r.value: r for r in Reason}


class PairingFailed(CoreError):
    """Pairing did not happen; ``reason`` says why, ``by_peer`` whether the other
    side said so (advisory) rather than us finding it."""

    def __init__(self, reason: Reason, detail: str = "", *, by_peer: bool = False) -> None:
        super().__init__(reason.text + (f" ({detail})" if detail else ""))
        self.reason = reason
        self.detail = detail
        self.by_peer = by_peer


class State(enum.Enum):
    NEW = "new"  # joiner before start()
    WAIT_PAKE = "wait-pake"
    WAIT_CONFIRM = "wait-confirm"
    WAIT_HELLO = "wait-hello"
    STORING = "storing"  # StoreNow given, waiting for stored()
    WAIT_DONE = "wait-done"
    WAIT_CLOSE = "wait-close"  # shower: stored and said done; the joiner's close ends it
    PAIRED = "paired"
    FAILED = "failed"


class Input(enum.Enum):
    START = "start"
    STORED = "stored"
    RX_PAKE = "pake"
    RX_CONFIRM = "confirm"
    RX_HELLO = "hello"
    RX_DONE = "done"
    RX_EOF = "eof"


_MOVES: dict[Role, dict[tuple[State, Input], State]] = {
    Role.JOINER: {
        (State.NEW, Input.START): State.WAIT_PAKE,
        (State.WAIT_PAKE, Input.RX_PAKE): State.WAIT_CONFIRM,
        (State.WAIT_CONFIRM, Input.RX_CONFIRM): State.WAIT_HELLO,
        (State.WAIT_HELLO, Input.RX_HELLO): State.STORING,
        (State.STORING, Input.STORED): State.WAIT_DONE,
        (State.WAIT_DONE, Input.RX_DONE): State.PAIRED,
    },
    Role.SHOWER: {
        (State.WAIT_PAKE, Input.RX_PAKE): State.WAIT_CONFIRM,
        (State.WAIT_CONFIRM, Input.RX_CONFIRM): State.WAIT_HELLO,
        (State.WAIT_HELLO, Input.RX_HELLO): State.WAIT_DONE,
        (State.WAIT_DONE, Input.RX_DONE): State.STORING,
        (State.STORING, Input.STORED): State.WAIT_CLOSE,
        (State.WAIT_CLOSE, Input.RX_EOF): State.PAIRED,
    },
}
_NONCE = {"hello": 0, "done": 1}


# --- events -------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class PairingResult:
    """What both sides agree on; ``repr`` shows no secret."""

    role: Role
    peer: Hello
    pair_secret: bytes

    def __repr__(self) -> str:
        return f"PairingResult({self.role.value}, peer {self.peer.name} {self.peer.device_id})"


@dataclass(frozen=True)
class StoreNow:
    """Store the pairing, then call ``stored()``; undo it unless ``Paired`` follows."""

    result: PairingResult


@dataclass(frozen=True)
class Paired:
    result: PairingResult


class _NeedData(enum.Enum):
    NEED_DATA = "need-data"


NEED_DATA = _NeedData.NEED_DATA
Event = StoreNow | Paired | _NeedData


@dataclass(frozen=True, repr=False)
class _Keys:
    confirm: bytes
    seal: bytes  # ours
    open: bytes  # the peer's
    pair_secret: bytes


def derive_keys(key: bytes, msg_joiner: bytes, msg_shower: bytes, role: Role) -> _Keys:
    """HKDF-SHA256 over the SPAKE2 key, salted with both messages (pairing.md 6.5 step 2)."""
    salt = b"".join(sorted((msg_joiner, msg_shower)))

    def one(label: str) -> bytes:
        info = PAKE_ID + b" " + label.encode()
        return HKDF(hashes.SHA256(), 32, salt, info).derive(key)

    mine, theirs = one(f"payload-{role.value}"), one(f"payload-{_other(role).value}")
    return _Keys(one("confirm"), mine, theirs, one("pair-secret"))


def _other(role: Role) -> Role:
    return Role.SHOWER if role is Role.JOINER else Role.JOINER


def confirm_mac(k_confirm: bytes, role: Role, nameplate: int,
                msg_joiner: bytes, msg_shower: bytes) -> bytes:  # fmt: skip
    transcript = b"\0".join((role.value.encode(), str(nameplate).encode(), msg_joiner, msg_shower))
    return hmac.new(k_confirm, transcript, hashlib.sha256).digest()


class PairingMachine:
    """One attempt at one end (see the module docstring)."""

    def __init__(self, role: Role, code: Code, own: Hello) -> None:
        self.role = role
        self.code = code
        self.own = own
        self.state = State.NEW if role is Role.JOINER else State.WAIT_PAKE
        self.peer: Hello | None = None
        self._rx = FrameBuffer()
        self._out = bytearray()
        self._eof = False
        self._spake = SPAKE2_Symmetric(code.password, idSymmetric=PAKE_ID)
        self._msgs: dict[Role, bytes] = {}
        self._keys: _Keys | None = None
        self._event: Event | None = None

    @classmethod
    def joiner(cls, code: Code, own: Hello) -> PairingMachine:
        return cls(Role.JOINER, code, own)

    @classmethod
    def shower(cls, code: Code, own: Hello) -> PairingMachine:
        return cls(Role.SHOWER, code, own)

    # --- moves ----------------------------------------------------------------

    def _move(self, what: Input) -> None:
        if self.state is State.FAILED:
            raise LocalProtocolError("the pairing attempt has failed and takes no more input")
        nxt = _MOVES[self.role].get((self.state, what))
        if nxt is None:
            self._fail()
            why = f"{what.value} is not allowed in state {self.state.value}"
            local = what in (Input.START, Input.STORED)
            raise (LocalProtocolError if local else RemoteProtocolError)(why)
        self.state = nxt

    def _fail(self) -> None:
        self.state = State.FAILED
        self._keys = None

    def _send(self, message: dict[str, Any]) -> None:
        self._out += format_frame(message)

    def _refuse(self, reason: Reason, detail: str = "") -> PairingFailed:
        """Fail, telling the peer why (advisory)."""
        self._fail()
        self._send({"t": "refused", "why": reason.value})
        return PairingFailed(reason, detail)

    # --- our side -------------------------------------------------------------

    def start(self) -> None:
        """Joiner: queue the first PAKE message."""
        self._move(Input.START)
        self._send_pake()

    def _send_pake(self) -> None:
        self._msgs[self.role] = msg = self._spake.start()
        self._send({"v": VERSION, "t": "pake", "np": self.code.nameplate, "m": b64(msg)})

    def stored(self) -> None:
        """The carrier stored the pairing: say done."""
        self._move(Input.STORED)
        self._send_sealed("done", b"{}")

    def abort(self, reason: Reason, detail: str = "") -> PairingFailed:
        """Give up (say, storing failed): queue ``refused`` and return the error to raise."""
        if self.state in (State.PAIRED, State.FAILED):
            return PairingFailed(reason, detail)
        return self._refuse(reason, detail)

    def data_to_send(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    # --- their side -----------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the peer; ``b""`` is the end of the stream.

        Raises:
            RemoteProtocolError: more than one frame's worth, or a bad length.
        """
        if self.state is State.FAILED:
            raise LocalProtocolError("the pairing attempt has failed and takes no more input")
        if not data:
            self._eof = True
            return
        try:
            self._rx.feed(data)
        except RemoteProtocolError:
            self._fail()
            raise

    def next_event(self) -> Event:
        """The next event, or ``NEED_DATA``.

        Raises:
            PairingFailed: the attempt is over (wrong code, peer gone or said no).
            RemoteProtocolError: the peer broke the protocol (tampered, out of turn).
        """
        if self._event is not None:
            ev, self._event = self._event, None
            return ev
        if self.state in (State.PAIRED, State.STORING, State.NEW):
            return NEED_DATA
        try:
            msg = self._rx.next_message()
        except RemoteProtocolError:
            self._fail()
            raise
        if msg is None:
            if self._eof and self.state is State.WAIT_CLOSE:
                self._move(Input.RX_EOF)
                return Paired(self._result())
            if self._eof:
                self._fail()
                raise PairingFailed(Reason.PEER_GONE)
            return NEED_DATA
        self._handle(msg)
        return self.next_event()

    def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg["t"]
        if kind == "refused":
            self._fail()
            why = _BY_VALUE.get(str(msg["why"]), Reason.INVALID)
            raise PairingFailed(why, "said the other device", by_peer=True)
        self._move(Input(kind))
        handler = {"pake": self._rx_pake, "confirm": self._rx_confirm,
                   "hello": self._rx_hello, "done": self._rx_done}[kind]  # fmt: skip
        try:
            handler(msg)
        except RemoteProtocolError:
            self._fail()
            raise

    def _rx_pake(self, msg: dict[str, Any]) -> None:
        if msg["v"] != VERSION:
            raise self._refuse(Reason.INVALID, f"pairing protocol version {msg['v']!r}")
        if msg["np"] != self.code.nameplate:
            raise self._refuse(Reason.NO_WINDOW, f"number {msg['np']!r}")
        peer_msg = unb64(msg["m"], "the PAKE message", PAKE_MESSAGE_SIZE)
        if peer_msg[:1] != PAKE_SIDE:  # spake2 only asserts it
            raise RemoteProtocolError("a PAKE message that is not of the symmetric kind")
        if self.role is Role.SHOWER:
            self._send_pake()
        try:
            key = self._spake.finish(peer_msg)
        except (SPAKEError, NotOnCurve, ValueError) as e:  # reflected, off the curve, ...
            raise RemoteProtocolError(f"bad PAKE message: {e}") from None
        self._msgs[_other(self.role)] = peer_msg
        self._keys = derive_keys(key, self._msgs[Role.JOINER], self._msgs[Role.SHOWER], self.role)
        if self.role is Role.JOINER:
            self._send({"t": "confirm", "mac": b64(self._mac(self.role))})

    def _mac(self, role: Role) -> bytes:
        assert self._keys is not None
        return confirm_mac(self._keys.confirm, role, self.code.nameplate,
                           self._msgs[Role.JOINER], self._msgs[Role.SHOWER])  # fmt: skip

    def _rx_confirm(self, msg: dict[str, Any]) -> None:
        got = unb64(msg["mac"], "the confirmation", 32)
        if not hmac.compare_digest(got, self._mac(_other(self.role))):
            logger.warning("pairing: the other device's code did not match")
            if self.role is Role.SHOWER:
                raise self._refuse(Reason.WRONG_CODE)
            self._fail()
            raise PairingFailed(Reason.WRONG_CODE)
        if self.role is Role.SHOWER:
            self._send({"t": "confirm", "mac": b64(self._mac(self.role))})
        else:
            self._send_sealed("hello", self._own_hello())

    def _own_hello(self) -> bytes:
        return json.dumps(self.own.to_json(), separators=(",", ":")).encode("utf-8")

    def _rx_hello(self, msg: dict[str, Any]) -> None:
        peer = parse_hello(self._open("hello", msg["box"]))
        if peer.device_id == self.own.device_id:
            raise self._refuse(Reason.INVALID, "a device cannot pair with itself")
        if len(peer.repos) != len(self.own.repos):
            raise self._refuse(Reason.MISMATCH, f"{len(self.own.repos)} here, "
                               f"{len(peer.repos)} there")  # fmt: skip
        self.peer = peer
        if self.role is Role.SHOWER:
            self._send_sealed("hello", self._own_hello())
        else:
            self._event = StoreNow(self._result())

    def _rx_done(self, msg: dict[str, Any]) -> None:
        self._open("done", msg["box"])
        self._event = StoreNow(self._result()) if self.role is Role.SHOWER else Paired(self._result())

    def _result(self) -> PairingResult:
        assert self._keys is not None and self.peer is not None
        return PairingResult(self.role, self.peer, self._keys.pair_secret)

    # --- sealing --------------------------------------------------------------

    def _send_sealed(self, kind: str, body: bytes) -> None:
        assert self._keys is not None
        box = ChaCha20Poly1305(self._keys.seal).encrypt(_nonce(kind), body, _aad(kind))
        self._send({"t": kind, "box": b64(box)})

    def _open(self, kind: str, value: object) -> bytes:
        assert self._keys is not None
        box = unb64(value, f"the {kind} box")
        try:
            return ChaCha20Poly1305(self._keys.open).decrypt(_nonce(kind), box, _aad(kind))
        except InvalidTag:
            raise RemoteProtocolError(f"the {kind} message did not authenticate "
                                      "(tampered, replayed or out of order)") from None


def _nonce(kind: str) -> bytes:
    return _NONCE[kind].to_bytes(12, "big")


def _aad(kind: str) -> bytes:
    return PAKE_ID + b" " + kind.encode()


# --- the window -----------------------------------------------------------------


class PairingWindow:
    """The shower's window: open for ``timeout`` seconds, closed for good after
    ``max_attempts`` wrong codes or one success (pairing.md 6.3).  The clock
    is the caller's (``now`` arguments), so tests need not wait."""

    def __init__(self, code: Code, opened: float, timeout: float = WINDOW,
                 max_attempts: int = MAX_ATTEMPTS) -> None:  # fmt: skip
        self.code = code
        self.deadline = opened + timeout
        self.max_attempts = max_attempts
        self.failures = 0
        self.used = False

    def remaining(self, now: float) -> float:
        return max(0.0, self.deadline - now)

    def check(self, now: float) -> None:
        """Raises PairingFailed unless a new attempt may start now."""
        if self.failures >= self.max_attempts:
            raise PairingFailed(Reason.TOO_MANY_ATTEMPTS)
        if self.used or now >= self.deadline:
            raise PairingFailed(Reason.EXPIRED)

    def attempt_failed(self, error: PairingFailed | RemoteProtocolError) -> None:
        """Count a wrong code (only that: a peer that hung up guessed nothing)."""
        if isinstance(error, PairingFailed) and error.reason is Reason.WRONG_CODE \
                and not error.by_peer:
            self.failures += 1

    def succeeded(self) -> None:
        self.used = True  # single use (pairing.md 6.3)
