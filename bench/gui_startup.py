"""Tray app figures: startup to a visible tray icon, idle CPU, memory with many files.

    .venv/bin/python bench/gui_startup.py [--files 10000] [--idle 60]

Not a test: it prints the figures next to the goals (startup < 1.5 s, idle CPU
< 1 % of a core over 60 s, RSS < 150 MB with 10,000 files in the repository).
Needs Xvfb and trayer (it starts its own display and tray host unless --display
is given).  The repository is made with annexsync's own ``init``/``add`` in a
throwaway HOME; the app runs as ``python -m gui.app CONFIG_DIR`` with
``ANNEXSYNC_STARTUP_TRACE=1``, which prints ``tray-visible`` once the icon has a
place in the tray.  Startup is measured from the spawn (interpreter start
included) to that line.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_mb(pid: int) -> tuple[float, float]:
    vals = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            k, v = line.split(":")
            vals[k] = int(v.split()[0]) / 1024
    return vals["VmRSS"], vals["VmHWM"]


def start_display() -> tuple[list[subprocess.Popen[bytes]], str]:
    r, w = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(w), "-screen", "0", "1024x768x24",
                             "-nolisten", "tcp", "-noreset"], pass_fds=(w,), stderr=subprocess.DEVNULL)
    os.close(w)
    display = ":" + os.read(r, 32).decode().strip()
    os.close(r)
    env = {**os.environ, "DISPLAY": display}
    tray = subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--widthtype",
                             "request", "--height", "24", "--SetDockType", "true"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["xdotool", "search", "--sync", "--classname", "trayer"], env=env, timeout=10,
                   stdout=subprocess.DEVNULL, check=False)
    return [tray, xvfb], display


def make_repo(home: Path, repo: Path, files: int, env: dict[str, str]) -> float:
    t0 = time.monotonic()
    repo.mkdir(parents=True)
    cli = [sys.executable, "-m", "core.cli"]
    subprocess.run([*cli, "init", "bench"], cwd=repo, env=env, check=True, capture_output=True)
    for i in range(files):
        d = repo / f"d{i // 500:03d}"
        d.mkdir(exist_ok=True)
        (d / f"f{i:05d}.txt").write_text(f"file {i}\n" * 20)
    if files:
        subprocess.run([*cli, "add", "."], cwd=repo, env=env, check=True, capture_output=True)
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--idle", type=float, default=60.0, help="seconds of idle CPU measurement")
    ap.add_argument("--settle", type=float, default=15.0, help="max seconds to wait for synced")
    ap.add_argument("--display", help="use this X display (with a tray host) instead of a new one")
    args = ap.parse_args()

    helpers: list[subprocess.Popen[bytes]] = []
    display = args.display
    if display is None:
        helpers, display = start_display()
        print(f"display {display}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="annexsync-bench-"))
    home = tmp / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n"
                                     "[init]\n\tdefaultBranch = main\n")
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"),
           "DISPLAY": display, "PYTHONPATH": str(ROOT), "ANNEXSYNC_STARTUP_TRACE": "1",
           "GIT_CONFIG_NOSYSTEM": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("QT_QPA_PLATFORM", None)
    repo = tmp / "Annex"
    made = make_repo(home, repo, args.files, env)
    cfg = tmp / "config"
    cfg.mkdir()
    (cfg / "settings.json").write_text(json.dumps({"repositories": [str(repo)]}))
    print(f"repository: {args.files} files added in {made:.1f} s")

    t0 = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "gui.app", str(cfg)], cwd=ROOT, env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    assert proc.stderr is not None
    startup = None
    buf = b""
    deadline = time.monotonic() + 30
    while startup is None and time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stderr], [], [], 0.5)
        if ready:
            buf += os.read(proc.stderr.fileno(), 4096)
            for line in buf.decode(errors="replace").splitlines():
                if line.startswith("tray-visible "):
                    startup = float(line.split()[1]) - t0
    try:
        if startup is None:
            print("the tray icon never became visible:\n" + buf.decode(errors="replace"))
            return 1
        # Let the core finish its startup scan before measuring idle.
        time.sleep(args.settle)
        cpu0, w0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(args.idle)
        cpu1, w1 = cpu_seconds(proc.pid), time.monotonic()
        idle = 100 * (cpu1 - cpu0) / (w1 - w0)
        rss, hwm = rss_mb(proc.pid)
        ok = lambda good: "ok" if good else "OVER"  # noqa: E731
        print(f"startup to visible tray icon: {startup:.2f} s   (goal < 1.5 s: {ok(startup < 1.5)})")
        print(f"idle CPU over {args.idle:.0f} s:        {idle:.2f} % of a core "
              f"(goal < 1 %: {ok(idle < 1)})")
        print(f"memory with {args.files} files:    RSS {rss:.0f} MB, peak {hwm:.0f} MB "
              f"(goal < 150 MB: {ok(hwm < 150)})")
        return 0
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for h in helpers:
            h.terminate()
            h.wait(5)
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


if __name__ == "__main__":
    sys.exit(main())
