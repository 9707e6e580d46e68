"""What pairing reads before and writes after the handshake (pairing.md 6.5, 6.6).

Theory of operation
-------------------
``own_hello`` builds this device's hello: identity, the repositories to
share (annex uuid and description, in the order the person named them) and
the transports it can be reached on.  ``store`` turns an agreed
``PairingResult`` into the paired-device record, the keyring entry (the
pair secret both sides derived and the peer's static key) and a git remote
per shared repository (``PairedStore.add``); the i-th repository here is
paired with the i-th the peer offered (the machine made sure the counts
agree).  ``store`` returns what ``undo`` needs to put things back as they
were: the two-phase finish undoes a store whose peer never said done, and a
device paired before gets its earlier record back rather than nothing.

Blocking (keyring, files, git): async callers run these off the loop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from core.devices.identity import DeviceIdentity
from core.devices.paired import PairedDevice, PairedStore, PairSecret, SharedRepo, Transports
from core.errors import CoreError
from core.pairing.machine import PairingResult
from core.pairing.messages import Hello, RepoOffer
from core.repo.repository import AnnexRepo
from core.settings import Settings
from core.xmpp.payloads import bare, resource_name

logger = logging.getLogger(__name__)
_WILDCARDS = ("", "0.0.0.0", "::", "[::]")


def repo_offer(path: Path) -> tuple[Path, RepoOffer]:
    """The top of the repository at ``path`` and what we tell the peer about it.

    Raises:
        NotARepository: not a git-annex repository.
    """
    with AnnexRepo.open(path, auto_init=False) as repo:
        description = repo.state.descriptions().get(repo.uuid, "")
        return repo.path.resolve(), RepoOffer(repo.uuid, description[:200])


def own_hello(identity: DeviceIdentity, offers: list[RepoOffer], settings: Settings) -> Hello:
    """This device's hello (pairing.md 6.5 step 4): nothing secret in it."""
    lan: tuple[str, ...] = ()
    if settings.p2p_listen and settings.p2p_listen.rpartition(":")[0] not in _WILDCARDS:
        lan = (settings.p2p_listen,)
    xmpp = (f"{settings.xmpp_account}/{resource_name(identity.device_id)}"
            if settings.xmpp_account else None)  # fmt: skip
    return Hello(identity.device_id, identity.name, identity.public_key, tuple(offers), lan, xmpp)


@dataclass(frozen=True, repr=False)
class Stored:
    """What ``store`` replaced (None: the device was new here)."""

    device_id: str
    previous: tuple[PairedDevice, PairSecret] | None


def store(config_dir: Path, own_id: str, result: PairingResult, repos: list[Path],
          now: float | None = None, own_account: str | None = None) -> Stored:  # fmt: skip
    """Record the pairing: keyring, record, remotes (``PairedStore.add``).  The peer is
    a friend's device when its hello names another XMPP account than ``own_account``.

    Raises:
        SecretsUnavailable: no safe keyring (nothing stored).
        CoreError: the record or a remote could not be written.
    """
    peer = result.peer
    if len(repos) != len(peer.repos):
        raise CoreError("the number of repositories changed during pairing")
    paired = PairedStore(config_dir, own_id)
    before = paired.get(peer.device_id)
    old_secret = paired.secret(peer.device_id) if before else None
    created = time.time() if now is None else now
    device = PairedDevice(
        device_id=peer.device_id, name=peer.name,
        repos=tuple(SharedRepo(str(p), offer.uuid) for p, offer in zip(repos, peer.repos, strict=True)),
        transports=Transports(peer.xmpp, peer.lan), own=_own_device(peer, own_account),
        created=created,
    )  # fmt: skip
    paired.add(device, PairSecret(result.pair_secret, peer.static_key, created))
    logger.info("paired with %s (%s)", peer.name, peer.device_id[:8])
    return Stored(peer.device_id, (before, old_secret) if before and old_secret else None)


def _own_device(peer: Hello, own_account: str | None) -> bool:
    if not own_account or not peer.xmpp:
        return True
    return bare(peer.xmpp) == bare(own_account)


def undo(config_dir: Path, own_id: str, stored: Stored) -> None:
    """Put back what ``store`` replaced; never raises (it runs in ``finally``)."""
    paired = PairedStore(config_dir, own_id)
    try:
        paired.forget(stored.device_id)
        if stored.previous is not None:
            paired.add(*stored.previous)
        logger.info("pairing with %s not confirmed: undone", stored.device_id[:8])
    except Exception as e:  # noqa: BLE001 - undo is best effort and must not hide the cause
        logger.error("could not undo the unconfirmed pairing with %s: %s",
                     stored.device_id[:8], e)  # fmt: skip
