"""The device identity: a device id and a static X25519 key (spec pairing.md 6.2).

Theory of operation
-------------------
Each config directory is one device.  On first run ``load_or_create`` makes a
random device id and an X25519 key pair.  The private key goes to the OS
keyring first (service ``annexsync``, name ``device-key:<device id>``, so
several instances can share one Secret Service); only after the keyring took
it is ``device.json`` (id, name, public key) written, atomically and only if
no other process wrote one meanwhile (a hard link, never a replace: the loser
takes the winner's identity and deletes its own key).  So a keyring that
refuses leaves nothing behind, a later run tries again, and two processes
starting together agree on one identity.

A ``device.json`` whose private key is missing from the keyring is an error
(``IdentityError``), never a silent new identity: paired devices pinned the
old public key.

Blocking (keyring, files): async callers use ``run_blocking``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core import secrets
from core.errors import CoreError

logger = logging.getLogger(__name__)

IDENTITY_FILE = "device.json"
KEY_SERVICE = secrets.SERVICE_PREFIX  # the keyring service is the app's name (spec 6.2)


class IdentityError(CoreError):
    """The device identity cannot be read or is incomplete."""


def key_name(device_id: str) -> str:
    return f"device-key:{device_id}"


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: str
    name: str
    public_key: bytes  # raw 32-byte X25519

    @property
    def short_id(self) -> str:
        """The first 8 hex digits, as in the XMPP resource (spec xmpp-sync C.1)."""
        return self.device_id.replace("-", "")[:8]

    def private_key(self) -> X25519PrivateKey:
        """The static private key, from the keyring.

        Raises:
            IdentityError: the keyring has no key for this device.
            SecretsUnavailable: no safe keyring.
        """
        raw = secrets.get(KEY_SERVICE, key_name(self.device_id))
        if raw is None:
            raise IdentityError(f"the key of this device ({self.device_id}) is missing from "
                                "the keyring; paired devices will not recognise it")
        return X25519PrivateKey.from_private_bytes(bytes.fromhex(raw))


def _public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def load_identity(config_dir: Path) -> DeviceIdentity | None:
    """The saved identity, or None when this config directory has none yet.

    Raises:
        IdentityError: ``device.json`` exists but is not a valid identity.
    """
    path = Path(config_dir) / IDENTITY_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        ident = DeviceIdentity(str(uuid.UUID(data["device_id"])), str(data["name"]),
                               bytes.fromhex(data["public_key"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise IdentityError(f"{path} is not a valid device identity: {e}") from e
    if len(ident.public_key) != 32:
        raise IdentityError(f"{path}: the public key is not 32 bytes")
    return ident


def load_or_create(config_dir: Path, name: str | None = None) -> DeviceIdentity:
    """This device's identity, made on first run (keyring first, then the file).

    Raises:
        SecretsUnavailable: no safe keyring (nothing was written).
        IdentityError: the saved identity is unreadable.
    """
    found = load_identity(config_dir)
    if found is not None:
        return found
    key = X25519PrivateKey.generate()
    ident = DeviceIdentity(str(uuid.uuid4()), name or socket.gethostname(), _public_bytes(key))
    raw = key.private_bytes_raw().hex()
    secrets.store(KEY_SERVICE, key_name(ident.device_id), raw)
    d = Path(config_dir)
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / f"{IDENTITY_FILE}.{os.getpid()}.{ident.device_id}.tmp"
    try:
        tmp.write_text(json.dumps({"device_id": ident.device_id, "name": ident.name,
                                   "public_key": ident.public_key.hex()}, indent=2) + "\n")
        os.link(tmp, d / IDENTITY_FILE)  # never replaces one another process just made
    except FileExistsError:
        # the tray app and a command started together: the first one's identity wins
        secrets.delete(KEY_SERVICE, key_name(ident.device_id))
        winner = load_identity(config_dir)
        if winner is None:  # the winner's file went again (removed by hand)
            raise IdentityError(f"{d / IDENTITY_FILE} vanished while this device's "
                                "identity was being made: start again") from None
        return winner
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("made the identity of this device, %s", ident.short_id)
    return ident
