"""The ``annexsync`` command line.

Each subcommand opens the repository, calls one operation in ``core.ops`` and
prints the outcome; progress goes to stderr.  Errors the core raises on
purpose (``CoreError``) are printed as one line and exit 1; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from core.errors import CoreError

if TYPE_CHECKING:  # imported lazily: `annexsync --help` stays quick
    from core.repo.repository import AnnexRepo

logger = logging.getLogger(__name__)


class TerminalProgress:
    """Progress on stderr: a rewritten line on a terminal, a few lines otherwise."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.2) -> None:
        self.stream = stream or sys.stderr
        self.interval = interval
        self.tty = self.stream.isatty()
        self._reset("", 0, None)

    def _reset(self, what: str, items: int, total: int | None) -> None:
        self.what, self.items, self.total = what, items, total
        self.done_items = 0
        self.done_bytes = 0
        self.started = time.monotonic()
        self.last = 0.0

    def start(self, what: str, items: int, total_bytes: int | None) -> None:
        self._reset(what, items, total_bytes)

    def advance(self, items: int = 0, nbytes: int = 0, current: str = "") -> None:
        self.done_items += items
        self.done_bytes += nbytes
        now = time.monotonic()
        if now - self.last >= (self.interval if self.tty else 5.0):
            self.last = now
            self._show(current)

    def _show(self, current: str) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.done_bytes / elapsed / 1e6
        pct = f" {100 * self.done_bytes // self.total}%" if self.total else ""
        line = (
            f"{self.what}: {self.done_items}/{self.items} files{pct} "
            f"{rate:.1f} MB/s {current[-40:]}"
        )
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self.last:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _repo(args: argparse.Namespace) -> AnnexRepo:
    """The repository at the current directory, other */git-annex refs merged in."""
    from core.repo.repository import AnnexRepo

    repo = AnnexRepo.open(Path.cwd())
    if repo.unsupported_reason() is None:
        repo.branch.merge_refs()  # as git-annex does first, so answers match it (spec 7.1)
    return repo


def _print_outcomes(what: str, outcomes: Sequence[object], as_json: bool) -> int:
    failed = 0
    for o in outcomes:
        ok = getattr(o, "ok", True)
        failed += not ok
        path, note = getattr(o, "path", ""), getattr(o, "note", "")
        if as_json:
            print(json.dumps({"command": what, "file": path, "success": ok, "note": note}))
        else:
            print(f"{what} {path} ({note}) {'ok' if ok else 'failed'}")
    return 1 if failed else 0


def cmd_init(args: argparse.Namespace) -> int:
    from core.repo.repository import AnnexRepo

    repo = AnnexRepo.init(args.directory or Path.cwd(), args.description, bare=args.bare)
    print(f"init {repo.path} ({repo.uuid}) ok")
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from core.ops.add import add

    added = add(_repo(args), args.paths or ["."], TerminalProgress())
    for a in added:
        where = "annex" if a.key else "git"
        print(f"add {a.path} ({where}) ok")
    return 0


