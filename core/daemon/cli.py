"""``annexsync daemon`` and ``annexsync status``: the headless front end.

Theory of operation
-------------------
``daemon [REPO ...]`` runs one ``Core`` for the config directory (global
``--config-dir``, else ``$ANNEXSYNC_CONFIG_DIR``, else the platform's).  If
an instance already runs there, the arguments are handed to it over its
socket (``core.instance.hand_over``) and this process exits 0: the running
instance adds the named repositories.  Otherwise each REPO is added (created
when it is not a git repository yet) and the core runs until SIGINT/SIGTERM.

``status [--json]`` asks the running instance; when none runs it reads the
repositories named in the settings directly (``offline_status``): no network
is touched, remotes show as not tried, and the health is *stopped* ("not
running", with what the folders tell), never "everything synced" (issue 18).
The text and the JSON carry the same words: ``Status.headline`` and
``RemoteStatus.state_words``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

from core.errors import CoreError
from core.instance import AlreadyRunning, hand_over, request
from core.remotetypes import RemoteKind
from core.settings import load_settings, resolve_config_dir
from core.status import (
    DeviceStatus,
    RemoteStatus,
    RepoStatus,
    Status,
    XmppStatus,
    status_from_json,
    to_json,
)

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = sub.add_parser("daemon", help="run the sync assistant without a window",
                        description="Run the sync assistant without a window (one per config dir).")
    sp.add_argument("repos", nargs="*", help="repositories to sync (created when missing)")
    sp.add_argument("--config-dir", type=Path, default=argparse.SUPPRESS)
    sp.set_defaults(func=cmd_daemon)
    sp = sub.add_parser("status", help="show what the sync assistant is doing",
                        description="Show what the sync assistant is doing.")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--config-dir", type=Path, default=argparse.SUPPRESS)
    sp.set_defaults(func=cmd_status)


def _config_dir(args: argparse.Namespace) -> Path:
    return resolve_config_dir(getattr(args, "config_dir", None))


def cmd_daemon(args: argparse.Namespace) -> int:
    config_dir = _config_dir(args)
    repos = [str(Path(r).absolute()) for r in args.repos]
    if hand_over(config_dir, repos):
        print(f"annexsync: handed over to the running instance for {config_dir}")
        return 0
    try:
        return asyncio.run(_run_daemon(config_dir, repos))
    except AlreadyRunning:
        # Lost a start-up race with another launch: hand over after all.
        if hand_over(config_dir, repos):
            print(f"annexsync: handed over to the running instance for {config_dir}")
            return 0
        raise


async def _run_daemon(config_dir: Path, repos: list[str]) -> int:
    from core.api import Core
    from core.daemon import jobs

    core = Core(config_dir)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with asyncio.TaskGroup() as tg:
        runner = tg.create_task(core.run(), name="core")
        while core._tg is None and not runner.done():
            await asyncio.sleep(0.01)
        for r in repos:
            if r in core.settings.repositories:
                continue
            try:
                await core.add_repository(r, create=jobs.needs_creation(r))
            except CoreError as e:
                print(f"annexsync: {e}", file=sys.stderr)
        print(f"annexsync: daemon running for {config_dir}", flush=True)
        await stop.wait()
        await core.stop()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    config_dir = _config_dir(args)
    reply = request(config_dir, {"op": "status"})
    if reply is not None and reply.get("ok"):
        status = status_from_json(reply["status"])
        running = True
    else:
        status = offline_status(config_dir)
        running = False
    now = time.time()
    if args.json:
        data = to_json(status)
        data["running"] = running
        data["health"] = status.health(now).value
        data["headline"] = status.headline(now)
        print(json.dumps(data))
        return 0
    print(status.tooltip(now))
    for r in status.repos:
        print(f"{r.path}: {r.uncommitted} uncommitted, {r.queued} queued"
              + (f", error: {r.problem}" if r.problem else ""))
        if r.wanted_note:
            print(f"  {r.wanted_note}")
        for rm in r.remotes:
            via = f" via {rm.via}" if rm.via else ""
            nodes = f", nodes {' '.join(rm.nodes)}" if rm.nodes else ""
            print(f"  {rm.name} ({rm.transport or rm.kind}{via}{nodes}): {rm.state_words()}")
            if rm.wanted_note:
                print(f"    {rm.wanted_note}")
        for cl in r.clusters:
            print(f"  cluster {cl.name}" + (f" via {cl.via}" if cl.via else " (gateway here)")
                  + f": {cl.keys} keys, {cl.bytes} bytes on "
                  + f"{cl.reachable_nodes} of {len(cl.nodes)} nodes reachable")
            for n in cl.nodes:
                state = {True: "reachable", False: "unreachable", None: "not probed"}[n.reachable]
                why = f" ({n.error})" if n.error else ""
                print(f"    {n.name}: {state}{why}, {n.keys} keys, {n.bytes} bytes")
        for c in r.conflicts:
            print(f"  conflict: {c.path}: {', '.join(c.describe_versions())}")
        for t in r.unfinished():
            print(f"  not copied ({t.state}): {t.path}")
    x = status.xmpp
    if x.account:
        print(f"xmpp {x.account}: {x.state}" + (f" ({x.error})" if x.error else ""))
    for d in status.devices:
        flags = [f for f, on in (("paired", d.paired), ("waiting for it", d.waiting)) if on]
        print(f"  device {d.name}: {d.presence}" + (f", {', '.join(flags)}" if flags else ""))
    for session in status.sessions:
        print(f"  {session.text}")
    for p in status.pushes:
        print(f"  {p.line(now)}" + (f" [{p.repo}]" if len(status.repos) > 1 else ""))
    return 0


def offline_status(config_dir: Path) -> Status:
    """Status read from the repositories themselves, when no daemon runs."""
    from core.clusterview import cluster_statuses
    from core.daemon import jobs

    repos = []
    for path in load_settings(config_dir).repositories:
        try:
            f = jobs.facts(path)
            conflicts = jobs.conflicts(f.path)
            repos.append(RepoStatus(
                path=f.path, uuid=f.uuid, description=f.description,
                uncommitted=jobs.count_uncommitted(path),
                remotes=tuple(RemoteStatus(r.name, r.uuid, r.kind.value,
                                           wanted_note=f.wanted_notes.get(r.uuid or ""),
                                           via=r.via, nodes=f.cluster_nodes.get(r.name, ()),
                                           transport=r.transport)
                              for r in (*f.remotes, *f.proxied)
                              if r.kind is not RemoteKind.PAIRED),
                conflicts=conflicts,
                wanted_note=f.wanted_notes.get(f.uuid),
                clusters=cluster_statuses(path, probe_nodes=False),
            ))
        except CoreError as e:
            repos.append(RepoStatus(path=path, uuid="", description="", error=str(e)))
    return Status(repos=tuple(repos), xmpp=_offline_xmpp(config_dir),
                  devices=_offline_devices(config_dir), daemon=False)


def _offline_xmpp(config_dir: Path) -> XmppStatus:
    account = load_settings(config_dir).xmpp_account
    return XmppStatus(account, "offline" if account else "off",
                      "annexsync is not running" if account else None)


def _offline_devices(config_dir: Path) -> tuple[DeviceStatus, ...]:
    """The paired devices from their records (presence unknown: nothing is connected)."""
    from core.devices.hub import device_statuses
    from core.devices.paired import PairedStore

    try:
        records = PairedStore(config_dir, "").records()
    except CoreError as e:
        logger.warning("%s", e)
        return ()
    return tuple(replace(d, presence="unknown")
                 for d in device_statuses((), records, {}))
