"""A P2P connection as a plain object: bytes in, events out, events in, bytes out.

Theory of operation
-------------------
``Connection`` is one end of one session, client or server (spec section 1).
It owns a ``ReceiveBuffer`` and the conversation state of ``state.py``; it
does no I/O, keeps no clock and touches no files.

- ``receive_data(data)`` buffers bytes from the peer (``b""`` means EOF).
- ``next_event()`` returns the next received message or event, or a sentinel
  (``NEED_DATA``, ``PAUSED``, ``DONE``); see ``events.py``.  It only reads
  while it is the peer's turn (state rule 3).
- ``send(event)`` checks a message (or ``Payload``) against the table and
  returns the bytes to write.

Local effects stay with the runtime: a received request *is* the question
("is K present?" for ``CheckPresent``, "read K from offset" for ``Get``,
"store from offset" for ``Put``), and the runtime answers by sending the
reply message.  Everything protocol-shaped stays here: version gating
(VALID/INVALID are silently dropped in version 0, ``-PLUS`` replies are
downgraded below version 2 as git-annex's gateway does, spec section 9),
payload counting, server modes (spec 7) and git-annex's non-fatal ERROR
replies (spec 8), which come out as ``Rejected`` events.

Errors: a line we cannot accept raises ``RemoteProtocolError`` (hint: the
ERROR line to send, if any), an illegal ``send`` raises
``LocalProtocolError``; either leaves the machine in ``State.ERROR`` for good,
and every later call raises the same error again.

EOF (spec 2.3, 8): ``ConnectionClosed(cut_short)`` then ``DONE``.  A payload
cut short has already been delivered as ``Payload`` chunks, so a PUT
receiver keeps it for resume.
"""

from __future__ import annotations

import logging
from collections import deque

from core.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from core.p2p.codec import MAX_LINE, ReceiveBuffer, format_message, parse_message, redact
from core.p2p.events import (
    DONE,
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Event,
    Payload,
    PayloadEnd,
    Rejected,
    Sentinel,
    VersionOffered,
)
from core.p2p.messages import (
    MAX_VERSION,
    AlreadyHave,
    AlreadyHavePlus,
    Auth,
    Data,
    Error,
    Failure,
    FailurePlus,
    Invalid,
    Message,
    Success,
    SuccessPlus,
    Valid,
    Version,
)
from core.p2p.state import (
    AFTER_PAYLOAD,
    CLIENT_EXPECTS,
    CLIENT_SINCE,
    MESSAGE_SINCE,
    SERVER_REJECTS,
    TRANSITIONS,
    TURN,
    Mode,
    Role,
    State,
    mode_denial,
)

logger = logging.getLogger(__name__)

_CLEAN_EOF_STATES = frozenset({State.START, State.IDLE, State.CONNECT_DONE, State.CLOSED})
_DOWNGRADE: dict[type[Message], Message] = {
    SuccessPlus: Success(),
    FailurePlus: Failure(),
    AlreadyHavePlus: AlreadyHave(),
}


