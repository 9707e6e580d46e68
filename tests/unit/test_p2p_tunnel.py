"""Pure parts of CONNECT and NOTIFYCHANGE: addresses, argv, ref diffs, the watcher."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.p2p.messages import Service
from core.p2p.notify import RefWatcher, ref_changes
from core.p2p.tunnel import (
    P2PAddress,
    creds_file_name,
    net_helper_main,
    parse_p2p_url,
    service_argv,
)

A, B, C = b"a" * 40, b"b" * 40, b"c" * 40


@pytest.mark.parametrize(
    ("url", "net", "addr"),
    [
        ("p2p-annex::annexsync-tcp:127.0.0.1:9000", "annexsync-tcp", "127.0.0.1:9000"),
        ("annexsync::tcp:[::1]:9000", "tcp", "[::1]:9000"),
        ("unixsock:node1", "unixsock", "node1"),
        ("p2p-annex::yggstack:a:b:c", "yggstack", "a:b:c"),
    ],
)
def test_parse_p2p_url(url: str, net: str, addr: str) -> None:
    assert parse_p2p_url(url) == P2PAddress(net, addr)


@pytest.mark.parametrize(
    "url", ["p2p-annex::", "p2p-annex::annexsync-tcp", "p2p-annex::../evil:x", "p2p-annex::a/b:x", ":x"]
)
def test_parse_p2p_url_refuses(url: str) -> None:
    with pytest.raises(ValueError):
        parse_p2p_url(url)


def test_host_port() -> None:
    assert P2PAddress("tcp", "[::1]:22").host_port() == ("::1", 22)
    assert P2PAddress("tcp", "h:1").url() == "p2p-annex::tcp:h:1"
    for bad in ("h", "h:", ":1", "h:+1", "h:70000", "h:0", "h/x:1"):
        with pytest.raises(ValueError):
            P2PAddress("tcp", bad).host_port()
    # a /LABEL after the port (a gateway's cluster) is not where to connect
    assert P2PAddress("annexsync-tcp", "[::1]:9/my/cluster").host_port() == ("::1", 9)


def test_a_bind_address_has_no_label() -> None:
    from core.p2p.listen import ListenError, parse_bind

    assert parse_bind("127.0.0.1:0") == ("127.0.0.1", 0)
    with pytest.raises(ListenError):
        parse_bind("127.0.0.1:9416/mycluster")


def test_service_argv_disables_hooks(tmp_path: Path) -> None:
    argv = service_argv(Service.RECEIVE_PACK, tmp_path)
    assert argv[0] == "git" and argv[-2:] == ["receive-pack", str(tmp_path)]
    assert any(a.startswith("core.hooksPath=") for a in argv)
    assert service_argv(Service.UPLOAD_PACK, tmp_path)[-2] == "upload-pack"


def test_net_helper_address(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ANNEXSYNC_P2P_ADDRESS", raising=False)
    assert net_helper_main(["address"]) == 1
    monkeypatch.setenv("ANNEXSYNC_P2P_ADDRESS", "127.0.0.1:1 [::1]:2")
    assert net_helper_main(["address"]) == 0
    assert capsys.readouterr().out.split() == ["127.0.0.1:1", "[::1]:2"]
    assert net_helper_main(["no-port"]) == 2
    assert net_helper_main([]) == 2


def test_ref_changes() -> None:
    old = {b"refs/heads/main": A, b"refs/heads/gone": B}
    new = {b"refs/heads/main": C, b"refs/heads/new": C, b"refs/tags/t": B, b"HEAD": A}
    assert ref_changes(old, new) == (C.decode(), C.decode(), B.decode())
    assert ref_changes(new, new) == ()
    assert ref_changes(new, {}) == ()  # deletions are not reported


def test_watcher_keeps_a_baseline_per_session(tmp_path: Path) -> None:
    snaps = [{b"refs/heads/main": A}]

    def reader(_: Path) -> dict[bytes, bytes]:
        return dict(snaps[-1])

    w = RefWatcher(tmp_path, interval=0.01, settle=0.0, reader=reader)

    async def go() -> list[tuple[str, ...] | None]:
        got: list[tuple[str, ...] | None] = []
        await w.start()
        got.append(await w.wait_changed(0.05))  # nothing moved: timeout
        snaps.append({b"refs/heads/main": B})
        got.append(await w.wait_changed(1.0))
        snaps.append({b"refs/heads/main": B, b"refs/heads/x": C})  # between two asks
        got.append(await w.wait_changed(1.0))
        got.append(await w.wait_changed(5.0, peer_gone=lambda: True))
        return got

    assert asyncio.run(go()) == [None, (B.decode(),), (C.decode(),), None]


def test_creds_file_name_matches_git_annex() -> None:
    addr = P2PAddress("annexsync-tcp", "127.0.0.1:45677")
    assert creds_file_name(addr) == "annexsync%2Dtcp%3A127%2E0%2E0%2E1%3A45677"
