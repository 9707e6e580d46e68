"""``annexsync pair show|join|list|forget``: pairing from the command line.

``show`` makes a code, prints it on its own line (and as a QR code), holds
the window open on the LAN and waits; ``join`` takes the code (argument, or
a line on stdin so it stays out of the process list), finds the window by
DNS-SD or ``--host HOST:PORT`` and pairs.  ``--xmpp`` holds or finds the window
on the XMPP account instead; ``show --lan --xmpp`` holds it on both at once
(``everywhere``).  Both end with the outcome in
words: "paired with device NAME", or why not (wrong code, expired, too many
attempts, peer gone), exit 0 or 1.

A success tells a running instance (``devices-changed``), which syncs at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from core.errors import CoreError

SHOW_TIMEOUT = 600.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = sub.add_parser("pair", help="pair this device with another one by a short code",
                        description="Pair this device with another one by a short code.")
    sp.add_argument("--config-dir", type=Path, default=argparse.SUPPRESS)
    ps = sp.add_subparsers(dest="pair_command", metavar="ACTION", required=True)
    show = ps.add_parser("show", help="show a code and wait for the other device to join")
    _common(show)
    show.add_argument("--timeout", type=float, default=SHOW_TIMEOUT, metavar="S",
                      help="how long the code stays valid (default 600 s)")
    show.add_argument("--words", type=int, choices=(2, 3), default=2,
                      help="words in the code (3 is stronger, longer to say)")
    show.add_argument("--no-announce", action="store_true",
                      help="do not announce on the LAN (the other device uses --host)")
    show.add_argument("--xmpp", nargs="?", const="", metavar="FRIEND_JID",
                      help="hold the window on the XMPP account instead of the LAN: for your "
                           "own devices, or for the friend named (they become contacts); with "
                           "--lan, on both at once (the first device to join wins)")
    show.set_defaults(func=cmd_show)
    join = ps.add_parser("join", help="join the device showing CODE")
    join.add_argument("code", nargs="?", metavar="CODE",
                      help="the code the other device shows (default: read a line from stdin)")
    join.add_argument("--host", metavar="HOST:PORT", help="where the other device listens "
                      "(when the LAN does not carry DNS-SD)")
    join.add_argument("--xmpp", nargs="?", const="", metavar="FRIEND_JID",
                      help="look among the XMPP account's devices and contacts instead of the "
                           "LAN (or only the friend named)")
    _common(join)
    join.set_defaults(func=cmd_join)
    ls = ps.add_parser("list", help="list the paired devices")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    fg = ps.add_parser("forget", help="forget a paired device (its key, record and remotes)")
    fg.add_argument("device", metavar="DEVICE", help="its name or device id")
    fg.set_defaults(func=cmd_forget)
    # the names for the same two commands
    dv = sub.add_parser("devices", help="list the paired devices (as `pair list`)")
    dv.add_argument("--config-dir", type=Path, default=argparse.SUPPRESS)
    dv.add_argument("--json", action="store_true")
    dv.set_defaults(func=cmd_list)
    fo = sub.add_parser("forget", help="forget a paired device (as `pair forget`)")
    fo.add_argument("--config-dir", type=Path, default=argparse.SUPPRESS)
    fo.add_argument("device", metavar="DEVICE", help="its name or device id")
    fo.set_defaults(func=cmd_forget)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lan", action="store_true",
                   help="over the LAN (the default; show: with --xmpp, on both at once)")
    p.add_argument("--to", metavar="JID", help="over XMPP with this friend (as --xmpp JID)")
    p.add_argument("--repo", action="append", type=Path, default=[], metavar="PATH",
                   help="a repository to share (repeat; the same number, in the same order, "
                        "on both devices)")
    p.add_argument("--interface", metavar="ADDR",
                   help="the address to listen and announce on (default: the "
                        "pairing_interface setting, else all)")
    p.add_argument("--step-timeout", type=float, default=None, help=argparse.SUPPRESS)


class _Context:
    """What both ends need: config dir, identity, settings, the repositories."""

    def __init__(self, args: argparse.Namespace) -> None:
        from core.devices.identity import load_or_create
        from core.pairing.result import repo_offer
        from core.settings import load_settings, resolve_config_dir

        self.config_dir = resolve_config_dir(getattr(args, "config_dir", None))
        self.settings = load_settings(self.config_dir)
        self.identity = load_or_create(self.config_dir)
        tops = [repo_offer(p) for p in args.repo]
        self.repos = [top for top, _ in tops]
        self.offers = [offer for _, offer in tops]
        self.interface = args.interface or self.settings.pairing_interface or ""
        self.step_timeout = args.step_timeout

    def hello(self) -> Any:
        from core.pairing.result import own_hello

        return own_hello(self.identity, self.offers, self.settings)

    def storage(self) -> Any:
        from core.pairing import result
        from core.pairing.lan import Storage

        own_id = self.identity.device_id
        account = self.settings.xmpp_account
        return Storage(lambda r: result.store(self.config_dir, own_id, r, self.repos,
                                              own_account=account),
                       lambda s: result.undo(self.config_dir, own_id, s))

    def xmpp(self) -> Any:
        """The configured XMPP account (password from the keyring)."""
        from core.xmpp.account import load_config

        cfg = load_config(self.settings)
        if cfg is None:
            raise CoreError("no XMPP account is set up here: annexsync xmpp login JID")
        return cfg

    def options(self) -> dict[str, Any]:
        return {} if self.step_timeout is None else {"step_timeout": self.step_timeout}


def _say(text: str) -> None:
    print(f"annexsync: {text}", file=sys.stderr, flush=True)


def _outcome(coro: Any) -> int:
    from core.pairing.machine import PairingFailed

    try:
        result = asyncio.run(coro)
    except PairingFailed as e:
        print(f"annexsync: not paired: {e}", flush=True)
        return 1
    peer = result.peer
    print(f"annexsync: paired with device {peer.name} ({peer.device_id})", flush=True)
    return 0


def _tell_instance(args: argparse.Namespace) -> None:
    """A running annexsync reads the changed records at once (it would within
    ``devices_refresh`` anyway), so the first sync with a new device starts now."""
    from core.instance import request
    from core.settings import resolve_config_dir

    try:
        request(resolve_config_dir(getattr(args, "config_dir", None)), {"op": "devices-changed"},
                timeout=30.0)
    except CoreError as e:
        print(f"annexsync: the running annexsync will notice within a minute ({e})",
              file=sys.stderr)


def cmd_show(args: argparse.Namespace) -> int:
    import segno

    from core.pairing.lan import show
    from core.pairing.machine import PairingWindow
    from core.pairing.words import make_code

    ctx = _Context(args)
    code = make_code(args.words)
    window = PairingWindow(code, time.monotonic(), args.timeout)
    print(f"Type this code on the other device (valid {args.timeout:g} s):", flush=True)
    print(code, flush=True)
    segno.make(str(code), error="m").terminal(out=sys.stdout, compact=True)

    def listening(host: str, port: int) -> None:
        print(f"listening on {host or '0.0.0.0'}:{port}", flush=True)

    friend = args.to or args.xmpp or None
    if args.xmpp is not None or args.to:
        exit_code = _outcome(_show_xmpp(window, ctx, friend, args, listening))
    else:
        exit_code = _outcome(show(window, ctx.hello(), ctx.storage(), host=ctx.interface,
                              on_listening=listening, report=_say,
                              announce=not args.no_announce, **ctx.options()))  # fmt: skip
    if exit_code == 0:
        _tell_instance(args)
    return exit_code


async def _show_xmpp(window: Any, ctx: _Context, friend: str | None, args: argparse.Namespace,
                     listening: Any) -> Any:  # fmt: skip
    """The window on the XMPP account, and with ``--lan`` on the LAN too."""
    from core.pairing import everywhere, xmpp

    def waiting(jid: str) -> None:
        who = f"{friend} (they become your contact)" if friend else "your devices on this account"
        print(f"waiting over XMPP as {jid} for {who}", flush=True)

    cfg = await asyncio.to_thread(ctx.xmpp)
    if args.lan:
        return await everywhere.show(window, ctx.hello(), ctx.storage(), cfg, host=ctx.interface,
                                     friend=friend, announce=not args.no_announce, report=_say,
                                     on_listening=listening, on_xmpp=waiting, **ctx.options())  # fmt: skip
    return await xmpp.show(window, ctx.hello(), ctx.storage(), cfg, friend=friend, report=_say,
                           on_listening=waiting, **ctx.options())  # fmt: skip


def _read_code(args: argparse.Namespace) -> str:
    if args.code:
        return str(args.code)
    if sys.stdin.isatty():
        return input("Code shown on the other device: ")
    return sys.stdin.readline().strip()


def cmd_join(args: argparse.Namespace) -> int:
    from core.pairing.lan import parse_hostport
    from core.pairing.machine import PairingMachine
    from core.pairing.words import parse_code

    code = parse_code(_read_code(args))  # BadCode is a CoreError: said in words, exit 1
    try:
        targets = [parse_hostport(args.host)] if args.host else []
    except ValueError as e:
        raise CoreError(str(e)) from None
    ctx = _Context(args)
    machine = PairingMachine.joiner(code, ctx.hello())
    if args.xmpp is not None or args.to:
        exit_code = _outcome(_join_xmpp(machine, ctx, args.to or args.xmpp or None))
    else:
        exit_code = _outcome(_join(code.nameplate, machine, ctx, targets))
    if exit_code == 0:
        _tell_instance(args)
    return exit_code


async def _join_xmpp(machine: Any, ctx: _Context, friend: str | None) -> Any:
    from core.pairing import xmpp

    return await xmpp.join(machine, ctx.storage(), await asyncio.to_thread(ctx.xmpp),
                           friend=friend, report=_say, **ctx.options())


async def _join(nameplate: int, machine: Any, ctx: _Context, targets: list[tuple[str, int]]) -> Any:
    from core.pairing.lan import discover, join
    from core.pairing.machine import PairingFailed, Reason

    if not targets:
        _say(f"looking on this network for the device showing number {nameplate}...")
        targets = await discover(nameplate, ctx.interface)
        if not targets:
            raise PairingFailed(Reason.NO_WINDOW, f"no device on this network announces number "
                                f"{nameplate}; name it with --host HOST:PORT")  # fmt: skip
    return await join(machine, ctx.storage(), targets=targets, report=_say, **ctx.options())


def _store(args: argparse.Namespace) -> Any:
    from core.devices.identity import load_identity
    from core.devices.paired import PairedStore
    from core.settings import resolve_config_dir

    config_dir = resolve_config_dir(getattr(args, "config_dir", None))
    ident = load_identity(config_dir)
    return PairedStore(config_dir, ident.device_id if ident else "")


def cmd_list(args: argparse.Namespace) -> int:
    records = _store(args).records()
    if args.json:
        print(json.dumps([r.to_json() for r in records]))
        return 0
    for r in records:
        repos = ", ".join(f"{x.path} <-> {x.peer_uuid}" for x in r.repos) or "no repositories"
        print(f"{r.name}\t{r.device_id}\t{repos}")
    if not records:
        print("no paired devices")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    store = _store(args)
    found = [r for r in store.records() if args.device in (r.device_id, r.name)]
    if len(found) != 1:
        why = "no paired device" if not found else "several paired devices"
        raise CoreError(f"{why} named {args.device!r}; use its device id (annexsync pair list)")
    store.forget(found[0].device_id)
    _tell_instance(args)
    print(f"annexsync: forgot {found[0].name} ({found[0].device_id}): its key, record and remotes")
    return 0
