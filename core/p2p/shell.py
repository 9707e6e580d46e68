"""The git-annex-shell stand-in: what a git-annex client runs over ssh.

Theory of operation
-------------------
A git-annex client with ``remote.NAME.annex-shell`` set to ``annexsync``
runs, through ssh, ``annexsync 'configlist' DIR`` once to learn the UUID and
then ``annexsync 'p2pstdio' DIR CLIENTUUID --uuid SERVERUUID`` for content
(spec 4.1, 10.1, 12.2).  ``register(subparsers)`` adds these git-annex-shell
subcommands to the annexsync CLI with git-annex-shell's argument syntax:
positional directory and parameters, ``--uuid X``, ``--debug``, and the
old-style ``-- name=value ... --`` fields, which are ignored.

- ``p2pstdio DIR CLIENTUUID [--uuid X]``: serve DIR over stdin/stdout
  (``server.Session``, greeting first).  Startup failures print one line on
  stderr and exit 1 without writing to stdout (spec 4.1).  Local failures
  git-annex-shell dies of mid-session (locked content on REMOVE, a busy
  transfer lock at DATA: ``serving.SessionAborted``) end the same way.
- ``configlist DIR``: print ``annex.uuid=`` and ``core.gcrypt-id=``.  A git
  repository without git-annex prints an empty uuid, as git-annex-shell
  does (observed with 10.20261026).
- ``inannex DIR KEY...``: exit 0 when every key's content is present.
- ``notifychanges DIR``: not available (exit 1 with a message); so are
  NOTIFYCHANGE and CONNECT inside p2pstdio (with ``--uuid`` of a proxied
  repository or a cluster: ``ERROR protocol error``, as git-annex's proxy
  answers, clusters.md 5.10).
- exit 1 also when the session ended on a protocol error or on EOF in the
  middle of a request (a PUT's DATA cut short), as git-annex-shell does.

The environment is git-annex-shell's (spec 4.1): ``GIT_ANNEX_SHELL_READONLY``,
``GIT_ANNEX_SHELL_APPENDONLY``, ``GIT_ANNEX_SHELL_DIRECTORY``.  A leading
``/~/`` or ``~/`` in DIR is the home directory.

``main(argv)`` also accepts the login-shell form ``-c "p2pstdio DIR UUID"``
(``python -m core.p2p.shell -c ...``); the annexsync CLI has no top-level
``-c``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import CoreError
from core.repo.key import Key
from core.repo.repository import AnnexRepo

if TYPE_CHECKING:  # the server side is imported only when it runs
    from core.p2p.gateway import ClusterTarget
    from core.p2p.serving import ServedRepo

logger = logging.getLogger(__name__)

SHELL_COMMANDS = ("p2pstdio", "configlist", "inannex", "notifychanges")


class ShellError(CoreError):
    """A startup failure: printed on stderr, exit 1 (spec 4.1)."""


def resolve_dir(raw: str, env: dict[str, str] | None = None) -> Path:
    """DIR as git-annex-shell reads it: ``/~/x`` and ``~/x`` are in HOME.

    Raises:
        ShellError: ``GIT_ANNEX_SHELL_DIRECTORY`` names another directory.
    """
    e = os.environ if env is None else env
    home = e.get("HOME", str(Path.home()))
    if raw.startswith("/~/"):
        path = Path(home) / raw[3:]
    elif raw.startswith("~/") or raw == "~":
        path = Path(home) / raw[2:]
    elif not raw.startswith("/"):
        path = Path(home) / raw
    else:
        path = Path(raw)
    allowed = e.get("GIT_ANNEX_SHELL_DIRECTORY")
    if allowed and os.path.realpath(allowed) != os.path.realpath(path):
        raise ShellError(f"Only allowed to access {allowed} not {raw}")
    return path


def _open_repo(raw: str) -> AnnexRepo:
    path = resolve_dir(raw)
    try:
        return AnnexRepo.open(path, auto_init=False)
    except CoreError:
        raise ShellError("Not a git-annex or gcrypt repository.") from None


# --- commands -------------------------------------------------------------------


def cmd_p2pstdio(args: argparse.Namespace) -> int:
    if not args.client_uuid:
        raise ShellError("missing UUID parameter")
    repo = _open_repo(args.directory)
    try:
        target = None
        if args.uuid and args.uuid != repo.uuid:
            target = _proxied_target(repo, args.uuid)
        proxied = target is not None
        if isinstance(target, Path):  # a proxied local repository: serve it directly
            repo.close()
            repo = _open_proxied(target, args.uuid)
            target = None
        from core.p2p.serving import ServedRepo, SessionAborted, mode_from_env

        served = ServedRepo(repo, mode=mode_from_env())
        try:
            ended_badly = asyncio.run(_serve_stdio(served, args.client_uuid, target, proxied))
            if ended_badly:  # git-annex-shell exits 1 here too (checked, 10.20261026)
                raise ShellError(ended_badly)
        except SessionAborted as e:  # git-annex-shell's way: EOF, stderr, exit 1 (spec 8)
            raise ShellError(str(e)) from None
        finally:
            served.flush()
    finally:
        repo.close()
    return 0


def _proxied_target(repo: AnnexRepo, uuid: str) -> ClusterTarget | Path:
    """What ``--uuid`` names when it is not this repository (clusters.md 5.1).

    The git-annex branches pushed here are merged first, as git-annex does
    when it reads the branch, so what clients synced (a node's preferred
    content) counts at once; then ``gateway.proxied_target`` decides.
    """
    from core.p2p.gateway import NotProxied, proxied_target

    try:  # what clients pushed (synced/git-annex): node preferred content, nodes (5.13)
        repo.branch.merge_refs()
    except CoreError as e:
        logger.warning("could not merge the git-annex branches: %s", e)
    try:
        return proxied_target(repo, uuid)
    except NotProxied as e:
        raise ShellError(str(e)) from None


def _open_proxied(path: Path, uuid: str) -> AnnexRepo:
    """``gateway.open_proxied``, with git-annex-shell's words for what fails."""
    from core.p2p.gateway import NotProxied, open_proxied

    resolve_dir(str(path))  # GIT_ANNEX_SHELL_DIRECTORY bounds it too, as before
    try:
        return open_proxied(path, uuid)
    except NotProxied as e:
        raise ShellError(str(e)) from None
    except CoreError:
        raise ShellError("Not a git-annex or gcrypt repository.") from None


