"""The .deb's library dependencies: the Debian packages of every system library the bundle loads.

    python packaging/depends.py BUNDLE_DIR

Like dpkg-shlibdeps, without a debian/ source tree: ``ldd`` each ELF file of
the bundle (Qt's plugins included), keep the libraries resolved outside the
bundle, and ask dpkg which package owns each.  Prints ``pkg, pkg, ...``; glibc
gets the version floor of the machine that built the bundle.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

LDD_LINE = re.compile(r"^\s*\S+ => (/\S+) \(0x")


def elf_files(root: Path) -> list[Path]:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            with p.open("rb") as f:
                if f.read(4) == b"\x7fELF":
                    out.append(p)
    return out


def system_libraries(root: Path) -> set[str]:
    found: set[str] = set()
    inside = str(root.resolve()) + os.sep
    for f in elf_files(root):
        proc = subprocess.run(["ldd", str(f)], capture_output=True, text=True, check=False)
        for line in proc.stdout.splitlines():
            m = LDD_LINE.match(line)
            if m and not os.path.realpath(m.group(1)).startswith(inside):
                found.add(os.path.realpath(m.group(1)))
    return found


def owners(paths: set[str]) -> set[str]:
    pkgs: set[str] = set()
    for path in sorted(paths):
        # dpkg records /lib/... or /usr/lib/... (merged /usr): try both spellings
        for candidate in (path, path.removeprefix("/usr"), "/usr" + path):
            proc = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True,
                                  check=False)
            if proc.returncode == 0:
                pkgs.add(proc.stdout.split(":", 1)[0])
                break
        else:
            raise SystemExit(f"no Debian package owns {path}")
    return pkgs


def main() -> int:
    pkgs = owners(system_libraries(Path(sys.argv[1])))
    libc = platform.libc_ver()[1]
    pkgs.discard("libc6")
    print(", ".join([f"libc6 (>= {libc})", *sorted(pkgs)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
