"""``annexsync p2phttp``: the command line of the P2P HTTP server.

Spec: the reference notes p2phttp.md section 3 (options), 6 (users).

The options are git-annex's, so ``git annex p2phttp ...`` command lines work
unchanged.  Differences, on purpose:

- ``-J1`` is accepted (git-annex needs a spare thread for itself; we do not).
  Without ``-J`` and ``annex.jobs`` we refuse to start with git-annex's
  message, so scripts behave the same.
- ``--port 0`` picks a free port; the address actually bound is printed on
  stderr (``p2phttp listening on http://HOST:PORT``), which tests and the
  benchmark read.
- ``--cpus`` is accepted and has no effect.
- Clusters and proxied local repositories are served (``proxy``).
  ``--proxyconnections`` (idle connections kept per cluster) defaults to
  ``-J`` rather than 1, so a client running ``-J`` jobs does not start new
  node processes for every request; ``--clusterjobs`` (nodes talked to at
  once per request) defaults to every node of the request rather than 1:
  a PUT fans out in parallel (issue 17).  Given, both are honoured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dulwich.config import StackedConfig

from core.cli import jobs_arg
from core.errors import CoreError
from core.p2phttp.auth import AuthPolicy, users_from_env
from core.p2phttp.models import DEFAULT_PORT

if TYPE_CHECKING:  # the server (aiohttp) is imported only when it runs
    from core.p2phttp.server import Settings

logger = logging.getLogger(__name__)

THREADS_PER_JOB = 4  # the gateway and three nodes
JOBS_MESSAGE = "Use -Jn or set annex.jobs to configure the number of worker threads."


class P2PHttpError(CoreError):
    """A startup failure of ``annexsync p2phttp`` (bad options, no repository)."""


def register(subparsers: Any) -> None:
    """Add ``p2phttp`` to an argparse subparsers object."""
    sp: argparse.ArgumentParser = subparsers.add_parser(
        "p2phttp", help="serve repositories over the git-annex P2P HTTP API",
        description="Serve this repository, or every repository below --directory, over "
                    "the git-annex P2P HTTP API (annex+http remotes).",
    )  # fmt: skip
    sp.add_argument("--port", type=int, default=DEFAULT_PORT)
    sp.add_argument("--bind", default=None, help="address to listen on (default: all)")
    sp.add_argument("--socket", type=Path, default=None, help="listen on a unix socket")
    sp.add_argument("--certfile", type=Path)
    sp.add_argument("--privatekeyfile", type=Path)
    sp.add_argument("--chainfile", type=Path, action="append", default=[])
    sp.add_argument("-J", "--jobs", type=jobs_arg, default=None)
    sp.add_argument("--cpus", type=int, default=None)
    sp.add_argument("--authenv", action="store_true")
    sp.add_argument("--authenv-http", action="store_true")
    sp.add_argument("--unauth-readonly", action="store_true")
    sp.add_argument("--unauth-appendonly", action="store_true")
    sp.add_argument("--unauth-nolocking", action="store_true")
    sp.add_argument("--wideopen", action="store_true")
    sp.add_argument("--lockedfiles", type=int, default=100)
    sp.add_argument("--proxyconnections", type=_positive, default=None,
                    help="idle connections kept per cluster (default: -J)")
    sp.add_argument("--clusterjobs", type=_positive, default=None,
                    help="nodes talked to at once per request (default: all)")
    sp.add_argument("--directory", type=Path, action="append", default=[])
    sp.set_defaults(func=cmd_p2phttp)


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _configured_jobs() -> int | None:
    from core.ops.jobs import configured_jobs

    try:
        from dulwich.repo import Repo

        cfg = Repo.discover(".").get_config_stack()
    except Exception:  # noqa: BLE001 - outside a repository: global config only
        cfg = StackedConfig.default()
    return configured_jobs(cfg)


def settings_from_args(args: argparse.Namespace) -> Settings:
    from core.p2phttp.server import Settings

    """Raises: P2PHttpError for inconsistent options."""
    jobs = args.jobs or _configured_jobs()
    if jobs is None:
        raise P2PHttpError(JOBS_MESSAGE)
    if (args.certfile is None) != (args.privatekeyfile is None):
        raise P2PHttpError("--certfile and --privatekeyfile must be used together")
    policy = AuthPolicy(
        users=users_from_env() if (args.authenv or args.authenv_http) else {},
        authenv=args.authenv, authenv_http=args.authenv_http, wideopen=args.wideopen,
        unauth_readonly=args.unauth_readonly, unauth_appendonly=args.unauth_appendonly,
        unauth_nolocking=args.unauth_nolocking,
    )  # fmt: skip
    directories = [d.absolute() for d in args.directory]
    repositories: list[Path] = []
    if not directories:
        from core.repo.repository import AnnexRepo

        try:
            repo = AnnexRepo.open(Path.cwd(), auto_init=False)
        except CoreError as e:
            raise P2PHttpError(f"{e} (or use --directory)") from e
        repositories.append(repo.path)
        repo.close()
    return Settings(repositories=repositories, directories=directories, policy=policy,
                    https=args.certfile is not None, jobs=jobs,
                    locked_files=args.lockedfiles, proxy_connections=args.proxyconnections,
                    cluster_jobs=args.clusterjobs)  # fmt: skip


async def serve(args: argparse.Namespace) -> int:
    from core.daemon.threads import default_workers, start_thread_pool

    settings = settings_from_args(args)
    # a thread count that stays what it is at start; a cluster request keeps
    # the gateway's thread and one per node busy (in-process nodes, ``proxy``)
    start_thread_pool(max(default_workers(), THREADS_PER_JOB * settings.jobs))
    tls = None
    if args.certfile is not None:
        from core.p2phttp.server import ssl_context

        tls = ssl_context(args.certfile, args.privatekeyfile, args.chainfile)
    from core.p2phttp.server import start_server

    running = await start_server(settings, host=args.bind, port=args.port,
                                 socket_path=args.socket, tls=tls)  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    scheme = "https" if tls else "http"
    where = str(args.socket) if args.socket else ", ".join(
        f"{scheme}://{h if ':' not in h else '[' + h + ']'}:{p}" for h, p in running.addresses
    )
    print(f"p2phttp listening on {where}", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await running.aclose()
    return 0


def cmd_p2phttp(args: argparse.Namespace) -> int:
    return asyncio.run(serve(args))


__all__ = ["JOBS_MESSAGE", "P2PHttpError", "cmd_p2phttp", "register", "settings_from_args"]
