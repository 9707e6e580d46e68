"""The pure XEP-0047 machine (core/xmpp/ibb.py): order, loss, sid, size, base64, wrap."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.xmpp.ibb import (
    MAX_BLOCK_SIZE,
    IbbError,
    IbbStream,
    StreamState,
    decode,
    parse_open,
)

PEER = "alice@example.org/annexsync-1234abcd"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def pair(size: int = 4) -> tuple[IbbStream, IbbStream]:
    return IbbStream("me@x/a", "s1", size), IbbStream(PEER, "s1", size)


def test_round_trip_in_order() -> None:
    sender, receiver = pair(3)
    blocks = sender.blocks(b"hello world")
    assert [b.seq for b in blocks] == [0, 1, 2, 3]
    got = b"".join(receiver.receive_block(PEER, "s1", str(b.seq), b.encoded()) for b in blocks)
    assert got == b"hello world"


@pytest.mark.parametrize("seq", ["1", "0 ", "+0", "-0", "0_0", "", None, "65536", "x"])
def test_wrong_seq_aborts(seq: str | None) -> None:
    _, receiver = pair()
    with pytest.raises(IbbError):
        receiver.receive_block(PEER, "s1", seq, b64(b"a"))
    assert receiver.state is StreamState.ABORTED
    with pytest.raises(IbbError):  # nothing more is ever read from it
        receiver.receive_block(PEER, "s1", "0", b64(b"a"))


def test_duplicate_and_missing_seq() -> None:
    _, r = pair()
    assert r.receive_block(PEER, "s1", "0", b64(b"a")) == b"a"
    with pytest.raises(IbbError, match="repeated"):
        r.receive_block(PEER, "s1", "0", b64(b"a"))
    _, r = pair()
    with pytest.raises(IbbError, match="lost"):
        r.receive_block(PEER, "s1", "1", b64(b"a"))


@pytest.mark.parametrize(("peer", "sid"), [(PEER, "s2"), ("alice@example.org/other", "s1"),
                                           (PEER, None)])  # fmt: skip
def test_other_sid_or_peer_is_refused_alone(peer: str, sid: str | None) -> None:
    _, r = pair()
    with pytest.raises(IbbError) as e:
        r.receive_block(peer, sid, "0", b64(b"evil"))
    assert e.value.condition == "item-not-found"
    assert r.state is StreamState.OPEN
    assert r.receive_block(PEER, "s1", "0", b64(b"good")) == b"good"


def test_closed_stream_refuses_blocks() -> None:
    _, r = pair()
    r.receive_close(PEER, "s1")
    with pytest.raises(IbbError):
        r.receive_block(PEER, "s1", "0", b64(b"late"))
    with pytest.raises(IbbError):
        r.receive_close(PEER, "s1")


def test_block_over_size() -> None:
    _, r = pair(4)
    assert r.receive_block(PEER, "s1", "0", b64(b"1234")) == b"1234"
    with pytest.raises(IbbError, match="block size"):
        r.receive_block(PEER, "s1", "1", b64(b"12345"))
    assert r.state is StreamState.ABORTED


@pytest.mark.parametrize("text", ["YQ", "YQ==\n", "Y Q==", "YQ=!", "ä", "YQ==YQ=="])
def test_bad_base64(text: str) -> None:
    with pytest.raises(IbbError, match="base64"):
        decode(text)


def test_seq_wraps_at_65535() -> None:
    s, r = IbbStream("me@x/a", "s1", 1), IbbStream(PEER, "s1", 1)
    blocks = s.blocks(bytes(65537))
    assert [b.seq for b in blocks[-3:]] == [65534, 65535, 0]
    for b in blocks:
        r.receive_block(PEER, "s1", str(b.seq), b.encoded())


def test_open_rules() -> None:
    assert parse_open("abc", "4096", "iq") == ("abc", 4096)
    assert parse_open("abc", "65535", None) == ("abc", MAX_BLOCK_SIZE)
    for sid, size, stanza, cond in [("abc", "65536", "iq", "bad-request"),
                                    ("abc", "0", "iq", "bad-request"),
                                    ("a b", "10", "iq", "bad-request"),
                                    ("abc", "10", "message", "not-acceptable")]:  # fmt: skip
        with pytest.raises(IbbError) as e:
            parse_open(sid, size, stanza)
        assert e.value.condition == cond
    with pytest.raises(IbbError) as e:
        parse_open("abc", "9000", "iq", most=8192)
    assert e.value.condition == "resource-constraint"


@given(st.binary(max_size=3000), st.integers(1, 700))
def test_any_bytes_round_trip(data: bytes, size: int) -> None:
    s, r = IbbStream("me@x/a", "s", size), IbbStream(PEER, "s", size)
    out = b"".join(r.receive_block(PEER, "s", str(b.seq), b.encoded()) for b in s.blocks(data))
    assert out == data


@given(st.lists(st.tuples(st.sampled_from([PEER, "x@y/z"]), st.sampled_from(["s", "t", None]),
                          st.one_of(st.none(), st.text(max_size=6)),
                          st.one_of(st.none(), st.text(max_size=12))), max_size=20))
def test_random_input_never_crashes_and_only_in_order_data_passes(
        stanzas: list[tuple[str, str | None, str | None, str | None]]) -> None:  # fmt: skip
    r = IbbStream(PEER, "s", 8)
    expected = 0
    for peer, sid, seq, text in stanzas:
        try:
            r.receive_block(peer, sid, seq, text)
        except IbbError:
            continue
        assert (peer, sid, seq) == (PEER, "s", str(expected))
        assert r.state is StreamState.OPEN
        expected += 1
