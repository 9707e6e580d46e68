"""The line codec and the receive buffer (spec sections 2 and 3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.p2p import (
    ALL_MESSAGES,
    MAX_LINE,
    Auth,
    Bypass,
    Changed,
    CheckPresent,
    Connect,
    Data,
    Error,
    Get,
    GetTimestamp,
    LocalProtocolError,
    Message,
    Put,
    ReceiveBuffer,
    RemoteProtocolError,
    Service,
    SuccessPlus,
    UnlockContent,
    format_message,
    parse_message,
)
from core.p2p.codec import escape_file, unescape_file
from core.p2p.messages import Shape
from core.repo.key import Key

K12 = Key.parse("SHA256E-s12--a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447.txt")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"GET 0  " + str(K12).encode(), Get(0, b"", K12)),
        (b"PUT  WORM-s3-m2--caf\xc3\xa9 utf8", Put(b"", Key("WORM", "café utf8", 3, 2))),
        (b"GETTIMESTAMP ", GetTimestamp()),
        (b"UNLOCKCONTENT\r\n", UnlockContent()),
        (b"DATA 06", Data(6)),
        (b"SUCCESS-PLUS", SuccessPlus()),
        (b"BYPASS  a\tb ", Bypass(("a", "b"))),
        (b"AUTH u 7CEFB8bf", Auth("u", "7cefb8bf")),
        (b"ERROR expected UNLOCKCONTENT", Error("expected UNLOCKCONTENT")),
        (b"ERROR", Error("")),
        (b"CONNECT git-upload-pack", Connect(Service.UPLOAD_PACK)),
        (b"PUT a%%b%c\x01 " + str(K12).encode(), Put(b"a%b_c_", K12)),
    ],
)
def test_parse_examples(line: bytes, message: Message) -> None:
    assert parse_message(line) == message


@pytest.mark.parametrize(
    "line",
    [
        b"FROBNICATE 1 2", b"CHECKPRESENT", b"CHECKPRESENT notakey", b"GETTIMESTAMP x",
        b"GETTIMESTAMP  ", b"UNLOCKCONTENT " + str(K12).encode(), b"PUT /etc/passwd " + str(K12).encode(),
        b"DATA +6", b"DATA -1", b"DATA 1_0", b"DATA  6", b"DATA 6 ", b"DATA \xd9\xa1",
        b"DATA " + b"9" * 30, b"AUTH u bad-token!", b"AUTH u", b"GET 0 f", b"CONNECT git-shell",
        b"AUTH-SUCCESS ", b"CHECKPRESENT SHA256E-s12--a/b", b"", b"success",
    ],
)  # fmt: skip
def test_unparsable(line: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        parse_message(line)
    assert info.value.error_line == b"ERROR unknown command\n"


def test_format_examples() -> None:
    assert format_message(Get(0, b"", K12)) == b"GET 0  " + str(K12).encode() + b"\n"
    assert format_message(Put(b"new file.bin", K12)).startswith(b"PUT new%file.bin SHA256E")
    assert format_message(Put(b"100%", K12)).startswith(b"PUT 100%% SHA256E")
    assert format_message(Changed()) == b"CHANGED\n"
    assert format_message(UnlockContent()) == b"UNLOCKCONTENT\n"


@pytest.mark.parametrize(
    "build",
    [
        lambda: Data(-1), lambda: Data(True), lambda: Data(2**64), lambda: Auth("u", "a-b"),
        lambda: Auth("a b", "t"), lambda: Put(b"/abs", K12), lambda: Error("two\nlines"),
        lambda: Bypass(("",)), lambda: CheckPresent(Key("SHA256E", "x\ny")),
        lambda: Connect("git-upload-pack"),  # type: ignore[arg-type]
    ],
)  # fmt: skip
def test_construction_validates(build: object) -> None:
    with pytest.raises(LocalProtocolError):
        build()  # type: ignore[operator]


# --- property tests ---------------------------------------------------------------

WORD = st.text(st.characters(codec="utf-8", exclude_characters=" \t\n\r\x0b\x0c"), min_size=1, max_size=12)
SAFE_FILE = st.binary(max_size=20).filter(
    lambda b: not b.startswith(b"/") and unescape_file(escape_file(b)) == b
)
KEYS = st.builds(
    lambda digest, size, ext: Key("SHA256E", digest + ext, size=size),
    st.text("0123456789abcdef", min_size=1, max_size=64),
    st.none() | st.integers(0, 2**40),
    st.sampled_from(["", ".txt", ".tar.gz", " with space"]),
)
NUM = st.integers(0, 2**64 - 1)

_BY_SHAPE: dict[Shape, st.SearchStrategy[object]] = {
    Shape.KEY: KEYS,
    Shape.UUID: WORD,
    Shape.TOKEN: st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=20),
    Shape.NUMBER: NUM,
    Shape.FILE: SAFE_FILE,
    Shape.SERVICE: st.sampled_from(list(Service)),
    Shape.TEXT: st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30),
    Shape.WORDS: st.lists(WORD, max_size=4).map(tuple),
}


def _message(cls: type[Message]) -> st.SearchStrategy[Message]:
    return st.tuples(*(_BY_SHAPE[s] for s in cls.SHAPE)).map(lambda args: cls(*args))


MESSAGES = st.sampled_from(ALL_MESSAGES).flatmap(_message)


@given(MESSAGES)
def test_round_trip(message: Message) -> None:
    line = format_message(message)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert parse_message(line) == message


@given(st.binary(max_size=300))
def test_parse_any_bytes_only_raises_remote_errors(line: bytes) -> None:
    try:
        message = parse_message(line)
    except RemoteProtocolError:
        return
    assert type(message) in ALL_MESSAGES
    parse_message(format_message(message))  # what we accept we can also write


@given(st.lists(st.binary(max_size=50), max_size=20), st.booleans())
def test_receive_buffer_any_bytes(chunks: list[bytes], bytewise: bool) -> None:
    buf = ReceiveBuffer(max_line=64)
    blob = b"".join(chunks)
    pieces = [blob[i : i + 1] for i in range(len(blob))] if bytewise else chunks
    lines: list[bytes] = []
    try:
        for piece in pieces:
            buf.feed(piece)
            while (line := buf.next_line()) is not None:
                lines.append(line)
    except RemoteProtocolError as e:
        assert e.error_line is None
        return
    assert b"\n".join([*lines, bytes(buf.take(len(buf)))]) == blob


def test_receive_buffer_lines_then_bytes() -> None:
    buf = ReceiveBuffer()
    buf.feed(b"DATA 9\nover ssh\nVALID\n")
    assert buf.next_line() == b"DATA 9"
    assert buf.take(4) == b"over"
    assert buf.take(5) == b" ssh\n"
    assert buf.next_line() == b"VALID"
    assert buf.next_line() is None and not buf


def test_receive_buffer_line_cap() -> None:
    buf = ReceiveBuffer()
    buf.feed(b"x" * (MAX_LINE - 1) + b"\n")
    assert buf.next_line() == b"x" * (MAX_LINE - 1)
    buf.feed(b"y" * MAX_LINE)
    with pytest.raises(RemoteProtocolError):
        buf.next_line()


def test_a_payload_chunk_fed_alone_leaves_uncopied() -> None:
    """A chunk fed into an empty buffer is kept whole: ``take`` hands out the
    object itself; lines and partial takes still see every byte in order."""
    buf = ReceiveBuffer()
    chunk = b"p" * 1000
    buf.feed(chunk)
    assert len(buf) == 1000 and buf.take(5000) is chunk and not buf
    buf.feed(b"DATA 3\n")
    buf.feed(b"abcNEXT")
    assert buf.next_line() == b"DATA 3"
    assert buf.take(3) == b"abc"
    buf.feed(b" LINE\n")
    assert buf.next_line() == b"NEXT LINE"
    buf.feed(b"xyz")
    assert buf.take(2) == b"xy" and buf.take(5) == b"z" and len(buf) == 0
