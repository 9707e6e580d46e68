"""Shared helpers for the P2P tests: an in-memory server runtime, pumps and
the transcript format.  (Named test_* so it lives with the P2P tests; it
holds one smoke test of its own.)

Transcript format (tests/data/p2p/*.txt), one entry a line:

    # comment
    @roles server client     which machines replay it (default: both)
    @networked               AUTH first (spec 4.2) instead of the greeting
    @mode read-only          server mode (spec 7)
    @uuid U                  served repository UUID (greeting line)
    @let NAME VALUE          later $NAME is replaced by VALUE
    @have KEY CONTENT        content present on the server (Python escapes)
    @partial KEY CONTENT     partial PUT data left by an interrupted PUT
    @timestamp N             the server's monotonic clock
    @token T                 accepted auth token
    @refs SHA...             what NOTIFYCHANGE answers
    @advert CONTENT          what CONNECT's git service prints first
    C: LINE / S: LINE        a line from the client / server (LF implied)
    C+ BYTES / S+ BYTES      payload bytes (Python escapes, no LF implied)
    @eof                     the client closes its side
    @server-eof              the server closes (client replay only)
    @expect-have KEY         after the replay, the server holds KEY
    @expect-partial KEY N    after the replay, N partial bytes of KEY are kept
"""

from __future__ import annotations

import codecs
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from core.p2p import (
    DONE,
    NEED_DATA,
    PAUSED,
    AlreadyHave,
    Auth,
    AuthFailure,
    AuthSuccess,
    AutoReply,
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
    LockContent,
    Message,
    NotifyChange,
    Payload,
    PayloadEnd,
    Put,
    PutFrom,
    Rejected,
    Remove,
    RemoveBefore,
    Sentinel,
    Success,
    SuccessPlus,
    Timestamp,
    UnlockContent,
    Valid,
)
from core.repo.key import Key

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "p2p"
SERVER_UUID = "0601e0b6-9bba-44d6-9b5b-8be2e1b00642"
CLIENT_UUID = "a1b2c3d4-0000-4000-8000-00000000c11e"


def key_for(content: bytes, ext: str = "") -> Key:
    return Key("SHA256E", hashlib.sha256(content).hexdigest() + ext, size=len(content))


@dataclass
class MemoryServer:
    """Answers a server Connection's requests from dicts (the local effects)."""

    uuid: str = SERVER_UUID
    store: dict[Key, bytes] = field(default_factory=dict)
    partial: dict[Key, bytes] = field(default_factory=dict)
    clock: int = 2311
    tokens: set[str] = field(default_factory=set)
    refs: tuple[str, ...] = ()
    advert: bytes = b""
    locked: Key | None = None
    put_key: Key | None = None
    log: list[Event] = field(default_factory=list)

    def answer(self, ev: Event) -> list[Message | Payload]:
        self.log.append(ev)
        if isinstance(ev, AutoReply):
            if isinstance(ev, Rejected) and ev.abandoned:
                self.locked = self.put_key = None
            return [ev.reply]
        if isinstance(ev, CheckPresent):
            return [Success() if ev.key in self.store else Failure()]
        if isinstance(ev, LockContent):
            if ev.key not in self.store:
                return [Failure()]
            self.locked = ev.key
            return [Success()]
        if isinstance(ev, UnlockContent):
            self.locked = None
            return []
        if isinstance(ev, (Remove, RemoveBefore)):
            if isinstance(ev, RemoveBefore) and not self.clock < ev.timestamp:
                return [Failure()]
            self.store.pop(ev.key, None)
            return [Success()]
        if isinstance(ev, GetTimestamp):
            return [Timestamp(self.clock)]
        if isinstance(ev, Get):
            return self._get(ev)
        if isinstance(ev, Put):
            if ev.key in self.store:
                return [AlreadyHave()]
            self.put_key = ev.key
            return [PutFrom(len(self.partial.get(ev.key, b"")))]
        return self._more(ev)

    def _get(self, ev: Get) -> list[Message | Payload]:
        content = self.store.get(ev.key)
        if content is None:
            return [Data(0), Invalid()]  # spec 6.7: not present
        chunk = content[ev.offset :]
        out: list[Message | Payload] = [Data(len(chunk))]
        if chunk:
            out.append(Payload(chunk))
        return [*out, Valid()]

    def _more(self, ev: Event) -> list[Message | Payload]:
        if isinstance(ev, Payload) and self.put_key is not None:
            self.partial[self.put_key] = self.partial.get(self.put_key, b"") + ev.data
        elif isinstance(ev, PayloadEnd) and self.put_key is not None:
            key, self.put_key = self.put_key, None
            content = self.partial.pop(key, b"")
            if key_for(content, "." + key.name.split(".", 1)[1] if "." in key.name else "") != key:
                return [Failure()]  # always verified: right for VALID too (spec 6.5)
            self.store[key] = content
            return [Success()]
        elif isinstance(ev, PayloadEnd):  # relay: the client's git input ended
            return [ConnectDone(0)]
        elif isinstance(ev, DataPresent):
            placed, self.put_key = self.put_key, None
            return [Success() if placed in self.store else Failure()]
        elif isinstance(ev, Error):
            self.put_key = None
        elif isinstance(ev, NotifyChange):
            return [Changed(self.refs)]
        elif isinstance(ev, Connect):
            return [Data(len(self.advert)), Payload(self.advert)]
        elif isinstance(ev, ConnectionClosed):
            self.locked = self.put_key = None
        elif isinstance(ev, Auth):
            return [AuthSuccess(self.uuid) if ev.token in self.tokens else AuthFailure()]
        elif not isinstance(ev, (Bypass, Data, Payload, ConnectDone, Success, Failure, SuccessPlus, FailurePlus)):
            raise AssertionError(f"unexpected server event {ev!r}")
        return []


