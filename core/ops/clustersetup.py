"""Setting up a cluster gateway: initcluster, extendcluster, updatecluster, updateproxy.

Spec: clusters.md 2.1-2.3 (what is written), 3.1 (git config), 9
(extendcluster), pitfall 12 (messages).  The same names, arguments, git
config and branch records as git-annex, so either program reads what the
other set up:

- ``annex.cluster.NAME = <cluster uuid>`` makes this repository a gateway of
  NAME (``initcluster`` makes a fresh cluster UUID and describes it
  ``cluster NAME`` in uuid.log; an existing NAME is left as it is);
- ``remote.R.annex-cluster-node = NAME ...`` makes R a node;
  ``remote.R.annex-proxy = true`` proxies R outside any cluster;
- ``updatecluster`` records each configured cluster's nodes (its own, plus
  nodes it reaches through another gateway that are recorded already) in
  cluster.log, then runs ``updateproxy``, which records in proxy.log what
  this repository proxies: those remotes, its clusters and the nodes it
  reaches through other gateways of its clusters;
- ``extendcluster R NAME`` joins the cluster that remote ``R-NAME`` is,
  through gateway R (``remote.R.annex-cluster-gateway``), then updates.

Private repositories (``annex.private``, ``remote.R.annex-private``) are
never recorded.  The functions return the lines git-annex prints.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from dulwich.config import StackedConfig

from core import gitops
from core.errors import CoreError
from core.remotes import RemoteInfo, RemoteKind, list_remotes
from core.repo.clusters import Proxied, is_cluster_uuid, legal_remote_name, new_cluster_uuid
from core.repo.repository import AnnexRepo, config_value, parse_bool

logger = logging.getLogger(__name__)


class ClusterSetupError(CoreError):
    """A set-up command cannot do what was asked; the text is git-annex's."""


def _remote_cfg(cfg: StackedConfig, name: str, item: str) -> str | None:
    return config_value(cfg, (b"remote", name.encode()), item.encode())


def my_clusters(repo: AnnexRepo) -> dict[str, str]:
    """``annex.cluster.NAME`` settings: name -> cluster UUID (illegal ones ignored, 3.1)."""
    out: dict[str, str] = {}
    for backend in repo.git.get_config_stack().backends:
        for section in backend.sections():
            if section != (b"annex", b"cluster"):
                continue
            for name, value in backend.items(section):
                n, u = name.decode(), value.decode()
                if legal_remote_name(n) and is_cluster_uuid(u):
                    out[n] = u
    return out


def _private(repo: AnnexRepo, cfg: StackedConfig, remotes: Iterable[RemoteInfo]) -> set[str]:
    out = {r.uuid for r in remotes if r.uuid and r.via is None
           and parse_bool(_remote_cfg(cfg, r.name, "annex-private"), False)}  # fmt: skip
    if parse_bool(config_value(cfg, b"annex", b"private"), False):
        out.add(repo.uuid)
    return out


def _can_proxy(repo: AnnexRepo, r: RemoteInfo, why: str) -> bool:
    """git-annex's ``checkCanProxy``: a known UUID; an exporttree remote needs annexobjects."""
    if not r.uuid:
        logger.warning("%s is a git remote without a known annex-uuid. %s", r.name, why)
        return False
    settings = repo.state.remotes().get(r.uuid, {})
    if settings.get("exporttree") == "yes" and settings.get("annexobjects") != "yes":
        logger.warning("%s is a special remote configured with exporttree=yes, but without "
                       "annexobjects=yes. %s Suggest you run: git-annex enableremote %s "
                       "annexobjects=yes", r.name, why, r.name)  # fmt: skip
        return False
    return True


def proxy_configured(repo: AnnexRepo, cfg: StackedConfig, r: RemoteInfo) -> bool:
    """Whether git config still has this repository proxy ``r`` (what git-annex-shell
    checks before it serves a proxied UUID; proxy.log alone is not enough, so a
    change to the git-annex branch cannot make it proxy a remote):
    ``remote.R.annex-proxy``, or R a node of one of this repository's clusters."""
    clusters = (_remote_cfg(cfg, r.name, "annex-cluster-node") or "").split()
    return (parse_bool(_remote_cfg(cfg, r.name, "annex-proxy"), False)
            or not my_clusters(repo).keys().isdisjoint(clusters))  # fmt: skip


def _configured(repo: AnnexRepo) -> list[RemoteInfo]:
    """Remotes with git config of their own (git and special remotes, not proxied ones)."""
    return [r for r in list_remotes(repo) if r.via is None and r.kind is not RemoteKind.PAIRED]


def initcluster(repo: AnnexRepo, name: str, description: str | None = None) -> list[str]:
    """Make this repository the gateway of a new cluster NAME (nothing if it is one).

    Raises:
        ClusterSetupError: NAME is not a legal remote name.
    """
    if not legal_remote_name(name):
        raise ClusterSetupError("That cluster name is not a valid git remote name.")
    repo.require_writable()
    if name not in my_clusters(repo):
        cluster = new_cluster_uuid()
        gitops.run_git(repo.path, ["config", f"annex.cluster.{name}", cluster])
        repo.state.set_description(cluster, description or f"cluster {name}")
        repo.branch.commit()
    return [f"initcluster {name} ok"]


