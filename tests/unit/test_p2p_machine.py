"""Client and server machines back to back, every operation, every version;
plus the (state, input) table checks and fuzzing of the machines."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.p2p import (
    ALL_MESSAGES,
    DONE,
    NEED_DATA,
    PAUSED,
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
    Connection,
    ConnectionClosed,
    Data,
    DataPresent,
    Error,
    Event,
    Failure,
    FailurePlus,
    Get,
    GetTimestamp,
    Invalid,
    LocalProtocolError,
    LockContent,
    Message,
    Mode,
    NotifyChange,
    Payload,
    PayloadEnd,
    Put,
    PutFrom,
    Rejected,
    RemoteProtocolError,
    Remove,
    RemoveBefore,
    Role,
    Sentinel,
    Service,
    State,
    Success,
    SuccessPlus,
    Timestamp,
    UnlockContent,
    Valid,
    Version,
    VersionOffered,
    client,
    format_message,
    server,
)
from core.p2p.state import AFTER_PAYLOAD, TRANSITIONS, TURN
from tests.unit.test_p2p_helpers import (
    CLIENT_UUID,
    SERVER_UUID,
    MemoryServer,
    drain,
    key_for,
    pump_server,
)

HELLO = b"hello world\n"
K12 = key_for(HELLO, ".txt")
BIG = bytes(range(256)) * 40
KBIG = key_for(BIG, ".bin")
MISSING = key_for(b"nothing here")
TOKEN = "7cefb8bf2699"
SNAPSHOTS: dict[tuple[Role, State], Connection] = {}
_SCENARIOS_RUN: list[bool] = []


@dataclass
class Pair:
    """A client and a server Connection wired through the in-memory runtime."""

    version: int | None
    networked: bool = False
    mode: Mode = Mode.READ_WRITE
    c: Connection = field(init=False)
    s: Connection = field(init=False)
    rt: MemoryServer = field(init=False)

    def __post_init__(self) -> None:
        self.rt = MemoryServer(store={K12: HELLO}, tokens={TOKEN}, refs=("ab" * 20,))
        self.rt.advert = b"0008NAK\n"
        self.c = client(networked=self.networked)
        self.s = server(networked=self.networked, mode=self.mode)
        if self.networked:
            assert self.request(Auth(CLIENT_UUID, TOKEN.upper())) == [AuthSuccess(SERVER_UUID)]
        else:
            self._to_client(self.s.send(AuthSuccess(SERVER_UUID)))
        if self.version is not None:
            assert self.request(Version(self.version)) == [Version(self.version)]
        assert self.c.version == self.s.version == (self.version or 0)

    def _snap(self) -> None:
        for conn in (self.c, self.s):
            SNAPSHOTS.setdefault((conn.role, conn.state), copy.deepcopy(conn))

    def _to_client(self, data: bytes) -> list[Event]:
        self._snap()
        if data:  # b"" would mean EOF
            self.c.receive_data(data)
        events, _ = drain(self.c)
        self._snap()
        return events

    def request(self, *msgs: Message | Payload) -> list[Event]:
        """Client sends ``msgs``; the server answers; the client's events."""
        wire = b""
        for m in msgs:
            wire += self.c.send(m)
            self._snap()
        return self._to_client(pump_server(self.s, self.rt, wire))


VERSIONS = [None, 0, 1, 2, 3, 4]


def ended(version: int | None, valid: bool) -> PayloadEnd:
    return PayloadEnd(valid if version else None)


@pytest.mark.parametrize("v", VERSIONS)
def test_checkpresent_lock_remove(v: int | None) -> None:
    p = Pair(v)
    assert p.request(CheckPresent(K12)) == [Success()]
    assert p.request(CheckPresent(MISSING)) == [Failure()]
    assert p.request(LockContent(K12)) == [Success()]
    assert p.c.state is p.s.state is State.LOCKED and p.rt.locked == K12
    assert p.request(UnlockContent()) == []
    assert p.rt.locked is None and p.c.state is p.s.state is State.IDLE
    assert p.request(LockContent(MISSING)) == [Failure()]
    assert p.request(Remove(K12)) == [Success()]
    assert p.request(CheckPresent(K12)) == [Failure()]


