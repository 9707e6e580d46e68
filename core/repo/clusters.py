"""Clusters and proxies as the git-annex branch records them: pure data.

Spec: clusters.md 1 (cluster UUIDs), 2.1 (``cluster.log``), 2.2
(``proxy.log``), 2.4 (location logs never name a cluster; readers add it).
Pure: bytes in, values out; the branch reads are in ``core.repo.state``.

Theory of operation
-------------------
Both files are "new" UUID-based logs (``T UUID VALUE``, newest line per UUID
wins, a later line wins a tie, ``core.repo.logs``).  The values:

- ``cluster.log``: cluster UUID -> node UUIDs (a set, space separated; a
  cluster with no nodes is written with a trailing space).  A key that is not
  a cluster UUID is ignored.  Nodes marked dead in trust.log drop out on
  reading, so they neither take part nor make the cluster "have" a key.
- ``proxy.log``: proxying repository (gateway) UUID -> ``uuid:name`` pairs,
  the names being the gateway's own remote names.  A name git would not take
  as a remote name is dropped on reading (git-annex's ``makeLegalName`` test).

Rules kept here, used everywhere else:

- ``is_cluster_uuid``: "ac" prefix and "8" at index 14, nothing more (1).
- ``Clusters.with_clusters``: the locations of a key plus every cluster with
  a (live) node among them -- what every reader of a location log sees (2.4).
- ``count_copies``: clusters are never copies (8).
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from core.repo import logs

logger = logging.getLogger(__name__)

CLUSTER_LOG = "cluster.log"
PROXY_LOG = "proxy.log"


# --- cluster UUIDs (1) ------------------------------------------------------------


def is_cluster_uuid(uuid: str | None) -> bool:
    """git-annex's test, exactly: ``ac`` first, ``8`` at index 14 (clusters.md 1)."""
    return uuid is not None and uuid[:2] == "ac" and uuid[14:15] == "8"


def new_cluster_uuid(base: str | None = None) -> str:
    """A fresh cluster UUID: a random v4 UUID with ``ac`` first and ``8`` at 14 (1)."""
    text = base or str(uuidlib.uuid4())
    if len(text) <= 14:
        raise ValueError(f"{text!r} is too short to make a cluster UUID")
    return "ac" + text[2:14] + "8" + text[15:]


def legal_remote_name(name: str) -> bool:
    """Whether git-annex takes ``name`` as a remote name as it is (``makeLegalName``).

    Letters, digits, ``_ - .``; not empty; not starting with ``.``, ``-``
    (or ``/``, which is not allowed anyway).
    """
    if not name or name[0] in ".-/":
        return False
    return all(c.isalnum() or c in "_-." for c in name)


# --- cluster.log (2.1) --------------------------------------------------------------


@dataclass(frozen=True)
class Clusters:
    """cluster UUID -> node UUIDs, dead nodes already removed."""

    nodes: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def clusters_of(self, node: str) -> frozenset[str]:
        return frozenset(c for c, ns in self.nodes.items() if node in ns)

    def with_clusters(self, locations: Iterable[str]) -> frozenset[str]:
        """``locations`` plus each cluster with a node among them (2.4)."""
        found = frozenset(locations)
        extra = {c for c, ns in self.nodes.items() if ns & found}
        return found | extra


def parse_cluster_nodes(value: bytes) -> frozenset[str]:
    return frozenset(value.decode("utf-8", "surrogateescape").split())


def parse_cluster_log(blob: bytes, dead: Iterable[str] = ()) -> Clusters:
    """The current clusters; lines for non-cluster UUIDs ignored, dead nodes left out."""
    gone = frozenset(dead)
    out: dict[str, frozenset[str]] = {}
    for key, line in logs.compact_field_log(logs.parse_field_log(blob, CLUSTER_LOG)).items():
        cluster = key.decode("utf-8", "surrogateescape")
        if is_cluster_uuid(cluster):
            out[cluster] = parse_cluster_nodes(line.value) - gone
    return Clusters(out)


def format_cluster_nodes(nodes: Iterable[str]) -> bytes:
    """Node UUIDs sorted bytewise, one space apart (an empty set is empty)."""
    return " ".join(sorted(set(nodes), key=str.encode)).encode()


def change_cluster_log(blob: bytes | None, cluster: str, nodes: Iterable[str],
                       now: Fraction | int) -> bytes:  # fmt: skip
    """The whole file rewritten with ``cluster``'s nodes set (2.1 "Writing").

    An empty node set is written as git-annex writes it, a trailing space
    after the cluster UUID.
    """
    if not is_cluster_uuid(cluster):
        raise ValueError(f"{cluster} is not a cluster UUID")
    return logs.change_field_log(blob, cluster.encode(), format_cluster_nodes(nodes), now)


# --- proxy.log (2.2) ------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Proxied:
    """One repository a gateway proxies, under the gateway's name for it."""

    uuid: str
    name: str


def parse_proxy_list(value: bytes) -> frozenset[Proxied]:
    """``uuid:name ...``; a word without both parts or with an illegal name is dropped."""
    out = set()
    for word in value.decode("utf-8", "surrogateescape").split(" "):
        uuid, sep, name = word.partition(":")
        if sep and uuid and legal_remote_name(name):
            out.add(Proxied(uuid, name))
    return frozenset(out)


def parse_proxy_log(blob: bytes) -> dict[str, frozenset[Proxied]]:
    """gateway UUID -> what it proxies (newest line per gateway)."""
    lines = logs.compact_field_log(logs.parse_field_log(blob, PROXY_LOG))
    return {k.decode("utf-8", "surrogateescape"): parse_proxy_list(x.value)
            for k, x in lines.items()}  # fmt: skip


def format_proxy_list(proxied: Iterable[Proxied]) -> bytes:
    """Sorted by (uuid, name), as git-annex writes the set."""
    ordered = sorted(set(proxied), key=lambda p: (p.uuid.encode(), p.name.encode()))
    return " ".join(f"{p.uuid}:{p.name}" for p in ordered).encode("utf-8", "surrogateescape")


def change_proxy_log(blob: bytes | None, gateway: str, proxied: Iterable[Proxied],
                     now: Fraction | int) -> bytes:  # fmt: skip
    return logs.change_field_log(blob, gateway.encode(), format_proxy_list(proxied), now)


# --- counting (8) ---------------------------------------------------------------------


def count_copies(uuids: Iterable[str]) -> int:
    """Copies among ``uuids``: a cluster is never one (its nodes are)."""
    return sum(1 for u in set(uuids) if not is_cluster_uuid(u))


__all__ = [
    "CLUSTER_LOG", "PROXY_LOG", "Clusters", "Proxied", "change_cluster_log", "change_proxy_log",
    "count_copies", "format_cluster_nodes", "format_proxy_list", "is_cluster_uuid",
    "legal_remote_name", "new_cluster_uuid", "parse_cluster_log", "parse_cluster_nodes",
    "parse_proxy_list", "parse_proxy_log",
]  # fmt: skip
