"""CONNECT: git's pack protocol tunnelled through a P2P session (spec 6.8).

Theory of operation
-------------------
After ``CONNECT <service>`` both directions stream at once: the server runs
``git upload-pack`` / ``git receive-pack`` on its repository, wraps every
chunk of that process's stdout in ``DATA n``, feeds every ``DATA`` payload
from the client to its stdin, and sends ``CONNECTDONE <exit code>`` when it
exits.  The client answers with its own ``CONNECTDONE`` (git-annex does,
spec 6.8) and the session is over.  The protocol machine tracks the payloads
per direction (``state.py`` rule 2); this module only moves bytes:

- ``serve_connect`` is the server half (one task pumps git's stdout to the
  peer, the caller's task feeds the peer's payloads to git's stdin; both live
  in one ``TaskGroup``, the process is killed in ``finally``).
- ``relay_connect`` is the client half, between a ``Channel`` and a local
  stream pair (git's end of a remote helper, or anything else).

Addresses and helper programs (spec 4.2, git-annex's generic P2P transport)
---------------------------------------------------------------------------
A networked remote's URL is ``p2p-annex::<netname>:<address>``.  git-annex
owns that scheme: its ``git-remote-p2p-annex`` serves ``git fetch``/``push``
and reaches ``<address>`` by running ``git-annex-p2p-<netname> <address>``,
a helper that relays stdin/stdout to the peer.  So we do not ship a second
``git-remote-p2p-annex``; we plug into that mechanism instead:

- our TCP listener is the network ``annexsync-tcp`` (address ``HOST:PORT``),
  and ``git-annex-p2p-annexsync-tcp`` (``net_helper_main``) is its helper:
  ``address`` prints ``$ANNEXSYNC_P2P_ADDRESS``; ``HOST:PORT`` relays stdio to
  that TCP port (real git-annex reaching our listener); ``HOST:PORT SOCKET``
  listens on HOST:PORT and relays each connection to the unix socket that
  ``git annex remotedaemon`` serves (our client reaching real git-annex).
  The prefixed name cannot collide with another project's network; the old
  netname ``tcp`` is still accepted by our own client.
- for ``git fetch``/``push`` without git-annex, ``git-remote-annexsync``
  (``git_remote_main``) is a git remote helper with the ``connect``
  capability for ``annexsync::<netname>:<address>`` URLs.  A ``p2p-annex::``
  remote is routed to it per command by ``GIT_INSTEADOF``
  (``git -c url.annexsync::.insteadOf=p2p-annex:: fetch peer``), which
  leaves the stored URL, and so git-annex's view of the remote, unchanged.
  It reaches ``annexsync-tcp``/``tcp`` addresses directly and every other
  network through its ``git-annex-p2p-<netname>`` helper, like git-annex.
- ``annexsync::paired:<device id>`` (netname ``paired``, core.remotetypes) is
  a paired device: only an annexsync process holding its session can reach
  it, so the helper connects to the gate that process serves while it runs
  git (``core.devices.remote.git_gate``: a unix socket under
  ``$ANNEXSYNC_PAIRED_GATES`` named by device and repository), asks for the
  service (``connect <service>``), and relays once it answers ``ok``.
  Without a gate (plain git) it refuses with a clear message.

The server process is spawned here rather than in ``core.gitops``: gitops
runs git to completion, a tunnel needs a long-lived process with both pipes
streaming.  Hooks stay off as in gitops (repository-format 3.5).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
import tempfile
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

from core.errors import CoreError, RemoteRefused, RemoteUnavailable
from core.p2p.events import DONE, ConnectionClosed, Payload
from core.p2p.messages import ConnectDone, Data, Error, Service
from core.p2p.runtime import CLOSE_TIMEOUT, ByteReader, Channel, ConnectionLost, P2PTimeout
from core.p2p.transport import Link, open_subprocess, open_tcp, reap
from core.remotetypes import PAIRED_NETNAME

logger = logging.getLogger(__name__)

RELAY_CHUNK = 1 << 16
CONNECTDONE_WAIT = 10.0  # how long the server waits for the client's CONNECTDONE
NETNAME = "annexsync-tcp"
DIRECT_NETNAMES = frozenset({NETNAME, "tcp"})  # reached without a helper program
HELPER_PREFIX = "git-annex-p2p-"
OUR_SCHEME = "annexsync"
INSTEADOF = [f"url.{OUR_SCHEME}::.insteadOf=p2p-annex::"]  # for ``git -c``
_NO_HOOKS = Path(tempfile.gettempdir()) / f"annexsync-no-hooks-{os.getuid()}"
_OWN_REFS_HOOKS = Path(tempfile.gettempdir()) / f"annexsync-own-refs-hooks-{os.getuid()}"
OWN_REFS_ENV = "ANNEXSYNC_OWN_REFS"
# xmpp-sync C.3: a paired device writes only its own refs, the branch only
# fast-forward (the git-annex branch is pushed forced, it is union-merged).
_PRE_RECEIVE = """#!/bin/sh
# annexsync: a paired device may write only its own refs (xmpp-sync C.3)
set -u
nonzero() { case "$1" in *[!0]*) return 0 ;; esac; return 1; }
while read -r old new ref; do
  case "$ref" in
    "$ANNEXSYNC_OWN_REFS"*) ;;
    *) echo "annexsync: refused $ref: this device may write only $ANNEXSYNC_OWN_REFS..." >&2
       exit 1 ;;
  esac
  case "$ref" in
    */git-annex) ;;
    *) if nonzero "$old" && nonzero "$new" && ! git merge-base --is-ancestor "$old" "$new"; then
         echo "annexsync: refused $ref: not a fast-forward" >&2
         exit 1
       fi ;;
  esac