def jobs_arg(text: str) -> int:
    """``-J N`` or ``-J cpus`` (argparse type; git-annex's spelling)."""
    from core.ops.jobs import parse_jobs

    try:
        return parse_jobs(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def cmd_get(args: argparse.Namespace) -> int:
    from core.ops.jobs import jobs_for
    from core.ops.transfer import get

    repo = _repo(args)
    outcomes = get(repo, args.paths, args.source, TerminalProgress(), jobs_for(repo, args.jobs))
    return _print_outcomes("get", outcomes, args.json)


def cmd_copy(args: argparse.Namespace) -> int:
    from core.ops.jobs import jobs_for
    from core.ops.transfer import copy

    repo = _repo(args)
    outcomes = copy(repo, args.paths, args.to, args.source, TerminalProgress(),
                    jobs_for(repo, args.jobs))  # fmt: skip
    return _print_outcomes("copy", outcomes, args.json)


def cmd_drop(args: argparse.Namespace) -> int:
    from core.ops.transfer import drop

    return _print_outcomes("drop", drop(_repo(args), args.paths, args.source, TerminalProgress()), args.json)


def cmd_whereis(args: argparse.Namespace) -> int:
    from core.ops.query import whereis

    for w in whereis(_repo(args), args.paths):
        if args.json:
            print(json.dumps(w.json()))
            continue
        print(f"whereis {w.path} ({w.count} copies)")
        for c in w.copies:
            print(f"  \t{c.uuid} -- {c.label()}")
        if w.untrusted:
            print(f"  untrusted: {len(w.untrusted)}")
            for c in w.untrusted:
                print(f"  \t{c.uuid} -- {c.label()}")
        print("ok")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from core.ops.query import info, remote_info

    if args.remote:
        fields = remote_info(_repo(args), args.remote)
        if args.json:
            print(json.dumps({**dict(fields), "command": "info", "success": True}))
            return 0
        for field, text in fields:
            print(f"{field}: {text}")
        return 0
    data = info(_repo(args)).json()
    if args.json:
        print(json.dumps(data))
        return 0
    for name, value in data.items():
        if name in ("command", "success"):
            continue
        if isinstance(value, list):
            print(f"{name}: {len(value)}")
            for r in value:
                if isinstance(r, str):  # a sentence, e.g. preferred content treated as present
                    print(f"\t{r}")
                    continue
                here = " [here]" if r["here"] and "[here]" not in r["description"] else ""
                print(f"\t{r['uuid']} -- {r['description']}{here}")
        else:
            print(f"{name}: {value}")
    return 0


def cmd_wanted(args: argparse.Namespace) -> int:
    from core.ops.query import wanted

    found = wanted(_repo(args))
    if args.json:
        print(json.dumps([w.json() for w in found]))
        return 0
    for w in found:
        print(f"{w.description} ({w.uuid}): {w.expression}")
        if w.fallback:
            print(f"\t{w.fallback_text()}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    from core.ops.query import wanted
    from core.ops.sync import sync
    from core.ops.transfer import sync_content

    repo = _repo(args)
    if args.content:  # said before the transfers, which act on it
        for w in wanted(repo):
            if w.fallback:
                print(f"sync --content: {w.fallback_text()}", file=sys.stderr)
    result = sync(repo, args.remotes or None, message=args.message, content=args.content,
                  progress=TerminalProgress(), content_sync=sync_content)
    for name, refs in result.pushed.items():
        print(f"push {name}: " + ", ".join(f"{r} {'ok' if ok else 'rejected'}" for r, ok in refs.items()))
    for name, error in result.errors.items():
        print(f"sync {name}: {error}", file=sys.stderr)
    return 1 if result.errors else 0


def cmd_filter_process(args: argparse.Namespace) -> int:
    from core.filterprocess import run_filter_process

    return run_filter_process(sys.stdin.buffer, sys.stdout.buffer)


def cmd_smudge(args: argparse.Namespace) -> int:
    from core.filterprocess import run_smudge

    return run_smudge(args.file, args.clean, sys.stdin.buffer, sys.stdout.buffer)


def version() -> str:
    """The installed version: from the package metadata only (pyproject.toml sets it)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("annexsync")
    except PackageNotFoundError:
        return "unknown (not installed)"


# Subcommands defined in other modules: name -> (module, the help `annexsync
# --help` shows).  Only the module of the command being run is imported, when
# argparse reaches its name (``_CommandParser``), so `annexsync add` does not
# load the P2P, HTTP, XMPP and daemon code (~0.1 s of CPU per command).  The
# help here must match the module's own (tests/unit/test_cli_lazy.py).
ELSEWHERE: dict[str, tuple[str, str]] = {
    "p2pstdio": ("core.p2p.shell", "serve a repository over the P2P protocol on stdio"),
    "configlist": ("core.p2p.shell", "print the repository's annex.uuid"),
    "inannex": ("core.p2p.shell", "exit 0 when the content of every key is present"),
    "notifychanges": ("core.p2p.shell", "not available"),
    "daemon": ("core.daemon.cli", "run the sync assistant without a window"),
    "status": ("core.daemon.cli", "show what the sync assistant is doing"),
    "p2phttp": ("core.p2phttp.cli", "serve repositories over the git-annex P2P HTTP API"),
    "p2p-listen": ("core.p2p.listen",
                   "serve repositories to P2P peers over TCP (p2p-annex:: remotes)"),
    "p2p-gen-address": ("core.p2p.listen", "give out a cluster or proxied remote of this "
                        "gateway over the P2P listener"),
    "xmpp": ("core.xmpp.cli", "the XMPP account your devices meet on"),
    "pair": ("core.pairing.cli", "pair this device with another one by a short code"),
    "devices": ("core.pairing.cli", "list the paired devices (as `pair list`)"),
    "forget": ("core.pairing.cli", "forget a paired device (as `pair forget`)"),
    "initcluster": ("core.clustercli", "make this repository the gateway of a new cluster"),
    "extendcluster": ("core.clustercli",
                      "become another gateway of the cluster a remote gateway serves"),
    "updatecluster": ("core.clustercli", "record the configured nodes of this gateway's "
                      "clusters, then what it proxies"),
    "updateproxy": ("core.clustercli", "record what this repository proxies"),
}  # fmt: skip


def registered_parsers(module: str, prog: str = "annexsync") -> dict[str, argparse.ArgumentParser]:
    """The subcommand parsers ``module.register`` builds, by name (imports ``module``)."""
    sub = argparse.ArgumentParser(prog=prog).add_subparsers()
    importlib.import_module(module).register(sub)
    return dict(sub.choices)


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser; for a command of ``ELSEWHERE`` a stand-in that
    builds the real parser from its module only when the command is parsed."""

    def __init__(self, *args: Any, deferred: tuple[str, str] | None = None,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.deferred = deferred  # (module, command name)

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None,
                         ) -> tuple[argparse.Namespace, list[str]]:  # fmt: skip
        if self.deferred is None:
            return super().parse_known_args(args, namespace)
        module, name = self.deferred
        real = registered_parsers(module, self.prog.removesuffix(f" {name}"))[name]
        return real.parse_known_args(args, namespace)


class _VersionAction(argparse.Action):
    """``--version``, reading the package metadata only when asked (~20 ms)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:  # fmt: skip
        print(f"annexsync {version()}")
        parser.exit()


def build_parser(full: bool = False) -> argparse.ArgumentParser:
    """The command line; ``full`` builds every subcommand's parser now (the man page)."""
    p = argparse.ArgumentParser(
        prog="annexsync", description="Sync git-annex repositories.",
        epilog="With no COMMAND, annexsync starts the tray app (the sync assistant with its "
               "window); with no display it runs `annexsync daemon` instead. No COMMAND "
               "below starts the tray app.")
    p.add_argument("--version", action=_VersionAction, help="show program's version number and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    p.add_argument("--config-dir", type=Path, default=None,
                   help="the daemon's config directory (default: $ANNEXSYNC_CONFIG_DIR, "
                        "else the platform's user config directory)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_CommandParser)

    def command(name: str, fn: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=fn)
        return sp

    sp = command("init", cmd_init, "make a directory a git-annex repository")
    sp.add_argument("description", nargs="?")
    sp.add_argument("--directory", "-C", type=Path)
    sp.add_argument("--bare", action="store_true")
    sp = command("add", cmd_add, "add files to the annex (small files and dotfiles to git)")
    sp.add_argument("paths", nargs="*")
    for name, fn, help in (
        ("get", cmd_get, "get the content of files from remotes"),
        ("copy", cmd_copy, "copy content to or from a remote"),
        ("drop", cmd_drop, "remove content where enough other copies exist"),
    ):
        sp = command(name, fn, help)
        sp.add_argument("paths", nargs="*")
        sp.add_argument("--from", dest="source")
        if name == "copy":
            sp.add_argument("--to")
        if name != "drop":
            sp.add_argument("-J", "--jobs", type=jobs_arg, default=None, metavar="N",
                            help="transfers at once, each over its own connection (N or "
                                 "cpus; default: annex.jobs, else 1)")
        sp.add_argument("--json", action="store_true")
    sp = command("whereis", cmd_whereis, "list the repositories holding each file")
    sp.add_argument("paths", nargs="*")
    sp.add_argument("--json", action="store_true")
    sp = command("info", cmd_info, "describe the repository and the ones it knows, or a remote")
    sp.add_argument("remote", nargs="?")
    sp.add_argument("--json", action="store_true")
    sp = command("wanted", cmd_wanted, "show preferred content expressions, and any "
                 "annexsync cannot evaluate")
    sp.add_argument("--json", action="store_true")
    sp = command("sync", cmd_sync, "commit, pull, merge and push with remotes")
    sp.add_argument("remotes", nargs="*")
    sp.add_argument("--message", "-m")
    sp.add_argument("--content", action="store_true", help="also transfer content")
    command("filter-process", cmd_filter_process, "git long-running filter for unlocked files")
    sp = command("smudge", cmd_smudge, "git smudge/clean filter for one file")
    sp.add_argument("--clean", action="store_true")
    sp.add_argument("file", nargs="?", default="")
    if full:
        for module in dict.fromkeys(m for m, _ in ELSEWHERE.values()):
            importlib.import_module(module).register(sub)
        return p
    for name, (module, help) in ELSEWHERE.items():
        sub.add_parser(name, help=help, add_help=False, deferred=(module, name))
    return p


def full_parser() -> argparse.ArgumentParser:
    """Every subcommand's parser built (for argparse-manpage, packaging/share.py)."""
    return build_parser(full=True)


def has_display() -> bool:
    """Whether a GUI can start: an X or Wayland display, or an explicit Qt platform."""
    return any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def start_default(args: argparse.Namespace) -> int:
    """``annexsync`` with no command: the tray app, or the daemon when there is no display.

    The GUI is imported only here, so the rest of the command line never loads Qt.
    """
    config_dir = getattr(args, "config_dir", None)
    if has_display():
        from gui.app import main as gui_main

        return gui_main(config_dir)
    print("annexsync: no display (DISPLAY, WAYLAND_DISPLAY and QT_QPA_PLATFORM are unset); "
          "running the daemon instead, as `annexsync daemon` does", file=sys.stderr)
    dargs = build_parser().parse_args(["daemon"])
    if config_dir is not None:
        dargs.config_dir = config_dir
    return int(dargs.func(dargs))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s")
    func = getattr(args, "func", None) or start_default
    for stream in (sys.stdout, sys.stderr):
        # paths are bytes (os.fsdecode): print them as the bytes they are, as git does
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    try:
        code = int(func(args))
        sys.stdout.flush()  # here, where a closed pipe is caught, not at interpreter exit
        return code
    except CoreError as e:
        print(f"annexsync: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`annexsync whereis | head`): stop quietly, as
        # git-annex does; the interpreter must not flush into the closed pipe again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
