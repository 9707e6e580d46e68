"""Paired-device records, their keyring secrets and their git remotes (spec pairing.md 6.6).

Theory of operation
-------------------
The pairing issues fill this store; until they land, tests use its API.

* Keyring (service ``annexsync``, name ``pair:<own id>:<peer id>``): JSON
  ``{pair_secret, peer_static_pub, created}`` (hex) -- ``PairSecret``.
* Config dir, ``paired.json``: one record per peer device (``PairedDevice``):
  its id, name, the repositories it shares with us (our path and its
  repository uuid), its transports (XMPP full JID, LAN addresses), created
  and last-seen times, own device or friend.  No secret.
* Git: one remote per paired device and shared repository, URL
  ``annexsync::paired:<peer id>`` (``core.remotetypes``), ``annex-uuid`` the
  peer's repository uuid.  The transport is chosen when a session opens.

Order of writes on ``add``: keyring, then the record file (atomic rename),
then the remotes; ``forget`` undoes them in reverse.  A failure part way
raises and leaves the earlier parts, which a retry of the same call
completes (every step is idempotent).

Blocking (keyring, files, git): async callers use ``run_blocking``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core import gitops, secrets
from core.errors import CoreError, GitCommandError
from core.remotetypes import PAIRED_PREFIX

logger = logging.getLogger(__name__)

RECORDS_FILE = "paired.json"
KEY_SERVICE = secrets.SERVICE_PREFIX


class PairingStoreError(CoreError):
    """The paired-device records cannot be read or written."""


def secret_name(own_id: str, peer_id: str) -> str:
    return f"pair:{own_id}:{peer_id}"


def remote_url(peer_id: str) -> str:
    return PAIRED_PREFIX + peer_id


@dataclass(frozen=True)
class SharedRepo:
    path: str  # our repository
    peer_uuid: str  # the peer's repository uuid (annex-uuid of the remote)


@dataclass(frozen=True)
class Transports:
    xmpp: str | None = None  # full JID
    lan: tuple[str, ...] = ()  # HOST:PORT


@dataclass(frozen=True)
class PairedDevice:
    device_id: str
    name: str
    repos: tuple[SharedRepo, ...] = ()
    transports: Transports = field(default_factory=Transports)
    own: bool = True  # one of the person's own devices, else a friend's
    created: float = 0.0
    last_seen: float | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["repos"] = [asdict(r) for r in self.repos]
        data["transports"] = {"xmpp": self.transports.xmpp, "lan": list(self.transports.lan)}
        return data

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PairedDevice:
        t = d.get("transports") or {}
        return cls(
            device_id=str(d["device_id"]), name=str(d["name"]),
            repos=tuple(SharedRepo(str(r["path"]), str(r["peer_uuid"])) for r in d["repos"]),
            transports=Transports(t.get("xmpp"), tuple(t.get("lan") or ())),
            own=bool(d.get("own", True)), created=float(d.get("created", 0.0)),
            last_seen=d.get("last_seen"),
        )  # fmt: skip


@dataclass(frozen=True)
class PairSecret:
    pair_secret: bytes
    peer_static_pub: bytes
    created: float

    def to_text(self) -> str:
        return json.dumps({"pair_secret": self.pair_secret.hex(),
                           "peer_static_pub": self.peer_static_pub.hex(),
                           "created": self.created})  # fmt: skip

    @classmethod
    def from_text(cls, text: str) -> PairSecret:
        d = json.loads(text)
        return cls(bytes.fromhex(d["pair_secret"]), bytes.fromhex(d["peer_static_pub"]),
                   float(d["created"]))  # fmt: skip


class PairedStore:
    """The records of one config directory (this device is ``own_id``)."""

    def __init__(self, config_dir: Path, own_id: str) -> None:
        self.config_dir = Path(config_dir)
        self.own_id = own_id

    @property
    def path(self) -> Path:
        return self.config_dir / RECORDS_FILE

    def records(self) -> list[PairedDevice]:
        """Every paired device.

        Raises:
            PairingStoreError: the file exists but is not valid.
        """
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [PairedDevice.from_json(d) for d in data["devices"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise PairingStoreError(f"{self.path} is not valid: {e}") from e

    def get(self, device_id: str) -> PairedDevice | None:
        return next((d for d in self.records() if d.device_id == device_id), None)

    def secret(self, device_id: str) -> PairSecret | None:
        """The pair secret and pinned key of ``device_id`` from the keyring."""
        text = secrets.get(KEY_SERVICE, secret_name(self.own_id, device_id))
        return PairSecret.from_text(text) if text else None

    def add(self, device: PairedDevice, secret: PairSecret) -> None:
        """Store a newly paired device (keyring, record, remotes) or update one.

        Raises:
            SecretsUnavailable: no safe keyring (nothing stored).
            PairingStoreError, CoreError: the record or a remote could not be written.
        """
        if device.device_id == self.own_id:
            raise PairingStoreError("a device cannot pair with itself")
        secrets.store(KEY_SERVICE, secret_name(self.own_id, device.device_id), secret.to_text())
        others = [d for d in self.records() if d.device_id != device.device_id]
        self._write([*others, device])
        for repo in device.repos:
            ensure_remote(Path(repo.path), device, repo.peer_uuid)

    def update(self, device: PairedDevice) -> None:
        """Replace the record (e.g. a new transport or last-seen time), nothing else."""
        records = self.records()
        if not any(d.device_id == device.device_id for d in records):
            raise PairingStoreError(f"{device.name} is not a paired device")
        self._write([device if d.device_id == device.device_id else d for d in records])

    def forget(self, device_id: str) -> None:
        """Remove the remotes, the record and the keyring entry (spec 6.8)."""
        device = self.get(device_id)
        for repo in device.repos if device else ():
            remove_remotes(Path(repo.path), device_id)
        if device is not None:
            self._write([d for d in self.records() if d.device_id != device_id])
        secrets.delete(KEY_SERVICE, secret_name(self.own_id, device_id))

    def _write(self, devices: Iterable[PairedDevice]) -> None:
        try:
            self.config_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"devices": [d.to_json() for d in devices]}, indent=2))
            os.replace(tmp, self.path)
        except OSError as e:
            raise PairingStoreError(f"cannot write {self.path}: {e}") from e


# --- git remotes ------------------------------------------------------------------


def _remote_urls(top: Path) -> dict[str, str]:
    out = gitops.run_git(top, ["config", "--get-regexp", r"^remote\..*\.url$"], check=False)
    found: dict[str, str] = {}
    for line in out.stdout.decode("utf-8", "replace").splitlines():
        key, _, url = line.partition(" ")
        found[key.removeprefix("remote.").removesuffix(".url")] = url
    return found


def remote_of(top: Path, device_id: str) -> str | None:
    """The name of ``device_id``'s remote in ``top``, if it has one."""
    url = remote_url(device_id)
    return next((n for n, u in _remote_urls(top).items() if u == url), None)


