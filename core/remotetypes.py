"""The types every remote kind shares, apart from the factory in ``core.remotes``.

``core.remotes`` imports each kind's module to open it; the kinds need only
these types, so they import this small module and the import circle of
style.md 2 does not grow.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from core.repo.key import Key
from core.repo.objects import Incoming

# git reaches a paired device's repository through ``git-remote-annexsync``
# (core.p2p.tunnel) with this netname; the address is the peer's device id.
PAIRED_NETNAME = "paired"
PAIRED_PREFIX = f"annexsync::{PAIRED_NETNAME}:"

Advance = Callable[[int], None]


class RemoteKind(Enum):
    PATH = "path"
    P2P = "p2p"
    HTTP = "http"
    XMPP = "xmpp"
    SPECIAL = "special"
    CLUSTER = "cluster"
    PAIRED = "paired"  # a paired device (core.devices), transport chosen per session
    GIT = "git"  # a git URL we can fetch and push, no content access yet


@dataclass(frozen=True)
class RemoteInfo:
    name: str
    uuid: str | None
    kind: RemoteKind
    url: str | None = None
    cost: float = 100.0
    sync: bool = True
    pull: bool = True
    push: bool = True
    readonly: bool = False
    special_type: str | None = None
    ignore: bool = False  # remote.NAME.annex-ignore: content only when named (--from/--to)
    # --- proxied remotes (clusters.md 3.2, 4.1): reached through a gateway remote
    proxied_by: str | None = None  # the gateway's UUID (annex-proxied-by)
    via: str | None = None  # the gateway remote's name: its URL, settings and transport

    @property
    def config_name(self) -> str:
        """The remote whose git config (annexUrl, annex-shell ...) applies."""
        return self.via or self.name

    @property
    def transport(self) -> str:
        """How it is reached, in the word the person sees (issue 19: an ssh remote
        says ssh): ssh, p2p, folder, http, xmpp, paired, cluster, git, or the
        special remote's type."""
        if self.kind is RemoteKind.P2P:
            return "p2p" if (self.url or "").startswith(("p2p-annex::", "tor-annex::")) else "ssh"
        if self.kind is RemoteKind.SPECIAL:
            return self.special_type or "special"
        return "folder" if self.kind is RemoteKind.PATH else self.kind.value

    @property
    def git_remote(self) -> bool:
        """Has a git side (fetch, push): not a proxied remote nor a special one."""
        return self.via is None and self.kind is not RemoteKind.SPECIAL


class Remote(Protocol):
    info: RemoteInfo

    def check_present(self, key: Key) -> bool: ...

    def lock_content(self, key: Key) -> AbstractContextManager[None]: ...

    def retrieve(self, key: Key, into: Incoming, advance: Advance) -> None: ...

    def store(self, key: Key, source: Path, advance: Advance) -> tuple[str, ...]:
        """Send ``key``; returns the other repositories that now hold it too.

        A cluster or gateway names them (SUCCESS-PLUS, ALREADY-HAVE-PLUS,
        ``plusuuids``; clusters.md 4.3); an ordinary remote returns ().
        """
        ...

    def remove(self, key: Key) -> tuple[str, ...]:
        """Remove ``key``; returns the other repositories that lost it too.

        Raises:
            PartialRemoval: failed, but the repositories it names did remove.
        """
        ...

    def close(self) -> None: ...
