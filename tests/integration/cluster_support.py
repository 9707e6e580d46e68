"""A real git-annex cluster gateway for the cluster tests (no tests here).

Built as clusters.md 13 builds its reference gateway: ``gw`` with three git
nodes in ``mycluster`` and one more proxied remote, ``extra``; ``gw`` wants
nothing itself; real ``git annex p2phttp`` serves it on loopback, and ssh is
the fake of ``test_p2p_support`` (the remote command runs here).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import annex, git, isolate_home, run
from tests.integration.test_p2p_support import install_fake_ssh
from tests.integration.test_p2phttp_support import git_annex_p2phttp

NODES = ("node1", "node2", "node3")


@dataclass
class Gateway:
    root: Path
    gw: Path
    uuids: dict[str, str]  # name -> uuid: gw, node1..3, extra, mycluster
    port: int

    def node_uuids(self) -> set[str]:
        return {self.uuids[n] for n in NODES}


def uuid_of(repo: Path) -> str:
    return git(repo, "config", "annex.uuid").strip()


def build_gateway(root: Path, init_cluster: list[str] | None = None) -> Gateway:
    """gw, its nodes and extra, set up with real git-annex (or ``init_cluster``)."""
    gw = root / "gw"
    gw.mkdir()
    git(gw, "init", "-q")
    annex(gw, "init", "-q", "gw")
    run(init_cluster or ["git", "annex", "initcluster", "mycluster"], gw)
    uuids = {"gw": uuid_of(gw)}
    for name in (*NODES, "extra"):
        git(root, "clone", "-q", str(gw), str(root / name))
        annex(root / name, "init", "-q", name)
        git(gw, "remote", "add", name, str(root / name))
        if name == "extra":
            git(gw, "config", "remote.extra.annex-proxy", "true")
        else:
            git(gw, "config", f"remote.{name}.annex-cluster-node", "mycluster")
        uuids[name] = uuid_of(root / name)
    uuids["mycluster"] = git(gw, "config", "annex.cluster.mycluster").strip()
    return Gateway(root, gw, uuids, 0)


def finish_gateway(g: Gateway, update: list[str] | None = None) -> None:
    run(update or ["git", "annex", "updatecluster"], g.gw)
    git(g.gw, "fetch", "-q", "--all")
    annex(g.gw, "merge", "-q")
    annex(g.gw, "wanted", ".", "nothing")


@contextlib.contextmanager
def built_gateway(tmp_path_factory: pytest.TempPathFactory, name: str,
                  ssh: bool = False) -> Iterator[Gateway]:  # fmt: skip
    """The reference gateway for a test module, in a home of its own (``ssh``: the
    fake ssh set up, so ``localhost:`` URLs run the remote command here)."""
    with pytest.MonkeyPatch.context() as mp:
        isolate_home(tmp_path_factory.mktemp("home"), mp)
        root = tmp_path_factory.mktemp(name)
        if ssh:
            install_fake_ssh(root, mp)
        g = build_gateway(root)
        finish_gateway(g)
        yield g


@contextlib.contextmanager
def running_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The reference gateway with p2phttp running; fake ssh set for the module."""
    with built_gateway(tmp_path_factory, "cluster", ssh=True) as g, \
            git_annex_p2phttp(g.gw, "--wideopen", "-J4", "--clusterjobs", "3") as server:
        g.port = server.port
        yield g


def clone_client(g: Gateway, where: Path, transport: str, ours: bool = True) -> Path:
    """A client of ``g``: ``localhost:`` ssh URL, or the path plus annexUrl."""
    if transport == "ssh":
        git(where.parent, "clone", "-q", f"localhost:{g.gw}", str(where))
    else:
        git(where.parent, "clone", "-q", str(g.gw), str(where))
        git(where, "config", "remote.origin.annexurl",
            f"annex+http://127.0.0.1:{g.port}/git-annex/")  # fmt: skip
        git(where, "config", "annex.security.allowed-ip-addresses", "127.0.0.1")
    if ours:
        run(["annexsync", "init", where.name], where)
    else:
        annex(where, "init", "-q", where.name)
    return where


