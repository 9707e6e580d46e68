"""Every directory of Python modules in core/ and gui/ is a regular package.

The bundle (packaging/annexsync.spec) finds the modules that ``core.cli``
loads only when their command runs by walking packages
(``collect_submodules``), which skips namespace packages: ``core/daemon``
without an ``__init__.py`` made the bundled ``annexsync status`` fail with
"No module named 'core.daemon.cli'".
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_module_directory_is_a_regular_package() -> None:
    missing = sorted(
        str(d.relative_to(ROOT))
        for top in ("core", "gui")
        for d in [ROOT / top, *(ROOT / top).rglob("*")]
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
        and not (d / "__init__.py").exists()
    )
    assert missing == []