class Connection:
    """One end of a P2P session (client or server).

    Args:
        role: which end we are.
        networked: True for tor/generic P2P (AUTH first, spec 4.2); False for
            ``git-annex-shell p2pstdio`` (the server greets with
            AUTH-SUCCESS, spec 4.1).
        mode: server mode (spec 7); ignored for clients.
        max_version: highest version we speak (0..4).
        max_line: cap on an incomplete line.
    """

    def __init__(
        self,
        role: Role,
        *,
        networked: bool = False,
        mode: Mode = Mode.READ_WRITE,
        max_version: int = MAX_VERSION,
        max_line: int = MAX_LINE,
    ) -> None:
        if not 0 <= max_version <= MAX_VERSION:
            raise ValueError(f"max_version must be 0..{MAX_VERSION}")
        self.role = role
        self.mode = mode
        self.max_version = max_version
        self.version = 0  # spec 4.3: version 0 until negotiated
        self._state = State.START if networked else State.GREETING
        self._buffer = ReceiveBuffer(max_line)
        self._eof = False
        self._error: ProtocolError | None = None
        self._pending: deque[Event] = deque()
        self._rx_left: int | None = None  # payload bytes still to receive
        self._tx_left: int | None = None  # payload bytes still to send
        self._skip_validity = False  # v0: drop the VALID/INVALID the runtime sends
        self._offered = 0  # the client's VERSION offer being answered
        self._may_negotiate = True  # client: VERSION only before any request
        self._owed: Error | None = None  # server: the ERROR a Rejected event needs
        self._after_reject = State.IDLE

    # --- inspection ---------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def finished(self) -> bool:
        """True once the session is over (closed or failed)."""
        return self._state in (State.CLOSED, State.ERROR)

    @property
    def our_turn(self) -> bool:
        return self.role in TURN[self._state]

    @property
    def payload_unread(self) -> int:
        """Payload bytes the peer still owes that are not buffered here: what
        a runtime may read from the transport itself (``received_payload_length``).
        0 unless a payload is being received and the buffer is empty."""
        if self._error is not None or self._rx_left is None or self._buffer:
            return 0
        return self._rx_left

    # --- input ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the peer; ``b""`` marks EOF.

        Raises:
            LocalProtocolError: data after EOF (a runtime bug).
        """
        if self._error is not None:
            return
        if not data:
            self._eof = True
        elif self._eof:
            raise self._fail(LocalProtocolError("data received after EOF"))
        else:
            self._buffer.feed(data)

    def next_event(self) -> Event | Sentinel:
        """The next event, or a sentinel saying what the runtime must do.

        Raises:
            RemoteProtocolError: the peer broke the protocol (terminal).
            ProtocolError: the machine failed earlier; the same error again.
        """
        if self._error is not None:
            raise self._error
        if self._pending:
            return self._pending.popleft()
        if self._state is State.CLOSED:
            return DONE
        if self.role.peer not in TURN[self._state]:
            return PAUSED
        try:
            return self._read()
        except RemoteProtocolError as e:
            raise self._fail(e) from None

    def _read(self) -> Event | Sentinel:
        if self._rx_left is not None:
            chunk = self._take_payload()
            if chunk:
                return Payload(chunk)
            return self._closed() if self._eof else NEED_DATA
        line = self._buffer.next_line()
        if line is None:
            return self._closed() if self._eof else NEED_DATA
        logger.debug("%s < %r", self.role.value, redact(line))
        return self._got_line(line)

    def _take_payload(self) -> bytes:
        assert self._rx_left is not None
        chunk = self._buffer.take(self._rx_left)
        if chunk:
            self._rx_left -= len(chunk)
            if self._rx_left == 0:
                self._payload_done(self.role.peer)
        return chunk

    def take_buffered_payload(self) -> bytes:
        """The payload bytes buffered here (at most what is owed), counted as
        received; ``b""`` when none.  With ``payload_unread`` and
        ``received_payload_length`` a runtime takes a payload past the events.

        Raises:
            ProtocolError: the machine failed earlier.
        """
        if self._error is not None:
            raise self._error
        if self._rx_left is None:
            return b""
        return self._take_payload()

    def received_payload_length(self, length: int) -> None:
        """Count ``length`` payload bytes the runtime read from the transport
        itself, exactly as if they had come through ``receive_data`` and
        ``next_event`` (the receiving twin of ``send_payload_length``).

        Raises:
            LocalProtocolError: more than ``payload_unread`` (terminal).
        """
        if self._error is not None:
            raise self._error
        if not length:
            return
        if length > self.payload_unread:
            raise self._fail(LocalProtocolError(
                f"{length} payload bytes read past the machine (unread: {self.payload_unread})"))  # fmt: skip
        assert self._rx_left is not None
        self._rx_left -= length
        if self._rx_left == 0:
            self._payload_done(self.role.peer)

    def _closed(self) -> Event:
        cut_short = bool(self._buffer) or self._rx_left is not None
        cut_short = cut_short or self._state not in _CLEAN_EOF_STATES
        self._state = State.CLOSED
        return ConnectionClosed(cut_short)

    def _got_line(self, line: bytes) -> Event:
        peer = self.role.peer
        try:
            msg = parse_message(line)
        except RemoteProtocolError as e:
            return self._refuse(line, e, parsed=False)
        if MESSAGE_SINCE.get(type(msg), 0) > self.version:
            return self._refuse(line, None, parsed=True)
        target = TRANSITIONS.get((self._state, peer, type(msg)))
        if target is None:
            return self._refuse(line, None, parsed=True)
        if self.role is Role.SERVER and self._state is State.IDLE:
            denial = mode_denial(self.mode, msg)
            if denial is not None:
                after = State.CLOSED if target is State.RELAY else State.IDLE
                return self._reject(line, denial, after, abandoned=False)
        if self.role is Role.CLIENT and isinstance(msg, Version):
            if msg.version > self._offered:
                raise RemoteProtocolError(
                    f"server agreed version {msg.version} above our offer {self._offered}",
                    CLIENT_EXPECTS[State.VERSIONING],
                )
            self.version = msg.version
        return self._move(msg, target)

    def _move(self, msg: Message, target: State) -> Event:
        previous = self._state
        self._state = target
        if isinstance(msg, (Valid, Invalid)):
            return PayloadEnd(isinstance(msg, Valid))
        if isinstance(msg, Data):
            self._rx_left = msg.length
            if msg.length == 0:
                self._payload_done(self.role.peer)
        if self.role is Role.SERVER and isinstance(msg, Version):
            self._offered = msg.version
            agreed = min(msg.version, self.max_version)
            return VersionOffered(offered=msg.version, reply=Version(agreed))
        if previous is State.VERSIONING and isinstance(msg, Error):
            self.version = 0
        return msg

    def _payload_done(self, sender: Role) -> None:
        """Rule 2 of state.py: where a completed payload leads."""
        if sender is self.role:
            self._tx_left = None
        else:
            self._rx_left = None
        after = AFTER_PAYLOAD.get(self._state)
        if after is None:  # relay: no validity line
            if sender is not self.role:
                self._pending.append(PayloadEnd(None))
            return
        with_validity, without = after
        if self.version >= 1:
            self._state = with_validity
            return
        self._state = without
        if sender is self.role:
            self._skip_validity = True
        else:
            self._pending.append(PayloadEnd(None))

    def _refuse(self, line: bytes, error: RemoteProtocolError | None, *, parsed: bool) -> Event:
        """A line that is not a legal move here (rule 1 of state.py)."""
        rule = SERVER_REJECTS.get(self._state) if self.role is Role.SERVER else None
        if rule is None:
            why = error.why if error is not None else f"unexpected {line[:40]!r}"
            hint = CLIENT_EXPECTS.get(self._state) if self.role is Role.CLIENT else None
            raise RemoteProtocolError(f"in state {self._state.value}: {why}", hint)
        text, after, abandoned = rule
        if text is None:
            text = "unexpected command" if parsed else "unknown command"
        return self._reject(line, text, after, abandoned=abandoned)

    def _reject(self, line: bytes, text: str, after: State, *, abandoned: bool) -> Rejected:
        self._owed = Error(text)
        self._after_reject = after
        self._state = State.REJECTING
        return Rejected(line=line, reply=self._owed, abandoned=abandoned)

    # --- output --------------------------------------------------------------------

    def send(self, event: Message | Payload) -> bytes:
        """The bytes that put ``event`` on the wire.

        Raises:
            LocalProtocolError: the move is not legal now (terminal).
            ProtocolError: the machine failed earlier; the same error again.
        """
        if self._error is not None:
            raise self._error
        try:
            if isinstance(event, Payload):
                return self._send_payload(event.data)
            return self._send_message(event)
        except LocalProtocolError as e:
            raise self._fail(e) from None

    def send_payload_length(self, length: int) -> None:
        """Count ``length`` payload bytes that the runtime puts on the wire
        itself (``sendfile``), exactly as ``send(Payload(...))`` of that many.

        Raises:
            LocalProtocolError: not announced by our DATA (terminal).
        """
        if self._error is not None:
            raise self._error
        try:
            self._count_payload(length)
        except LocalProtocolError as e:
            raise self._fail(e) from None

    def _send_payload(self, data: bytes) -> bytes:
        self._count_payload(len(data))
        return data

    def _count_payload(self, length: int) -> None:
        if not length:
            return  # nothing to count; also after DATA 0
        if self._tx_left is None or length > self._tx_left:
            raise LocalProtocolError(
                f"payload of {length} bytes not announced (left: {self._tx_left})"
            )
        self._tx_left -= length
        if self._tx_left == 0:
            self._payload_done(self.role)

    def _send_message(self, msg: Message) -> bytes:
        if self._tx_left is not None:
            raise LocalProtocolError(f"{self._tx_left} payload bytes still owed")
        if self._skip_validity and isinstance(msg, (Valid, Invalid)):
            self._skip_validity = False
            return b""  # pitfall 6: no VALID/INVALID in version 0
        self._skip_validity = False
        if self.role is Role.SERVER and self.version < 2:
            msg = _DOWNGRADE.get(type(msg), msg)
        if self._state is State.REJECTING:
            return self._send_owed(msg)
        self._check_send(msg)
        target = TRANSITIONS.get((self._state, self.role, type(msg)))
        if target is None or self.role not in TURN[self._state]:
            raise LocalProtocolError(
                f"{self.role.value} cannot send {msg.COMMAND.decode()} in state {self._state.value}"
            )
        self._state = target
        if isinstance(msg, Version):
            self._sent_version(msg)
        elif isinstance(msg, Data):
            self._tx_left = msg.length
            if msg.length == 0:
                self._payload_done(self.role)
        out = format_message(msg)
        logger.debug("%s > %r", self.role.value, redact(out))
        return out

    def _send_owed(self, msg: Message) -> bytes:
        if msg != self._owed:
            raise LocalProtocolError(f"must send the rejection {self._owed!r} first")
        self._owed = None
        self._state = self._after_reject
        return format_message(msg)

    def _check_send(self, msg: Message) -> None:
        if self.role is Role.SERVER:
            if isinstance(msg, Version) and msg.version > self._offered:
                raise LocalProtocolError("cannot agree a version above the offer")
            return
        since = CLIENT_SINCE.get(type(msg), 0)
        if since > self.version:
            raise LocalProtocolError(
                f"{msg.COMMAND.decode()} needs version {since}, session is {self.version}"
            )
        if isinstance(msg, Version):
            if not self._may_negotiate:
                raise LocalProtocolError("VERSION is negotiated once, before any request")
            if msg.version > self.max_version:
                raise LocalProtocolError(f"we speak at most version {self.max_version}")
        elif not isinstance(msg, Auth):
            self._may_negotiate = False

    def _sent_version(self, msg: Version) -> None:
        if self.role is Role.SERVER:
            self.version = msg.version
        else:
            self._offered = msg.version
            self._may_negotiate = False

    # --- failure -------------------------------------------------------------------

    def _fail(self, error: ProtocolError) -> ProtocolError:
        logger.debug("%s protocol error: %s", self.role.value, error)
        self._state = State.ERROR
        self._error = error
        self._pending.clear()
        return error


def client(*, networked: bool = False, max_version: int = MAX_VERSION) -> Connection:
    """A client connection (spec 4.1 for p2pstdio, 4.2 for networked peers)."""
    return Connection(Role.CLIENT, networked=networked, max_version=max_version)


def server(
    *, networked: bool = False, mode: Mode = Mode.READ_WRITE, max_version: int = MAX_VERSION
) -> Connection:
    """A server connection; a p2pstdio server first sends ``AuthSuccess(uuid)``."""
    return Connection(Role.SERVER, networked=networked, mode=mode, max_version=max_version)


__all__ = ["Connection", "client", "server"]
