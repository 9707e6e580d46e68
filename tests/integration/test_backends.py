"""Every git-annex hash backend: verified bit-identically, or refused before any byte moves.

Spec: repository-format.md 1.2.  The list of backends comes from the real
``git annex version``; the digests from ``git annex calckey``.  Content that
real git-annex added with each backend is then fetched by annexsync (path
remote) and offered to annexsync's P2P server by real git-annex.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.ops.transfer import get
from core.repo.key import HASHERS, UNCOMPUTABLE_BACKENDS, UNHASHED_BACKENDS, Key
from core.repo.repository import AnnexRepo
from tests.conftest import annex, git, run
from tests.integration.test_p2p_support import content_of, install_fake_ssh

pytestmark = pytest.mark.interop

# sizes around the BLAKE2bp/sp block and stripe boundaries, and one of several chunks
SAMPLES = {"empty": b"", "one.x": b"x", "stripe.bin": os.urandom(4 * 128 * 3 + 5),
           "big.dat": os.urandom(700_001)}
NOT_HASHES = UNHASHED_BACKENDS | {"GITBUNDLE", "GITMANIFEST", "X*"}
REFUSED = ("SKEIN256E", "BLAKE2SP224")
FETCHED = ("BLAKE2BP512E", "BLAKE2SP256", "BLAKE3_256E", "XXH3E", "SHA3_384")


def _backends(repo: Path) -> list[str]:
    for line in annex(repo, "version").splitlines():
        if line.startswith("key/value backends:"):
            return line.split(":", 1)[1].split()
    raise AssertionError("git annex version lists no backends")


def _digest(key: Key, data: bytes) -> str:
    hasher = key.new_hasher()
    assert hasher is not None
    for i in range(0, len(data), 65_536):  # the way Incoming is fed
        hasher.update(data[i:i + 65_536])
    return hasher.hexdigest()


def test_every_backend_matches_calckey_or_is_refused(annex_repo: Path) -> None:
    for name, data in SAMPLES.items():
        (annex_repo / name).write_bytes(data)
    backends = [b for b in _backends(annex_repo) if b not in NOT_HASHES]
    assert len(backends) == 50
    checked = 0
    for backend in backends:
        base = backend.removesuffix("E")
        assert (base in HASHERS) != (base in UNCOMPUTABLE_BACKENDS), backend
        out = run(["git", "annex", "calckey", "--batch", f"--backend={backend}"], annex_repo,
                  input="".join(f"{n}\n" for n in SAMPLES)).stdout.split()
        for (name, data), text in zip(SAMPLES.items(), out, strict=True):
            key = Key.parse(text)
            if base in UNCOMPUTABLE_BACKENDS:
                assert not key.receivable
                continue
            assert _digest(key, data) == key.expected_digest(), (backend, name)
            checked += 1
    assert checked == 44 * len(SAMPLES)


def _origin_with_backends(tmp_path: Path, backends: tuple[str, ...]) -> tuple[Path, Path]:
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    origin.mkdir()
    git(origin, "init", "-q")
    annex(origin, "init", "-q", "origin")
    for b in backends:
        (origin / f"{b}.bin").write_bytes(os.urandom(300_000) + b.encode())
        annex(origin, "add", "-q", f"--backend={b}", f"{b}.bin")
    git(origin, "commit", "-q", "-m", "files")
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    return origin, clone


def test_get_content_git_annex_added(tmp_path: Path) -> None:
    origin, clone = _origin_with_backends(tmp_path, FETCHED + REFUSED)
    os.chdir(clone)
    with AnnexRepo.open(clone) as repo:
        outcomes = {o.path: o for o in get(repo, ["."])}
    for b in FETCHED:
        assert outcomes[f"{b}.bin"].ok, outcomes[f"{b}.bin"].note
        assert (clone / f"{b}.bin").read_bytes() == (origin / f"{b}.bin").read_bytes()
    for b in REFUSED:
        o = outcomes[f"{b}.bin"]
        assert not o.ok and f"cannot verify content of backend {b}" in o.note
    tmp = clone / ".git" / "annex" / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir())  # not one byte was written
    annex(clone, "fsck", "-q", *(f"{b}.bin" for b in FETCHED))


def test_cli_get_says_which_file_is_refused(tmp_path: Path) -> None:
    _, clone = _origin_with_backends(tmp_path, ("SKEIN512",))
    p = run(["annexsync", "get", "SKEIN512.bin"], clone, check=False)
    assert p.returncode != 0
    assert "SKEIN512.bin" in p.stdout + p.stderr
    assert "cannot verify content of backend SKEIN512" in p.stdout + p.stderr


def test_p2p_server_refuses_put_before_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git-annex copying to our P2P server: PUT answered with ERROR, no DATA sent."""
    install_fake_ssh(tmp_path, monkeypatch)
    server, client = tmp_path / "server", tmp_path / "client"
    server.mkdir()
    git(server, "init", "-q")
    annex(server, "init", "-q", "server")
    git(server, "commit", "-q", "--allow-empty", "-m", "start")
    git(tmp_path, "clone", "-q", str(server), str(client))
    git(client, "remote", "set-url", "origin", f"ssh://localhost{server}")
    git(client, "config", "remote.origin.annex-shell", "annexsync")
    git(client, "config", "annex.sshcaching", "false")
    annex(client, "init", "-q", "client")
    ok_file, bad_file = client / "ok.bin", client / "bad.bin"
    ok_file.write_bytes(os.urandom(50_000))
    bad_file.write_bytes(os.urandom(50_000))
    annex(client, "add", "-q", "--backend=BLAKE3_256E", "ok.bin")
    annex(client, "add", "-q", "--backend=SKEIN256E", "bad.bin")
    bad_key = annex(client, "lookupkey", "bad.bin").strip()
    p = run(["git", "annex", "copy", "--debug", "--to", "origin", "bad.bin"], client, check=False)
    assert p.returncode != 0
    assert "ERROR" in p.stderr and "DATA" not in p.stderr
    assert content_of(server, bad_key) is None
    tmp = server / ".git" / "annex" / "tmp"
    assert not tmp.exists() or not any(tmp.iterdir())
    annex(client, "copy", "--to", "origin", "ok.bin")
    assert content_of(server, annex(client, "lookupkey", "ok.bin").strip()) is not None


