"""A real Secret Service for tests: a private D-Bus with an unlocked gnome-keyring.

Recipe and pitfalls: the project's test-environment notes, section 4.  The
daemon must own ``org.freedesktop.secrets`` before anyone calls the service
(otherwise D-Bus auto-starts a second, locked one that waits for a prompt),
so we poll ``NameHasOwner``, which activates nothing, and never call unlock().
DISPLAY is removed from the daemons' environment so no prompt can appear.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import keyring
from jeepney import DBusAddress, new_method_call
from jeepney.io.blocking import open_dbus_connection
from keyring.backends import SecretService

BUS = DBusAddress("/org/freedesktop/DBus", bus_name="org.freedesktop.DBus",
                  interface="org.freedesktop.DBus")
START_TIMEOUT = 10.0


def _owned(address: str) -> bool:
    conn = open_dbus_connection(address)
    try:
        reply = conn.send_and_get_reply(
            new_method_call(BUS, "NameHasOwner", "s", ("org.freedesktop.secrets",)), timeout=2)
        return bool(reply.body[0])
    finally:
        conn.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@contextlib.contextmanager
def secret_service(home: Path) -> Iterator[keyring.backend.KeyringBackend]:
    """Run dbus-daemon + gnome-keyring in ``home``; make keyring use them; stop both."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"),
               XDG_RUNTIME_DIR=str(home / "run"))
    (home / "run").mkdir(mode=0o700, parents=True, exist_ok=True)
    bus = subprocess.Popen(["dbus-daemon", "--session", "--nofork", "--print-address"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                           start_new_session=True)
    daemon: subprocess.Popen[bytes] | None = None
    old = keyring.get_keyring()
    old_address = os.environ.get("DBUS_SESSION_BUS_ADDRESS")
    try:
        assert bus.stdout is not None
        address = bus.stdout.readline().decode().strip()
        env["DBUS_SESSION_BUS_ADDRESS"] = address
        daemon = subprocess.Popen(
            ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=env, start_new_session=True)
        assert daemon.stdin is not None
        daemon.stdin.write(b"test-password")
        daemon.stdin.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not _owned(address):
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError("gnome-keyring did not take the Secret Service name")
            time.sleep(0.02)
        os.environ["DBUS_SESSION_BUS_ADDRESS"] = address
        backend = SecretService.Keyring()
        keyring.set_keyring(backend)
        yield backend
    finally:
        keyring.set_keyring(old)
        if old_address is None:
            os.environ.pop("DBUS_SESSION_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SESSION_BUS_ADDRESS"] = old_address
        if daemon is not None:
            _stop(daemon)
        _stop(bus)
