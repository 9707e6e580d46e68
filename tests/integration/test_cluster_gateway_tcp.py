"""annexsync as a cluster gateway over its TCP listener (clusters.md 5, 7; issue 17).

The gateway and its three nodes are set up with real git-annex
(``cluster_support``); ``annexsync p2p-listen`` serves the gateway, and
``annexsync p2p-gen-address mycluster`` gives out a token that opens the
cluster itself.  The client is real git-annex, linked the way git-annex links
any P2P peer (``git annex p2p --link`` through git-annex's own
``git-remote-p2p-annex`` and our ``git-annex-p2p-annexsync-tcp`` helper): it
records the cluster's UUID from AUTH-SUCCESS and checks it on every
connection.  Raw exchanges use our own client.  Each test starts its own
listener; node connections are our ``p2pstdio`` in subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import RemoteRefused, RemoteUnavailable
from core.p2p.listener import PROXIED_TOKENS, add_proxied_token
from core.p2p.remote import P2PClient
from core.p2p.transport import open_tcp
from core.repo.key import Key
from tests.conftest import annex, git, run
from tests.integration.cluster_support import (
    NODES,
    Gateway,
    add_file,
    built_gateway,
    content_path,
    copy_get_drop,
    fsck_all,
    logged_lines,
)
from tests.integration.servers_support import start_server
from tests.integration.test_p2p_connect import (
    _git_annex_remote_helper,
    helpers,  # noqa: F401 - a fixture
    needs_git_annex,
)

pytestmark = [pytest.mark.interop, needs_git_annex]

LISTEN_PORT = r"listening on 127\.0\.0\.1:(\d+)"
CLIENT_UUID = "c1c1c1c1-0000-4000-8000-0000000000c1"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with built_gateway(tmp_path_factory, "tcp") as g:
        yield g


@pytest.fixture
def served(gateway: Gateway, tmp_path: Path, helpers: Path) -> Iterator[Gateway]:  # noqa: F811
    """Our listener serving the gateway for one test (``gateway.port`` set)."""
    _git_annex_remote_helper(helpers)
    argv = ["p2p-listen", "--bind", "127.0.0.1:0", str(gateway.gw)]
    with start_server(argv, tmp_path, LISTEN_PORT) as (_proc, port):
        gateway.port = port
        yield gateway


def _address(g: Gateway, target: str) -> str:
    out = run(["annexsync", "p2p-gen-address", target, "--address", f"127.0.0.1:{g.port}"],
              g.gw).stdout.strip()  # fmt: skip
    assert out.startswith(f"p2p-annex::annexsync-tcp:127.0.0.1:{g.port}/{target}:"), out
    return out


def _linked_client(g: Gateway, where: Path, address: str) -> Path:
    """A clone of the gateway (it knows cluster.log and proxy.log) whose remote
    ``cl`` is linked to ``address`` by git-annex itself."""
    git(where.parent, "clone", "-q", str(g.gw), str(where))
    annex(where, "init", "-q", where.name)
    run(["git", "annex", "p2p", "--link", "--name", "cl"], where, input=address + "\n")
    return where


def test_copy_get_drop_through_the_tcp_gateway(served: Gateway, tmp_path: Path) -> None:
    """A git-annex client linked to the cluster's address: fan-out to every
    node, both location logs as a git-annex gateway writes them, get back,
    drop from every node; git-annex's own --gen-addresses keeps our token."""
    g = served
    env = {**os.environ, "ANNEXSYNC_P2P_ADDRESS": f"127.0.0.1:{g.port}"}
    run(["git", "annex", "p2p", "--enable", "annexsync-tcp"], g.gw, env=env)
    address = run(["annexsync", "p2p-gen-address", "mycluster"], g.gw).stdout.strip()
    own = run(["git", "annex", "p2p", "--gen-addresses"], g.gw).stdout.strip()  # rewrites p2pauth
    assert address.rsplit(":", 1)[1] in (g.gw / ".git/annex/creds" / PROXIED_TOKENS).read_text()
    client = _linked_client(g, tmp_path / "c", address)
    assert git(client, "config", "remote.cl.annex-uuid").strip() == g.uuids["mycluster"]
    run(["git", "annex", "p2p", "--link", "--name", "gw"], client, input=own + "\n")
    assert git(client, "config", "remote.gw.annex-uuid").strip() == g.uuids["gw"]

    copy_get_drop(g, client, 'cl')


def _success(out: str) -> bool:
    return bool(json.loads(out.splitlines()[-1])["success"])