async def _serve_stdio(served: ServedRepo, client_uuid: str, target: ClusterTarget | None = None,
                       proxied: bool = False) -> str | None:  # fmt: skip
    """Serve one session (as a cluster gateway with ``target``; ``proxied``: a
    repository reached through its gateway, clusters.md 5.10); why it ended badly."""
    from core.p2p.runtime import Channel
    from core.p2p.serving import Session, new_server_connection
    from core.p2p.transport import stdio_server

    link = await stdio_server()
    channel = Channel(new_server_connection(served), link.reader, link.writer, peer="client")
    if target is None:
        session = Session(served, channel, client_uuid=client_uuid, proxied=proxied)
    else:  # a gateway's module only when serving as one: git-annex starts p2pstdio per command
        from core.p2p.gateway import GatewaySession

        session = GatewaySession(served, channel, target, client_uuid=client_uuid)
    try:
        await session.run(greet=True)
    finally:
        await link.aclose()
    return session.ended_badly


def cmd_configlist(args: argparse.Namespace) -> int:
    from dulwich.repo import Repo

    path = resolve_dir(args.directory)
    try:
        git = Repo(str(path))
    except Exception:  # noqa: BLE001 - dulwich raises several kinds here
        raise ShellError(
            f"failed to read git config of git repository on {args.directory}; "
            "perhaps this repository is not set up correctly or has moved"
        ) from None
    try:
        try:
            value = git.get_config().get(b"annex", b"uuid")
            uuid = value.decode() if isinstance(value, bytes) else str(value)
        except KeyError:
            uuid = ""
    finally:
        git.close()
    sys.stdout.write(f"annex.uuid={uuid}\ncore.gcrypt-id=\n")
    sys.stdout.flush()
    return 0


def cmd_inannex(args: argparse.Namespace) -> int:
    repo = _open_repo(args.directory)
    try:
        keys = [Key.parse(k) for k in args.params if not k.startswith("-") and "=" not in k]
        return 0 if keys and all(repo.objects.has(k) for k in keys) else 1
    finally:
        repo.close()


def cmd_notifychanges(args: argparse.Namespace) -> int:
    raise ShellError("change notification not available")


def _guarded(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        if getattr(args, "debug", False):
            logging.getLogger("core.p2p").setLevel(logging.DEBUG)
        try:
            return int(fn(args))
        except ShellError as e:
            print(f"annexsync: {e}", file=sys.stderr)
            return 1

    return run


def strip_fields(args: Sequence[str]) -> list[str]:
    """Drop git-annex-shell's old-style ``-- name=value ... --`` block (spec 4.1)."""
    out = list(args)
    if "--" in out:
        start = out.index("--")
        end = out.index("--", start + 1) if "--" in out[start + 1 :] else len(out)
        del out[start : end + 1]
    return out


class _ShellParser(argparse.ArgumentParser):
    """A subcommand parser that ignores the field block wherever it is."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        cleaned = strip_fields(sys.argv[1:] if args is None else args)
        return super().parse_known_args(_options_last(cleaned), namespace)


def _options_last(args: list[str]) -> list[str]:
    """Positionals first: git-annex puts ``--debug`` between them (observed)."""
    words: list[str] = []
    options: list[str] = []
    it = iter(args)
    for a in it:
        if a == "--uuid":
            options += [a, next(it, "")]
        elif a.startswith("-") and a != "-":
            options.append(a)
        else:
            words.append(a)
    return words + options


def register(subparsers: Any) -> None:
    """Add the git-annex-shell subcommands to an argparse subparsers object."""

    def add(name: str, fn: Any, help: str) -> argparse.ArgumentParser:
        # add_parser builds ``_parser_class``; ours strips the field block.
        saved = subparsers._parser_class
        subparsers._parser_class = _ShellParser
        try:
            sp: argparse.ArgumentParser = subparsers.add_parser(name, help=help, description=help)
        finally:
            subparsers._parser_class = saved
        sp.set_defaults(func=_guarded(fn))
        sp.add_argument("--uuid", help="the repository UUID the client expects")
        sp.add_argument("--debug", action="store_true")
        sp.add_argument("directory", help="repository directory")
        return sp

    sp = add("p2pstdio", cmd_p2pstdio, "serve a repository over the P2P protocol on stdio")
    sp.add_argument("client_uuid", nargs="?", default="")
    sp = add("configlist", cmd_configlist, "print the repository's annex.uuid")
    sp = add("inannex", cmd_inannex, "exit 0 when the content of every key is present")
    sp.add_argument("params", nargs="*")
    sp = add("notifychanges", cmd_notifychanges, "not available")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point accepting git-annex-shell's ``-c "command args"`` form too."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] == "-c":
        args = shlex.split(args[1])
        if args and os.path.basename(args[0]) in ("git-annex-shell", "annexsync"):
            args = args[1:]
    parser = argparse.ArgumentParser(prog="annexsync-shell")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    ns = parser.parse_args(args)
    return int(ns.func(ns))


if __name__ == "__main__":
    sys.exit(main())
