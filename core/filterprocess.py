"""git's filter protocols for the ``annex`` driver: long-running and one-shot.

Spec: repository-format.md 3.3 (``filter.annex.process = annexsync
filter-process``, ``filter.annex.clean/smudge = annexsync smudge [--clean] --
%f``).  What clean and smudge return is decided in ``core.filter``; this
module only moves bytes.

The long-running protocol (gitattributes(5), "Long Running Filter Process")
is pkt-line framed: four lower-case hex digits giving the packet length
including themselves, then the payload; ``0000`` is a flush packet.  Payload
at most 65516 bytes.  Text packets end in LF, which we strip.

    git> git-filter-client / version=2 / flush
    us>  git-filter-server / version=2 / flush
    git> capability=clean / capability=smudge / ... / flush
    us>  capability=clean / capability=smudge / flush   (those git offered)
    then per file:
    git> command=clean|smudge / pathname=P / [other keys] / flush / content / flush
    us>  status=success / flush / content / flush / flush    (empty list: still success)
    or   status=error / flush                                (git uses its own copy)
    or, failing mid-content: ... content / flush / status=error / flush

git writes the whole request before it reads the reply, so the reply is
built only after the content has been read (spooled by ``core.filter``).
Rules: lengths are exactly four hex digits (``int(x, 16)`` alone would accept
``+1f0``, `` 1f0`` or ``1_f0``); lengths 1-3 (v2 delimiter packets) are not
part of this protocol; a clean end of input between requests ends the
process with status 0, an end inside a request is a protocol error.  We do
not offer ``delay``.

When the directory is not a git-annex repository we still speak the
protocol and answer ``status=error``, so git falls back to its own copy.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Protocol

from core.errors import RemoteProtocolError
from core.filter import AnnexFilter, Outcome, Output

logger = logging.getLogger(__name__)

MAX_PKT = 65520
MAX_PAYLOAD = MAX_PKT - 4
FLUSH = b"0000"
CAPABILITIES = (b"clean", b"smudge")
_HEX = frozenset(b"0123456789abcdefABCDEF")


class Filter(Protocol):
    """What the adapter needs from ``core.filter.AnnexFilter`` (tests pass doubles)."""

    def clean(self, path: str, source: Iterable[bytes]) -> Output: ...

    def smudge(self, path: str, source: Iterable[bytes]) -> Output: ...

    def finish(self) -> None: ...


class EndOfStream(Exception):
    """git closed our stdin at a packet boundary: the normal end."""


# --- pkt-line codec (pure) ---------------------------------------------------------


def parse_pkt_length(header: bytes) -> int:
    """Length of a packet from its four-byte header (0 = flush).

    Raises:
        RemoteProtocolError: not four hex digits, or an impossible length.
    """
    if len(header) != 4 or not all(b in _HEX for b in header):
        raise RemoteProtocolError(f"bad pkt-line length {header!r}")
    n = int(header, 16)
    if 0 < n < 4 or n > MAX_PKT:
        raise RemoteProtocolError(f"pkt-line length {n} not allowed")
    return n


def format_pkt(payload: bytes) -> bytes:
    """One data packet.

    Raises:
        ValueError: the payload is empty or larger than 65516 bytes.
    """
    if not payload or len(payload) > MAX_PAYLOAD:
        raise ValueError(f"pkt-line payload of {len(payload)} bytes")
    return b"%04x" % (len(payload) + 4) + payload


def format_text(line: bytes) -> bytes:
    return format_pkt(line + b"\n")


def parse_text(payload: bytes) -> bytes:
    return payload[:-1] if payload.endswith(b"\n") else payload


# --- the connection ----------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    command: str
    pathname: str
    headers: dict[bytes, bytes] = field(default_factory=dict)


class FilterConnection:
    """The filter's side of git's long-running protocol over two byte streams."""

    def __init__(self, read: Callable[[int], bytes], out: BinaryIO) -> None:
        self._read = read
        self._out = out

    # --- reading ------------------------------------------------------------------

    def _exact(self, n: int, at_boundary: bool) -> bytes:
        data = self._read(n)
        while len(data) < n:
            more = self._read(n - len(data))
            if not more:
                break
            data += more
        if len(data) == n:
            return data
        if at_boundary and not data:
            raise EndOfStream
        raise RemoteProtocolError(f"input ended inside a packet ({len(data)} of {n} bytes)")

    def read_pkt(self, at_boundary: bool = False) -> bytes | None:
        """The next packet's payload, or None for a flush packet."""
        n = parse_pkt_length(self._exact(4, at_boundary))
        if n == 0:
            return None
        return self._exact(n - 4, False)

    def read_text_list(self, at_boundary: bool = False) -> list[bytes]:
        """Text packets up to a flush."""
        lines: list[bytes] = []
        first = True
        while (pkt := self.read_pkt(at_boundary and first)) is not None:
            lines.append(parse_text(pkt))
            first = False
        return lines

    def content(self) -> Iterator[bytes]:
        """Content packets up to a flush."""
        while (pkt := self.read_pkt()) is not None:
            yield pkt

    # --- writing ------------------------------------------------------------------

    def write_text_list(self, lines: list[bytes]) -> None:
        self._out.write(b"".join(format_text(ln) for ln in lines) + FLUSH)

    def write_content(self, chunks: Iterator[bytes]) -> None:
        for chunk in chunks:
            for i in range(0, len(chunk), MAX_PAYLOAD):
                self._out.write(format_pkt(chunk[i : i + MAX_PAYLOAD]))
        self._out.write(FLUSH)

    def flush(self) -> None:
        self._out.flush()

    # --- the exchanges ------------------------------------------------------------

    def handshake(self) -> list[bytes]:
        """Welcome and capabilities; returns the capabilities agreed.

        Raises:
            RemoteProtocolError: not git's filter client, or no version 2.
            EndOfStream: git went away before saying anything.
        """
        hello = self.read_text_list(at_boundary=True)
        if not hello or hello[0] != b"git-filter-client" or b"version=2" not in hello[1:]:
            raise RemoteProtocolError(f"unexpected filter welcome {hello!r}")
        self.write_text_list([b"git-filter-server", b"version=2"])
        self.flush()
        offered = self.read_text_list()
        agreed = [c for c in CAPABILITIES if b"capability=" + c in offered]
        self.write_text_list([b"capability=" + c for c in agreed])
        self.flush()
        return agreed

    def next_request(self) -> Request | None:
        """The next command's headers (content not yet read), None at the end."""
        try:
            lines = self.read_text_list(at_boundary=True)
        except EndOfStream:
            return None
        headers: dict[bytes, bytes] = {}
        for line in lines:
            name, eq, value = line.partition(b"=")
            if not eq:
                raise RemoteProtocolError(f"bad header {line[:80]!r}")
            headers[name] = value
        command = headers.get(b"command", b"").decode("ascii", "replace")
        pathname = headers.get(b"pathname", b"").decode("utf-8", "surrogateescape")
        return Request(command, pathname, headers)

    def respond(self, output: Output) -> None:
        """Send the reply for one file; ``status=error`` when there is nothing to send."""
        if output.outcome is Outcome.FAILED:
            self.write_text_list([b"status=error"])
            self.flush()
            return
        self.write_text_list([b"status=success"])
        try:
            self.write_content(output.chunks())
        except OSError as e:
            if isinstance(e, BrokenPipeError):
                raise
            logger.error("failed while sending content: %s", e)
            self._out.write(FLUSH)
            self.write_text_list([b"status=error"])
            self.flush()
            return
        self._out.write(FLUSH)  # empty status list: the status stays "success"
        self.flush()


