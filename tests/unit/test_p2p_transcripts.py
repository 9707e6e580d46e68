"""Replay the wire transcripts in tests/data/p2p (format: test_p2p_helpers).

Server replay: the client's lines go in, and exactly the server's lines must
come out of a server Connection answered by the in-memory runtime, block by
block (so "no reply" is checked too).  Client replay: each client line is
parsed, sent through a client Connection and must come out byte for byte;
the server's lines are fed back and must be accepted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.p2p import (
    DONE,
    AuthSuccess,
    ConnectionClosed,
    Mode,
    Payload,
    RemoteProtocolError,
    client,
    parse_message,
    server,
)
from tests.unit.test_p2p_helpers import (
    MemoryServer,
    Transcript,
    all_transcripts,
    drain,
    load_transcript,
    pump_server,
)

TRANSCRIPTS = all_transcripts()


def _blocks(t: Transcript) -> list[tuple[str, list[tuple[str, bytes]]]]:
    blocks: list[tuple[str, list[tuple[str, bytes]]]] = []
    for kind, data in t.steps:
        side = "C" if kind in ("C", "C+", "@eof") else "S" if kind in ("S", "S+") else kind
        if blocks and blocks[-1][0] == side:
            blocks[-1][1].append((kind, data))
        else:
            blocks.append((side, [(kind, data)]))
    return blocks


def replay_server(t: Transcript) -> MemoryServer:
    runtime = MemoryServer(
        uuid=t.uuid, store=dict(t.have), partial=dict(t.partial), clock=t.timestamp,
        tokens=t.tokens, refs=t.refs, advert=t.advert,
    )  # fmt: skip
    conn = server(networked=t.networked, mode=Mode(t.mode))
    pending_out = b"" if t.networked else conn.send(AuthSuccess(t.uuid))
    expected = b""
    for side, steps in _blocks(t):
        if side == "S":
            expected += b"".join(data for _, data in steps)
            continue
        assert pending_out == expected, f"{t.name}: server wrote {pending_out!r}"
        expected = b""
        for kind, data in steps:
            pending_out = pump_server(conn, runtime, data)
            if kind == "@eof":
                assert any(isinstance(e, ConnectionClosed) for e in runtime.log)
            elif pending_out:  # only the last line of a client block may get a reply
                break
    assert pending_out == expected, f"{t.name}: server wrote {pending_out!r}"
    return runtime


def replay_client(t: Transcript) -> None:
    conn = client(networked=t.networked)
    for kind, data in t.steps:
        if kind == "C":
            assert conn.send(parse_message(data)) == data
        elif kind == "C+":
            assert conn.send(Payload(data)) == data
        elif kind in ("S", "S+"):
            conn.receive_data(data)
            drain(conn)
        elif kind == "@server-eof":
            conn.receive_data(b"")
            events, _ = drain(conn)
            assert events[-1] == ConnectionClosed(cut_short=True)
        elif kind == "@eof":
            return
    _, last = drain(conn)
    assert not conn.finished or last is DONE


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_server_replay(path: Path) -> None:
    t = load_transcript(path)
    if "server" not in t.roles:
        pytest.skip("client-only transcript")
    runtime = replay_server(t)
    for key in t.expect_have:
        assert key in runtime.store, f"{key} not stored"
    for key, size in t.expect_partial:
        assert len(runtime.partial.get(key, b"")) == size


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
def test_client_replay(path: Path) -> None:
    t = load_transcript(path)
    if "client" not in t.roles:
        pytest.skip("server-only transcript (contains lines a client must not send)")
    replay_client(t)


def test_client_rejects_unexpected_server_line() -> None:
    conn = client()
    conn.receive_data(b"AUTH-SUCCESS u\nVERSION 4\n")
    drain(conn)
    conn.send(parse_message(b"VERSION 4"))
    drain(conn)
    conn.send(parse_message(b"GETTIMESTAMP"))
    conn.receive_data(b"SUCCESS\n")
    with pytest.raises(RemoteProtocolError) as info:
        drain(conn)
    assert info.value.error_line == b"ERROR expected TIMESTAMP\n"
