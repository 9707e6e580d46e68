"""annexsync as the client of a real git-annex cluster gateway (clusters.md 4, 13.1).

One gateway of three nodes (plus a proxied ``extra``) is built for the
module with real git-annex; its ``git annex p2phttp`` serves the HTTP
clients, the fake ssh runs ``git-annex-shell`` for the ssh clients.  Each test
adds content of its own, so the tests share the gateway without seeing each
other's keys.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.remotes import RemoteKind, list_remotes
from core.repo.repository import AnnexRepo
from tests.conftest import annex, git, run
from tests.integration.cluster_support import (
    NODES,
    Gateway,
    clone_client,
    content_path,
    logged_lines,
    present_uuids,
    running_gateway,
)
from tests.integration.servers_support import stop

pytestmark = pytest.mark.interop
TRANSPORTS = ["ssh", "http"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory) as g:
        yield g


def _add(repo: Path, name: str) -> str:
    (repo / name).write_text(f"{name} {uuid.uuid4()}\n")  # a key no other test has
    run(["annexsync", "add", name], repo)
    git(repo, "commit", "-q", "-m", name)
    return annex(repo, "lookupkey", name).strip()


def _ok(repo: Path, *args: str) -> str:
    out = run(["annexsync", *args], repo, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_proxied_remotes_as_git_annex_lists_them(gateway: Gateway, tmp_path: Path,
                                                 transport: str) -> None:  # fmt: skip
    """13.1-1: names, UUIDs, kinds, cost (+0.1 for nodes), sync flags; suppression."""
    client = clone_client(gateway, tmp_path / "c", transport)
    with AnnexRepo.open(client) as repo:
        got = {r.name: r for r in list_remotes(repo)}
    base = 200.0 if transport == "ssh" else 100.0  # git-annex: ssh 200, a local path 100
    assert got["origin-mycluster"].uuid == gateway.uuids["mycluster"]
    assert got["origin-mycluster"].kind is RemoteKind.CLUSTER
    assert (got["origin-mycluster"].cost, got["origin-mycluster"].sync) == (base, True)
    assert (got["origin-extra"].uuid, got["origin-extra"].cost) == (gateway.uuids["extra"], base)
    for n in NODES:
        node = got[f"origin-{n}"]
        assert (node.uuid, node.cost, node.sync) == (gateway.uuids[n], base + 0.1, False)
        assert node.proxied_by == gateway.uuids["gw"] and not node.git_remote
    assert got["origin"].git_remote and got["origin"].proxied_by is None
    git(client, "config", "remote.origin-node1.annex-cost", "7")  # any key suppresses it
    with AnnexRepo.open(client) as repo:
        proxied = {r.name for r in list_remotes(repo) if r.via}
    assert proxied == {"origin-mycluster", "origin-extra", "origin-node2", "origin-node3"}


def test_local_path_gateway_without_annexurl_proxies_nothing(gateway: Gateway,
                                                             tmp_path: Path) -> None:  # fmt: skip
    client = clone_client(gateway, tmp_path / "c", "http")
    git(client, "config", "--unset", "remote.origin.annexurl")
    with AnnexRepo.open(client) as repo:
        assert [r.name for r in list_remotes(repo) if r.via] == []
    out = annex(client, "info", "origin-mycluster", check=False)  # git-annex agrees
    assert "cluster: true" not in out


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_copy_get_drop_cluster(gateway: Gateway, tmp_path: Path, transport: str) -> None:
    """13.1-3/5/6: fanout logged per node, never the cluster; get back; drop from all."""
    client = clone_client(gateway, tmp_path / "c", transport)
    key = _add(client, "f.txt")
    me = git(client, "config", "annex.uuid").strip()
    _ok(client, "copy", "--to", "origin-mycluster", "f.txt")
    nodes = gateway.node_uuids()
    assert logged_lines(client, key) == {me: "1", **dict.fromkeys(nodes, "1")}
    # real git-annex reads what we wrote: the cluster shown, not counted
    assert present_uuids(client, key) == {me, gateway.uuids["mycluster"], *nodes}
    assert "(4 copies)" in annex(client, "whereis", "f.txt")
    assert "(4 copies)" in _ok(client, "whereis", "f.txt")
    ours = json.loads(_ok(client, "whereis", "--json", "f.txt"))
    theirs = json.loads(annex(client, "whereis", "--json", "f.txt"))
    assert [w["uuid"] for w in ours["whereis"]] == [w["uuid"] for w in theirs["whereis"]]
    assert ([w["description"] for w in ours["whereis"]]
            == [w["description"] for w in theirs["whereis"]])  # fmt: skip
    for n in NODES:
        assert content_path(gateway.root / n, key) is not None, n
        annex(gateway.root / n, "fsck", "-q", "--key", key)  # its own log agrees
    annex(gateway.gw, "fsck", "-q", "--key", key)

    _ok(client, "drop", "f.txt")  # proven by locking a node through the gateway
    assert content_path(client, key) is None
    _ok(client, "get", "--from", "origin-mycluster", "f.txt")
    assert content_path(client, key) is not None

    _ok(client, "drop", "--from", "origin-mycluster", "f.txt")
    assert logged_lines(client, key) == {me: "1", **dict.fromkeys(nodes, "0")}
    for n in NODES:
        assert content_path(gateway.root / n, key) is None, n
    assert "(1 copy)" in annex(client, "whereis", "f.txt")
    annex(client, "fsck", "-q")  # (the nodes now rightly know of no copy: checked above)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_copy_get_drop_single_node(gateway: Gateway, tmp_path: Path, transport: str) -> None:
    client = clone_client(gateway, tmp_path / "c", transport)
    key = _add(client, "n.txt")
    me = git(client, "config", "annex.uuid").strip()
    node2 = gateway.uuids["node2"]
    _ok(client, "copy", "--to", "origin-node2", "n.txt")
    assert logged_lines(client, key) == {me: "1", node2: "1"}
    assert content_path(gateway.root / "node2", key) is not None
    assert content_path(gateway.root / "node1", key) is None
    # node2 is a cluster node: the cluster now "has" it, and is not counted
    assert present_uuids(client, key) == {me, node2, gateway.uuids["mycluster"]}
    _ok(client, "drop", "n.txt")
    _ok(client, "get", "--from", "origin-node2", "n.txt")
    _ok(client, "drop", "--from", "origin-node2", "n.txt")
    assert logged_lines(client, key) == {me: "1", node2: "0"}
    assert content_path(gateway.root / "node2", key) is None
    annex(client, "fsck", "-q")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_numcopies_two_refuses_cluster_drop(gateway: Gateway, tmp_path: Path,
                                            transport: str) -> None:  # fmt: skip
    """13.1-6: dropping from the cluster, its nodes prove nothing: refused as git-annex does."""
    client = clone_client(gateway, tmp_path / "c", transport)
    key = _add(client, "two.txt")
    _ok(client, "copy", "--to", "origin-mycluster", "two.txt")
    annex(client, "numcopies", "2")
    out = run(["annexsync", "drop", "--from", "origin-mycluster", "two.txt"], client, check=False)
    theirs = annex(client, "drop", "--from", "origin-mycluster", "two.txt", check=False)
    assert out.returncode != 0
    assert "could only verify the existence of 1 out of 2" in (out.stdout + out.stderr).lower()
    assert "failed" in theirs or "Could only verify" in theirs
    for n in NODES:
        assert content_path(gateway.root / n, key) is not None, n
    _ok(client, "drop", "two.txt")  # the local copy: two nodes locked through the gateway
    assert content_path(client, key) is None


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_same_log_as_a_git_annex_client(gateway: Gateway, tmp_path: Path, transport: str) -> None:
    """The location lines annexsync writes mean what git-annex's own client writes."""
    ours = clone_client(gateway, tmp_path / "ours", transport)
    theirs = clone_client(gateway, tmp_path / "theirs", transport, ours=False)
    results = []
    for repo, cmd in ((ours, ["annexsync"]), (theirs, ["git", "annex"])):
        key = _add(repo, "same.txt")
        me = git(repo, "config", "annex.uuid").strip()
        run([*cmd, "copy", "--to", "origin-mycluster", "same.txt"], repo)
        after_copy = {u if u != me else "me": s for u, s in logged_lines(repo, key).items()}
        run([*cmd, "drop", "--from", "origin-mycluster", "same.txt"], repo)
        after_drop = {u if u != me else "me": s for u, s in logged_lines(repo, key).items()}
        results.append((after_copy, after_drop))
    assert results[0] == results[1]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sync_content_uses_the_cluster_not_its_nodes(gateway: Gateway, tmp_path: Path,
                                                     transport: str) -> None:  # fmt: skip
    """4.6/13.2-10: content to the cluster (and extra), never to a node directly; git
    only with the gateway; the same locations as git-annex's own ``sync --content``."""
    results = []
    for ours in (True, False):
        client = clone_client(gateway, tmp_path / f"c{ours}", transport, ours=ours)
        key = _add(client, "s.txt")
        skipped = _add(client, "skip.txt")  # the cluster does not want it: its nodes get none
        annex(client, "wanted", gateway.uuids["mycluster"], "exclude=skip*")
        me = git(client, "config", "annex.uuid").strip()
        trace = tmp_path / f"ssh-{ours}.log"
        log = gateway.root / "ssh.log"
        before = log.read_text() if log.exists() else ""
        cmd = ["annexsync", "sync", "--content"] if ours else ["git", "annex", "sync", "--content"]
        run(cmd, client, check=False)  # the clients' unrelated main branches may not push
        trace.write_text((log.read_text() if log.exists() else "")[len(before):])
        for k in (key, skipped):
            lines = logged_lines(client, k)
            results.append({("me" if u == me else u): s for u, s in lines.items()})
        annex_tip = git(client, "rev-parse", "git-annex").strip()
        assert f"{annex_tip}\trefs/heads/synced/git-annex" in git(client, "ls-remote", "origin")
        if transport == "ssh":  # no session named a node: only the cluster and extra
            nodes = gateway.node_uuids()
            assert not any(f"--uuid '{n}'" in trace.read_text() for n in nodes), trace.read_text()
    nodes = gateway.node_uuids()
    extra = gateway.uuids["extra"]
    assert results[0] == results[2] == {"me": "1", extra: "1", **dict.fromkeys(nodes, "1")}
    assert results[1] == results[3] == {"me": "1", extra: "1"}


