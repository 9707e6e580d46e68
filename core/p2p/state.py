"""The P2P conversation as data: states, whose turn it is, and legal moves.

Theory of operation
-------------------
The protocol is strictly request/reply (spec 1, 6), so client and server can
track one and the same *conversation state*.  Both roles use the tables in
this file; a ``Connection`` applies them to what it sends and what it
receives, and nothing else changes the state.  Rules:

1. ``TRANSITIONS[(state, sender, message type)]`` is the next state.  A move
   missing from the table is a protocol error: ``LocalProtocolError`` when we
   send it, and when we receive it either ``RemoteProtocolError`` (terminal)
   or, on a server in a state listed in ``SERVER_REJECTS``, a non-fatal
   ``ERROR`` reply exactly as git-annex gives (spec section 8).
2. A ``DATA`` move starts a payload in the sender's direction.  When it is
   complete, ``AFTER_PAYLOAD`` names the next state: the VALID/INVALID state
   from version 1, the state after it in version 0 (spec 6.5, 6.7, pitfall 6).
   In a CONNECT relay both directions stream at once; their payloads are
   tracked per direction and do not move the state (spec 6.8).
3. ``TURN[state]`` says who may move.  A machine does not read while it is
   its own turn, so requests are answered in order and a server holding a
   lock reads exactly one more line (spec 6.2).
4. ``MESSAGE_SINCE`` gates reply shapes by the negotiated version when
   received; requests are not gated on the server, as in git-annex (spec 4.3),
   but our client does not send them below their version (``CLIENT_SINCE``).
5. ``ERROR`` from the server answers any pending request: the request failed
   and the session goes on (spec 8: never fatal), except during a relay,
   where it ends the session (spec 6.8).
"""

from __future__ import annotations

import logging
from enum import Enum

from core.p2p.messages import (
    AlreadyHave,
    AlreadyHavePlus,
    Auth,
    AuthFailure,
    AuthSuccess,
    Bypass,
    Changed,
    CheckPresent,
    Connect,
    ConnectDone,
    Data,
    DataPresent,
    Error,
    Failure,
    FailurePlus,
    Get,
    GetTimestamp,
    Invalid,
    LockContent,
    Message,
    NotifyChange,
    Put,
    PutFrom,
    Remove,
    RemoveBefore,
    Service,
    Success,
    SuccessPlus,
    Timestamp,
    UnlockContent,
    Valid,
    Version,
)

logger = logging.getLogger(__name__)


class Role(Enum):
    CLIENT = "client"
    SERVER = "server"

    @property
    def peer(self) -> Role:
        return Role.SERVER if self is Role.CLIENT else Role.CLIENT


class Mode(Enum):
    """Server modes (spec section 7)."""

    READ_WRITE = "read-write"
    APPEND_ONLY = "append-only"
    READ_ONLY = "read-only"


class State(Enum):
    GREETING = "greeting"  # p2pstdio: server owes AUTH-SUCCESS (spec 4.1)
    START = "start"  # networked: client owes AUTH (spec 4.2)
    AUTHING = "authing"
    IDLE = "idle"
    VERSIONING = "versioning"
    CHECKING = "checking"
    LOCKING = "locking"
    LOCKED = "locked"
    REMOVING = "removing"
    TIMESTAMPING = "timestamping"
    GET_AWAIT_DATA = "get-await-data"
    GET_PAYLOAD = "get-payload"
    GET_VALIDITY = "get-validity"
    GET_RESULT = "get-result"
    PUT_AWAIT_OFFER = "put-await-offer"
    PUT_AWAIT_DATA = "put-await-data"
    PUT_PAYLOAD = "put-payload"
    PUT_VALIDITY = "put-validity"
    PUT_RESULT = "put-result"
    NOTIFYING = "notifying"
    RELAY = "relay"
    CONNECT_DONE = "connect-done"
    REJECTING = "rejecting"  # server only: owes the ERROR of a Rejected event
    CLOSED = "closed"
    ERROR = "error"


C, S = Role.CLIENT, Role.SERVER
_BOTH = frozenset({C, S})
_NOBODY: frozenset[Role] = frozenset()