@pytest.mark.parametrize("v", VERSIONS)
def test_get(v: int | None) -> None:
    p = Pair(v)
    assert p.request(Get(0, b"hello.txt", K12)) == [Data(12), Payload(HELLO), ended(v, True)]
    assert p.c.state is State.GET_RESULT
    assert p.request(Success()) == []
    assert p.request(Get(6, b"", K12)) == [Data(6), Payload(b"world\n"), ended(v, True)]
    assert p.request(Failure()) == []
    assert p.request(Get(100, b"", K12)) == [Data(0), ended(v, True)]
    assert p.request(Success()) == []
    assert p.request(Get(0, b"", MISSING)) == [Data(0), ended(v, False)]
    assert p.request(Error("not wanted")) == []  # spec 6.7: accepted silently
    assert p.c.state is p.s.state is State.IDLE


@pytest.mark.parametrize("v", VERSIONS)
def test_put_resume_and_already_have(v: int | None) -> None:
    p = Pair(v)
    p.rt.partial[KBIG] = BIG[:4000]
    assert p.request(Put(b"dir/big file.bin", KBIG)) == [PutFrom(4000)]
    assert p.request(Data(len(BIG) - 4000), Payload(BIG[4000:7000])) == []
    mid = p.s.state
    assert mid is State.PUT_PAYLOAD
    assert p.request(Payload(BIG[7000:]), Valid()) == [Success()]
    assert p.rt.store[KBIG] == BIG
    assert p.request(Put(b"", KBIG)) == [AlreadyHave()]
    bad = key_for(b"seven77")
    assert p.request(Put(b"", bad)) == [PutFrom(0)]
    assert p.request(Data(7), Payload(b"wrong77"), Invalid()) == [Failure()]
    assert bad not in p.rt.store and p.s.state == State.IDLE


@pytest.mark.parametrize("v", [1, 2, 3, 4])
def test_put_abandon_and_error(v: int) -> None:
    p = Pair(v)
    assert p.request(Put(b"", MISSING)) == [PutFrom(0)]
    assert p.request(Data(0), Invalid()) == [Failure()]  # spec 6.5: abandon cleanly
    assert p.request(Put(b"", MISSING)) == [PutFrom(0)]
    assert p.request(Error("changed my mind")) == []
    assert p.c.state is p.s.state is State.IDLE
    assert p.request(CheckPresent(K12)) == [Success()]


@pytest.mark.parametrize("v", VERSIONS)
def test_version_gated_requests(v: int | None) -> None:
    p = Pair(v)
    version = v or 0
    if version >= 3:
        assert p.request(GetTimestamp()) == [Timestamp(2311)]
        assert p.request(RemoveBefore(2311, K12)) == [Failure()]
        assert p.request(RemoveBefore(2312, K12)) == [Success()]
    else:
        with pytest.raises(LocalProtocolError):
            p.c.send(GetTimestamp())
        assert p.c.state is State.ERROR
    p = Pair(v)
    if version >= 2:
        assert p.request(Bypass(("u1", "u2"))) == []
    else:
        with pytest.raises(LocalProtocolError):
            p.c.send(Bypass(("u1",)))
    p = Pair(v)
    p.rt.store[MISSING] = b"placed"
    assert p.request(Put(b"", MISSING)) == [AlreadyHave()]
    p.rt.store.pop(MISSING)
    assert p.request(Put(b"", MISSING)) == [PutFrom(0)]
    if version >= 4:
        p.rt.store[MISSING] = b"placed by other means"
        assert p.request(DataPresent()) == [Success()]
    else:
        with pytest.raises(LocalProtocolError):
            p.c.send(DataPresent())


@pytest.mark.parametrize("v", VERSIONS)
def test_networked_notify_and_connect(v: int | None) -> None:
    p = Pair(v, networked=True)
    assert p.request(NotifyChange()) == [Changed(("ab" * 20,))]
    events = p.request(Connect(Service.UPLOAD_PACK))
    assert events == [Data(8), Payload(b"0008NAK\n"), PayloadEnd(None)]
    assert p.request(Data(4), Payload(b"0000")) == [ConnectDone(0)]
    assert p.c.state is State.CONNECT_DONE
    assert p.request(ConnectDone(0)) == []
    assert p.c.state is p.s.state is State.CLOSED
    assert p.c.next_event() is DONE and p.s.next_event() is DONE


def test_networked_auth_failure_then_retry() -> None:
    c, s = client(networked=True), server(networked=True)
    rt = MemoryServer(tokens={TOKEN})
    out = pump_server(s, rt, c.send(Auth(CLIENT_UUID, "wrong")))
    assert out == b"AUTH-FAILURE\n"
    c.receive_data(out)
    assert drain(c)[0] == [AuthFailure()] and c.state is State.START
    out = pump_server(s, rt, c.send(Auth(CLIENT_UUID, TOKEN)))
    c.receive_data(out)
    assert drain(c)[0] == [AuthSuccess(SERVER_UUID)]


