"""annexsync as the cluster gateway of real git-annex clients (clusters.md 5, 7, 13.2).

The gateway repository and its three nodes are set up with real git-annex
(``cluster_support``); the clients are real git-annex over the fake ssh,
with ``remote.origin.annex-shell = annexsync``, so every ``p2pstdio``
(the cluster's included) is served by our ``annexsync p2pstdio``, and we
reach the nodes with our own ``p2pstdio``.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import annex, git, isolate_home
from tests.integration.cluster_support import (
    NODES,
    Gateway,
    build_gateway,
    clone_client,
    content_path,
    finish_gateway,
    logged_lines,
)
from tests.integration.test_p2p_support import install_fake_ssh

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with pytest.MonkeyPatch.context() as mp:
        isolate_home(tmp_path_factory.mktemp("home"), mp)
        root = tmp_path_factory.mktemp("ours")
        install_fake_ssh(root, mp)
        g = build_gateway(root)
        finish_gateway(g)
        yield g


def _client(g: Gateway, where: Path) -> Path:
    c = clone_client(g, where, "ssh", ours=False)
    git(c, "config", "remote.origin.annex-shell", "annexsync")
    return c


def _add(repo: Path, name: str) -> str:
    (repo / name).write_text(f"{name} {uuid.uuid4()}\n")
    annex(repo, "add", "-q", name)
    git(repo, "commit", "-q", "-m", name)
    return annex(repo, "lookupkey", name).strip()


def _gateway_lines(g: Gateway, key: str) -> dict[str, str]:
    return logged_lines(g.gw, key)


def _fsck_all(g: Gateway, client: Path) -> None:
    for repo in (client, g.gw, *(g.root / n for n in NODES)):
        annex(repo, "fsck", "-q")


def test_copy_get_drop_through_our_gateway(gateway: Gateway, tmp_path: Path) -> None:
    """13.2-2/4/5: fanout to every node, logs on both sides, get back, drop from all."""
    g = gateway
    client = _client(g, tmp_path / "c")
    key = _add(client, "f.txt")
    me = git(client, "config", "annex.uuid").strip()
    nodes = g.node_uuids()

    annex(client, "copy", "-q", "--to", "origin-mycluster", "f.txt")
    assert logged_lines(client, key) == {me: "1", **dict.fromkeys(nodes, "1")}
    assert _gateway_lines(g, key) == dict.fromkeys(nodes, "1")  # no cluster line
    for n in NODES:
        assert content_path(g.root / n, key) is not None, n
    assert "(4 copies)" in annex(client, "whereis", "f.txt")

    annex(client, "drop", "-q", "--force", "f.txt")
    annex(client, "get", "-q", "--from", "origin-mycluster", "f.txt")
    assert content_path(client, key) is not None

    annex(client, "drop", "-q", "--from", "origin-mycluster", "f.txt")
    assert logged_lines(client, key) == {me: "1", **dict.fromkeys(nodes, "0")}
    assert _gateway_lines(g, key) == dict.fromkeys(nodes, "0")
    for n in NODES:
        assert content_path(g.root / n, key) is None, n
    _fsck_all(g, client)


def _status(out: str) -> bool:
    return bool(json.loads(out.splitlines()[-1])["success"])


def test_node_down_and_node_failing_mid_put(gateway: Gateway, tmp_path: Path) -> None:
    """7 done better: the other nodes complete, answers and logs say what happened.

    node1 is moved away (unreachable), node3 refuses the PUT after taking the
    data (``annex.diskreserve`` too large: PUT-FROM, DATA, then FAILURE).
    """
    g = gateway
    client = _client(g, tmp_path / "c")
    me = git(client, "config", "annex.uuid").strip()
    u1, u2, u3 = (g.uuids[n] for n in NODES)
    had = _add(client, "had.txt")
    annex(client, "copy", "-q", "--to", "origin-mycluster", "had.txt")  # on all three
    key = _add(client, "new.txt")
    away = g.root / "node1.away"
    (g.root / "node1").rename(away)
    git(g.root / "node3", "config", "annex.diskreserve", "1000000G")
    try:
        annex(client, "copy", "-q", "--to", "origin-mycluster", "new.txt")
        assert logged_lines(client, key) == {me: "1", u2: "1"}
        assert _gateway_lines(g, key) == {u2: "1"}
        assert content_path(g.root / "node3", key) is None

        # get falls back from node1 (first in cost order, unreachable) to node2
        annex(client, "drop", "-q", "--force", "had.txt")
        annex(client, "get", "-q", "--from", "origin-mycluster", "had.txt")
        assert content_path(client, had) is not None

        # a partial drop: FAILURE-PLUS of what went; both sides log exactly that
        out = annex(client, "drop", "--json", "--from", "origin-mycluster", "had.txt", check=False)
        assert not _status(out)
        assert logged_lines(client, had) == {me: "1", u1: "1", u2: "0", u3: "0"}
        assert _gateway_lines(g, had) == {u1: "1", u2: "0", u3: "0"}
    finally:
        away.rename(g.root / "node1")
        git(g.root / "node3", "config", "--unset", "annex.diskreserve")
    assert content_path(g.root / "node1", had) is not None  # it was never touched
    _fsck_all(g, client)
