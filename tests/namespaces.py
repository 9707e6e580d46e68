"""Run a command in private Linux namespaces: another host name, a small disk.

``unshared(argv, hostname=..., tmpfs=...)`` returns an argv that runs
``argv`` under ``unshare``: with ``hostname``, in a private UTS namespace with
that host name (git's identity auto-detection looks at it); with ``tmpfs=
(dir, size)``, in a private mount namespace where a tmpfs of ``size`` is
mounted over ``dir`` with ``dir``'s content copied in, so the command sees a
nearly full disk there while the rest of the machine does not.  Nothing leaks
out: the namespaces end with the command.

Both need root (the machine and CI run as root); ``skip_reason`` says why a
test cannot run here.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path


@functools.cache
def skip_reason() -> str | None:
    """None when ``unshare -m -u`` works here, else why not."""
    if os.geteuid() != 0:
        return "needs root for unshare -m/-u (private mount and UTS namespaces)"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(["unshare", "-m", "-u", "true"], capture_output=True, text=True,
                           timeout=30)
    if probe.returncode != 0:
        return f"unshare -m -u does not work here: {probe.stderr.strip()}"
    return None


def unshared(
    argv: Sequence[str], *, hostname: str | None = None,
    tmpfs: tuple[Path, str] | None = None,
) -> list[str]:
    """``argv`` wrapped in ``unshare`` (module docstring)."""
    flags: list[str] = []
    steps: list[str] = []
    if hostname is not None:
        flags.append("-u")
        steps.append(f"hostname {shlex.quote(hostname)}")
    if tmpfs is not None:
        where, size = shlex.quote(str(tmpfs[0])), shlex.quote(tmpfs[1])
        flags += ["-m", "--propagation", "private"]
        steps += [
            "stage=$(mktemp -d)", f"cp -a {where}/. \"$stage\"/",
            f"mount -t tmpfs -o size={size} tmpfs {where}",
            f"cp -a \"$stage\"/. {where}/", "rm -rf \"$stage\"",
            'cd "$(pwd)"',  # a working directory under the mount point: see the tmpfs
        ]
    script = " && ".join([*steps, 'exec "$@"'])
    return ["unshare", *flags, "sh", "-c", script, "sh", *argv]
