"""A throw-away prosody with TLS on loopback, for tests (test-environment.md 5).

The same recipe as the project's shared ``xmpp-server.sh``, written here so a
checkout runs its tests alone: a config, a self-signed certificate, data and
log in one directory; ``prosody -F`` in its own process group, stopped by pid.
mod_limits stays off (Debian's default would throttle to 10 KiB/s) unless a
test asks for a rate (``limits="10kb/s"``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DOMAIN = "localhost"
START_TIMEOUT = 10.0

CONFIG = """\
run_as_root = true
data_path = "{d}/data"
pidfile = "{d}/prosody.pid"
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{d}/prosody.log" }} }}
certificates = "{d}/certs"
interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{ }}
s2s_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
modules_enabled = {{
  "roster"; "saslauth"; "disco"; "carbons"; "pep"; "private"; "blocklist";
  "smacks"; "ping"; "register"; "time"; "uptime"; "version"; "posix"; {tls} {limits}
}}
modules_disabled = {{ "s2s" }}
authentication = "internal_hashed"
c2s_require_encryption = false
allow_registration = false
{limits_config}
VirtualHost "{domain}"
"""


def available() -> bool:
    return shutil.which("prosody") is not None and shutil.which("openssl") is not None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_CERTS: Path | None = None


def _certificate() -> tuple[Path, Path]:
    """A self-signed key and certificate for DOMAIN, made once per process (an RSA key
    takes a noticeable part of a second): every server copies the pair into its own
    directory; the pair's directory goes at exit."""
    global _CERTS
    if _CERTS is None:
        made = Path(tempfile.mkdtemp(prefix="annexsync-test-cert-"))
        atexit.register(shutil.rmtree, made, ignore_errors=True)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
             "-subj", f"/CN={DOMAIN}", "-addext", f"subjectAltName=DNS:{DOMAIN}",
             "-keyout", str(made / f"{DOMAIN}.key"), "-out", str(made / f"{DOMAIN}.crt")],
            check=True, capture_output=True, timeout=30)  # fmt: skip
        _CERTS = made
    return _CERTS / f"{DOMAIN}.key", _CERTS / f"{DOMAIN}.crt"


@dataclass
class Prosody:
    dir: Path
    tls: bool = True
    port: int = 0
    limits: str | None = None  # a c2s rate for mod_limits, e.g. "10kb/s"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def cfg(self) -> Path:
        return self.dir / "prosody.cfg.lua"

    @property
    def cert(self) -> Path:
        return self.dir / "certs" / f"{DOMAIN}.crt"

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write(self) -> None:
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        (self.dir / "certs").mkdir(exist_ok=True)
        if self.tls and not self.cert.exists():
            for made in _certificate():
                shutil.copy(made, self.dir / "certs" / made.name)
        limits = f'limits = {{ c2s = {{ rate = "{self.limits}" }} }}' if self.limits else ""
        self.cfg.write_text(CONFIG.format(d=self.dir, port=self.port, domain=DOMAIN,
                                          tls='"tls";' if self.tls else "",
                                          limits='"limits";' if self.limits else "",
                                          limits_config=limits))  # fmt: skip

    def register(self, user: str, password: str) -> str:
        subprocess.run(["prosodyctl", "--config", str(self.cfg), "register", user, DOMAIN,
                        password], check=True, capture_output=True, timeout=30)  # fmt: skip
        return f"{user}@{DOMAIN}"

    def start(self) -> None:
        for _ in range(5):
            if not self.port:
                self.port = free_port()
            self._write()
            log = (self.dir / "prosody.out").open("ab")
            self.proc = subprocess.Popen(["prosody", "--config", str(self.cfg), "-F"],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         start_new_session=True)  # fmt: skip
            log.close()
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                with contextlib.suppress(OSError), socket.create_connection(
                        ("127.0.0.1", self.port), 0.2):  # fmt: skip
                    return
                time.sleep(0.05)
            self.stop()
            self.port = 0
        raise RuntimeError(f"prosody did not start; see {self.dir}/prosody.log")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL once it logged its shutdown (it lingers ~2 s)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(1.0)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def restart(self) -> None:
        """Stop and start on the same port, accounts kept."""
        self.stop()
        self.start()


@contextlib.contextmanager
def prosody(directory: Path, tls: bool = True, limits: str | None = None) -> Iterator[Prosody]:
    server = Prosody(Path(directory), tls=tls, limits=limits)
    server.start()
    try:
        yield server
    finally:
        server.stop()
