"""initcluster / updatecluster / updateproxy / extendcluster: annexsync and git-annex
write the same records and each accepts what the other set up (clusters.md 2, 3.1, 13.2-1)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.repo.clusters import is_cluster_uuid
from tests.conftest import annex, git, run
from tests.integration.cluster_support import build_gateway, clone_client, finish_gateway
from tests.integration.test_p2phttp_support import git_annex_p2phttp

pytestmark = pytest.mark.interop
CLOCK = "1800000000"


def _logs(repo: Path) -> tuple[str, str, str]:
    show = [git(repo, "show", f"git-annex:{f}", check=False) for f in
            ("cluster.log", "proxy.log", "uuid.log")]  # fmt: skip
    return show[0], show[1], show[2]


def _second_gateway(tmp_path: Path, gw1: Path) -> Path:
    """gw2, knowing gw1 by an ssh URL and gw1's branch merged (9)."""
    gw2 = tmp_path / "gw2"
    gw2.mkdir()
    git(gw2, "init", "-q")
    annex(gw2, "init", "-q", "gw2")
    git(gw2, "remote", "add", "gw1", f"localhost:{gw1}")
    git(gw2, "fetch", "-q", "gw1")
    annex(gw2, "merge", "-q")
    return gw2


def test_initcluster_as_git_annex_does(tmp_path: Path) -> None:
    gw = tmp_path / "gw"
    gw.mkdir()
    git(gw, "init", "-q")
    run(["annexsync", "init", "gw"], gw)
    assert run(["annexsync", "initcluster", "mycluster"], gw).stdout == "initcluster mycluster ok\n"
    cluster = git(gw, "config", "annex.cluster.mycluster").strip()
    assert is_cluster_uuid(cluster)
    run(["annexsync", "initcluster", "mycluster"], gw)  # again: nothing changes
    assert git(gw, "config", "annex.cluster.mycluster").strip() == cluster
    bad = run(["annexsync", "initcluster", "bad/name"], gw, check=False)
    assert bad.returncode == 1 and "That cluster name is not a valid git remote name." in bad.stderr
    # git-annex reads the description we wrote, and sees its own cluster there
    assert f"{cluster} -- cluster mycluster" in annex(gw, "info", "--fast")
    assert "initcluster mycluster ok" in annex(gw, "initcluster", "mycluster")
    assert git(gw, "config", "annex.cluster.mycluster").strip() == cluster