def test_daemon_shows_the_cluster_and_sends_to_it_not_its_nodes(gateway: Gateway,
                                                                tmp_path: Path) -> None:  # fmt: skip
    """The daemon treats the cluster as one remote with nodes: status lists it (via the
    gateway, naming its nodes), content goes to the cluster, no node is synced directly."""
    from tests.integration.test_daemon_cli import ANNEXSYNC, status_json, wait_for

    client = clone_client(gateway, tmp_path / "c", "ssh")
    key = _add(client, "d.txt")
    skipped = _add(client, "skip-d.txt")  # the cluster does not want it: no node may get it
    annex(client, "wanted", gateway.uuids["mycluster"], "exclude=skip*")
    log = gateway.root / "ssh.log"
    before = len(log.read_text())
    cfg = tmp_path / "cfg"
    proc = subprocess.Popen([*ANNEXSYNC, "--config-dir", str(cfg), "daemon", str(client)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        def remotes() -> dict[str, dict[str, object]]:
            data = status_json(cfg)
            return {r["name"]: r for repo in data["repos"] for r in repo["remotes"]}

        wait_for(lambda: "origin-mycluster" in remotes(), "the cluster in status", 30)
        got = remotes()
        assert got["origin-mycluster"]["via"] == "origin"
        assert got["origin-mycluster"]["nodes"] == [f"origin-{n}" for n in NODES]
        assert got["origin-node1"]["via"] == "origin" and got["origin"]["via"] is None
        nodes = gateway.node_uuids()
        wait_for(lambda: all(logged_lines(client, key).get(n) == "1" for n in nodes),
                 "the upload to the cluster", 30)
        wait_for(lambda: logged_lines(client, skipped).get(gateway.uuids["extra"]) == "1",
                 "the upload to extra", 30)
        assert not nodes & set(logged_lines(client, skipped))
        trace = log.read_text()[before:]
        assert f"--uuid '{gateway.uuids['mycluster']}'" in trace
        # Nodes are named only by the cluster status's probes (issue 17: CHECKPRESENT
        # of the empty key, no content); the skipped file reached none of them above.
        status = status_json(cfg)
        (cluster,) = [c for repo in status["repos"] for c in repo["clusters"]]
        assert {n["uuid"] for n in cluster["nodes"]} == nodes
    finally:
        stop(proc)  # type: ignore[arg-type]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_info_of_gateway_cluster_and_node_as_git_annex(gateway: Gateway, tmp_path: Path,
                                                       transport: str) -> None:  # fmt: skip
    """4.1: ``info origin`` names the cluster and what it proxies; the cluster says so."""
    client = clone_client(gateway, tmp_path / "c", transport)
    for name in ("origin", "origin-mycluster", "origin-node1", "origin-extra"):
        ours = _ok(client, "info", name).splitlines()
        theirs = annex(client, "info", "--fast", name).splitlines()
        assert ours and set(ours) <= set(theirs), (name, ours, theirs)
    gw = _ok(client, "info", "origin")
    assert "gateway to cluster: origin-mycluster" in gw
    assert "cluster: true" in _ok(client, "info", "origin-mycluster")


def test_drop_from_cluster_while_locking_extra_uses_remove_before(gateway: Gateway,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    """13.1-7: the proof holds a time-limited lock on origin-extra, so the cluster gets
    GETTIMESTAMP and REMOVE-BEFORE, and every node answers in the SUCCESS-PLUS list."""
    client = clone_client(gateway, tmp_path / "c", "ssh")
    key = _add(client, "rb.txt")
    _ok(client, "copy", "--to", "origin-mycluster", "rb.txt")
    _ok(client, "copy", "--to", "origin-extra", "rb.txt")
    trace = tmp_path / "p2p-input"
    out = run(["annexsync", "drop", "--from", "origin-mycluster", "rb.txt"], client, check=False,
              env={**os.environ, "P2P_TRACE_INPUT": str(trace)})  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    sent = trace.read_text(errors="replace")
    assert "GETTIMESTAMP" in sent and "REMOVE-BEFORE " in sent and f" {key}" in sent
    assert "LOCKCONTENT" in sent
    lines = logged_lines(client, key)
    assert {u: lines[u] for u in gateway.node_uuids()} == dict.fromkeys(gateway.node_uuids(), "0")
    assert lines[gateway.uuids["extra"]] == "1"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_already_on_every_node_logs_the_plus_list(gateway: Gateway, tmp_path: Path,
                                                  transport: str) -> None:  # fmt: skip
    """13.1-4: content put on the nodes behind the gateway's back; a PUT to the cluster is
    answered ALREADY-HAVE-PLUS (``alreadyhave`` + ``plusuuids``), and those are logged."""
    data = f"everywhere already {uuid.uuid4()}\n"
    seeder = clone_client(gateway, tmp_path / "seeder", "ssh")
    (seeder / "a.txt").write_text(data)
    run(["annexsync", "add", "a.txt"], seeder)
    for n in NODES:
        git(seeder, "remote", "add", n, str(gateway.root / n))
        _ok(seeder, "copy", "--to", n, "a.txt")
    client = clone_client(gateway, tmp_path / "c", transport)
    (client / "a.txt").write_text(data)
    run(["annexsync", "add", "a.txt"], client)
    key = annex(client, "lookupkey", "a.txt").strip()
    me = git(client, "config", "annex.uuid").strip()
    _ok(client, "copy", "--to", "origin-mycluster", "a.txt")
    assert logged_lines(client, key) == {me: "1", **dict.fromkeys(gateway.node_uuids(), "1")}


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_get_of_a_key_no_node_has_fails_cleanly(gateway: Gateway, tmp_path: Path,
                                                transport: str) -> None:  # fmt: skip
    """13.1-5: the cluster answers DATA 0 + INVALID (ssh) or 200 with length 0 (HTTP) for
    a key no node has; that is a failure, never an empty file kept under the key."""
    author = clone_client(gateway, tmp_path / "author", transport)
    _add(author, "absent.txt")
    client = clone_client(gateway, tmp_path / "c", transport)
    git(client, "pull", "-q", str(author), "main")
    key = annex(client, "lookupkey", "absent.txt").strip()
    out = run(["annexsync", "get", "--from", "origin-mycluster", "absent.txt"], client,
              check=False)  # fmt: skip
    assert out.returncode != 0
    assert "absent.txt" in out.stdout + out.stderr
    assert content_path(client, key) is None
    me = git(client, "config", "annex.uuid").strip()
    assert logged_lines(client, key).get(me) != "1"
