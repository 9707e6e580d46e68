"""Proxied remotes: the remotes a gateway offers, as git-annex makes them.

Spec: clusters.md 3.2 (what is synthesised), 4.1 (when), 4.2 (addressing).

For each git remote R that can proxy -- an ssh remote or one with an
``annex+http`` annexUrl; not a local path without annexUrl, a P2P address,
gcrypt or plain git -- whose UUID (or ``annex-config-uuid``) has a line in
``proxy.log``, each ``uuid:name`` there becomes the remote ``R-name``:

- its UUID is the proxied one, its URL and transport R's (``via``); requests
  name the proxied UUID (ssh ``--uuid``, the UUID in the HTTP path);
- ``annex-proxied-by`` is R's UUID;
- a UUID that passes the cluster test is a cluster remote (kind CLUSTER);
- a node of a cluster proxied by the same gateway gets ``annex-sync=false``
  and R's *default* cost + 0.1, so the cluster is used first and the nodes
  are not synced one by one;
- everything else (cost, sync, pull, push, readonly, ignore) is R's;
- it is not made at all when git config has any key ``remote.R-name.*``
  (the person configures that remote by hand).

Nothing here is written to git config; proxied remotes exist only in memory
and have no git side (``RemoteInfo.git_remote`` is false).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace

from core.remotetypes import RemoteInfo, RemoteKind
from core.repo.clusters import Clusters, Proxied, is_cluster_uuid

logger = logging.getLogger(__name__)

NODE_COST_STEP = 0.1


def can_proxy(gateway: RemoteInfo) -> bool:
    """ssh (git-annex-shell) or annex+http: the transports that reach proxied UUIDs (4.1)."""
    if gateway.kind is RemoteKind.HTTP:
        return True
    url = gateway.url or ""
    return gateway.kind is RemoteKind.P2P and not url.startswith(("p2p-annex::", "tor-annex::"))


def proxied_remotes(
    gateway: RemoteInfo,
    lookup_uuid: str | None,
    proxies: Mapping[str, frozenset[Proxied]],
    clusters: Clusters,
    configured: Collection[str],
    default_cost: float,
) -> list[RemoteInfo]:
    """The remotes ``gateway`` offers (see the module docstring).

    ``lookup_uuid`` is its ``annex-config-uuid`` or UUID; ``configured`` the
    remote names git config has keys for; ``default_cost`` the cost the
    gateway would have unconfigured (100 local, 200 otherwise).
    """
    if not lookup_uuid or not can_proxy(gateway):
        return []
    offered = proxies.get(lookup_uuid, frozenset())
    proxied_uuids = {p.uuid for p in offered}
    out = []
    for p in sorted(offered):
        name = f"{gateway.name}-{p.name}"
        if name in configured:
            continue
        info = replace(gateway, name=name, uuid=p.uuid, proxied_by=gateway.uuid,
                       via=gateway.name)  # fmt: skip
        if is_cluster_uuid(p.uuid):
            info = replace(info, kind=RemoteKind.CLUSTER)
        elif clusters.clusters_of(p.uuid) & proxied_uuids:
            info = replace(info, sync=False, cost=default_cost + NODE_COST_STEP)
        out.append(info)
    return out


def nodes_of(cluster: RemoteInfo, remotes: Iterable[RemoteInfo], clusters: Clusters) -> list[RemoteInfo]:
    """The proxied remotes through the same gateway that are nodes of ``cluster``."""
    nodes = clusters.nodes.get(cluster.uuid or "", frozenset())
    return [r for r in remotes if r.via == cluster.via and r.uuid in nodes]


__all__ = ["can_proxy", "nodes_of", "proxied_remotes"]