done
"""


# --- addresses (pure) -----------------------------------------------------------------


@dataclass(frozen=True)
class P2PAddress:
    """``<netname>:<address>`` of a generic P2P network (git-annex P2P/Address.hs)."""

    netname: str
    address: str

    def url(self) -> str:
        return f"p2p-annex::{self.netname}:{self.address}"

    def host_port(self) -> tuple[str, int]:
        """``HOST:PORT`` of a direct (TCP) address; ``[v6]:PORT`` allowed.

        A ``/LABEL`` after the port is not part of where to connect: it names
        what the address's token opens (a gateway's cluster,
        ``annexsync p2p-gen-address``), so that git-annex, which keeps one
        token per address, can hold the gateway's and its cluster's at once.

        Raises:
            ValueError: not HOST:PORT.
        """
        host, _, port = self.address.partition("/")[0].rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{self.address!r} is not HOST:PORT")
        return host.strip("[]"), int(port)


def parse_p2p_url(url: str) -> P2PAddress:
    """``p2p-annex::net:addr``, ``annexsync::net:addr`` or bare ``net:addr``.

    Raises:
        ValueError: no netname, a netname that is not a safe program suffix,
            or no address.
    """
    for prefix in ("p2p-annex::", f"{OUR_SCHEME}::"):
        if url.startswith(prefix):
            url = url.removeprefix(prefix)
            break
    net, sep, address = url.partition(":")
    ok = net and all(c.isalnum() or c in "-_." for c in net) and not net.startswith(".")
    if not sep or not ok or not address:
        raise ValueError(f"{url!r} is not <netname>:<address>")
    return P2PAddress(net, address)


async def open_p2p_link(addr: P2PAddress) -> Link:
    """A byte stream to the peer: TCP for our network, else the network's helper.

    Raises:
        RemoteUnavailable: cannot connect, or no helper for the network.
    """
    if addr.netname in DIRECT_NETNAMES:
        try:
            host, port = addr.host_port()
        except ValueError as e:
            raise RemoteUnavailable(str(e)) from None
        return await open_tcp(host, port)
    helper = HELPER_PREFIX + addr.netname
    if shutil.which(helper) is None:
        raise RemoteUnavailable(f"{helper} is not installed (needed for {addr.url()})")
    return await open_subprocess([helper, addr.address])


# --- server half (spec 6.8) -----------------------------------------------------------


def service_argv(service: Service, gitdir: Path, *, own_refs: bool = False) -> list[str]:
    """``git upload-pack`` / ``git receive-pack`` on ``gitdir``, hooks off --
    or, with ``own_refs``, only our pre-receive hook, which refuses any ref
    outside ``$ANNEXSYNC_OWN_REFS`` and a branch update that is not a
    fast-forward."""
    hooks = _own_refs_hooks() if own_refs else _NO_HOOKS
    hooks.mkdir(mode=0o700, exist_ok=True)
    sub = service.value.removeprefix("git-")
    return ["git", "-c", f"core.hooksPath={hooks}", sub, str(gitdir)]


def _own_refs_hooks() -> Path:
    """The hooks directory holding only the pre-receive hook (written atomically)."""
    _OWN_REFS_HOOKS.mkdir(mode=0o700, exist_ok=True)
    hook = _OWN_REFS_HOOKS / "pre-receive"
    with contextlib.suppress(OSError):
        if hook.read_text() == _PRE_RECEIVE and os.access(hook, os.X_OK):
            return _OWN_REFS_HOOKS
    tmp = _OWN_REFS_HOOKS / f".pre-receive.{os.getpid()}"
    tmp.write_text(_PRE_RECEIVE)
    tmp.chmod(0o755)
    os.replace(tmp, hook)
    return _OWN_REFS_HOOKS


async def serve_connect(ch: Channel, service: Service, gitdir: Path, *,
                        idle_timeout: float, own_refs: str | None = None) -> int:  # fmt: skip
    """Run ``service`` on ``gitdir`` and relay it over ``ch`` until CONNECTDONE.

    ``idle_timeout`` bounds each wait for the peer while git runs (a fetch
    may think for a while).  ``own_refs``: the only ref prefix a push may
    write (a paired device's per-sender refs, xmpp-sync C.3).  Returns git's
    exit code (-1 if it never ran).

    Raises:
        P2PTimeout, ConnectionLost: the peer vanished.
        RemoteProtocolError: the peer broke the protocol.
    """
    try:
        env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
        if own_refs is not None:
            env[OWN_REFS_ENV] = own_refs
        proc = await asyncio.create_subprocess_exec(
            *service_argv(service, gitdir, own_refs=own_refs is not None),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
    except OSError as e:
        logger.warning("cannot run git %s: %s", service.value, e)
        await ch.send(ConnectDone(1))
        return -1
    finished = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(_git_to_peer(ch, proc, finished))
            tg.create_task(_log_stderr(proc, service))
            await _peer_to_git(ch, proc, finished, idle_timeout)
    finally:
        await reap(proc)
    return proc.returncode if proc.returncode is not None else -1


async def _git_to_peer(ch: Channel, proc: asyncio.subprocess.Process,
                       finished: asyncio.Event) -> None:  # fmt: skip
    assert proc.stdout is not None
    try:
        while chunk := await proc.stdout.read(RELAY_CHUNK):
            await ch.send(Data(len(chunk)), Payload(chunk))
        async with asyncio.timeout(CLOSE_TIMEOUT):
            code = await proc.wait()
        await ch.send(ConnectDone(code))
    except (ConnectionLost, P2PTimeout, TimeoutError) as e:
        logger.info("%s: relay from git ended: %s", ch.peer, e)
    finally:
        finished.set()


async def _log_stderr(proc: asyncio.subprocess.Process, service: Service) -> None:
    assert proc.stderr is not None
    while line := await proc.stderr.readline():
        logger.info("git %s: %s", service.value, line.decode("utf-8", "replace").rstrip())


async def _peer_to_git(ch: Channel, proc: asyncio.subprocess.Process,
                       finished: asyncio.Event, idle_timeout: float) -> None:  # fmt: skip
    """Feed the peer's payloads to git until the client's CONNECTDONE or EOF."""
    stdin = proc.stdin
    assert stdin is not None
    try:
        while True:
            limit = CONNECTDONE_WAIT if finished.is_set() else idle_timeout
            ev = await ch.next_event(limit)
            if ev is DONE or isinstance(ev, (ConnectionClosed, ConnectDone)):
                return
            if isinstance(ev, Payload) and not stdin.is_closing():
                stdin.write(ev.data)
                with contextlib.suppress(ConnectionError, OSError):
                    async with asyncio.timeout(idle_timeout):
                        await stdin.drain()
    except P2PTimeout:
        if not finished.is_set():
            raise
        logger.info("%s: no CONNECTDONE from the client", ch.peer)
    finally:
        with contextlib.suppress(Exception):
            stdin.close()


# --- client half ------------------------------------------------------------------------


async def relay_connect(ch: Channel, local_in: ByteReader,
                        local_out: asyncio.StreamWriter, *, idle_timeout: float) -> int:  # fmt: skip
    """After ``CONNECT`` was sent: relay until the server's CONNECTDONE.

    ``local_in`` is what goes to the remote git (DATA), ``local_out`` gets
    what the remote git printed.  Answers CONNECTDONE as git-annex does and
    returns the remote exit code.

    Raises:
        RemoteRefused: the server refused the CONNECT (ERROR).
        RemoteUnavailable: the session died or stayed silent past ``idle_timeout``.
    """
    async with asyncio.TaskGroup() as tg:
        pump = tg.create_task(_local_to_peer(ch, local_in))
        try:
            while True:
                ev = await ch.next_event(idle_timeout)
                if isinstance(ev, Payload):
                    local_out.write(ev.data)
                    async with asyncio.timeout(idle_timeout):
                        await local_out.drain()
                elif isinstance(ev, ConnectDone):
                    await ch.send(ConnectDone(ev.exit_code))
                    return ev.exit_code
                elif isinstance(ev, Error):
                    raise RemoteRefused(f"{ch.peer}: CONNECT refused: {ev.text}")
                elif ev is DONE or isinstance(ev, ConnectionClosed):
                    raise ConnectionLost(f"{ch.peer} closed the tunnel")
        finally:
            pump.cancel()
    raise AssertionError("unreachable")  # pragma: no cover


async def _local_to_peer(ch: Channel, local_in: ByteReader) -> None:
    with contextlib.suppress(ConnectionLost, OSError):
        while chunk := await local_in.read(RELAY_CHUNK):
            if ch.conn.finished:
                return
            await ch.send(Data(len(chunk)), Payload(chunk))


# --- git remote helper: git-remote-annexsync ------------------------------------------


def _read_command() -> str:
    """One line from git, byte by byte: nothing of the pack stream is buffered away."""
    out = bytearray()
    while (b := os.read(0, 1)) and b != b"\n":
        out += b
    return out.decode("utf-8", "replace")


def _write(text: str) -> None:
    os.write(1, text.encode())


def creds_file_name(addr: P2PAddress) -> str:
    """Where ``git annex p2p --link`` keeps the token: ``annex/creds/<escaped>``.

    Every character but ASCII letters and digits becomes ``%XX`` (as seen
    from git-annex 10.20261026: ``annexsync%2Dtcp%3A127%2E0%2E0%2E1%3A9000``).
    """
    raw = f"{addr.netname}:{addr.address}"
    return "".join(c if c.isascii() and c.isalnum() else f"%{ord(c):02X}" for c in raw)


def _remote_config(name: str, addr: P2PAddress) -> tuple[str | None, str | None, str]:
    """(token, expected server UUID, our UUID) for remote ``name`` of ``$GIT_DIR``.

    The token comes from ``GIT_ANNEX_P2P_AUTHTOKEN``, else
    ``remote.<name>.annexsync-p2p-authtoken``, else the creds file that
    ``git annex p2p --link`` wrote (so a remote linked by git-annex works).
    """
    token = os.environ.get("GIT_ANNEX_P2P_AUTHTOKEN") or None
    expect: str | None = None
    ours = ""
    gitdir = os.environ.get("GIT_DIR")
    if gitdir:
        from dulwich.repo import Repo

        with contextlib.suppress(Exception):
            cfg = Repo(gitdir).get_config_stack()

            def get(section: tuple[bytes, ...], item: bytes) -> str | None:
                with contextlib.suppress(KeyError):
                    return bytes(cfg.get(section, item)).decode()
                return None

            sec = (b"remote", name.encode())
            token = token or get(sec, b"annexsync-p2p-authtoken")
            expect = get(sec, b"annex-uuid")
            ours = get((b"annex",), b"uuid") or ""
        if not token:
            with contextlib.suppress(OSError, IndexError):
                creds = Path(gitdir) / "annex" / "creds" / creds_file_name(addr)
                token = creds.read_text().split()[0]
    return token, expect, ours or str(uuidlib.uuid4())


def git_remote_main(argv: list[str] | None = None) -> int:
    """``git-remote-annexsync <remote> <netname>:<address>`` (gitremote-helpers(7))."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2:
        print("usage: git-remote-annexsync <remote> <netname>:<address>", file=sys.stderr)
        return 2
    try:
        addr = parse_p2p_url(args[1])
    except ValueError as e:
        print(f"git-remote-annexsync: {e}", file=sys.stderr)
        return 2
    gate = _paired_gate(addr) if addr.netname == PAIRED_NETNAME else None
    if addr.netname == PAIRED_NETNAME and gate is None:
        print(f"git-remote-annexsync: {args[0]} is the paired device {addr.address}; the "
              "running annexsync syncs with it, plain git cannot reach it", file=sys.stderr)
        return 1
    while True:
        cmd = _read_command()
        if cmd == "capabilities":
            _write("connect\n\n")
        elif cmd.startswith("connect "):
            try:
                service = Service(cmd.removeprefix("connect ").strip())
            except ValueError:
                print(f"git-remote-annexsync: unsupported service {cmd!r}", file=sys.stderr)
                return 1
            if gate is not None:
                return _run_gate(gate, service)
            return _run_tunnel(args[0], addr, service)
        elif cmd == "":
            return 0
        else:
            print(f"git-remote-annexsync: unsupported command {cmd!r}", file=sys.stderr)
            return 1


def _paired_gate(addr: P2PAddress) -> Path | None:
    """The gate socket of the annexsync process that runs this git, if any."""
    from core.devices.remote import GATES_ENV, gate_path

    gates, gitdir = os.environ.get(GATES_ENV), os.environ.get("GIT_DIR")
    if not gates or not gitdir:
        return None
    path = gate_path(Path(gates), addr.address, gitdir)
    return path if path.exists() else None


def _run_gate(gate: Path, service: Service) -> int:
    try:
        return asyncio.run(_gate_relay(gate, service))
    except (CoreError, OSError) as e:
        print(f"git-remote-annexsync: {e}", file=sys.stderr)
        return 1


async def _gate_relay(gate: Path, service: Service) -> int:
    from core.p2p.transport import stdio_link

    reader, writer = await asyncio.open_unix_connection(str(gate))
    try:
        writer.write(f"connect {service.value}\n".encode())
        await writer.drain()
        async with asyncio.timeout(CONNECTDONE_WAIT * 6):  # login, presence, handshake
            answer = (await reader.readline()).decode("utf-8", "replace").strip()
        if answer != "ok":
            raise RemoteUnavailable(answer.removeprefix("error ") or "the session ended")
        local = await stdio_link()
        try:
            _write("\n")  # connection established: git starts talking
            async with asyncio.TaskGroup() as tg:
                up = tg.create_task(_splice(local.reader, writer))
                await _splice(reader, local.writer)  # the gate closed: git's service is over
                up.cancel()
        finally:
            await local.aclose()
    finally:
        writer.close()
    return 0


def _run_tunnel(remote: str, addr: P2PAddress, service: Service) -> int:
    token, expect, ours = _remote_config(remote, addr)
    if not token:
        print(f"git-remote-annexsync: no P2P auth token for {remote} "
              "(remote.<name>.annexsync-p2p-authtoken or GIT_ANNEX_P2P_AUTHTOKEN)",
              file=sys.stderr)  # fmt: skip
        return 1
    try:
        code = asyncio.run(_tunnel(addr, service, token, expect, ours))
    except CoreError as e:
        print(f"git-remote-annexsync: {e}", file=sys.stderr)
        return 1
    return 0 if code == 0 else 1


async def _tunnel(addr: P2PAddress, service: Service, token: str,
                  expect: str | None, ours: str) -> int:  # fmt: skip
    from core.p2p.remote import P2PClient
    from core.p2p.transport import stdio_link

    client = await P2PClient.connect(await open_p2p_link(addr), our_uuid=ours,
                                     expect_uuid=expect, token=token)  # fmt: skip
    local = await stdio_link()
    try:
        _write("\n")  # connection established: git starts talking
        return await client.connect_service(service, local.reader, local.writer)
    finally:
        await client.aclose()
        await local.aclose()


# --- git-annex-p2p-annexsync-tcp: the generic P2P network helper ----------------------


def net_helper_main(argv: list[str] | None = None) -> int:
    """``address`` | ``HOST:PORT`` | ``HOST:PORT SOCKETFILE`` (see the module docstring)."""
    args = sys.argv[1:] if argv is None else argv
    name = HELPER_PREFIX + NETNAME
    if args == ["address"]:
        addrs = os.environ.get("ANNEXSYNC_P2P_ADDRESS", "").split()
        if not addrs:
            print(f"{name}: set ANNEXSYNC_P2P_ADDRESS=HOST:PORT to listen", file=sys.stderr)
            return 1
        print("\n".join(addrs))
        return 0
    if len(args) not in (1, 2):
        print(f"usage: {name} address | HOST:PORT [SOCKETFILE]", file=sys.stderr)
        return 2
    try:
        host, port = P2PAddress(NETNAME, args[0]).host_port()
    except ValueError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 2
    try:
        if len(args) == 1:
            return asyncio.run(_stdio_to_tcp(host, port))
        asyncio.run(_tcp_to_socket(host, port, args[1]))
    except (OSError, RemoteUnavailable) as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 1
    return 0


async def _splice(reader: ByteReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then half-close; bounded per write."""
    with contextlib.suppress(ConnectionError, OSError):
        while chunk := await reader.read(RELAY_CHUNK):
            writer.write(chunk)
            async with asyncio.timeout(CONNECTDONE_WAIT * 30):
                await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


async def _stdio_to_tcp(host: str, port: int) -> int:
    from core.p2p.transport import stdio_link

    peer = await open_tcp(host, port)
    local = await stdio_link()
    try:
        async with asyncio.TaskGroup() as tg:
            up = tg.create_task(_splice(local.reader, peer.writer))
            await _splice(peer.reader, local.writer)  # the peer closed: we are done
            up.cancel()
    finally:
        await peer.aclose()
        await local.aclose()
    return 0


async def _tcp_to_socket(host: str, port: int, socketfile: str) -> None:
    async def accepted(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_unix_connection(socketfile)
        except OSError as e:
            logger.warning("cannot reach %s: %s", socketfile, e)
            w.close()
            return
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_splice(r, uw))
                tg.create_task(_splice(ur, w))
        finally:
            for wr in (w, uw):
                with contextlib.suppress(Exception):
                    wr.close()

    server = await asyncio.start_server(accepted, host, port)
    async with server:
        await server.serve_forever()


__all__ = [
    "CONNECTDONE_WAIT", "DIRECT_NETNAMES", "creds_file_name", "INSTEADOF", "NETNAME", "P2PAddress",
    "git_remote_main", "net_helper_main", "open_p2p_link", "parse_p2p_url", "relay_connect",
    "serve_connect", "service_argv",
]  # fmt: skip
