"""Running commands for the benchmark: untimed set-up steps and measured runs.

A measured run goes through ``rss.py`` (a fresh wrapper process per run, see its
header for how time and memory are taken); set-up steps run directly.  Both
raise ``ToolError`` with the tail of the command's output when it fails, so the
caller can report one tool's failure and go on with the rest.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

WRAPPER = Path(__file__).with_name("rss.py")
TAIL_LINES = 12
KIB_PER_MIB = 1024


class ToolError(Exception):
    """A command of one tool failed; the message says which and shows its output."""


@dataclass(frozen=True)
class Sample:
    """One measured run."""

    seconds: float
    maxrss_mib: float  # largest single process (exact, getrusage)
    tree_mib: float  # largest summed RSS of the live tree (sampled /proc)
    cpu_seconds: float = 0.0  # user + system of every process the wrapper reaped


@dataclass
class ToolResult:
    """All runs of one tool on one row; ``error`` set when a run failed."""

    tool: str
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.samples)

    @property
    def seconds(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def maxrss_mib(self) -> float:
        return max(s.maxrss_mib for s in self.samples)

    @property
    def tree_mib(self) -> float:
        return max(s.tree_mib for s in self.samples)


@dataclass(frozen=True)
class Runner:
    """The environment every command runs in, and where logs go."""

    env: dict[str, str]
    logs: Path
    timeout: float

    def tail(self, text: str) -> str:
        lines = text.strip().splitlines()[-TAIL_LINES:]
        return "\n".join("    " + line for line in lines)

    def failure(self, cmd: list[str], cwd: Path, what: str, output: str) -> ToolError:
        return ToolError(f"`{' '.join(cmd)}` in {cwd} {what}\n{self.tail(output)}")

    def setup(self, cmd: list[str], cwd: Path) -> None:
        """Run an untimed preparation step; raise ToolError when it fails."""
        try:
            p = subprocess.run(cmd, cwd=cwd, env=self.env, capture_output=True, text=True,
                               timeout=self.timeout, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise self.failure(cmd, cwd, "could not run", str(e)) from e
        if p.returncode != 0:
            raise self.failure(cmd, cwd, f"exited {p.returncode}", p.stdout + p.stderr)

    def measure(self, cmd: list[str], cwd: Path, label: str) -> Sample:
        """Run ``cmd`` under the wrapper; raise ToolError when it fails."""
        log = self.logs / f"{label}.log"
        wrapper = [sys.executable, str(WRAPPER), "--cwd", str(cwd), "--log", str(log),
                   "--timeout", str(self.timeout), "--", *cmd]
        p = subprocess.run(wrapper, env=self.env, capture_output=True, text=True)
        if p.returncode != 0:
            raise self.failure(cmd, cwd, "wrapper failed", p.stdout + p.stderr)
        report = json.loads(p.stdout.strip().splitlines()[-1])
        if report["rc"] != 0 or report["timed_out"]:
            what = "timed out" if report["timed_out"] else f"exited {report['rc']}"
            output = report.get("error") or read_text(log)
            raise self.failure(cmd, cwd, what, str(output))
        return Sample(report["seconds"], report["maxrss_kib"] / KIB_PER_MIB,
                      report["tree_kib"] / KIB_PER_MIB, report.get("cpu_seconds", 0.0))


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def make_env(home: Path, bindir: Path) -> dict[str, str]:
    """The process environment: tools first on PATH, a throwaway HOME, no system git config.

    ``PYTHONDONTWRITEBYTECODE`` is dropped: with it (the project machine's
    sessions set it) every annexsync process, client and server alike,
    compiled its modules from source (~0.1 s CPU a start), which an installed
    annexsync, its bytecode compiled at install, never does.  ``Bench.warm_up``
    writes the cache before anything is timed.
    """
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GIT_") and k not in ("XDG_CONFIG_HOME", "PYTHONDONTWRITEBYTECODE")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), GIT_CONFIG_NOSYSTEM="1",
               PATH=str(bindir) + os.pathsep + env.get("PATH", ""))
    return env


def write_gitconfig(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Bench User\n\temail = bench@example.com\n"
        "[init]\n\tdefaultBranch = main\n"
        "[protocol \"file\"]\n\tallow = always\n"
        "[annex]\n\talwayscommit = true\n"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def p2phttp_server(cmd: list[str], repo: Path, env: dict[str, str] | None = None,
                   log: IO[bytes] | None = None, stop: int = signal.SIGTERM,
                   ) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:  # fmt: skip
    """``cmd`` (a p2phttp command line without --bind and --port) serving ``repo`` on a
    free loopback port; yields the port once it accepts, and the process.  Output goes
    to ``log`` (default: nowhere); the server is stopped by its PID afterwards with
    ``stop`` (py-spy writes its profile on SIGINT)."""
    port = free_port()
    out = log if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen([*cmd, "--bind", "127.0.0.1", "--port", str(port)], cwd=repo,
                            env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"`{' '.join(cmd)}` did not start serving {repo}")
            time.sleep(0.05)
        yield port, proc
    finally:
        proc.send_signal(stop)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