@pytest.mark.parametrize("v", [0, 1, 2, 4])
def test_plus_replies_downgraded_below_v2(v: int) -> None:
    p = Pair(v)
    p.c.send(Remove(K12))
    p.s.receive_data(b"REMOVE " + str(K12).encode() + b"\n")
    assert isinstance(p.s.next_event(), Remove)
    out = p.s.send(SuccessPlus(("n1", "n2")))
    assert out == (b"SUCCESS-PLUS n1 n2\n" if v >= 2 else b"SUCCESS\n")
    p.c.receive_data(out)
    assert drain(p.c)[0] == [SuccessPlus(("n1", "n2")) if v >= 2 else Success()]


def test_client_refuses_plus_reply_below_v2() -> None:
    p = Pair(1)
    p.c.send(Put(b"", K12))
    p.c.receive_data(b"ALREADY-HAVE-PLUS n1\n")
    with pytest.raises(RemoteProtocolError) as info:
        p.c.next_event()
    assert info.value.error_line == b"ERROR expected PUT_FROM or ALREADY_HAVE\n"
    with pytest.raises(RemoteProtocolError):
        p.c.next_event()  # terminal: the same error again
    with pytest.raises(RemoteProtocolError):
        p.c.send(Success())
    assert p.c.finished


def test_server_version_any_time_and_client_negotiates_once() -> None:
    p = Pair(4)
    with pytest.raises(LocalProtocolError):
        p.c.send(Version(2))
    s = server()
    s.send(AuthSuccess(SERVER_UUID))
    s.receive_data(b"VERSION 2\nVERSION 0\n")
    ev = s.next_event()
    assert ev == VersionOffered(offered=2, reply=Version(2))
    assert isinstance(ev, VersionOffered) and s.send(ev.reply) == b"VERSION 2\n"
    assert s.version == 2
    ev2 = s.next_event()
    assert isinstance(ev2, VersionOffered) and s.send(ev2.reply) == b"VERSION 0\n"
    assert s.version == 0


def test_old_server_error_on_version_keeps_v0() -> None:
    c = client()
    c.receive_data(b"AUTH-SUCCESS x\n")
    drain(c)
    c.send(Version(4))
    c.receive_data(b"ERROR unknown command\n")
    assert drain(c)[0] == [Error("unknown command")]
    assert c.version == 0 and c.state is State.IDLE


def test_server_pauses_while_locked_request_unanswered() -> None:
    s = server()
    s.send(AuthSuccess(SERVER_UUID))
    line = format_message(CheckPresent(K12))
    s.receive_data(line * 2)
    assert s.next_event() == CheckPresent(K12)
    assert s.next_event() is PAUSED  # not reading the second request yet
    s.send(Success())
    assert s.next_event() == CheckPresent(K12)


def test_server_rejection_must_be_sent_first() -> None:
    s = server()
    s.send(AuthSuccess(SERVER_UUID))
    s.receive_data(b"FROBNICATE\n")
    ev = s.next_event()
    assert isinstance(ev, Rejected) and ev.reply == Error("unknown command")
    with pytest.raises(LocalProtocolError):
        s.send(Success())


def test_eof_cases() -> None:
    p = Pair(4)
    p.c.send(Remove(K12))
    p.c.receive_data(b"")  # spec 6.3: git-annex-shell dies on locked content
    assert drain(p.c) == ([ConnectionClosed(cut_short=True)], DONE)
    s = server()
    s.send(AuthSuccess(SERVER_UUID))
    s.receive_data(b"")
    assert drain(s) == ([ConnectionClosed(cut_short=False)], DONE)
    s = server()
    s.send(AuthSuccess(SERVER_UUID))
    s.receive_data(b"CHECKPRE")
    s.receive_data(b"")
    assert drain(s) == ([ConnectionClosed(cut_short=True)], DONE)
    with pytest.raises(LocalProtocolError):
        s.receive_data(b"more")


def test_overlong_line_is_fatal_without_error_line() -> None:
    s = server()
    s.send(AuthSuccess(SERVER_UUID))
    s.receive_data(b"x" * 40000)
    with pytest.raises(RemoteProtocolError) as info:
        s.next_event()
    assert info.value.error_line is None and s.state is State.ERROR


