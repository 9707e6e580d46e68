"""Unit tests for core.filter (decision, spool) and core.filterprocess (pkt-line).

No repositories and no subprocesses: the protocol adapter is driven with
byte transcripts and a recording double for the filter.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import RemoteProtocolError
from core.filter import CleanSettings, Outcome, Output, Spool, is_dotfile, should_annex
from core.filterprocess import (
    MAX_PAYLOAD,
    EndOfStream,
    FilterConnection,
    format_pkt,
    format_text,
    parse_pkt_length,
    serve,
)
from core.repo.key import Key, hasher_for_backend

POINTER = b"/annex/objects/SHA256E-s12--a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447.txt\n"

# --- should_annex -------------------------------------------------------------------


def _large_if_over_10(expr: str, path: str, size: int) -> bool:
    assert expr == "largerthan=10b"
    return size > 10


@pytest.mark.parametrize(
    ("path", "size", "settings", "was", "expected"),
    [
        # no largefiles: git add keeps files in git unless already annexed (3.3)
        ("a.bin", 10**9, CleanSettings(), False, False),
        ("a.bin", 1, CleanSettings(), True, True),
        # largefiles decides when set, even against "was annexed" (11, checked live)
        ("a.bin", 30, CleanSettings("largerthan=10b"), False, True),
        ("a.bin", 5, CleanSettings("largerthan=10b"), True, False),
        # dotfiles: only when already annexed, unless annex.dotfiles
        (".hidden", 30, CleanSettings("largerthan=10b"), False, False),
        ("d/.cfg/x", 30, CleanSettings("largerthan=10b"), True, True),
        (".hidden", 30, CleanSettings("largerthan=10b", dotfiles=True), False, True),
        # annex.gitaddtoannex=false: only already annexed files
        ("a.bin", 30, CleanSettings("largerthan=10b", gitaddtoannex=False), False, False),
        ("a.bin", 5, CleanSettings("largerthan=10b", gitaddtoannex=False), True, True),
    ],
)
def test_should_annex(path: str, size: int, settings: CleanSettings, was: bool, expected: bool) -> None:
    assert should_annex(path, size, settings, was, _large_if_over_10) is expected


def test_is_dotfile() -> None:
    assert is_dotfile(".a") and is_dotfile("x/.git-thing/y") and not is_dotfile("a.b/c")


# --- Spool ----------------------------------------------------------------------------


def test_spool_small_stays_in_memory_and_spots_pointer(tmp_path: Path) -> None:
    s = Spool(tmp_path / "tmp", hasher_for_backend("SHA256E"))
    s.write(POINTER[:10])
    s.write(POINTER[10:])
    assert s.in_memory and not (tmp_path / "tmp").exists()
    key = s.pointer_key()
    assert isinstance(key, Key) and key.size == 12
    assert b"".join(s.chunks()) == POINTER


def test_spool_rolls_to_disk_and_hashes(tmp_path: Path) -> None:
    import hashlib

    data = bytes(range(256)) * 1000
    s = Spool(tmp_path / "tmp", hasher_for_backend("SHA256E"), memory_limit=40_000)
    for i in range(0, len(data), 7777):
        s.write(data[i : i + 7777])
    assert not s.in_memory and s.size == len(data)
    assert s.hexdigest() == hashlib.sha256(data).hexdigest()
    assert s.pointer_key() is None
    assert b"".join(s.chunks()) == data
    path = s.to_file()
    assert path.read_bytes() == data and path.parent == tmp_path / "tmp"
    s.discard()
    assert not path.exists()


def test_spool_large_pointer_lookalike_is_not_a_pointer(tmp_path: Path) -> None:
    s = Spool(tmp_path)
    s.write(POINTER + b"/annex/" * 5000 + b"\n")
    assert s.size > 32768 and s.pointer_key() is None


def test_spool_write_error_is_kept_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    s = Spool(blocker, memory_limit=4)
    s.write(b"12345678")
    s.write(b"more")
    assert isinstance(s.error, OSError) and s.in_memory


def test_output_chunks_and_close(tmp_path: Path) -> None:
    assert list(Output(Outcome.POINTER, pointer=POINTER).chunks()) == [POINTER]
    assert list(Output(Outcome.FAILED).chunks()) == []
    f = (tmp_path / "obj")
    f.write_bytes(b"x" * 70000)
    out = Output(Outcome.OBJECT, content=f.open("rb"))
    assert b"".join(out.chunks()) == b"x" * 70000
    out.close()


# --- pkt-line codec ---------------------------------------------------------------------


@pytest.mark.parametrize("header", [b"0000", b"0004", b"0005", b"fff0", b"FFF0", b"00a1"])
def test_parse_pkt_length_accepts(header: bytes) -> None:
    assert parse_pkt_length(header) == int(header, 16)


@pytest.mark.parametrize(
    "header", [b"+1f0", b" 1f0", b"1_f0", b"0001", b"0002", b"0003", b"fff1", b"ffff", b"00g0", b"000", b"\xff000"]
)
def test_parse_pkt_length_rejects(header: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_pkt_length(header)


@given(st.binary(min_size=4, max_size=4))
def test_parse_pkt_length_only_declared_errors(header: bytes) -> None:
    try:
        n = parse_pkt_length(header)
    except RemoteProtocolError:
        return
    assert n == 0 or 4 <= n <= 65520


def test_format_pkt_limits() -> None:
    assert format_pkt(b"a") == b"0005a"
    assert format_text(b"version=2") == b"000eversion=2\n"
    with pytest.raises(ValueError):
        format_pkt(b"")
    with pytest.raises(ValueError):
        format_pkt(b"x" * (MAX_PAYLOAD + 1))


@given(st.lists(st.binary(min_size=1, max_size=MAX_PAYLOAD), max_size=5))
def test_pkt_round_trip(payloads: list[bytes]) -> None:
    wire = b"".join(format_pkt(p) for p in payloads) + b"0000"
    conn = FilterConnection(io.BytesIO(wire).read, io.BytesIO())
    assert list(conn.content()) == payloads


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=7))
def test_reader_fed_bytewise_gives_packets_or_declared_errors(wire: bytes, step: int) -> None:
    src = io.BytesIO(wire)
    conn = FilterConnection(lambda n: src.read(min(n, step)), io.BytesIO())
    try:
        while True:
            conn.read_pkt(at_boundary=True)
    except (RemoteProtocolError, EndOfStream):
        pass


# --- transcripts ----------------------------------------------------------------------------


def _texts(*lines: bytes) -> bytes:
    return b"".join(format_text(ln) for ln in lines) + b"0000"


HELLO = _texts(b"git-filter-client", b"version=2") + _texts(
    b"capability=clean", b"capability=smudge", b"capability=delay"
)
SERVER_HELLO = _texts(b"git-filter-server", b"version=2") + _texts(
    b"capability=clean", b"capability=smudge"
)


def _request(command: bytes, path: bytes, content: bytes) -> bytes:
    pkts = b"".join(
        format_pkt(content[i : i + MAX_PAYLOAD]) for i in range(0, len(content), MAX_PAYLOAD)
    )
    return _texts(b"command=" + command, b"pathname=" + path) + pkts + b"0000"


class RecordingFilter:
    """Clean: uppercases into a pointer-like reply; smudge: fails; records calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes]] = []
        self.finished = 0

    def clean(self, path: str, source: Iterable[bytes]) -> Output:
        data = b"".join(source)
        self.calls.append(("clean", path, data))
        return Output(Outcome.POINTER, pointer=data.upper())

    def smudge(self, path: str, source: Iterable[bytes]) -> Output:
        self.calls.append(("smudge", path, b""))  # reads nothing: the adapter drains
        return Output(Outcome.FAILED)

    def finish(self) -> None:
        self.finished += 1