def test_daemon_plans_no_download_it_cannot_verify(tmp_path: Path) -> None:
    from core.daemon.jobs import plan_transfers

    _, clone = _origin_with_backends(tmp_path, ("BLAKE2SP224E", "BLAKE2BP512"))
    annex(clone, "init", "-q", "clone")
    planned = {p.path: p.direction for p in plan_transfers(str(clone), ["origin"])}
    assert planned == {"BLAKE2SP224E.bin": "refused", "BLAKE2BP512.bin": "download"}


def test_p2phttp_server_refuses_put_unread(tmp_path: Path) -> None:
    """git-annex copying over P2P HTTP: stored false, the body never written anywhere."""
    from tests.integration.test_p2phttp_interop import _client_repo
    from tests.integration.test_p2phttp_support import lookupkey, make_server_repo, our_p2phttp

    srv = tmp_path / "srv"
    uuid = make_server_repo(srv, {})
    with our_p2phttp(srv, "--wideopen", "-J2") as proc:
        c = _client_repo(tmp_path, "client", uuid, proc.base)
        (c / "bad").write_bytes(os.urandom(200_000))
        (c / "ok").write_bytes(os.urandom(200_000))
        annex(c, "add", "-q", "--backend=SKEIN512E", "bad")
        annex(c, "add", "-q", "--backend=XXH3", "ok")
        git(c, "commit", "-q", "-m", "f")
        assert run(["git", "annex", "copy", "--to", "srv", "bad"], c, check=False).returncode != 0
        annex(c, "copy", "--to", "srv", "ok")
        assert content_of(srv, lookupkey(c, "bad")) is None
        assert content_of(srv, lookupkey(c, "ok")) is not None
        tmp = srv / ".git" / "annex" / "tmp"
        assert not tmp.exists() or not any(tmp.iterdir())


def test_sync_content_says_which_file_is_refused(tmp_path: Path) -> None:
    origin, clone = _origin_with_backends(tmp_path, ("SKEIN256", "SHA256E"))
    p = run(["annexsync", "sync", "--content"], clone)
    assert "SKEIN256.bin: could not get" in p.stderr
    assert "cannot verify content of backend SKEIN256" in p.stderr
    assert (clone / "SHA256E.bin").read_bytes() == (origin / "SHA256E.bin").read_bytes()


def test_daemon_alerts_instead_of_downloading(tmp_path: Path) -> None:
    import subprocess

    from tests.integration.test_daemon_cli import ANNEXSYNC, status_json, wait_for

    _, clone = _origin_with_backends(tmp_path, ("SKEIN256E", "BLAKE3_256"))
    cfg = tmp_path / "cfg"
    proc = subprocess.Popen([*ANNEXSYNC, "--config-dir", str(cfg), "daemon", str(clone)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (clone / "BLAKE3_256.bin").exists(), "the verifiable file downloaded")
        texts = [a["text"] for a in status_json(cfg)["alerts"]]
        assert any(t.startswith("Not downloading SKEIN256E.bin:")
                   and "cannot verify content of backend SKEIN256E" in t for t in texts), texts
        transfers = [t for r in status_json(cfg)["repos"] for t in r["transfers"]]
        assert all(t["key"].startswith("BLAKE3_256") for t in transfers), transfers
    finally:
        proc.terminate()
        proc.wait(30)
    tmp = clone / ".git" / "annex" / "tmp"
    assert not tmp.exists() or not any(p.name.startswith("SKEIN") for p in tmp.iterdir())
