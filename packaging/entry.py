"""The bundle's one program: every command of ``[project.scripts]`` by the name it is run as.

PyInstaller freezes one interpreter; the bundle ships it once and links the
other command names to it (``git-remote-annexsync``, ``git-annex-p2p-annexsync-tcp``),
so this script dispatches on ``argv[0]`` through the entry points recorded in
annexsync's own metadata (pyproject.toml is the one list).  It also answers
``-m MODULE ARGS`` as an interpreter would, because the core starts helpers as
``sys.executable -m core.p2p.shell ...`` (core/p2p/gateway.py).

Before any command runs it fixes the environment a frozen program inherits:
- the bundle's directory goes first on PATH, so git finds the remote helper and
  git-annex finds the network helper that live beside the binary;
- PyInstaller's LD_LIBRARY_PATH is taken back for child processes (system git
  must load the system's libraries, not the bundle's);
- where the system has no CA store the bundled certifi one is used.
"""

from __future__ import annotations

import os
import runpy
import ssl
import sys
from importlib.metadata import entry_points

DEFAULT = "annexsync"


def _fix_environment() -> None:
    here = os.path.dirname(os.path.realpath(sys.executable))
    path = os.environ.get("PATH", "")
    if here not in path.split(os.pathsep):
        os.environ["PATH"] = here + os.pathsep + path if path else here
    orig = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
    if orig is not None:
        os.environ["LD_LIBRARY_PATH"] = orig
    elif "LD_LIBRARY_PATH" in os.environ and getattr(sys, "_MEIPASS", None):
        kept = [p for p in os.environ["LD_LIBRARY_PATH"].split(os.pathsep)
                if p and not p.startswith(sys._MEIPASS)]
        if kept:
            os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(kept)
        else:
            del os.environ["LD_LIBRARY_PATH"]
    _ca_store()


def _ca_store() -> None:
    """Keep the system's CA store (it honours local additions); certifi only where there is none."""
    if "SSL_CERT_FILE" in os.environ or "SSL_CERT_DIR" in os.environ:
        return
    paths = ssl.get_default_verify_paths()
    if (paths.cafile and os.path.isfile(paths.cafile)) or (paths.capath and os.path.isdir(paths.capath)
                                                            and os.listdir(paths.capath)):
        return
    for candidate in ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                      "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem"):
        if os.path.isfile(candidate):
            os.environ["SSL_CERT_FILE"] = candidate
            return
    try:
        import certifi
    except ImportError:
        return
    os.environ["SSL_CERT_FILE"] = certifi.where()


def main() -> int:
    _fix_environment()
    if len(sys.argv) >= 3 and sys.argv[1] == "-m":
        module = sys.argv[2]
        sys.argv = [sys.argv[0], *sys.argv[3:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return 0
    name = os.path.basename(sys.argv[0])
    scripts = {ep.name: ep for ep in entry_points(group="console_scripts")
               if ep.dist is not None and ep.dist.name == "annexsync"}
    ep = scripts.get(name) or scripts[DEFAULT]
    return int(ep.load()() or 0)


if __name__ == "__main__":
    sys.exit(main())
