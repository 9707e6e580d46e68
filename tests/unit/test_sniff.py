"""The listener's first-bytes rule (core.p2p.sniff): pure verdicts, and the replay."""

from __future__ import annotations

import asyncio

import pytest

from core.p2p.sniff import Replay, Speaks, classify, sniff
from core.session.frames import Frame, Kind, format_frame
from core.session.machine import hello_body

HELLO = format_frame(Frame(Kind.HELLO, hello_body("a" * 36, "b" * 36)))


@pytest.mark.parametrize(("first", "verdict"), [
    (b"", None), (b"A", Speaks.P2P), (b"AUTH x y\n", Speaks.P2P), (b"VERSION 1", Speaks.P2P),
    (HELLO[:1], None), (HELLO[:2], None), (HELLO[:3], Speaks.SESSION), (HELLO, Speaks.SESSION),
    (b"\x00\x05N", Speaks.UNKNOWN), (b"\x16\x03\x01", Speaks.UNKNOWN), (b"a", Speaks.UNKNOWN),
    (b"\n", Speaks.UNKNOWN), (b"\xff", Speaks.UNKNOWN),
])  # fmt: skip
def test_classify(first: bytes, verdict: Speaks | None) -> None:
    assert classify(first) == verdict


def test_a_hello_never_looks_like_a_p2p_line() -> None:
    assert HELLO[0] == 0 and HELLO[2] == Kind.HELLO  # a length below 256, then "H"


@pytest.mark.asyncio
async def test_sniff_reads_only_what_it_needs_and_replay_gives_it_back() -> None:
    inner = asyncio.StreamReader()
    inner.feed_data(HELLO[:1])
    inner.feed_data(HELLO[1:] + b"rest")
    inner.feed_eof()
    speaks, first = await sniff(inner, 1.0)
    assert (speaks, first) == (Speaks.SESSION, HELLO[:3])
    assert await Replay(first, inner).read() == HELLO + b"rest"


@pytest.mark.asyncio
async def test_silence_and_eof_are_unknown() -> None:
    silent = asyncio.StreamReader()
    assert await sniff(silent, 0.05) == (Speaks.UNKNOWN, b"")
    closed = asyncio.StreamReader()
    closed.feed_data(b"\x00")
    closed.feed_eof()
    assert await sniff(closed, 1.0) == (Speaks.UNKNOWN, b"\x00")
