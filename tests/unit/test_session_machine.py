"""The encrypted session machine: two ends back to back, refusals, every kind
of damage to the frames, the framing codec, and property tests over the
(state, input) table and arbitrary bytes."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from core.errors import LocalProtocolError, ProtocolError, RemoteProtocolError, SessionRefused
from core.session import (
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
from core.session.frames import MAX_FRAME, Frame, FrameBuffer, Kind, format_frame
from core.session.machine import _MOVES, MAX_PLAINTEXT, hello_body

KEY_A, KEY_B, KEY_X = (X25519PrivateKey.generate() for _ in range(3))
PSK = os.urandom(32)
A = PeerCredentials("dev-a", KEY_A, "dev-b", KEY_B.public_key(), PSK)
B = PeerCredentials("dev-b", KEY_B, "dev-a", KEY_A.public_key(), PSK)


def events(m: SessionMachine) -> list[object]:
    out: list[object] = []
    while (ev := m.next_event()) is not NEED_DATA:
        out.append(ev)
        if isinstance(ev, Closed):
            break
    return out


def relay(src: SessionMachine, dst: SessionMachine) -> list[object]:
    dst.receive_data(src.data_to_send())
    return events(dst)


def open_pair(a: PeerCredentials = A, b: PeerCredentials = B) -> tuple[SessionMachine, SessionMachine]:
    i, r = SessionMachine.initiator(a), SessionMachine.responder(b)
    i.start()
    assert relay(i, r) == []
    (done_i,) = relay(r, i)
    (done_r,) = relay(i, r)
    assert isinstance(done_i, Established) and isinstance(done_r, Established)
    assert done_i.handshake_hash == done_r.handshake_hash
    assert (done_i.peer_device_id, done_r.peer_device_id) == ("dev-b", "dev-a")
    return i, r


def frames_of(data: bytes) -> list[bytes]:
    buf, out = FrameBuffer(), []
    buf.feed(data)
    while (f := buf.next_frame()) is not None:
        out.append(format_frame(f))
    return out


# --- back to back -----------------------------------------------------------------


def test_data_both_ways_and_clean_close() -> None:
    i, r = open_pair()
    big = os.urandom(MAX_PLAINTEXT * 2 + 5)
    i.send(big)
    got = relay(i, r)
    assert b"".join(e.data for e in got if isinstance(e, Data)) == big
    assert len(got) == 3
    r.send(b"reply")
    assert relay(r, i) == [Data(b"reply")]
    i.close()
    r.receive_data(b"")
    assert events(r) == [Closed()] and r.state is State.CLOSED


def test_responder_learns_the_peer_from_hello() -> None:
    i, r = SessionMachine.initiator(A), SessionMachine.responder()
    i.start()
    assert relay(i, r) == [PeerHello("dev-a", "dev-b")]
    assert r.state is State.WAIT_KEYS and r.next_event() is NEED_DATA
    r.accept(B)
    assert events(r) == []  # msg1 was waiting in the buffer
    assert isinstance(relay(r, i)[0], Established)
    assert isinstance(relay(i, r)[0], Established)


# --- refusals ---------------------------------------------------------------------


def refused(m: SessionMachine, data: bytes) -> SessionRefused:
    m.receive_data(data)
    with pytest.raises(SessionRefused) as info:
        events(m)
    assert m.state is State.FAILED
    return info.value


def test_wrong_psk_refused_both_sides_nothing_delivered() -> None:
    i = SessionMachine.initiator(replace(A, psk=os.urandom(32)))
    r = SessionMachine.responder(B)
    i.start()
    assert relay(i, r) == []
    err = refused(i, r.data_to_send())  # the initiator cannot read msg2
    assert (err.peer_device_id, err.by_peer) == ("dev-b", False)
    assert err.reason == Refusal.PROOF_FAILED.text
    err = refused(r, i.data_to_send())  # the REFUSE frame
    assert (err.peer_device_id, err.by_peer) == ("dev-a", True)


def test_wrong_psk_without_refuse_frame_fails_the_confirmation() -> None:
    """The responder does not rely on the advisory REFUSE: a forged key
    confirmation is a refusal too."""
    i = SessionMachine.initiator(replace(A, psk=os.urandom(32)))
    r = SessionMachine.responder(B)
    i.start()
    relay(i, r)
    r.data_to_send()
    forged = format_frame(Frame(Kind.DATA, os.urandom(16)))
    err = refused(r, forged)
    assert err.reason == Refusal.PROOF_FAILED.text and not err.by_peer


@pytest.mark.parametrize("who", ["initiator", "responder-pin"])
def test_wrong_static_key_refused(who: str) -> None:
    a = replace(A, own_private=KEY_X) if who == "initiator" else A
    b = replace(B, peer_public=KEY_X.public_key()) if who != "initiator" else B
    i, r = SessionMachine.initiator(a), SessionMachine.responder(b)
    i.start()
    err = refused(r, i.data_to_send())
    assert err.reason == Refusal.PROOF_FAILED.text and err.peer_device_id == "dev-a"
    err = refused(i, r.data_to_send())
    assert err.by_peer and err.reason == Refusal.PROOF_FAILED.text


def test_unknown_peer_refused() -> None:
    i, r = SessionMachine.initiator(A), SessionMachine.responder()
    i.start()
    relay(i, r)
    err = r.refuse(Refusal.UNKNOWN_PEER)
    assert r.state is State.FAILED and err.peer_device_id == "dev-a"
    err = refused(i, r.data_to_send())
    assert err.by_peer and err.reason == Refusal.UNKNOWN_PEER.text


def test_responder_with_other_peer_refuses() -> None:
    c = PeerCredentials("dev-c", KEY_X, "dev-b", KEY_B.public_key(), PSK)
    i, r = SessionMachine.initiator(c), SessionMachine.responder(B)
    i.start()
    err = refused(r, i.data_to_send())
    assert err.reason == Refusal.UNKNOWN_PEER.text and err.peer_device_id == "dev-c"


def test_a_stale_address_is_told_apart_from_an_unpaired_device() -> None:
    """A hello meant for dev-b reaching another device (dev-c, which knows nothing
    of dev-a: an address now someone else's) is refused as meant for another
    device, before any lookup, and the initiator's words say so, not "no longer
    trusts"."""
    i, r = SessionMachine.initiator(A), SessionMachine.responder(own_device_id="dev-c")
    i.start()
    err = refused(r, i.data_to_send())
    assert err.reason == Refusal.WRONG_DEVICE.text and not err.by_peer
    err = refused(i, r.data_to_send())
    assert err.by_peer and err.reason == Refusal.WRONG_DEVICE.text
    assert "answered as another device" in str(err) and "trust" not in str(err)
    # the device it was meant for still gets a PeerHello to look the sender up
    i, r = SessionMachine.initiator(A), SessionMachine.responder(own_device_id="dev-b")
    i.start()
    assert relay(i, r) == [PeerHello("dev-a", "dev-b")]


def test_session_for_other_ids_cannot_be_replayed_under_these() -> None:
    """The prologue binds both device ids: the same keys under other ids
    give a handshake that does not verify here."""
    other = replace(A, own_device_id="dev-x")
    i = SessionMachine.initiator(other)
    i.start()
    msg1 = frames_of(i.data_to_send())[1]
    r = SessionMachine.responder(B)
    hello = format_frame(Frame(Kind.HELLO, hello_body("dev-a", "dev-b")))
    err = refused(r, hello + msg1)
    assert err.reason == Refusal.PROOF_FAILED.text


def test_other_version_refused() -> None:
    r = SessionMachine.responder(B)
    err = refused(r, format_frame(Frame(Kind.HELLO, b"annexsync-session/9\0dev-a\0dev-b")))
    assert err.reason == Refusal.UNSUPPORTED.text


# --- damaged frames ---------------------------------------------------------------


def three_frames() -> tuple[SessionMachine, SessionMachine, list[bytes]]:
    i, r = open_pair()
    for n in range(3):
        i.send(b"frame %d" % n)
    return i, r, frames_of(i.data_to_send())


def assert_broken(r: SessionMachine, data: bytes, delivered: int = 0) -> None:
    r.receive_data(data)
    got: list[object] = []
    with pytest.raises(RemoteProtocolError):
        while (ev := r.next_event()) is not NEED_DATA:
            got.append(ev)
    assert len(got) == delivered and r.state is State.FAILED
    with pytest.raises(LocalProtocolError):
        r.next_event()


@pytest.mark.parametrize("at", range(2, 2 + 1 + 7 + 16))
def test_tampered_byte_refused(at: int) -> None:
    _, r, frames = three_frames()
    bad = bytearray(frames[0])
    bad[at] ^= 0x01
    assert_broken(r, bytes(bad))


def test_tampered_length_never_delivers() -> None:
    _, r, frames = three_frames()
    bad = bytearray(b"".join(frames))
    bad[1] ^= 0x01
    r.receive_data(bytes(bad))
    with pytest.raises(RemoteProtocolError):
        while events(r):
            pass
        r.receive_data(b"")
        events(r)


def test_dropped_frame_refused() -> None:
    _, r, (f0, _f1, f2) = three_frames()
    assert_broken(r, f0 + f2, delivered=1)


def test_reordered_frames_refused() -> None:
    _, r, (f0, f1, f2) = three_frames()
    assert_broken(r, f0 + f2 + f1, delivered=1)


def test_replayed_frame_refused() -> None:
    _, r, (f0, f1, _f2) = three_frames()
    assert_broken(r, f0 + f1 + f1, delivered=2)


def test_frame_from_another_session_refused() -> None:
    _, _r, (old, _, _) = three_frames()
    _, r2, _ = three_frames()  # same devices, same pair secret, new session
    assert_broken(r2, old)


def test_eof_inside_handshake_or_frame_is_an_error() -> None:
    i = SessionMachine.initiator(A)
    i.start()
    i.receive_data(b"")
    with pytest.raises(RemoteProtocolError):
        i.next_event()
    _, r, frames = three_frames()
    r.receive_data(frames[0][:-1])
    r.receive_data(b"")
    with pytest.raises(RemoteProtocolError):
        r.next_event()


# --- framing ----------------------------------------------------------------------


def test_frame_limits() -> None:
    assert len(format_frame(Frame(Kind.DATA, bytes(MAX_FRAME - 1)))) == MAX_FRAME + 2
    with pytest.raises(LocalProtocolError):
        Frame(Kind.DATA, bytes(MAX_FRAME))
    buf = FrameBuffer()
    buf.feed(b"\x00\x00D")
    with pytest.raises(RemoteProtocolError, match="length 0"):
        buf.next_frame()
    buf = FrameBuffer()
    buf.feed(b"\x00\x02Zx")
    with pytest.raises(RemoteProtocolError, match="kind"):
        buf.next_frame()
    buf = FrameBuffer(max_buffer=10)
    with pytest.raises(RemoteProtocolError, match="more than 10"):
        buf.feed(bytes(11))


# --- properties -------------------------------------------------------------------

DECLARED = (RemoteProtocolError, SessionRefused)


def drain(m: SessionMachine) -> None:
    for _ in range(1000):
        if m.next_event() is NEED_DATA:
            return


FRAMED = st.lists(
    st.builds(lambda k, b: format_frame(Frame(k, b)), st.sampled_from(Kind), st.one_of(
        st.binary(max_size=80),
        st.sampled_from([hello_body("dev-a", "dev-b"), hello_body("dev-x", "dev-b"),
                         b"annexsync-session/1\0dev-a", b"\x02", b"\x09"]))),
    max_size=4).map(b"".join)


@given(st.one_of(st.binary(max_size=400), FRAMED), st.booleans(),
       st.sampled_from(["responder", "open"]))
def test_any_bytes_give_events_or_the_declared_error(data: bytes, bytewise: bool, who: str) -> None:
    m = SessionMachine.responder(B) if who == "responder" else open_pair()[1]
    pieces = [data[n:n + 1] for n in range(len(data))] if bytewise else [data]
    try:
        for piece in pieces:
            m.receive_data(piece)
            drain(m)
    except DECLARED:
        assert m.state is State.FAILED
    else:
        assert m.state is not State.FAILED


def machine_in(state: State) -> tuple[SessionMachine, SessionMachine]:
    """(machine in ``state``, its peer) reached by a real exchange."""
    initiator = state in (State.NEW, State.WAIT_MSG2)
    i, r = SessionMachine.initiator(A), SessionMachine.responder()
    if state is State.NEW:
        return i, r
    i.start()
    if state is State.WAIT_MSG2:
        return i, r
    if state is State.WAIT_HELLO:
        return r, i
    hello, msg1 = frames_of(i.data_to_send())
    r.receive_data(hello)
    assert isinstance(r.next_event(), PeerHello)
    if state is State.WAIT_KEYS:
        return r, i
    r.accept(B)
    if state is State.WAIT_MSG1:
        return r, i
    r.receive_data(msg1)
    events(r)
    if state is State.WAIT_CONFIRM:
        return r, i
    relay(r, i)
    relay(i, r)
    m, peer = (i, r) if initiator or state is State.CLOSED else (r, i)
    if state is State.CLOSED:
        m.close()
    assert m.state is state
    return m, peer


REACHABLE = [s for s in State if s is not State.FAILED]
STEPS = {(a, b) for (a, _), b in _MOVES.items()}
OPS = ["start", "accept", "send", "close", "refuse", "eof", "deliver", "garbage", "next"]


@given(st.sampled_from(REACHABLE), st.lists(st.sampled_from(OPS), min_size=1, max_size=6))
def test_every_state_and_input_is_legal_or_terminal(state: State, ops: list[str]) -> None:
    """From every reachable state, any sequence of calls either takes moves
    of the ``_MOVES`` table (or stays), or raises a declared error and
    leaves the machine FAILED for good."""
    m, peer = machine_in(state)
    for op in ops:
        before = m.state
        try:
            _apply(m, peer, op)
        except (ProtocolError, SessionRefused):
            assert m.state is State.FAILED
            with pytest.raises(LocalProtocolError):
                m.next_event()
            return
        after = m.state
        assert after is before or (before, after) in STEPS or (
            op == "refuse" and after is State.FAILED) or (
            op in ("deliver", "next") and _chain(before, after)), (before, op, after)
        if after is State.FAILED:
            return


def _chain(before: State, after: State) -> bool:
    """One input may take several table moves (a buffered HELLO and msg1)."""
    frontier = {before}
    for _ in range(4):
        frontier |= {b for (a, b) in STEPS if a in frontier}
    return after in frontier


def _apply(m: SessionMachine, peer: SessionMachine, op: str) -> None:
    if op == "start":
        m.start()
    elif op == "accept":
        m.accept(B)
    elif op == "send":
        m.send(b"x")
    elif op == "close":
        m.close()
    elif op == "refuse":
        m.refuse()
    elif op == "eof":
        m.receive_data(b"")
    elif op == "deliver":
        m.receive_data(peer.data_to_send() or b"\x00\x01D")
    elif op == "garbage":
        m.receive_data(b"\x00\x11D" + bytes(16))
    else:
        drain(m)
    # the peer answers what it got, so later "deliver"s carry the next step
    try:
        out = m.data_to_send()
        if out:
            peer.receive_data(out)
            drain(peer)
    except (ProtocolError, SessionRefused):
        pass
