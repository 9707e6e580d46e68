"""style.md 3: ``core/`` never imports Qt -- every core module imported, PySide6 never loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import importlib, pkgutil, sys
import core
for m in pkgutil.walk_packages(core.__path__, "core."):
    importlib.import_module(m.name)
print(sorted(m for m in sys.modules if m.startswith("PySide6") or m == "qasync"))
"""


def test_no_core_module_loads_qt() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)  # fmt: skip
    assert out.stdout.strip() == "[]", out.stdout