def test_payload_overrun_is_local_error() -> None:
    p = Pair(4)
    p.request(Put(b"", MISSING))
    p.c.send(Data(3))
    with pytest.raises(LocalProtocolError):
        p.c.send(Payload(b"four"))


def test_payload_sent_by_length_counts_as_payload() -> None:
    """``send_payload_length`` (the runtime's sendfile) moves the machine as
    ``send(Payload)`` of as many bytes would, and is refused the same way."""
    p = Pair(4)
    p.s.receive_data(p.c.send(Get(0, b"", K12)))
    assert p.s.next_event() == Get(0, b"", K12)
    p.s.send(Data(12))
    p.s.send_payload_length(5)
    with pytest.raises(LocalProtocolError):
        p.s.send(Valid())  # 7 bytes still owed
    q = Pair(4)
    q.s.receive_data(q.c.send(Get(0, b"", K12)))
    q.s.next_event()
    wire = q.s.send(Data(12))
    q.s.send_payload_length(12)
    wire += HELLO + q.s.send(Valid())
    q.c.receive_data(wire)
    assert [q.c.next_event() for _ in range(3)] == [Data(12), Payload(HELLO), PayloadEnd(True)]
    r = Pair(4)
    r.request(Put(b"", MISSING))
    r.c.send(Data(3))
    with pytest.raises(LocalProtocolError):
        r.c.send_payload_length(4)
    with pytest.raises(LocalProtocolError):
        r.c.send_payload_length(1)  # terminal after the error


# --- the table, exhaustively, and fuzzing ------------------------------------------


def _run_all_scenarios() -> None:
    """Fill SNAPSHOTS by running every scenario above once."""
    if _SCENARIOS_RUN:
        return
    _SCENARIOS_RUN.append(True)
    for v in VERSIONS:
        test_checkpresent_lock_remove(v)
        test_get(v)
        test_put_resume_and_already_have(v)
        test_version_gated_requests(v)
        test_networked_notify_and_connect(v)
    for v in (1, 4):
        test_put_abandon_and_error(v)
    for mode in Mode:
        Pair(2, mode=mode)
    p = Pair(4)  # one byte at a time, so the GET states in between are seen
    p.s.receive_data(p.c.send(Get(0, b"", K12)))
    assert p.s.next_event() == Get(0, b"", K12)
    out = b""
    for reply in (Data(12), Payload(HELLO[:5]), Payload(HELLO[5:]), Valid()):
        out += p.s.send(reply)
        p._snap()
    for byte in out:
        p._to_client(bytes([byte]))


def _sample_lines() -> list[bytes]:
    k = str(K12).encode()
    samples = [
        Auth(CLIENT_UUID, TOKEN), AuthSuccess(SERVER_UUID), AuthFailure(), Version(2),
        Bypass(("u",)), CheckPresent(K12), LockContent(K12), UnlockContent(), Remove(K12),
        RemoveBefore(5, K12), GetTimestamp(), Timestamp(5), Get(0, b"f", K12), Put(b"", K12),
        PutFrom(0), Connect(Service.RECEIVE_PACK), ConnectDone(0), NotifyChange(),
        Changed(("a",)), Data(0), Data(3), DataPresent(), Valid(), Invalid(), AlreadyHave(),
        AlreadyHavePlus(("u",)), Success(), Failure(), SuccessPlus(), FailurePlus(("u",)), Error("x"),
    ]  # fmt: skip
    assert {type(m) for m in samples} == set(ALL_MESSAGES)
    lines = [format_message(m) for m in samples]
    return [*lines, b"FROBNICATE\n", b"CHECKPRESENT " + k + b" \n", b"DATA -1\n", b"\xff\xfe\n"]


def _snapshots() -> Iterator[tuple[Role, State, Connection]]:
    _run_all_scenarios()
    for (role, state), conn in sorted(SNAPSHOTS.items(), key=lambda i: (i[0][0].value, i[0][1].value)):
        yield role, state, conn


