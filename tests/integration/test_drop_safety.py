"""A drop never counts a copy it could not lock (spec 9.2, 9.3).

Each test leaves exactly one other copy on a remote's word — the location
log says it is there — and makes that word wrong or unprovable: the remote
is unreachable, or a real repository (a path remote, or real
git-annex-shell over ssh) no longer has the content although its log says
so.  With numcopies 1 the drop must be refused and the content kept, and
real git-annex refuses the same drop.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from core.ops.transfer import drop, get
from core.repo.key import Key
from core.repo.repository import AnnexRepo
from tests.conftest import annex, git, run
from tests.integration.test_p2p_support import install_fake_ssh
from tests.integration.test_transfer import BIG, ok, origin_and_clone

pytestmark = pytest.mark.interop


def _refused_here(clone: AnnexRepo, key: Key) -> None:
    out = drop(clone, ["big.bin"])
    assert not out[0].ok and "0 out of 1" in out[0].note, out[0].note
    assert clone.objects.has(key)
    assert (clone.path / "big.bin").read_bytes() == BIG


def _remove_behind_log(repo: Path, key: Key) -> None:
    """Delete the object file directly: the repository's own log still says present."""
    obj = next((repo / ".git" / "annex" / "objects").rglob(key.file_name()))
    obj.parent.chmod(0o755)
    shutil.rmtree(obj.parent)


def test_unreachable_remote_is_not_counted(tmp_path: Path) -> None:
    origin, clone = origin_and_clone(tmp_path)
    ok(get(clone, ["big.bin"]))
    key = _key(clone, "big.bin")
    # git-annex caches a remote's uuid on first contact; a moved remote keeps it
    git(clone.path, "config", "remote.origin.annex-uuid", origin.uuid)
    os.rename(origin.path, tmp_path / "moved away")
    _refused_here(clone, key)
    assert run(["git", "annex", "drop", "big.bin"], clone.path, check=False).returncode != 0


def test_path_remote_whose_log_lies_is_not_counted(tmp_path: Path) -> None:
    origin, clone = origin_and_clone(tmp_path)
    ok(get(clone, ["big.bin"]))
    key = _key(clone, "big.bin")
    _remove_behind_log(origin.path, key)
    assert origin.uuid in clone.state.locations(key)
    _refused_here(clone, key)
    assert run(["git", "annex", "drop", "big.bin"], clone.path, check=False).returncode != 0


def test_git_annex_remote_whose_log_lies_is_not_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The remote is real git-annex-shell over (fake) ssh: its LOCKCONTENT fails."""
    install_fake_ssh(tmp_path, monkeypatch)
    server, clone_path = tmp_path / "server", tmp_path / "clone"
    server.mkdir()
    git(server, "init", "-q")
    annex(server, "init", "-q", "real server")
    (server / "big.bin").write_bytes(BIG)
    annex(server, "add", "-q", "big.bin")
    git(server, "commit", "-q", "-m", "files")
    git(tmp_path, "clone", "-q", str(server), str(clone_path))
    git(clone_path, "config", "remote.origin.url", f"ssh://localhost{server}")
    git(clone_path, "config", "remote.origin.annex-shell", "git-annex-shell")
    git(clone_path, "config", "remote.origin.annex-uuid",
        git(server, "config", "annex.uuid").strip())
    os.chdir(clone_path)
    with AnnexRepo.open(clone_path) as clone:
        ok(get(clone, ["big.bin"]))
        key = _key(clone, "big.bin")
        _remove_behind_log(server, key)
        _refused_here(clone, key)


def _key(repo: AnnexRepo, path: str) -> Key:
    return Key.parse(annex(repo.path, "lookupkey", path).strip())