def test_node_down_and_node_failing_mid_put_over_tcp(served: Gateway, tmp_path: Path) -> None:
    """clusters.md 7 done better, as over ssh and HTTP: node1 moved away
    (unreachable), node3 refusing the data (``annex.diskreserve``); node2
    completes; the PLUS answers and both logs say exactly that."""
    g = served
    client = _linked_client(g, tmp_path / "c", _address(g, "mycluster"))
    me = git(client, "config", "annex.uuid").strip()
    u1, u2, u3 = (g.uuids[n] for n in NODES)
    had = add_file(client, "had.txt")
    annex(client, "copy", "-q", "--to", "cl", "had.txt")  # on all three
    key = add_file(client, "new.txt")
    away = g.root / "node1.away"
    (g.root / "node1").rename(away)
    git(g.root / "node3", "config", "annex.diskreserve", "1000000G")
    try:
        annex(client, "copy", "-q", "--to", "cl", "new.txt")  # SUCCESS-PLUS node2
        assert logged_lines(client, key) == {me: "1", u2: "1"}
        assert logged_lines(g.gw, key) == {u2: "1"}
        assert content_path(g.root / "node3", key) is None

        annex(client, "drop", "-q", "--force", "had.txt")  # get falls back to node2
        annex(client, "get", "-q", "--from", "cl", "had.txt")
        assert content_path(client, had) is not None

        out = annex(client, "drop", "--json", "--from", "cl", "had.txt", check=False)
        assert not _success(out)  # FAILURE-PLUS node2 node3
        assert logged_lines(g.gw, had) == {u1: "1", u2: "0", u3: "0"}
        assert logged_lines(client, had) == {me: "1", u1: "1", u2: "0", u3: "0"}
    finally:
        away.rename(g.root / "node1")
        git(g.root / "node3", "config", "--unset", "annex.diskreserve")
    assert content_path(g.root / "node1", had) is not None  # never touched
    fsck_all(g, client)


async def _session(g: Gateway, token: str, expect: str | None = None) -> P2PClient:
    link = await open_tcp("127.0.0.1", g.port)
    return await P2PClient.connect(link, our_uuid=CLIENT_UUID, token=token, expect_uuid=expect)


def test_tokens_open_what_they_name_and_proxied_sessions_refuse_git(served: Gateway) -> None:
    """Each token opens exactly its UUID: the cluster, the proxied ``extra``, or
    nothing (a wrong token, a token naming a UUID not proxied here); NOTIFYCHANGE
    and CONNECT to a cluster or proxied remote are protocol errors that end the
    session (clusters.md 5.10)."""
    g = served
    cluster, extra = g.uuids["mycluster"], g.uuids["extra"]
    tokens = {t: _address(g, t).rsplit(":", 1)[1] for t in ("mycluster", "extra")}
    stray = "0123456789abcdef" * 4
    add_proxied_token(g.gw / ".git", stray, str(uuid.uuid4()))  # not in proxy.log
    key = Key.parse("SHA256E-s1--" + "0" * 64)
    refused = run(["annexsync", "p2p-gen-address", "node9", "--address", "127.0.0.1:1"], g.gw,
                  check=False)  # fmt: skip
    assert refused.returncode == 1 and "node9 is not a cluster or proxied remote" in refused.stderr

    async def scenario() -> None:
        for token in ("f" * 64, stray):
            with pytest.raises(RemoteRefused, match="authentication failed"):
                await _session(g, token)
        c = await _session(g, tokens["mycluster"], cluster)
        try:
            assert await c.check_present(key) is False
            with pytest.raises(RemoteRefused, match="protocol error"):
                await c.notify_change(10)
            with pytest.raises((RemoteUnavailable, ConnectionError)):
                await c.check_present(key)  # the session is over
        finally:
            await c.aclose()
        c = await _session(g, tokens["extra"], extra)
        try:
            assert await c.check_present(key) is False
            with pytest.raises(RemoteRefused, match="protocol error"):
                await c.notify_change(10)
        finally:
            await c.aclose()
        for target in ("mycluster", "extra"):  # git goes to the gateway itself
            assert await _raw(g, tokens[target], "VERSION 4", "CONNECT git-upload-pack") == [
                f"AUTH-SUCCESS {g.uuids[target]}", "VERSION 4", "ERROR protocol error"]  # fmt: skip

    asyncio.run(asyncio.wait_for(scenario(), 60))


async def _raw(g: Gateway, token: str, *lines: str) -> list[str]:
    """AUTH and ``lines`` on a bare connection; every line the server sends until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", g.port)
    try:
        writer.write("".join(f"{line}\n" for line in (f"AUTH {CLIENT_UUID} {token}", *lines)).encode())
        await writer.drain()
        out = []
        while line := await asyncio.wait_for(reader.readline(), 20):  # the server must close
            out.append(line.decode().rstrip("\n"))
        return out
    finally:
        writer.close()


def test_our_own_client_through_the_tcp_gateway(served: Gateway, tmp_path: Path) -> None:
    """annexsync's client on the same address (token in git config): the
    SUCCESS-PLUS and removal lists land in its location log too."""
    g = served
    url, token = _address(g, "mycluster").rsplit(":", 1)
    client = tmp_path / "c"
    git(tmp_path, "clone", "-q", str(g.gw), str(client))
    run(["annexsync", "init", "c"], client)
    git(client, "remote", "add", "cl", url)
    git(client, "config", "remote.cl.annexsync-p2p-authtoken", token)
    key = add_file(client, "o.txt")
    me = git(client, "config", "annex.uuid").strip()
    nodes = g.node_uuids()
    run(["annexsync", "copy", "--to", "cl", "o.txt"], client)
    assert logged_lines(client, key) == {me: "1", **dict.fromkeys(nodes, "1")}
    run(["annexsync", "drop", "--from", "cl", "o.txt"], client)
    assert logged_lines(client, key) == {me: "1", **dict.fromkeys(nodes, "0")}
    assert logged_lines(g.gw, key) == dict.fromkeys(nodes, "0")
    fsck_all(g, client)
