"""``annexsync p2p-listen``: the TCP listener as a command and as a daemon service.

Spec: p2p-protocol.md 4.2 (networked peers, AUTH, ``p2p --gen-addresses``
and ``--link``).

Theory of operation
-------------------
``serve_repositories`` opens every repository it is given as a
``ServedRepo``, runs one ``Listener`` for all of them on ``HOST:PORT`` until
cancelled, and closes them in ``finally``.  A peer's AUTH token picks the
repository it reaches (``Listener.find``).  The command runs it in the
foreground; the daemon runs it as a service when the setting ``p2p_listen``
is set, over every synced repository (``core.api``), and then serves paired
devices' Noise sessions on the same port too (``core.p2p.sniff``).

How a real git-annex peer links (the network is ``annexsync-tcp``, whose
helper ``git-annex-p2p-annexsync-tcp`` we install; see ``core.p2p.tunnel``):

1. in a served repository, ``ANNEXSYNC_P2P_ADDRESS=HOST:PORT git annex p2p
   --enable annexsync-tcp`` stores the address (git-annex asks the helper's
   ``address``), and ``git annex p2p --gen-addresses`` prints
   ``p2p-annex::annexsync-tcp:HOST:PORT:TOKEN`` and writes the token to
   ``annex/creds/p2pauth``, which the listener reads on every AUTH (no
   restart needed);
2. on the peer, ``git annex p2p --link`` reads that address, connects
   through the helper, sends AUTH and records the UUID of AUTH-SUCCESS;
   from then on ``git annex get/copy`` and ``git fetch/push`` (through
   git-annex's ``git-remote-p2p-annex`` and CONNECT) reach us.

A gateway gives out its clusters and proxied repositories the same way:
``annexsync p2p-gen-address mycluster`` in the gateway makes a token that
opens only that UUID (``listener.add_proxied_token``) and prints the
addresses carrying it; a peer that links one reaches the cluster itself
(``AUTH-SUCCESS <cluster uuid>``), for content only: git goes to the
gateway's own address.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from core.daemon.threads import start_thread_pool
from core.errors import CoreError, RepoError
from core.p2p.listener import (
    AUTH_TIMEOUT,
    MAX_CONNECTIONS,
    Listener,
    PairedHandler,
    add_proxied_token,
)
from core.p2p.serving import ServedRepo
from core.p2p.tunnel import NETNAME, P2PAddress
from core.repo.repository import AnnexRepo

logger = logging.getLogger(__name__)

DEFAULT_BIND = "0.0.0.0:9416"  # next to p2phttp's 9417 and git's 9418


class ListenError(CoreError):
    """The listener cannot start: a bad address, or nothing to serve."""


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as (host, port); port 0 picks a free one.

    Raises:
        ListenError: not HOST:PORT.
    """
    host, _, port = text.rpartition(":")
    if "/" in port:
        raise ListenError(f"{text!r} is not HOST:PORT")
    if port == "0" and host:
        return host.strip("[]"), 0
    try:
        return P2PAddress(NETNAME, text).host_port()
    except ValueError as e:
        raise ListenError(f"{text!r} is not HOST:PORT") from e


def open_served(paths: Iterable[str | Path]) -> list[ServedRepo]:
    """The repositories that can be served; the others are logged and skipped.

    Raises:
        ListenError: none of them can be served.
    """
    served: list[ServedRepo] = []
    for path in paths:
        try:
            served.append(ServedRepo(AnnexRepo.open(path, auto_init=False)))
        except RepoError as e:
            logger.warning("not serving %s: %s", path, e)
    if not served:
        raise ListenError("no git-annex repository to serve")
    return served


async def serve_repositories(
    paths: Iterable[str | Path],
    bind: str,
    *,
    max_connections: int = MAX_CONNECTIONS,
    auth_timeout: float = AUTH_TIMEOUT,
    on_started: Callable[[Listener], None] | None = None,
    paired: PairedHandler | None = None,
) -> None:
    """Serve ``paths`` on ``bind`` until cancelled; ``paired`` serves paired
    devices' sessions on the same port (the daemon's ``DeviceHub.serve_lan``).

    Raises:
        ListenError: a bad address, or no repository to serve.
        OSError: the address is in use or not ours.
    """
    host, port = parse_bind(bind)
    served = await asyncio.to_thread(open_served, paths)
    try:
        listener = Listener(served, host=host, port=port, max_connections=max_connections,
                            auth_timeout=auth_timeout, paired=paired)  # fmt: skip
        await listener.run(on_started=on_started)
    finally:
        for s in served:
            await asyncio.to_thread(s.repo.close)


# --- tokens for what a gateway proxies -------------------------------------------------


def enabled_addresses(gitdir: Path) -> list[str]:
    """``HOST:PORT`` of each ``annexsync-tcp`` address ``git annex p2p --enable``
    stored (``annex/creds/p2paddrs``, one ``p2p-annex::`` address a line)."""
    try:
        lines = (gitdir / "annex" / "creds" / "p2paddrs").read_text().split()
    except OSError:
        return []
    prefix = P2PAddress(NETNAME, "").url()
    return [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]