def _nodes(repo: AnnexRepo, cfg: StackedConfig) -> dict[str, list[RemoteInfo]]:
    """cluster name -> the remotes configured as its nodes (``annex-cluster-node``)."""
    out: dict[str, list[RemoteInfo]] = {}
    for r in _configured(repo):
        names = (_remote_cfg(cfg, r.name, "annex-cluster-node") or "").split()
        names = [n for n in names if legal_remote_name(n)]
        if names and _can_proxy(repo, r, "Cannot use this remote as a cluster node."):
            for n in names:
                out.setdefault(n, []).append(r)
    return out


def updatecluster(repo: AnnexRepo) -> list[str]:
    """Record the nodes of each cluster this repository is a gateway of, then ``updateproxy``."""
    repo.require_writable()
    cfg = repo.git.get_config_stack()
    private = _private(repo, cfg, list_remotes(repo))
    recorded_all = repo.state.clusters().nodes
    proxied = [r for r in list_remotes(repo) if r.proxied_by and r.uuid]
    out: list[str] = []
    nodes = _nodes(repo, cfg)
    for name, cluster in sorted(my_clusters(repo).items()):
        mine = sorted(nodes.get(name, []), key=lambda r: (r.uuid or "", r.name))
        recorded = recorded_all.get(cluster, frozenset())
        through_others = {r.uuid for r in proxied if r.uuid in recorded}
        wanted = ({r.uuid for r in mine if r.uuid} | through_others) - private
        if wanted == recorded:
            out.append(f"No cluster node changes for cluster: {name}")
            continue
        out += [f"Added node {r.name} to cluster: {name}" for r in mine if r.uuid not in recorded]
        # the description, else the remote's name, else the UUID (git-annex's uuidDescriptions)
        descriptions = {r.uuid: r.name for r in list_remotes(repo) if r.uuid}
        descriptions.update(repo.state.descriptions())
        out += [f"Removed node {descriptions.get(u, u)} from cluster: {name}"
                for u in sorted(recorded - wanted)]  # fmt: skip
        repo.state.set_cluster(cluster, wanted)
    repo.branch.commit()
    return out + updateproxy(repo)


def _proxied_here(repo: AnnexRepo, cfg: StackedConfig) -> set[Proxied]:
    """What this repository proxies now (git-annex's ``updateproxy``)."""
    own = {Proxied(r.uuid, r.name) for r in _configured(repo) if r.uuid and (
        parse_bool(_remote_cfg(cfg, r.name, "annex-proxy"), False)
        or (_remote_cfg(cfg, r.name, "annex-cluster-node") or "").split())
        and _can_proxy(repo, r, "Cannot proxy to this remote.")}  # fmt: skip
    clusters = my_clusters(repo)
    own_clusters = {Proxied(u, n) for n, u in clusters.items()}
    table = repo.state.clusters()
    mine = {p.uuid for p in own | own_clusters}
    through = {Proxied(r.uuid, r.name) for r in list_remotes(repo)
               if r.proxied_by and r.uuid and r.uuid not in mine
               and table.clusters_of(r.uuid) & set(clusters.values())}  # fmt: skip
    private = _private(repo, cfg, list_remotes(repo))
    return {p for p in own | own_clusters | through if p.uuid not in private}


def updateproxy(repo: AnnexRepo) -> list[str]:
    """Record in proxy.log what this repository proxies (2.2)."""
    repo.require_writable()
    proxies = _proxied_here(repo, repo.git.get_config_stack())
    old = repo.state.proxies().get(repo.uuid, frozenset())
    if old == proxies:
        return ["No proxy changes to record."]
    out = []
    for p in sorted(old | proxies, key=lambda p: (p.uuid.encode(), p.name.encode())):
        if p in proxies and p not in old:
            out.append(f"Started proxying for {p.name}")
        elif p in old and p not in proxies:
            out.append(f"Stopped proxying for {p.name}")
    repo.state.set_proxies(repo.uuid, proxies)
    repo.branch.commit()
    return out


def extendcluster(repo: AnnexRepo, gateway: str, name: str) -> list[str]:
    """Join cluster NAME that remote ``gateway-NAME`` is, as another gateway (9).

    Raises:
        ClusterSetupError: no such cluster remote, or no such gateway remote.
    """
    wanted = f"{gateway}-{name}"
    remotes = {r.name: r for r in list_remotes(repo)}
    found = remotes.get(wanted)
    if found is None:
        raise ClusterSetupError(
            f"Expected to find a cluster remote named {wanted} that is accessed via {gateway}, "
            f"but there is no such remote. Perhaps you need to git fetch from {gateway}, or "
            "git-annex updatecluster needs to be run there?")  # fmt: skip
    if gateway not in remotes:
        raise ClusterSetupError(f"No remote named {gateway} exists.")
    if not is_cluster_uuid(found.uuid):
        raise ClusterSetupError(f"{wanted} is not a cluster remote.")
    assert found.uuid is not None
    repo.require_writable()
    if name not in my_clusters(repo):
        gitops.run_git(repo.path, ["config", f"annex.cluster.{name}", found.uuid])
    gitops.run_git(repo.path, ["config", f"remote.{gateway}.annex-cluster-gateway", found.uuid])
    return [f"extendcluster {name} ok", *updatecluster(repo)]


__all__ = ["ClusterSetupError", "extendcluster", "initcluster", "my_clusters", "updatecluster",
           "updateproxy"]  # fmt: skip
