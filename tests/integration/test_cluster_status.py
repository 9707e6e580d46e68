"""Cluster status (issue 17): nodes, what each holds, reachable or not, health,
and the per-file "is it safe to drop here" answer, over a real 3-node cluster
served by our gateway with one node down.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.clusterview import cluster_statuses, file_copies
from core.status import Health, RepoStatus, Status, status_from_json, to_json
from tests.conftest import annex, git, isolate_home
from tests.integration.cluster_support import Gateway, client_of_our_gateway

pytestmark = pytest.mark.interop

SIZE = len("a.txt in the cluster\n")  # both files have this size


@pytest.fixture(scope="module")
def node1_down(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, Path]]:
    with pytest.MonkeyPatch.context() as mp:
        isolate_home(tmp_path_factory.mktemp("home"), mp)
        g, client = client_of_our_gateway(tmp_path_factory.mktemp("status"), mp)
        (g.root / "node1").rename(g.root / "node1.away")
        yield g, client


def test_client_sees_its_cluster_nodes(node1_down: tuple[Gateway, Path]) -> None:
    g, client = node1_down
    (c,) = cluster_statuses(str(client), probe_nodes=True)
    assert (c.name, c.uuid, c.via) == ("origin-mycluster", g.uuids["mycluster"], "origin")
    assert (c.keys, c.bytes) == (2, 2 * SIZE)
    by_name = {n.name: n for n in c.nodes}
    assert sorted(by_name) == ["origin-node1", "origin-node2", "origin-node3"]
    for n in by_name.values():
        assert (n.keys, n.bytes) == (2, 2 * SIZE), n
    assert by_name["origin-node1"].reachable is False and by_name["origin-node1"].error
    assert by_name["origin-node2"].reachable and by_name["origin-node3"].reachable
    assert c.reachable_nodes == 2

    # health follows the nodes as it follows remotes; JSON carries them
    status = Status(repos=(RepoStatus(str(client), "u", "client", clusters=(c,)),))
    assert status.health(0) is Health.WAITING
    assert status.headline(0) == "waiting for origin-node1"
    assert status_from_json(to_json(status)) == status

    (unprobed,) = cluster_statuses(str(client), probe_nodes=False)
    assert {n.reachable for n in unprobed.nodes} == {None}


def test_gateway_sees_its_own_cluster(node1_down: tuple[Gateway, Path]) -> None:
    g, _ = node1_down
    (c,) = cluster_statuses(str(g.gw), probe_nodes=True)
    assert (c.name, c.via) == ("mycluster", None)
    reach = {n.name: n.reachable for n in c.nodes}
    assert reach == {"node1": False, "node2": True, "node3": True}


def test_safe_to_drop_here_follows_numcopies(node1_down: tuple[Gateway, Path]) -> None:
    """The drop's own check: nodes are locked through the gateway; node1 cannot be."""
    _, client = node1_down
    f = file_copies(str(client), "a.txt")
    assert f.count == 4 and f.numcopies == 2 and f.here
    names = {c.name for c in f.copies}
    assert names == {"here", "origin-mycluster", "origin-node1", "origin-node2", "origin-node3"}
    assert f.safe_to_drop, f.reason
    annex(client, "numcopies", "4")
    try:
        f = file_copies(str(client), "a.txt")
        assert not f.safe_to_drop
        assert f.reason == "could only verify the existence of 2 out of 4 necessary copies"
    finally:
        annex(client, "numcopies", "2")
    assert git(client, "annex", "whereis", "a.txt")  # nothing was dropped
    assert (client / "a.txt").read_text() == "a.txt in the cluster\n"