def _session(wire: bytes, filt: RecordingFilter | None) -> tuple[int, bytes]:
    out = io.BytesIO()
    rc = serve(FilterConnection(io.BytesIO(wire).read, out), lambda: filt)
    return rc, out.getvalue()


def test_transcript_clean_smudge_unknown() -> None:
    big = b"z" * (MAX_PAYLOAD + 10)
    wire = (
        HELLO
        + _request(b"clean", "dir/ü n=1.txt".encode(), big)
        + _request(b"smudge", b"b", b"ignored")
        + _request(b"list_available_blobs", b"", b"")
    )
    filt = RecordingFilter()
    rc, out = _session(wire, filt)
    assert rc == 0 and filt.finished == 1
    assert filt.calls == [("clean", "dir/ü n=1.txt", big), ("smudge", "b", b"")]
    upper = big.upper()
    expected = (
        SERVER_HELLO
        + _texts(b"status=success")
        + format_pkt(upper[:MAX_PAYLOAD]) + format_pkt(upper[MAX_PAYLOAD:]) + b"0000"
        + b"0000"
        + _texts(b"status=error")
        + _texts(b"status=error")
    )
    assert out == expected


def test_capabilities_are_those_offered() -> None:
    wire = _texts(b"git-filter-client", b"version=2") + _texts(b"capability=smudge")
    rc, out = _session(wire, RecordingFilter())
    assert rc == 0
    assert out == _texts(b"git-filter-server", b"version=2") + _texts(b"capability=smudge")


def test_not_a_repository_answers_error() -> None:
    rc, out = _session(HELLO + _request(b"clean", b"a", b"data"), None)
    assert rc == 0 and out == SERVER_HELLO + _texts(b"status=error")


@pytest.mark.parametrize(
    "wire",
    [
        _texts(b"hello", b"version=2"),
        _texts(b"git-filter-client", b"version=3"),
        HELLO + b"00",
        HELLO + _texts(b"command=clean", b"pathname=a") + b"0009abc",
        HELLO + _texts(b"nonsense"),
    ],
)
def test_protocol_violations_end_with_status_1(wire: bytes) -> None:
    rc, _ = _session(wire, RecordingFilter())
    assert rc == 1


def test_empty_input_is_a_clean_end() -> None:
    assert _session(b"", RecordingFilter()) == (0, b"")


@given(st.binary(max_size=300))
def test_any_input_gives_0_or_1(junk: bytes) -> None:
    rc, _ = _session(HELLO + junk, RecordingFilter())
    assert rc in (0, 1)
