"""Shared pieces of the P2P integration tests (no tests here): a fake ssh, a raw peer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from core.p2p import DONE, NEED_DATA, PAUSED, Connection, Event, Message, Payload, Sentinel, client

CLIENT_UUID = "a1b2c3d4-0000-4000-8000-00000000c11e"

FAKE_SSH = """#!/bin/sh
# Stand-in for ssh (spec 12.2 step 1): drop options and the host, run the
# remote command locally, and log it.
if [ "$1" = "-G" ]; then exit 0; fi
while [ $# -gt 1 ]; do
  case "$1" in
    -o|-p|-S|-F|-i|-l|-O) shift 2;;
    -*) shift;;
    *) shift; break;;
  esac
done
echo "$*" >> "{log}"
# Test knobs: cut the server's output or input after N bytes; trace its input.
if [ -n "$P2P_CUT_OUTPUT" ]; then exec "{cut}" out "$P2P_CUT_OUTPUT" "$*"; fi
if [ -n "$P2P_CUT_INPUT" ]; then exec "{cut}" in "$P2P_CUT_INPUT" "$*"; fi
if [ -n "$P2P_TRACE_INPUT" ]; then tee -a "$P2P_TRACE_INPUT" | sh -c "$*"; exit $?; fi
exec sh -c "$*"
"""


CUT = """#!{python}
# Run a command, passing only the first N bytes of its output ("out") or of
# its input ("in"), then end: a connection cut in the middle of a transfer.
import os, subprocess, sys
direction, n, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if direction == "out":
    child = subprocess.Popen(["sh", "-c", cmd], stdout=subprocess.PIPE)
    src, dst = child.stdout.fileno(), 1
else:
    child = subprocess.Popen(["sh", "-c", cmd], stdin=subprocess.PIPE)
    src, dst = 0, child.stdin.fileno()
while n > 0:
    d = os.read(src, min(n, 65536))
    if not d:
        break
    os.write(dst, d)
    n -= len(d)
if direction == "out":
    child.kill()
else:
    child.stdin.close()
child.wait()
"""


def install_fake_ssh(tmp: Path, monkeypatch: object) -> Path:
    """Write the fake ssh and point git and git-annex at it; returns its log."""
    log = tmp / "ssh.log"
    log.touch()
    cut = tmp / "cut"
    cut.write_text(CUT.replace("{python}", sys.executable))
    cut.chmod(0o755)
    script = tmp / "fakessh"
    script.write_text(FAKE_SSH.replace("{log}", str(log)).replace("{cut}", str(cut)))
    script.chmod(0o755)
    setenv = monkeypatch.setenv  # type: ignore[attr-defined]
    setenv("GIT_SSH_COMMAND", str(script))
    setenv("GIT_ANNEX_USE_GIT_SSH", "1")
    return log


def content_of(repo: Path, key: str) -> bytes | None:
    out = subprocess.run(
        ["git", "annex", "contentlocation", key], cwd=repo, capture_output=True, text=True
    )
    if out.returncode != 0:
        return None
    return (repo / out.stdout.strip()).read_bytes()


class RawPeer:
    """Our client machine over blocking pipes to a p2pstdio server process."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
        self.conn: Connection = client()

    def until_our_turn(self) -> list[Event]:
        events: list[Event] = []
        assert self.proc.stdout is not None
        while True:
            ev = self.conn.next_event()
            if ev is NEED_DATA:
                self.conn.receive_data(os.read(self.proc.stdout.fileno(), 65536))
            elif ev is PAUSED or ev is DONE:
                return events
            else:
                assert not isinstance(ev, Sentinel)
                events.append(ev)

    def write(self, *msgs: Message | Payload) -> None:
        assert self.proc.stdin is not None
        for m in msgs:
            self.proc.stdin.write(self.conn.send(m))
        self.proc.stdin.flush()

    def request(self, *msgs: Message | Payload) -> list[Event]:
        self.write(*msgs)
        return self.until_our_turn()

    def close(self) -> int:
        assert self.proc.stdin is not None
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        return self.proc.wait(timeout=30)


def joined(events: list[Event]) -> list[Event]:
    """Merge consecutive Payload chunks (the pipe may split them anywhere)."""
    out: list[Event] = []
    for ev in events:
        if isinstance(ev, Payload) and out and isinstance(out[-1], Payload):
            out[-1] = Payload(out[-1].data + ev.data)
        else:
            out.append(ev)
    return out