def test_every_state_and_input_is_legal_or_terminal() -> None:
    reached = {state for _, state, _ in _snapshots()}
    assert reached >= set(State) - {State.ERROR, State.REJECTING, State.START}
    checked = 0
    for role, state, snap in _snapshots():
        for line in _sample_lines():
            conn = copy.deepcopy(snap)
            conn.receive_data(line + b"abc")
            try:
                ev = conn.next_event()
            except RemoteProtocolError:
                assert conn.state is State.ERROR
                with pytest.raises(RemoteProtocolError):
                    conn.next_event()
                continue
            checked += 1
            if role.peer not in TURN[state]:
                assert conn.state is state and ev in (PAUSED, DONE)
                continue
            if conn.state in (State.REJECTING, State.CLOSED, state):
                continue
            moved = [
                TRANSITIONS[(state, role.peer, cls)] for cls in ALL_MESSAGES
                if (state, role.peer, cls) in TRANSITIONS
            ]  # fmt: skip
            allowed = set(moved) | {a for m in [*moved, state] for a in AFTER_PAYLOAD.get(m, ())}
            assert conn.state in allowed, (role, state, line, conn.state)
    assert checked > 100


MESSAGE_LINES = st.sampled_from(_sample_lines())
CHUNKS = st.lists(st.one_of(st.binary(max_size=40), MESSAGE_LINES), max_size=12)


def _feed_and_drain(conn: Connection, chunks: list[bytes], bytewise: bool) -> None:
    pieces = [bytes([b]) for c in chunks for b in c] if bytewise else [c for c in chunks if c]
    rt = MemoryServer(store={K12: HELLO}, tokens={TOKEN})
    try:
        for piece in [*pieces, b""]:
            conn.receive_data(piece)
            for _ in range(1000):
                ev = conn.next_event()
                if ev is NEED_DATA or ev is DONE:
                    break
                if ev is PAUSED:
                    if conn.role is Role.CLIENT:
                        break
                    assert conn.state in TURN and conn.state is not State.ERROR
                    break
                if conn.role is Role.SERVER and not isinstance(ev, Sentinel):
                    for reply in rt.answer(ev):
                        conn.send(reply)
            else:
                raise AssertionError("no progress")
    except RemoteProtocolError:
        assert conn.state is State.ERROR
        with pytest.raises(RemoteProtocolError):
            conn.next_event()
    assert isinstance(conn.state, State)


@given(chunks=CHUNKS, bytewise=st.booleans(), data=st.data())
def test_machines_take_any_bytes(chunks: list[bytes], bytewise: bool, data: st.DataObject) -> None:
    snaps = list(_snapshots())
    role, state, snap = data.draw(st.sampled_from(snaps))
    _feed_and_drain(copy.deepcopy(snap), chunks, bytewise)


@given(chunks=CHUNKS, networked=st.booleans(), mode=st.sampled_from(list(Mode)))
def test_fresh_server_takes_any_bytes(chunks: list[bytes], networked: bool, mode: Mode) -> None:
    s = server(networked=networked, mode=mode)
    if not networked:
        s.send(AuthSuccess(SERVER_UUID))
    _feed_and_drain(s, chunks, bytewise=False)


@pytest.mark.parametrize("v", [0, 1])
def test_payload_read_past_the_machine_counts_as_received(v: int) -> None:
    """``take_buffered_payload``/``received_payload_length``: a runtime reading the
    payload itself leaves the machine where the bytes through it would have."""
    s = server()
    s.send(AuthSuccess(SERVER_UUID))
    s.receive_data(b"VERSION %d\nPUT f %s\n" % (v, str(K12).encode()))
    offered = s.next_event()
    assert isinstance(offered, VersionOffered)
    s.send(offered.reply)
    assert isinstance(s.next_event(), Put)
    s.send(PutFrom(0))
    assert s.payload_unread == 0 and s.take_buffered_payload() == b""  # no DATA yet
    s.receive_data(b"DATA 12\nhell")
    assert s.next_event() == Data(12)
    assert s.payload_unread == 0  # bytes are buffered: they go first
    assert s.take_buffered_payload() == b"hell"
    assert s.payload_unread == 8
    s.received_payload_length(5)
    assert s.payload_unread == 3
    with pytest.raises(LocalProtocolError):
        s.received_payload_length(4)  # more than the peer owes: our bug, terminal
    assert s.state is State.ERROR


def test_payload_read_past_the_machine_to_its_end() -> None:
    s = server()
    s.send(AuthSuccess(SERVER_UUID))
    s.receive_data(b"VERSION 1\nPUT f %s\nDATA 12\n" % str(K12).encode())
    s.send(s.next_event().reply)  # type: ignore[union-attr]
    assert isinstance(s.next_event(), Put)
    s.send(PutFrom(0))
    assert s.next_event() == Data(12)
    s.received_payload_length(12)
    assert s.payload_unread == 0 and s.next_event() is NEED_DATA
    s.receive_data(b"VALID\n")
    assert s.next_event() == PayloadEnd(True)