# --- entry points ---------------------------------------------------------------------


def _open_filter() -> AnnexFilter | None:
    """The filter for the repository git runs us in (cwd is its top), or None."""
    from core.repo.repository import AnnexRepo

    try:
        repo = AnnexRepo.open(os.getcwd(), auto_init=False)
    except Exception as e:  # noqa: BLE001 - then git keeps its own copies
        logger.warning("annex filter: %s; passing files through", e)
        return None
    return AnnexFilter(repo)


def _serve(conn: FilterConnection, filt: Filter | None) -> None:
    while (req := conn.next_request()) is not None:
        content = conn.content()
        output: Output
        if filt is None or req.command not in ("clean", "smudge"):
            for _ in content:
                pass
            if filt is not None:
                logger.warning("unknown filter command %r", req.command)
            output = Output(Outcome.FAILED)
        elif req.command == "clean":
            output = filt.clean(req.pathname, content)
        else:
            output = filt.smudge(req.pathname, content)
        for _ in content:  # whatever the filter left unread
            pass
        try:
            conn.respond(output)
        finally:
            output.close()


def run_filter_process(stdin: BinaryIO, stdout: BinaryIO) -> int:
    """Serve git's long-running filter protocol until git closes stdin.

    Returns 0 on a clean end, 1 when git broke the protocol or went away.
    """
    return serve(FilterConnection(stdin.read, stdout), _open_filter)


def serve(conn: FilterConnection, open_filter: Callable[[], Filter | None]) -> int:
    """Handshake, then answer requests until git closes the pipe (0), or 1."""
    try:
        conn.handshake()
    except EndOfStream:
        return 0
    except (RemoteProtocolError, OSError) as e:
        logger.error("annex filter-process: %s", e)
        return 1
    filt = open_filter()
    try:
        _serve(conn, filt)
    except (RemoteProtocolError, OSError) as e:
        logger.error("annex filter-process: %s", e)
        return 1
    finally:
        if filt is not None:
            filt.finish()
    return 0


def _chunks(stream: BinaryIO, size: int = 1 << 16) -> Iterator[bytes]:
    while data := stream.read(size):
        yield data


def run_smudge(path: str, clean: bool, stdin: BinaryIO, stdout: BinaryIO) -> int:
    """The one-shot filter: ``smudge -- %f`` or ``smudge --clean -- %f``.

    Returns 1 when the content could not be kept or sent; git then uses its
    own copy (the filter is not ``required``).
    """
    filt = _open_filter()
    if filt is None:
        for data in _chunks(stdin):
            stdout.write(data)
        stdout.flush()
        return 0
    output = filt.clean(path, _chunks(stdin)) if clean else filt.smudge(path, _chunks(stdin))
    try:
        if output.outcome is Outcome.FAILED:
            return 1
        for data in output.chunks():
            stdout.write(data)
        stdout.flush()
        return 0
    except OSError as e:
        logger.error("annex %s %s: %s", "clean" if clean else "smudge", path, e)
        return 1
    finally:
        output.close()
        filt.finish()


def main(argv: list[str]) -> int:
    """``python -m core.filterprocess [filter-process | smudge [--clean] [--] FILE]``."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(name)s: %(message)s")
    if argv[:1] == ["smudge"]:
        opts, files = argv[1:], []
        if "--" in opts:
            at = opts.index("--")
            opts, files = opts[:at], opts[at + 1 :]
        files += [a for a in opts if not a.startswith("--")]
        path = files[0] if files else ""
        return run_smudge(path, "--clean" in opts, sys.stdin.buffer, sys.stdout.buffer)
    return run_filter_process(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