def drain(conn: Connection, limit: int = 10_000) -> tuple[list[Event], Sentinel]:
    """next_event until a sentinel; returns the events and that sentinel."""
    events: list[Event] = []
    for _ in range(limit):
        ev = conn.next_event()
        if isinstance(ev, Sentinel):
            return events, ev
        events.append(ev)
    raise AssertionError("next_event did not settle")


def pump_server(conn: Connection, runtime: MemoryServer, data: bytes) -> bytes:
    """Feed ``data`` (b"" = EOF) to a server, answer everything, return its output."""
    conn.receive_data(data)
    out = bytearray()
    for _ in range(10_000):
        ev = conn.next_event()
        if ev is NEED_DATA or ev is DONE or ev is PAUSED:
            return bytes(out)
        assert not isinstance(ev, Sentinel)
        for reply in runtime.answer(ev):
            out += conn.send(reply)
    raise AssertionError("server did not settle")


# --- transcripts ----------------------------------------------------------------


@dataclass
class Transcript:
    name: str
    roles: set[str]
    networked: bool = False
    mode: str = "read-write"
    uuid: str = SERVER_UUID
    have: dict[Key, bytes] = field(default_factory=dict)
    partial: dict[Key, bytes] = field(default_factory=dict)
    timestamp: int = 2311
    tokens: set[str] = field(default_factory=set)
    refs: tuple[str, ...] = ()
    advert: bytes = b""
    steps: list[tuple[str, bytes]] = field(default_factory=list)  # (kind, bytes)
    expect_have: list[Key] = field(default_factory=list)
    expect_partial: list[tuple[Key, int]] = field(default_factory=list)


def unescape(text: str) -> bytes:
    return codecs.escape_decode(text.encode("utf-8"))[0]


def load_transcript(path: Path) -> Transcript:
    t = Transcript(path.stem, {"server", "client"})
    names: dict[str, str] = {}

    def subst(s: str) -> str:
        for name in sorted(names, key=len, reverse=True):
            s = s.replace("$" + name, names[name])
        return s

    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.startswith("#"):
            continue
        line = subst(raw)
        head, _, rest = line.partition(" ")
        if head in ("C:", "S:"):
            t.steps.append((head[0], rest.encode("utf-8") + b"\n"))
        elif head in ("C+", "S+"):
            t.steps.append((head, unescape(rest)))
        elif head == "@let":
            name, _, value = rest.partition(" ")
            names[name] = value
        elif head == "@roles":
            t.roles = set(rest.split())
        elif head == "@networked":
            t.networked = True
        elif head == "@mode":
            t.mode = rest
        elif head == "@uuid":
            t.uuid = rest
        elif head in ("@have", "@partial"):
            k, _, content = rest.partition(" ")
            (t.have if head == "@have" else t.partial)[Key.parse(k)] = unescape(content)
        elif head == "@timestamp":
            t.timestamp = int(rest)
        elif head == "@token":
            t.tokens.add(rest.lower())
        elif head == "@refs":
            t.refs = tuple(rest.split())
        elif head == "@advert":
            t.advert = unescape(rest)
        elif head in ("@eof", "@server-eof"):
            t.steps.append((head, b""))
        elif head == "@expect-have":
            t.expect_have.append(Key.parse(rest))
        elif head == "@expect-partial":
            k, _, n = rest.partition(" ")
            t.expect_partial.append((Key.parse(k), int(n)))
        else:
            raise ValueError(f"{path.name}: cannot read {raw!r}")
    return t


def all_transcripts() -> list[Path]:
    return sorted(DATA_DIR.glob("*.txt"))


def test_helpers_smoke() -> None:
    assert all_transcripts(), "no transcripts found"
    assert key_for(b"hello world\n", ".txt").name.startswith("a948904f")