def remote_name_for(name: str, taken: Iterable[str]) -> str:
    """A legal remote name from a device name, with a number if it is taken."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "device"
    taken = set(taken)
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def ensure_remote(top: Path, device: PairedDevice, peer_uuid: str) -> str:
    """The remote of ``device`` in ``top`` with ``annex-uuid`` = ``peer_uuid``; its name.

    Raises:
        CoreError: git refused.
    """
    url = remote_url(device.device_id)
    try:
        urls = _remote_urls(top)
        name = next((n for n, u in urls.items() if u == url), None)
        if name is None:
            name = remote_name_for(device.name, urls)
            gitops.run_git(top, ["remote", "add", name, url])
        gitops.run_git(top, ["config", f"remote.{name}.annex-uuid", peer_uuid])
    except GitCommandError as e:
        raise CoreError(f"cannot add the remote for {device.name} in {top}: {e}") from e
    return name


def remove_remotes(top: Path, device_id: str) -> None:
    url = remote_url(device_id)
    try:
        for name, u in _remote_urls(top).items():
            if u == url:
                gitops.run_git(top, ["remote", "remove", name])
    except (GitCommandError, OSError) as e:
        logger.warning("cannot remove the remote of %s in %s: %s", device_id[:8], top, e)


def owed(top: Path, remote: str) -> bool:
    """Whether ``remote`` has not yet got our branch or git-annex branch (no network).

    Compares our refs with the remote-tracking refs the last sync left.
    """
    from dulwich.refs import Ref
    from dulwich.repo import Repo

    try:
        with Repo(str(top)) as git:
            refs: dict[bytes, bytes] = {bytes(k): bytes(v) for k, v in git.refs.as_dict().items()}
            head = bytes(git.refs.read_ref(Ref(b"HEAD")) or b"")
        branch = head.removeprefix(b"ref: refs/heads/") if head.startswith(b"ref: ") else b""
        for name in (b"git-annex", branch):
            ours = refs.get(b"refs/heads/" + name) if name else None
            if ours and refs.get(b"refs/remotes/" + remote.encode() + b"/" + name) != ours:
                return True
    except (OSError, KeyError, ValueError) as e:
        logger.info("cannot compare refs of %s in %s: %s", remote, top, e)
    return False