def gen_proxied_address(repo: AnnexRepo, target: str, addresses: list[str]) -> list[str]:
    """A new token opening ``target`` (a cluster or proxied repository of this
    gateway, by its name in proxy.log or its UUID) on the listener, and the
    ``p2p-annex::annexsync-tcp:HOST:PORT/NAME:TOKEN`` addresses that carry it.

    Raises:
        ListenError: this repository does not proxy ``target``, or there is
            no address to give out.
    """
    from core.p2p.gateway import NotProxied, proxied_target

    entries = repo.state.proxies().get(repo.uuid, frozenset())
    uuid = next((p.uuid for p in sorted(entries, key=lambda p: (p.uuid, p.name))
                 if target in (p.uuid, p.name)), None)  # fmt: skip
    if uuid is None:
        raise ListenError(f"{target} is not a cluster or proxied remote of this repository "
                          "(its proxy.log line, written by updatecluster / updateproxy)")  # fmt: skip
    try:
        proxied_target(repo, uuid)
    except NotProxied as e:
        raise ListenError(str(e)) from None
    addresses = addresses or enabled_addresses(repo.gitdir)
    if not addresses:
        raise ListenError(f"no {NETNAME} address: give --address HOST:PORT, or run "
                          f"`ANNEXSYNC_P2P_ADDRESS=HOST:PORT git annex p2p --enable {NETNAME}`")
    for a in addresses:
        parse_bind(a)
    token = secrets.token_hex(32)
    add_proxied_token(repo.gitdir, token, uuid)
    name = next(p.name for p in entries if p.uuid == uuid)  # the label (``P2PAddress.host_port``)
    return [f"{P2PAddress(NETNAME, f'{a}/{name}').url()}:{token}" for a in addresses]


def cmd_p2p_gen_address(args: argparse.Namespace) -> int:
    from core.cli import _repo

    repo = _repo(args)
    try:
        lines = gen_proxied_address(repo, args.target, args.address or [])
    finally:
        repo.close()
    print(f"These addresses allow access to {args.target} through this repository. Only share "
          "them with people you trust with that access.", file=sys.stderr)  # fmt: skip
    print("\n".join(lines))
    return 0


# --- the command ---------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add ``p2p-listen`` to an argparse subparsers object."""
    sp: argparse.ArgumentParser = subparsers.add_parser(
        "p2p-listen", help="serve repositories to P2P peers over TCP (p2p-annex:: remotes)",
        description="Serve these repositories (default: the current one) to networked P2P "
                    "peers over TCP.  A peer's AUTH token picks the repository; make one with "
                    "`ANNEXSYNC_P2P_ADDRESS=HOST:PORT git annex p2p --enable annexsync-tcp` and "
                    "`git annex p2p --gen-addresses` in that repository.",
    )  # fmt: skip
    sp.add_argument("repos", nargs="*", type=Path, help="repositories to serve")
    sp.add_argument("--bind", default=DEFAULT_BIND, help=f"HOST:PORT (default {DEFAULT_BIND})")
    sp.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS)
    sp.set_defaults(func=cmd_p2p_listen)
    sp = subparsers.add_parser(
        "p2p-gen-address", help="give out a cluster or proxied remote of this gateway over the "
                                "P2P listener",
        description="Make a token that opens TARGET (a cluster or proxied remote of this "
                    "gateway, by name or UUID) on `annexsync p2p-listen`, and print the "
                    "p2p-annex::annexsync-tcp:HOST:PORT/NAME:TOKEN addresses a peer links with "
                    "`git annex p2p --link`.")  # fmt: skip
    sp.add_argument("target", help="cluster or proxied remote: its name in proxy.log, or UUID")
    sp.add_argument("--address", action="append", metavar="HOST:PORT",
                    help="the listener's address (default: those `git annex p2p --enable "
                         f"{NETNAME}` stored)")  # fmt: skip
    sp.set_defaults(func=cmd_p2p_gen_address)


def _announce(listener: Listener) -> None:
    where = f"{listener.host}:{listener.port}"
    print(f"p2p-listen listening on {where} for {len(listener.repos)} "
          f"{'repository' if len(listener.repos) == 1 else 'repositories'}",
          file=sys.stderr, flush=True)  # fmt: skip


async def _main(args: argparse.Namespace) -> int:
    if args.max_connections < 1:
        raise ListenError("--max-connections must be at least 1")
    paths = [p.absolute() for p in args.repos] or [Path.cwd()]
    start_thread_pool()  # a thread count that stays what it is at start
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, task.cancel)
    try:
        await serve_repositories(paths, args.bind, max_connections=args.max_connections,
                                 on_started=_announce)  # fmt: skip
    except OSError as e:
        raise ListenError(f"cannot listen on {args.bind}: {e.strerror or e}") from e
    return 0


def cmd_p2p_listen(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT, which cancel the main task (exit 0)."""
    try:
        return asyncio.run(_main(args))
    except asyncio.CancelledError:  # the signal's cancel, seen outside the loop
        return 0


__all__ = ["DEFAULT_BIND", "ListenError", "cmd_p2p_gen_address", "cmd_p2p_listen",
           "enabled_addresses", "gen_proxied_address", "open_served", "parse_bind", "register",
           "serve_repositories"]  # fmt: skip
