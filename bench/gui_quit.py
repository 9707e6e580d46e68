"""Quit without a crash: N whole GUI sessions, each ended by Quit (issue 19).

    .venv/bin/python bench/gui_quit.py [--runs 50]

Each run is ``python -X dev -m tests.gui.quit_session`` (every window, a
transfer, a resolved conflict, Quit, a forced ``gc.collect()``, no
``os._exit``) in a throwaway HOME, on one Xvfb display with a tray host that
the bench starts itself (the exit status is the interpreter's own, not a
wrapper's such as ``xvfb-run``, whose clean-up can fail on its own).  Prints the
exit status of every run and the count of runs that ended with status 0.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gui_startup import start_display  # the same Xvfb + trayer set-up

ROOT = Path(__file__).resolve().parent.parent
GITCONFIG = ("[user]\n\tname = Bench\n\temail = bench@example.com\n[init]\n\tdefaultBranch = main\n"
             "[protocol \"file\"]\n\tallow = always\n")


def one(display: str) -> tuple[int, float, str]:
    with tempfile.TemporaryDirectory(prefix="gui-quit-") as d:
        home = Path(d)
        (home / ".gitconfig").write_text(GITCONFIG)
        env = {**os.environ, "HOME": d, "DISPLAY": display, "XDG_CONFIG_HOME": str(home / ".config"),
               "GIT_CONFIG_NOSYSTEM": "1", "PYTHONPATH": str(ROOT),
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        env.pop("QT_QPA_PLATFORM", None)
        t0 = time.monotonic()
        p = subprocess.run([sys.executable, "-X", "dev", "-m",
                            "tests.gui.quit_session", str(home / "work")], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=180)
        lines = [x for x in p.stderr.strip().splitlines() if not x.startswith("Executing <")]
        tail = lines[-1:] if p.returncode == 0 else lines[-25:]
        return p.returncode, time.monotonic() - t0, "\n".join(tail)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    codes = []
    helpers, display = start_display()
    try:
        for i in range(args.runs):
            code, secs, tail = one(display)
            codes.append(code)
            print(f"run {i + 1:2}: exit {code} in {secs:.1f} s  {tail}", flush=True)
    finally:
        for h in helpers:
            h.terminate()
            h.wait(10)
    ok = codes.count(0)
    print(f"exit 0 in {ok} of {len(codes)} runs")
    return 0 if ok == len(codes) else 1


if __name__ == "__main__":
    sys.exit(main())
