"""The .deb on this kind of machine: installs, runs from /usr/bin, validates, removes cleanly.

Changes the system, so it runs only as root or with passwordless sudo, and only
when no annexsync package is installed already; whatever happens, the package
is removed in ``finally``.  Slow like the other packaging tests (the build).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.packaging.conftest import Built

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def _sudo() -> list[str] | None:
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True,
                                               check=False).returncode == 0:
        return ["sudo", "-n"]
    return None


def _installed() -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", "annexsync"],
                         capture_output=True, text=True, check=False)
    return out.returncode == 0 and out.stdout.strip() not in ("", "not-installed")


def test_deb_installs_runs_and_leaves_nothing_behind(built: Built, tmp_path: Path) -> None:
    sudo = _sudo()
    if sudo is None:
        pytest.skip("installing a .deb needs root or passwordless sudo")
    if _installed():
        pytest.skip("an annexsync package is installed on this machine: not touching it")
    files = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(built.deb)], capture_output=True,
                           check=True, timeout=120).stdout
    listed = subprocess.run(["tar", "-t"], input=files, capture_output=True, check=True).stdout
    paths = [Path("/" + p.lstrip("./")) for p in listed.decode().splitlines() if p.strip("./")]
    ours = [p for p in paths if "annexsync" in str(p)]
    try:
        inst = subprocess.run([*sudo, "dpkg", "-i", str(built.deb)], capture_output=True,
                              text=True, timeout=300)
        assert inst.returncode == 0, inst.stdout + inst.stderr
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
        v = subprocess.run(["/usr/bin/annexsync", "--version"], env=env, capture_output=True,
                           text=True, timeout=60)
        assert (v.returncode, v.stdout.strip()) == (0, f"annexsync {built.version}"), v.stderr
        helper = subprocess.run(["git-remote-annexsync"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert helper.returncode == 2 and "usage: git-remote-annexsync" in helper.stderr
        desktop = list(Path("/usr/share/applications").glob("*annexsync*.desktop"))
        assert len(desktop) == 1
        d = subprocess.run(["desktop-file-validate", str(desktop[0])], capture_output=True,
                           text=True, timeout=60)
        assert d.returncode == 0 and "error" not in d.stdout.lower(), d.stdout + d.stderr
        meta = next(Path("/usr/share/metainfo").glob("*annexsync*.metainfo.xml"))
        a = subprocess.run(["appstreamcli", "validate", "--no-net", str(meta)],
                           capture_output=True, text=True, timeout=60)
        assert a.returncode == 0, a.stdout + a.stderr
        assert Path("/usr/share/man/man1/annexsync.1.gz").is_file()
        assert Path("/usr/share/icons/hicolor/scalable/apps/annexsync.svg").is_file()
        rm = subprocess.run([*sudo, "dpkg", "-r", "annexsync"], capture_output=True, text=True,
                            timeout=300)
        assert rm.returncode == 0, rm.stdout + rm.stderr
        assert not _installed()
        left = [p for p in ours if p.exists() or p.is_symlink()]
        assert not left, left
        assert not Path("/usr/lib/annexsync").exists()
    finally:
        if _installed():
            subprocess.run([*sudo, "dpkg", "--purge", "annexsync"], capture_output=True,
                           timeout=300, check=False)