def client_of_our_gateway(root: Path, mp: pytest.MonkeyPatch) -> tuple[Gateway, Path]:
    """The reference gateway served by annexsync over the fake ssh, and a
    git-annex client of it with two files copied to the cluster (all three
    nodes) and numcopies 2."""
    install_fake_ssh(root, mp)
    g = build_gateway(root)
    finish_gateway(g)
    client = clone_client(g, root / "client", "ssh", ours=False)
    git(client, "config", "remote.origin.annex-shell", "annexsync")
    for name in ("a.txt", "b.txt"):
        (client / name).write_text(f"{name} in the cluster\n")
    annex(client, "add", "-q", ".")
    git(client, "commit", "-q", "-m", "two files")
    annex(client, "copy", "-q", "--to", "origin-mycluster", ".")
    annex(client, "numcopies", "2")
    return g, client


def add_file(repo: Path, name: str, data: bytes | None = None) -> str:
    """A new file (``data``, else content no other test has), added and committed by
    git-annex; its key."""
    (repo / name).write_bytes(data or f"{name} {uuid.uuid4()}\n".encode())
    annex(repo, "add", "-q", name)
    git(repo, "commit", "-q", "-m", name)
    return annex(repo, "lookupkey", name).strip()


def fsck_all(g: Gateway, client: Path) -> None:
    """git-annex's fsck finds the client, the gateway and every node sound."""
    for repo in (client, g.gw, *(g.root / n for n in NODES)):
        annex(repo, "fsck", "-q")


def present_uuids(repo: Path, key: str) -> set[str]:
    """What the location log in ``repo`` says, read by real git-annex."""
    out = annex(repo, "whereis", "--key", key, "--json")
    return {w["uuid"] for w in json.loads(out)["whereis"]}


def logged_lines(repo: Path, key: str) -> dict[str, str]:
    """uuid -> "1"/"0" from the raw location log (journal first, then the branch)."""
    rel = annex(repo, "examinekey", "--format=${hashdirlower}${key}.log", key).strip()
    journal = repo / ".git" / "annex" / "journal" / rel.replace("/", "_")
    text = journal.read_text() if journal.exists() else git(repo, "show", f"git-annex:{rel}",
                                                            check=False)  # fmt: skip
    out = {}
    for line in text.splitlines():
        _, status, uuid = line.split(" ", 2)
        out[uuid] = status
    return out


def content_path(repo: Path, key: str) -> Path | None:
    out = annex(repo, "contentlocation", key, check=False).strip()
    return repo / out if out else None


__all__ = ["NODES", "Gateway", "add_file", "build_gateway", "built_gateway",
           "client_of_our_gateway", "clone_client", "content_path", "finish_gateway", "fsck_all",
           "logged_lines", "present_uuids", "running_gateway", "uuid_of"]  # fmt: skip


def copy_get_drop(g: Gateway, client: Path, remote: str) -> None:
    """One file through ``remote`` (the cluster, by whichever path): fan-out to every
    node, logs on both sides as a git-annex gateway writes them (clusters.md 2.4, no
    cluster line), get back, drop from every node, fsck clean everywhere."""
    key = add_file(client, "f.txt")
    me = git(client, "config", "annex.uuid").strip()
    nodes = g.node_uuids()

    annex(client, "copy", "-q", "--to", remote, "f.txt")
    assert logged_lines(client, key) == {me: "1", **dict.fromkeys(nodes, "1")}
    assert logged_lines(g.gw, key) == dict.fromkeys(nodes, "1")  # no cluster line
    for n in NODES:
        assert content_path(g.root / n, key) is not None, n
    assert "(4 copies)" in annex(client, "whereis", "f.txt")

    annex(client, "drop", "-q", "--force", "f.txt")
    annex(client, "get", "-q", "--from", remote, "f.txt")
    assert content_path(client, key) is not None

    annex(client, "drop", "-q", "--from", remote, "f.txt")
    assert logged_lines(client, key) == {me: "1", **dict.fromkeys(nodes, "0")}
    assert logged_lines(g.gw, key) == dict.fromkeys(nodes, "0")
    for n in NODES:
        assert content_path(g.root / n, key) is None, n
    fsck_all(g, client)
