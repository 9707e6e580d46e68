"""Packaging fixtures: the bundle built once by packaging/build.sh (cached by a hash of the sources)."""

from __future__ import annotations

import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.gui.conftest import tray_host  # noqa: F401  (the session's tray host, for the tray test)

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "build" / "pkg"
BUILD_TIMEOUT = 1500  # a cold PyInstaller build on two busy cores; cached builds take a second


@dataclass(frozen=True)
class Built:
    version: str
    tree: Path  # the prefix tree inside the tarball: bin/ lib/ share/
    tarball: Path
    deb: Path


def version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


@pytest.fixture(scope="session")
def built() -> Built:
    subprocess.run([str(ROOT / "packaging" / "build.sh"), str(OUT)], check=True,
                   timeout=BUILD_TIMEOUT, stdout=subprocess.DEVNULL)
    v = version()
    return Built(v, OUT / "stage" / f"annexsync-{v}", OUT / f"annexsync-{v}-linux-x86_64.tar.gz",
                 OUT / f"annexsync_{v}_amd64.deb")
