"""Packaging figures: each artifact's size, and cold start to a visible tray icon, bundle vs pipx.

    python3 bench/package.py [--runs 3] [--display :N]

Not a test.  Builds (or reuses: the build is cached) the bundle with
``packaging/build.sh``, installs the wheel with ``pipx install .`` into a
throwaway PIPX_HOME, and starts each as a person would (``annexsync`` with a
config holding one small repository, no venv on PATH), timing from the spawn to
the ``tray-visible`` line that ``ANNEXSYNC_STARTUP_TRACE=1`` prints once the
icon has its place in the tray.  The first start after install is reported
apart ("cold": nothing of this install in the page cache yet, unless the build
or install just read it); the page cache is not dropped (the machine is
shared), so later starts are "warm" and their median is shown.  Needs Xvfb and
trayer (it starts its own display and tray host unless --display is given).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "pkg"


def mb(n: float) -> str:
    return f"{n / 1e6:7.1f} MB"


def tree_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())


def start_to_tray(cmd: str, cfg: Path, env: dict[str, str]) -> float:
    t0 = time.time()
    proc = subprocess.Popen([cmd, "--config-dir", str(cfg)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if line.startswith("tray-visible "):
                return float(line.split()[1]) - t0
        raise SystemExit(f"{cmd}: the tray icon never became visible (exit {proc.wait()})")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def usable_display() -> tuple[list[subprocess.Popen[bytes]], str]:
    """A new Xvfb with trayer, on a display number a client can really reach.

    Xvfb's own pick (``-displayfd``, as bench/gui_startup.py does) is not enough on a
    machine shared with other test runs: a number can be free here yet answered by
    another server (abstract sockets of another namespace), so each candidate is probed.
    """
    for n in range(300, 340):
        if Path(f"/tmp/.X{n}-lock").exists():
            continue
        display = f":{n}"
        env = {**os.environ, "DISPLAY": display}
        xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and xvfb.poll() is None:
            if subprocess.run(["xdotool", "getdisplaygeometry"], env=env, capture_output=True,
                              check=False).returncode == 0:
                tray = subprocess.Popen(
                    ["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
                     "--height", "24", "--SetDockType", "true"], env=env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                subprocess.run(["xdotool", "search", "--sync", "--classname", "trayer"], env=env,
                               timeout=10, stdout=subprocess.DEVNULL, check=False)
                return [tray, xvfb], display
            time.sleep(0.1)
        xvfb.terminate()
        xvfb.wait(5)
    raise SystemExit("could not start a usable Xvfb display")


def pipx_install(tmp: Path) -> Path:
    home, bindir = tmp / "pipx", tmp / "pipx-bin"
    env = {**os.environ, "PIPX_HOME": str(home), "PIPX_BIN_DIR": str(bindir)}
    t0 = time.monotonic()
    subprocess.run(["pipx", "install", str(ROOT)], env=env, check=True, capture_output=True)
    print(f"pipx install .: {time.monotonic() - t0:.0f} s")
    print(f"  pipx venv:          {mb(tree_size(home))}")
    return bindir / "annexsync"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3, help="starts of each install (first is cold)")
    ap.add_argument("--display", help="an X display with a tray host (default: start one)")
    ap.add_argument("--no-pipx", action="store_true", help="measure the bundle only")
    args = ap.parse_args()
    t0 = time.monotonic()
    subprocess.run([str(ROOT / "packaging" / "build.sh"), str(OUT)], check=True,
                   stdout=subprocess.DEVNULL)
    print(f"packaging/build.sh: {time.monotonic() - t0:.0f} s (cached when the sources did not change)")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    tree = OUT / "stage" / f"annexsync-{version}"
    print("artifacts:")
    for f in sorted(OUT.glob("annexsync*.*")):
        print(f"  {f.name:40s} {mb(f.stat().st_size)}")
    print(f"  {'bundle, unpacked':40s} {mb(tree_size(tree))}")

    helpers: list[subprocess.Popen[bytes]] = []
    display = args.display
    if display is None:
        helpers, display = usable_display()
    tmp = Path(tempfile.mkdtemp(prefix="annexsync-package-bench-"))
    try:
        installs = {"bundle": str(tree / "bin" / "annexsync")}
        if not args.no_pipx and shutil.which("pipx"):
            installs["pipx"] = str(pipx_install(tmp))
        home = tmp / "home"
        home.mkdir()
        (home / ".gitconfig").write_text("[user]\n\tname = Bench\n\temail = b@example.com\n")
        env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "DISPLAY": display,
               "PATH": "/usr/local/bin:/usr/bin:/bin", "ANNEXSYNC_STARTUP_TRACE": "1",
               "GIT_CONFIG_NOSYSTEM": "1"}
        repo = tmp / "Annex"
        repo.mkdir()
        subprocess.run([installs["bundle"], "init", "bench"], cwd=repo, env=env, check=True,
                       capture_output=True)
        print(f"start to a visible tray icon ({args.runs} starts each; page cache not dropped):")
        for name, cmd in installs.items():
            cfg = tmp / f"config-{name}"
            cfg.mkdir()
            (cfg / "settings.json").write_text(json.dumps({"repositories": [str(repo)]}))
            times = [start_to_tray(cmd, cfg, env) for _ in range(args.runs)]
            warm = statistics.median(times[1:]) if len(times) > 1 else float("nan")
            print(f"  {name:7s} first {times[0]:5.2f} s, then median {warm:5.2f} s")
        return 0
    finally:
        for h in helpers:
            h.terminate()
            h.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