TURN: dict[State, frozenset[Role]] = {
    State.GREETING: frozenset({S}),
    State.START: frozenset({C}),
    State.AUTHING: frozenset({S}),
    State.IDLE: frozenset({C}),
    State.VERSIONING: frozenset({S}),
    State.CHECKING: frozenset({S}),
    State.LOCKING: frozenset({S}),
    State.LOCKED: frozenset({C}),
    State.REMOVING: frozenset({S}),
    State.TIMESTAMPING: frozenset({S}),
    State.GET_AWAIT_DATA: frozenset({S}),
    State.GET_PAYLOAD: frozenset({S}),
    State.GET_VALIDITY: frozenset({S}),
    State.GET_RESULT: frozenset({C}),
    State.PUT_AWAIT_OFFER: frozenset({S}),
    State.PUT_AWAIT_DATA: frozenset({C}),
    State.PUT_PAYLOAD: frozenset({C}),
    State.PUT_VALIDITY: frozenset({C}),
    State.PUT_RESULT: frozenset({S}),
    State.NOTIFYING: frozenset({S}),
    State.RELAY: _BOTH,
    State.CONNECT_DONE: frozenset({C}),
    State.REJECTING: frozenset({S}),
    State.CLOSED: _NOBODY,
    State.ERROR: _NOBODY,
}

_RESULTS = (Success, Failure)
_RESULTS_PLUS = (Success, Failure, SuccessPlus, FailurePlus)


def _moves() -> dict[tuple[State, Role, type[Message]], State]:
    t: dict[tuple[State, Role, type[Message]], State] = {
        (State.GREETING, S, AuthSuccess): State.IDLE,
        (State.START, C, Auth): State.AUTHING,
        (State.START, C, Error): State.CLOSED,
        (State.AUTHING, S, AuthSuccess): State.IDLE,
        (State.AUTHING, S, AuthFailure): State.START,  # spec 4.2: may try again
        (State.AUTHING, S, Error): State.START,
        (State.IDLE, C, Version): State.VERSIONING,
        (State.VERSIONING, S, Version): State.IDLE,
        (State.VERSIONING, S, Error): State.IDLE,  # old server: stay at version 0
        (State.IDLE, C, Bypass): State.IDLE,
        (State.IDLE, C, CheckPresent): State.CHECKING,
        (State.IDLE, C, LockContent): State.LOCKING,
        (State.LOCKING, S, Success): State.LOCKED,
        (State.LOCKING, S, Failure): State.IDLE,
        (State.LOCKED, C, UnlockContent): State.IDLE,
        (State.IDLE, C, Remove): State.REMOVING,
        (State.IDLE, C, RemoveBefore): State.REMOVING,
        (State.IDLE, C, GetTimestamp): State.TIMESTAMPING,
        (State.TIMESTAMPING, S, Timestamp): State.IDLE,
        (State.IDLE, C, Get): State.GET_AWAIT_DATA,
        (State.GET_AWAIT_DATA, S, Data): State.GET_PAYLOAD,
        (State.GET_VALIDITY, S, Valid): State.GET_RESULT,
        (State.GET_VALIDITY, S, Invalid): State.GET_RESULT,
        (State.GET_RESULT, C, Error): State.IDLE,  # spec 6.7: accepted silently
        (State.IDLE, C, Put): State.PUT_AWAIT_OFFER,
        (State.PUT_AWAIT_OFFER, S, AlreadyHave): State.IDLE,
        (State.PUT_AWAIT_OFFER, S, AlreadyHavePlus): State.IDLE,
        (State.PUT_AWAIT_OFFER, S, PutFrom): State.PUT_AWAIT_DATA,
        (State.PUT_AWAIT_DATA, C, Data): State.PUT_PAYLOAD,
        (State.PUT_AWAIT_DATA, C, DataPresent): State.PUT_RESULT,  # spec 6.6
        (State.PUT_AWAIT_DATA, C, Error): State.IDLE,  # spec 6.5: PUT abandoned
        (State.PUT_VALIDITY, C, Valid): State.PUT_RESULT,
        (State.PUT_VALIDITY, C, Invalid): State.PUT_RESULT,
        (State.IDLE, C, NotifyChange): State.NOTIFYING,
        (State.NOTIFYING, S, Changed): State.IDLE,
        (State.IDLE, C, Connect): State.RELAY,
        (State.RELAY, S, Data): State.RELAY,
        (State.RELAY, C, Data): State.RELAY,
        (State.RELAY, C, ConnectDone): State.RELAY,
        (State.RELAY, S, ConnectDone): State.CONNECT_DONE,
        (State.RELAY, S, Error): State.CLOSED,  # spec 6.8: refused, session over
        (State.CONNECT_DONE, C, Data): State.CONNECT_DONE,
        (State.CONNECT_DONE, C, ConnectDone): State.CLOSED,
        (State.IDLE, C, Error): State.CLOSED,  # spec 8: server closes
    }
    for state in (State.CHECKING, State.REMOVING, State.PUT_RESULT):
        for reply in _RESULTS_PLUS if state is not State.CHECKING else _RESULTS:
            t[(state, S, reply)] = State.IDLE
    for reply in _RESULTS_PLUS:
        t[(State.GET_RESULT, C, reply)] = State.IDLE
    # Rule 5: a server ERROR fails the pending request.
    for state in (
        State.CHECKING, State.LOCKING, State.REMOVING, State.TIMESTAMPING,
        State.GET_AWAIT_DATA, State.PUT_AWAIT_OFFER, State.PUT_RESULT, State.NOTIFYING,
    ):  # fmt: skip
        t[(state, S, Error)] = State.IDLE
    return t