def test_updatecluster_writes_the_bytes_git_annex_writes(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Twin gateways (one directory copied): git-annex updates one, annexsync the other."""
    monkeypatch.setenv("GIT_ANNEX_VECTOR_CLOCK", CLOCK)
    g = build_gateway(tmp_path)
    twin = tmp_path / "twin"
    shutil.copytree(g.gw, twin, symlinks=True)
    theirs = annex(g.gw, "updatecluster")
    ours = run(["annexsync", "updatecluster"], twin).stdout
    assert sorted(ours.splitlines()) == sorted(theirs.splitlines())
    assert _logs(twin)[:2] == _logs(g.gw)[:2]
    assert _logs(twin)[0].startswith(f"{CLOCK}s {g.uuids['mycluster']} ")
    # each now reads the other's records as current
    assert annex(twin, "updatecluster").splitlines() == [
        "No cluster node changes for cluster: mycluster", "No proxy changes to record."]
    assert run(["annexsync", "updatecluster"], g.gw).stdout.splitlines() == [
        "No cluster node changes for cluster: mycluster", "No proxy changes to record."]
    # a node leaves: both say so and write the same
    for repo in (g.gw, twin):
        git(repo, "config", "--unset", "remote.node2.annex-cluster-node")
    theirs = annex(g.gw, "updatecluster")
    ours = run(["annexsync", "updatecluster"], twin).stdout
    assert sorted(ours.splitlines()) == sorted(theirs.splitlines())
    assert "Removed node node2 from cluster: mycluster" in ours
    assert _logs(twin)[:2] == _logs(g.gw)[:2]


def test_gateway_set_up_by_annexsync_serves_git_annex_clients(tmp_path: Path) -> None:
    """13.2-1 with real git-annex serving: our records are what its gateway uses."""
    g = build_gateway(tmp_path, init_cluster=["annexsync", "initcluster", "mycluster"])
    finish_gateway(g, update=["annexsync", "updatecluster"])
    with git_annex_p2phttp(g.gw, "--wideopen", "-J4", "--clusterjobs", "3") as server:
        g.port = server.port
        client = clone_client(g, tmp_path / "c_http", "http", ours=False)
        info = annex(client, "info", "origin")
        assert "gateway to cluster: origin-mycluster" in info
        assert "proxying:" in info and "origin-node1" in info and "origin-extra" in info
        assert "cluster: true" in annex(client, "info", "origin-mycluster")
        (client / "f.txt").write_text("served by git-annex, set up by annexsync\n")
        annex(client, "add", "-q", "f.txt")
        annex(client, "copy", "-q", "--to", "origin-mycluster", "f.txt")
        assert "(4 copies)" in annex(client, "whereis", "f.txt")
        ours = clone_client(g, tmp_path / "ours", "http")
        (ours / "g.txt").write_text("sent by annexsync\n")
        run(["annexsync", "add", "g.txt"], ours)
        run(["annexsync", "copy", "--to", "origin-mycluster", "g.txt"], ours)
        assert "(4 copies)" in annex(ours, "whereis", "g.txt")


def test_extendcluster_joins_a_cluster_through_its_gateway(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """9: gw2 learns gw1-mycluster (ssh URL), joins it; git-annex's gw2 would write the same."""
    from tests.integration.test_p2p_support import install_fake_ssh

    install_fake_ssh(tmp_path, monkeypatch)
    monkeypatch.setenv("GIT_ANNEX_VECTOR_CLOCK", CLOCK)
    g = build_gateway(tmp_path)
    finish_gateway(g)
    gw2 = _second_gateway(tmp_path, g.gw)
    twin = tmp_path / "gw2twin"
    shutil.copytree(gw2, twin, symlinks=True)
    theirs = annex(gw2, "extendcluster", "gw1", "mycluster")
    ours = run(["annexsync", "extendcluster", "gw1", "mycluster"], twin).stdout
    for repo in (gw2, twin):
        assert git(repo, "config", "annex.cluster.mycluster").strip() == g.uuids["mycluster"]
        assert git(repo, "config", "remote.gw1.annex-cluster-gateway").strip() == g.uuids["mycluster"]
    assert sorted(ours.splitlines()) == sorted(theirs.splitlines())
    assert _logs(twin)[:2] == _logs(gw2)[:2]
    missing = run(["annexsync", "extendcluster", "gw1", "nosuch"], twin, check=False)
    assert "Expected to find a cluster remote named gw1-nosuch" in missing.stderr


def test_client_of_a_second_gateway_accepts_the_cluster_in_plus_lists(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """9 / 13.1-10: gw2 (git-annex, extended to gw1's cluster over ssh) relays to gw1; the
    client logs gw1's nodes from the -PLUS list and never the cluster (which such lists
    may name, spec 9; ``set_location`` ignores it, see test_proxied)."""
    from tests.integration.cluster_support import logged_lines
    from tests.integration.test_p2p_support import install_fake_ssh

    install_fake_ssh(tmp_path, monkeypatch)
    g = build_gateway(tmp_path)
    finish_gateway(g)
    gw2 = _second_gateway(tmp_path, g.gw)
    annex(gw2, "extendcluster", "gw1", "mycluster")
    client = tmp_path / "c"
    git(tmp_path, "clone", "-q", f"localhost:{gw2}", str(client))
    run(["annexsync", "init", "c"], client)
    (client / "f.txt").write_text("through two gateways\n")
    run(["annexsync", "add", "f.txt"], client)
    key = annex(client, "lookupkey", "f.txt").strip()
    out = run(["annexsync", "copy", "--to", "origin-mycluster", "f.txt"], client, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = logged_lines(client, key)
    assert g.uuids["mycluster"] not in lines
    assert {u: lines.get(u) for u in g.node_uuids()} == dict.fromkeys(g.node_uuids(), "1")


def test_directory_special_remote_node_is_used_through_the_gateway(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """13.1-11: a directory special remote as a fourth node; our client lists it as a
    proxied remote (not as a special remote of its own), and a cluster upload reaches it."""
    from core.remotes import RemoteKind, list_remotes
    from core.repo.repository import AnnexRepo
    from tests.integration.cluster_support import logged_lines
    from tests.integration.test_p2p_support import install_fake_ssh

    install_fake_ssh(tmp_path, monkeypatch)
    g = build_gateway(tmp_path)
    (tmp_path / "dirstore").mkdir()
    annex(g.gw, "initremote", "dirnode", "type=directory", f"directory={tmp_path / 'dirstore'}",
          "encryption=none")  # fmt: skip
    git(g.gw, "config", "remote.dirnode.annex-cluster-node", "mycluster")
    finish_gateway(g)
    dirnode = git(g.gw, "config", "remote.dirnode.annex-uuid").strip()
    client = tmp_path / "c"
    git(tmp_path, "clone", "-q", f"localhost:{g.gw}", str(client))
    run(["annexsync", "init", "c"], client)
    with AnnexRepo.open(client) as repo:
        found = [r for r in list_remotes(repo) if r.uuid == dirnode]
    assert [(r.name, r.kind, r.via) for r in found] == [("origin-dirnode", RemoteKind.P2P, "origin")]
    (client / "f.txt").write_text("to a directory node too\n")
    run(["annexsync", "add", "f.txt"], client)
    key = annex(client, "lookupkey", "f.txt").strip()
    out = run(["annexsync", "copy", "--to", "origin-mycluster", "f.txt"], client, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert logged_lines(client, key).get(dirnode) == "1"
    assert any((tmp_path / "dirstore").rglob(key))
    assert dirnode in annex(client, "whereis", "f.txt")  # git-annex reads what we logged
