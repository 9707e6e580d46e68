"""``annexsync xmpp login|logout|buddies``: the XMPP account from the command line.

Through the running instance when one runs (its socket, ``core.instance``),
else by itself.  Secrets never on the command line: the password comes from
stdin (``--password-stdin``) or a prompt, and travels to a running instance
over its private socket (mode 0600).  ``login`` checks the login before
anything is stored (``core.xmpp.account``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time
from pathlib import Path
from typing import Any

from core.errors import CoreError
from core.instance import request
from core.settings import load_settings, resolve_config_dir
from core.status import DeviceStatus, Status, XmppStatus, status_from_json

LOGIN_TIMEOUT = 60.0  # the instance's answer includes a real login (20 s connect bound)
BUDDIES_SETTLE = 3.0  # standalone: how long presence may take to arrive


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = sub.add_parser("xmpp", help="the XMPP account your devices meet on",
                        description="The XMPP account your devices meet on.")
    sp.add_argument("--config-dir", type=Path, default=argparse.SUPPRESS)
    xs = sp.add_subparsers(dest="xmpp_command", metavar="ACTION", required=True)
    lp = xs.add_parser("login", help="check a login, then keep it (password in the keyring)")
    lp.add_argument("jid", metavar="JID")
    lp.add_argument("--password-stdin", action="store_true",
                    help="read the password from the first line of stdin")
    lp.add_argument("--server", metavar="HOST[:PORT]", help="when DNS does not name the server")
    lp.add_argument("--ca-file", metavar="PEM", help="CA certificate of a self-hosted server")
    lp.set_defaults(func=cmd_login)
    xs.add_parser("logout", help="stop using the account; remove its password").set_defaults(
        func=cmd_logout)
    bp = xs.add_parser("buddies", help="list the devices seen over XMPP and the paired ones")
    bp.add_argument("--json", action="store_true")
    bp.set_defaults(func=cmd_buddies)


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise CoreError("no terminal to ask for the password: use --password-stdin")
    return getpass.getpass(f"Password for {args.jid}: ")


def _ask(config_dir: Path, message: dict[str, Any], timeout: float = 10.0) -> dict[str, Any] | None:
    reply = request(config_dir, message, timeout)
    if reply is not None and not reply.get("ok"):
        raise CoreError(str(reply.get("error")))
    return reply


def cmd_login(args: argparse.Namespace) -> int:
    from core.xmpp.client import XmppConfig  # slixmpp loads only when needed

    config_dir = resolve_config_dir(getattr(args, "config_dir", None))
    ca = str(Path(args.ca_file).absolute()) if args.ca_file else None
    cfg = XmppConfig(args.jid.strip(), _read_password(args), args.server, ca)
    cfg.check()
    message = {"op": "xmpp-login", "jid": cfg.jid, "password": cfg.password,
               "server": cfg.server, "ca_file": cfg.ca_file}  # fmt: skip
    if _ask(config_dir, message, LOGIN_TIMEOUT) is None:
        from core.xmpp import account

        asyncio.run(account.login(config_dir, cfg))
    print(f"annexsync: signed in as {cfg.jid}; the password is in the keyring")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    config_dir = resolve_config_dir(getattr(args, "config_dir", None))
    if _ask(config_dir, {"op": "xmpp-logout"}) is None:
        from core.xmpp import account

        asyncio.run(account.logout(config_dir))
    print("annexsync: signed out; the password was removed from the keyring")
    return 0


def cmd_buddies(args: argparse.Namespace) -> int:
    config_dir = resolve_config_dir(getattr(args, "config_dir", None))
    reply = _ask(config_dir, {"op": "status"})
    status = status_from_json(reply["status"]) if reply else asyncio.run(_standalone(config_dir))
    if args.json:
        print(json.dumps({"xmpp": status.xmpp.__dict__,
                          "devices": [d.__dict__ for d in status.devices]}))  # fmt: skip
        return 0
    x = status.xmpp
    print(f"account: {x.account or 'none'} ({x.state})" + (f": {x.error}" if x.error else ""))
    for d in status.devices:
        print(_line(d))
    if not status.devices:
        print("no devices seen yet")
    return 0


def _line(d: DeviceStatus) -> str:
    seen = time.strftime("%Y-%m-%d %H:%M", time.localtime(d.last_seen)) if d.last_seen else "never"
    flags = ", ".join(f for f, on in (("paired", d.paired), ("waiting", d.waiting)) if on)
    return (f"{d.name}\t{d.presence}\t{d.account or '-'}\tlast seen {seen}"
            + (f"\t{flags}" if flags else ""))  # fmt: skip


async def _standalone(config_dir: Path) -> Status:
    """No instance runs: sign in briefly, collect presence, sign out."""
    from core.daemon.timings import Timings
    from core.devices.hub import DeviceHub, device_statuses
    from core.devices.paired import PairedStore
    from core.xmpp import account

    settings = load_settings(config_dir)
    if await asyncio.to_thread(account.load_config, settings) is None:
        why = "no password in the keyring: sign in again" if settings.xmpp_account else None
        return Status(xmpp=XmppStatus(settings.xmpp_account, "off", why),
                      devices=device_statuses((), PairedStore(config_dir, "").records(), {}))
    hub = DeviceHub(config_dir, lambda: settings, timings=Timings(), on_change=lambda: None,
                    paused=lambda: False)  # fmt: skip
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(hub.run())
        deadline = time.monotonic() + 25  # the login itself is bounded by 20 s
        while time.monotonic() < deadline and hub.error is None:
            link = hub.link
            if link is not None and link.sessions and link.state.value != "connecting":
                if link.state.value == "online":
                    await asyncio.sleep(BUDDIES_SETTLE)
                break
            await asyncio.sleep(0.05)
        result = Status(xmpp=hub.xmpp_status(), devices=hub.statuses())
        task.cancel()
    return result
