"""Protocol edges on p2pstdio: the same raw input to git-annex-shell and to annexsync.

Spec: p2p-protocol.md 4.1 (p2pstdio), 4.3 (VERSION), 6.8/6.9 (CONNECT and
NOTIFYCHANGE are networked only), 8 (errors).  Each case feeds the same bytes
to ``git-annex-shell p2pstdio`` and ``annexsync p2pstdio`` on identical
repositories and compares exit status, standard output (the server UUID
masked) and whether something was said on stderr.  Where git-annex is not
sane we keep a strict answer, listed in ``STRICT`` with what we say instead.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_p2phttp_support import lookupkey, make_server_repo

pytestmark = pytest.mark.interop

CLIENT_UUID = "a1b2c3d4-0000-4000-8000-00000000c11e"
FILES = {"hello.txt": b"hello world\n"}


def cases(key: str) -> dict[str, bytes]:
    new = "SHA256E-s10--" + "1" * 64
    return {
        "notifychange": b"VERSION 1\nNOTIFYCHANGE\n",
        "connect": b"VERSION 1\nCONNECT git-upload-pack\n",
        "connect before version": b"CONNECT git-receive-pack\n",
        "unknown command": b"VERSION 1\nFOO bar\n",
        "eof mid data": f"VERSION 1\nPUT x {new}\nDATA 10\nabc".encode(),
        "eof after request": b"VERSION 1\n",
        "eof in a line": b"VERSION 1\nCHECKP",
        "bad data line": f"VERSION 1\nPUT x {new}\nDATA x\n".encode(),
        "line too long": b"VERSION 1\n" + b"A" * 200_000 + b"\n",
        "version huge": b"VERSION 99999999999999999999999\nCHECKPRESENT " + key.encode() + b"\n",
        "version leading zero": b"VERSION 04\n",
        "version negative": b"VERSION -1\n",
        "version two numbers": b"VERSION 1 2\n",
        "get negative offset": f"VERSION 1\nGET -3 x {key}\n".encode(),
        "key leading zero": f"VERSION 1\nCHECKPRESENT SHA256E-s012--{'0' * 64}\n".encode(),
    }


# Not sane in git-annex 10.20261026, so we answer strictly (documented in
# core/p2p/codec.py): what git-annex does, and what we send instead.
STRICT = {
    "version negative": b"ERROR unknown command\n",  # git-annex echoes VERSION -1
    "version two numbers": b"ERROR unknown command\n",  # git-annex drops the 2
    "get negative offset": b"VERSION 1\nERROR unknown command\n",  # git-annex crashes mid-DATA
    "key leading zero": b"VERSION 1\nERROR unknown command\n",  # git-annex: FAILURE
    # git-annex answers FAILURE to the cut DATA before it exits; nobody reads it
    "eof mid data": b"VERSION 1\nPUT-FROM 0\n",
}


def run(cmd: str, repo: Path, data: bytes) -> tuple[int, bytes, bool]:
    proc = subprocess.run([cmd, "p2pstdio", str(repo), CLIENT_UUID], input=data,
                          capture_output=True, timeout=30)  # fmt: skip
    uuid = subprocess.run(["git", "config", "annex.uuid"], cwd=repo, capture_output=True,
                          check=True).stdout.strip()  # fmt: skip
    return proc.returncode, proc.stdout.replace(uuid, b"UUID"), bool(proc.stderr.strip())


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, str]]:
    from tests.conftest import isolate_home

    with pytest.MonkeyPatch.context() as mp:
        isolate_home(tmp_path_factory.mktemp("home"), mp)
        tmp = tmp_path_factory.mktemp("edges")
        make_server_repo(tmp / "theirs", FILES)
        make_server_repo(tmp / "ours", FILES)
        yield tmp / "theirs", tmp / "ours", lookupkey(tmp / "ours", "hello.txt")


@pytest.mark.parametrize("case", list(cases("K")))
def test_same_answer_as_git_annex_shell(repos: tuple[Path, Path, str], case: str) -> None:
    theirs_repo, ours_repo, key = repos
    data = cases(key)[case]
    theirs = run("git-annex-shell", theirs_repo, data)
    ours = run("annexsync", ours_repo, data)
    if case in STRICT:
        assert ours == (0 if "eof" not in case else 1, b"AUTH-SUCCESS UUID\n" + STRICT[case],
                        "eof" in case), theirs  # fmt: skip
        assert ours != theirs or case == "eof mid data"
    else:
        assert ours == theirs


def test_expected_exits(repos: tuple[Path, Path, str]) -> None:
    """What the shared answers say (spec 4.1, 8): failures exit 1, with words on stderr."""
    _, ours_repo, key = repos
    c = cases(key)
    for case in ("notifychange", "connect", "connect before version", "eof mid data",
                 "line too long"):
        status, _, said = run("annexsync", ours_repo, c[case])
        assert (status, said) == (1, True), case
    assert run("annexsync", ours_repo, c["version huge"])[1].endswith(b"VERSION 4\nSUCCESS\n")
    assert run("annexsync", ours_repo, c["eof in a line"])[0] == 0
