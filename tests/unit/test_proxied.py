"""Proxied remotes as git-annex synthesises them (core.proxied; clusters.md 3.2, 4.1),
and the location-log rules for clusters in ``AnnexState`` (2.4)."""

from __future__ import annotations

from pathlib import Path

from core.proxied import can_proxy, nodes_of, proxied_remotes
from core.remotetypes import RemoteInfo, RemoteKind
from core.repo.clusters import Clusters, Proxied
from core.repo.repository import AnnexRepo
from core.repo.state import Trust

GW = "4fba39f6-8686-40b5-84f7-c18233556d4e"
CL = "ac65f247-cf26-81e1-8d32-7ed136e64be1"
N1, N2, OTHER = "694f9db8-1", "0848bc0b-2", "c8a3354b-3"
PROXIES = {GW: frozenset({Proxied(CL, "mycluster"), Proxied(N1, "node1"), Proxied(N2, "node2"),
                          Proxied(OTHER, "extra")})}  # fmt: skip
CLUSTERS = Clusters({CL: frozenset({N1, N2})})


def _gw(kind: RemoteKind = RemoteKind.P2P, url: str = "localhost:/gw", **kw: object) -> RemoteInfo:
    return RemoteInfo("origin", GW, kind, url, 200.0, **kw)  # type: ignore[arg-type]


def test_which_gateways_can_proxy() -> None:
    assert can_proxy(_gw())
    assert can_proxy(_gw(RemoteKind.HTTP, "/local/path"))  # a path with annexUrl
    assert not can_proxy(_gw(RemoteKind.PATH, "/local/path"))
    assert not can_proxy(_gw(url="p2p-annex::tor-annex:x"))
    assert not can_proxy(_gw(RemoteKind.GIT, "https://host/repo"))


def test_names_uuids_kinds_costs_and_sync() -> None:
    got = {r.name: r for r in proxied_remotes(_gw(), GW, PROXIES, CLUSTERS, set(), 200.0)}
    assert set(got) == {"origin-mycluster", "origin-node1", "origin-node2", "origin-extra"}
    cluster, node, extra = got["origin-mycluster"], got["origin-node1"], got["origin-extra"]
    assert (cluster.uuid, cluster.kind, cluster.cost, cluster.sync) == (CL, RemoteKind.CLUSTER,
                                                                        200.0, True)  # fmt: skip
    assert (node.uuid, node.kind, node.cost, node.sync) == (N1, RemoteKind.P2P, 200.1, False)
    assert (extra.cost, extra.sync) == (200.0, True)
    for r in got.values():
        assert (r.url, r.via, r.proxied_by, r.config_name) == ("localhost:/gw", "origin", GW,
                                                               "origin")  # fmt: skip
        assert not r.git_remote
    assert [n.name for n in nodes_of(cluster, got.values(), CLUSTERS)] == ["origin-node2",
                                                                         "origin-node1"]


def test_default_cost_not_the_configured_one_for_nodes() -> None:
    got = {r.name: r for r in proxied_remotes(_gw(), GW, PROXIES, CLUSTERS, set(), 100.0)}
    assert got["origin-node1"].cost == 100.1 and got["origin-mycluster"].cost == 200.0


def test_a_node_whose_cluster_this_gateway_does_not_proxy_is_a_plain_remote() -> None:
    proxies = {GW: frozenset({Proxied(N1, "node1")})}
    (node,) = proxied_remotes(_gw(), GW, proxies, CLUSTERS, set(), 200.0)
    assert (node.cost, node.sync) == (200.0, True)


def test_configured_name_suppresses_and_unknown_gateway_offers_nothing() -> None:
    names = {r.name for r in proxied_remotes(_gw(), GW, PROXIES, CLUSTERS, {"origin-node1"}, 200.0)}
    assert "origin-node1" not in names and "origin-node2" in names
    assert proxied_remotes(_gw(), "someone-else", PROXIES, CLUSTERS, set(), 200.0) == []
    assert proxied_remotes(_gw(), None, PROXIES, CLUSTERS, set(), 200.0) == []


def test_cluster_is_never_logged_and_is_read_from_its_nodes(tmp_path: Path) -> None:
    repo = AnnexRepo.init(tmp_path / "r", "r")
    key = "SHA256E-s1--6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b"
    repo.state.set_cluster(CL, {N1, N2}, now=5)
    repo.state.set_location(key, CL, True, now=6)
    assert repo.state.location_lines(key) == {}
    repo.state.set_location(key, N1, True, now=6)
    assert repo.state.locations(key) == {N1, CL}
    repo.state.set_trust(N1, Trust.DEAD, now=7)
    assert repo.state.locations(key) == {N1}  # a dead node does not make the cluster have it
    repo.close()