TRANSITIONS = _moves()

# Rule 2: after a payload, (state from version 1, state in version 0).
AFTER_PAYLOAD: dict[State, tuple[State, State]] = {
    State.GET_PAYLOAD: (State.GET_VALIDITY, State.GET_RESULT),
    State.PUT_PAYLOAD: (State.PUT_VALIDITY, State.PUT_RESULT),
}

# Rule 4: reply shapes that only exist from a version (spec section 5).
MESSAGE_SINCE: dict[type[Message], int] = {
    SuccessPlus: 2,
    FailurePlus: 2,
    AlreadyHavePlus: 2,
    DataPresent: 4,
    Valid: 1,
    Invalid: 1,
}
CLIENT_SINCE: dict[type[Message], int] = {
    Bypass: 2,
    GetTimestamp: 3,
    RemoveBefore: 3,
    DataPresent: 4,
}

# Server answers to a line it will not execute: state -> (ERROR text, or None
# for "unknown command"/"unexpected command"; state after the ERROR; whether
# the transaction in progress is abandoned).  Spec section 8 and 6.2-6.7.
SERVER_REJECTS: dict[State, tuple[str | None, State, bool]] = {
    State.START: (None, State.START, False),
    State.IDLE: (None, State.IDLE, False),
    State.LOCKED: ("expected UNLOCKCONTENT", State.IDLE, True),
    State.PUT_AWAIT_DATA: ("expected DATA", State.IDLE, True),
    State.PUT_VALIDITY: ("expected VALID or INVALID", State.IDLE, True),
    State.GET_RESULT: ("expected SUCCESS or SUCCESS-PLUS or FAILURE or FAILURE-PLUS", State.IDLE, True),
}

# What our client says before giving up on a server that misbehaves (spec 8).
CLIENT_EXPECTS: dict[State, str] = {
    State.GREETING: "expected AUTH-SUCCESS",
    State.AUTHING: "expected AUTH-SUCCESS or AUTH-FAILURE",
    State.VERSIONING: "expected VERSION",
    State.CHECKING: "expected SUCCESS or FAILURE",
    State.LOCKING: "expected SUCCESS or FAILURE",
    State.REMOVING: "expected SUCCESS or FAILURE",
    State.TIMESTAMPING: "expected TIMESTAMP",
    State.GET_AWAIT_DATA: "expected DATA",
    State.GET_VALIDITY: "expected VALID or INVALID",
    State.PUT_AWAIT_OFFER: "expected PUT_FROM or ALREADY_HAVE",
    State.PUT_RESULT: "expected SUCCESS or FAILURE",
    State.NOTIFYING: "expected CHANGED",
    State.RELAY: "expected DATA or CONNECTDONE",
}

READ_ONLY_DENIED = "this repository is read-only; write access denied"
APPEND_ONLY_DENIED = "this repository is append-only; removal denied"


def mode_denial(mode: Mode, message: Message) -> str | None:
    """The ERROR text refusing ``message`` in ``mode``, or None (spec section 7)."""
    if mode is Mode.READ_WRITE:
        return None
    writes = isinstance(message, Put) or (
        isinstance(message, Connect) and message.service is Service.RECEIVE_PACK
    )
    removes = isinstance(message, (Remove, RemoveBefore))
    if mode is Mode.READ_ONLY and (writes or removes):
        return READ_ONLY_DENIED
    if mode is Mode.APPEND_ONLY and removes:
        return APPEND_ONLY_DENIED
    if mode is Mode.APPEND_ONLY and isinstance(message, Connect) and writes:
        return READ_ONLY_DENIED
    return None
