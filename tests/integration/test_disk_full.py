"""A full disk fails one file cleanly, and nothing goes unrecorded (issue 8).

Every scenario runs as a subprocess in a private mount namespace where a
small tmpfs is mounted over one repository (``tests.namespaces``); the rest
of the machine keeps its space.  The tmpfs goes away with the namespace, so
what the repository looks like afterwards is read inside it (``INSPECT``):
the keys with content here, and which of them the location log records here.
The rule checked everywhere: ``present == recorded`` -- no content the
location log does not know about, no log line claiming content that is not
there -- and no temporary file left behind.

annex.diskreserve is 0 in the repositories on a tmpfs: the default reserve
(100 MB) would refuse every transfer to a disk of a few megabytes before
anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from core.p2p import AuthSuccess, CheckPresent, Data, Failure, Payload, Put, PutFrom, Success, Valid
from core.p2p import Version as P2PVersion
from core.repo.key import Key
from tests.conftest import annex, git
from tests.integration.test_p2p_support import CLIENT_UUID, RawPeer, install_fake_ssh
from tests.integration.test_p2phttp_support import our_p2phttp
from tests.namespaces import skip_reason, unshared

pytestmark = pytest.mark.interop
PAGE = 4096
INSPECT = """
import json, os, sys
from pathlib import Path
from core.repo.repository import AnnexRepo
top = Path(sys.argv[1])
with AnnexRepo.open(top) as r:
    present = sorted(str(k) for k in r.objects.keys())
    asked = set(sys.argv[2:]) | set(present)
    print(json.dumps({
        "present": present,
        "recorded": sorted(k for k in asked if r.uuid in r.state.locations(k)),
        "tmp": sorted(os.listdir(r.objects.tmp)) if r.objects.tmp.is_dir() else [],
        "stray": sorted(str(p) for p in top.rglob("*.annexsync-tmp")),
    }))
"""
# Fill the disk of argv[1] so that exactly argv[2] bytes stay free.
FILL = """
import os, sys
st = os.statvfs(sys.argv[1])
with open(os.path.join(sys.argv[1], "filler"), "wb") as f:
    f.write(b"\\0" * (st.f_bavail * st.f_frsize - int(sys.argv[2])))
"""
# Get argv[1] then argv[2] through ``Receivers`` (both received ahead on its pool) on a
# full disk whose filler file goes between the two, once the pool has tried argv[2]:
# the room a key needs may be taken for a moment by other writes.
RECEIVE = """
import json, os, sys, threading
from pathlib import Path
from core.ops.jobs import SharedProgress
from core.ops.receiving import Receivers
from core.ops.transfer import get_key
from core.progress import NullProgress
from core.remotes import list_remotes, open_remote
from core.repo.key import Key
from core.repo.repository import AnnexRepo

class Told:
    \"\"\"A real source that says when a receive from it has ended.\"\"\"
    def __init__(self, remote, ended):
        self.remote, self.ended = remote, ended
    def __getattr__(self, name):
        return getattr(self.remote, name)
    def retrieve(self, key, into, advance):
        try:
            self.remote.retrieve(key, into, advance)
        finally:
            self.ended[key].set()

keys = [Key.parse(k) for k in sys.argv[1:3]]
ended = {k: threading.Event() for k in keys}
out = {}
with AnnexRepo.open(Path(".")) as repo:
    p = SharedProgress(NullProgress())
    def sources(key):
        return [Told(open_remote(repo, i), ended) for i in list_remotes(repo)
                if i.uuid in repo.state.locations(key)]
    with Receivers(repo, keys, p, sources, lambda key: get_key(repo, key, p)) as r:
        for key in keys:
            try:
                out[str(key)] = r.get_key(key)
            except Exception as e:
                out[str(key)] = type(e).__name__ + ": " + str(e)
            if key == keys[0]:
                assert ended[keys[1]].wait(30), "the pool never tried the second key"
                os.remove("filler")
    repo.branch.commit()
print(json.dumps({"file": "receive", "outcomes": out}))
"""
ENV = {"PY": sys.executable, "INSPECT": INSPECT, "FILL": FILL, "RECEIVE": RECEIVE}


@pytest.fixture(autouse=True)
def _namespaces() -> None:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)


def on_small_disk(repo: Path, size: str, script: str) -> subprocess.CompletedProcess[str]:
    """Run the shell ``script`` in ``repo`` with a tmpfs of ``size`` over ``repo``."""
    return subprocess.run(unshared(["sh", "-c", script], tmpfs=(repo, size)), cwd=repo,
                          env={**os.environ, **ENV}, capture_output=True, text=True, timeout=60)


def reports(out: str) -> tuple[dict[str, dict[str, object]], list[int], list[dict[str, list[str]]]]:
    """``--json`` outcomes by file, ``rc=N`` lines, INSPECT results, in order."""
    outcomes: dict[str, dict[str, object]] = {}
    codes, states = [], []
    for line in out.splitlines():
        if line.startswith("rc="):
            codes.append(int(line[3:]))
        elif line.startswith("{"):
            data = json.loads(line)
            if "present" in data:
                states.append(data)
            else:
                outcomes[data["file"]] = data
    return outcomes, codes, states


def assert_consistent(state: dict[str, list[str]]) -> None:
    assert state["present"] == state["recorded"], "content and location log disagree"
    assert state["tmp"] == [] and state["stray"] == [], "temporary files left behind"


def make_origin(path: Path, locked: dict[str, bytes], unlocked: dict[str, bytes]) -> dict[str, str]:
    """A git-annex repository with these files; returns file -> key."""
    git(path.parent, "init", "-q", str(path))
    annex(path, "init", "-q", "origin")
    for files, flag in ((unlocked, "true"), (locked, "false")):
        git(path, "config", "annex.addunlocked", flag)
        for name, data in files.items():
            (path / name).write_bytes(data)
        if files:
            annex(path, "add", "-q", *files)
    git(path, "commit", "-q", "-m", "files")
    return {name: annex(path, "lookupkey", name).strip() for name in {**locked, **unlocked}}


def make_clone(origin: Path, path: Path) -> None:
    git(origin.parent, "clone", "-q", str(origin), str(path))
    subprocess.run(["annexsync", "init", "clone"], cwd=path, check=True, capture_output=True)
    git(path, "config", "annex.diskreserve", "0")


# --- annexsync get --------------------------------------------------------------


def test_get_fails_the_file_that_does_not_fit_and_fetches_the_others(tmp_path: Path) -> None:
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    keys = make_origin(
        origin,
        locked={"huge.bin": os.urandom(3_000_000), "s1.txt": b"one\n", "s2.txt": b"two\n"},
        # its object fits, its copy in the work tree (an unlocked file) no longer does
        unlocked={"big.bin": os.urandom(1_500_000)},
    )
    make_clone(origin, clone)
    p = on_small_disk(clone, "2M", 'annexsync get --json; echo "rc=$?"; "$PY" -c "$INSPECT" . '
                      + " ".join(keys.values()))
    assert "Traceback" not in p.stderr, p.stderr
    outcomes, codes, (state,) = reports(p.stdout)
    assert codes == [1], p.stdout + p.stderr
    assert outcomes["s1.txt"]["success"] and outcomes["s2.txt"]["success"], p.stdout
    assert not outcomes["huge.bin"]["success"]
    assert "not enough free space" in str(outcomes["huge.bin"]["note"])
    assert not outcomes["big.bin"]["success"]
    assert "no space left" in str(outcomes["big.bin"]["note"])
    assert {keys["s1.txt"], keys["s2.txt"]} <= set(state["recorded"])
    assert keys["huge.bin"] not in state["present"]
    assert_consistent(state)


def test_a_key_the_pool_found_no_room_for_is_tried_again_when_its_turn_comes(
        tmp_path: Path) -> None:
    """The pool receives keys ahead; the room one needs may be held for a moment
    by other writes (here: a filler file, gone by the key's turn).  That key is
    tried again then, so it fails only when it does not fit at its turn."""
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    keys = make_origin(origin, locked={"first.bin": os.urandom(50_000),
                                       "second.bin": os.urandom(50_000)}, unlocked={})
    make_clone(origin, clone)
    first, second = keys["first.bin"], keys["second.bin"]
    p = on_small_disk(clone, "2M", f'"$PY" -c "$FILL" . 0 && "$PY" -c "$RECEIVE" {first} {second}'
                      f' && "$PY" -c "$INSPECT" . {first} {second}')
    assert "Traceback" not in p.stderr, p.stderr
    outcomes, _, (state,) = reports(p.stdout)
    got = outcomes["receive"]["outcomes"]
    assert isinstance(got, dict)
    assert "not enough free space" in got[first], got  # the disk was full at its turn
    assert got[second] == "from origin", got  # at its turn there was room
    assert state["present"] == [second]
    assert_consistent(state)


def test_journal_full_after_the_content_verified_keeps_nothing_unrecorded(tmp_path: Path) -> None:
    """The object takes the last free byte; the location line cannot be written.

    Chosen rule: the content is not kept (the remote still has it) rather
    than kept without a line.  Once there is room again, get records it.
    """
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    keys = make_origin(origin, locked={"exact.bin": os.urandom(64 * PAGE)}, unlocked={})
    key = keys["exact.bin"]
    make_clone(origin, clone)
    script = (
        "annexsync whereis > /dev/null && "  # merge origin's git-annex branch before filling
        # the object and the transfer's info file (one page, git-annex's layout)
        f'"$PY" -c "$FILL" .git {65 * PAGE} && '
        f'annexsync get --json; echo "rc=$?"; "$PY" -c "$INSPECT" . {key}; '
        f'rm .git/filler; annexsync get --json; echo "rc=$?"; "$PY" -c "$INSPECT" . {key}'
    )
    p = on_small_disk(clone, "1M", script)
    assert "Traceback" not in p.stderr, p.stderr
    _, codes, (full, roomy) = reports(p.stdout)
    assert codes == [1, 0], p.stdout + p.stderr
    assert "received but not kept, the location log could not record it" in p.stdout
    assert full["present"] == [] and full["recorded"] == []
    assert_consistent(full)
    assert roomy["present"] == [key] and roomy["recorded"] == [key]
    assert_consistent(roomy)
    assert annex(origin, "whereis", "exact.bin").count("origin") == 1  # the only other copy


def test_copy_to_a_full_path_remote_keeps_nothing_unrecorded_there(tmp_path: Path) -> None:
    """``annexsync copy --to`` a repository on this machine whose disk fills exactly."""
    remote, local = tmp_path / "remote", tmp_path / "local"
    for repo in (remote, local):
        git(tmp_path, "init", "-q", str(repo))
    annex(remote, "init", "-q", "remote")
    git(remote, "config", "annex.diskreserve", "0")
    subprocess.run(["annexsync", "init", "local"], cwd=local, check=True, capture_output=True)
    git(local, "remote", "add", "origin", str(remote))
    (local / "exact.bin").write_bytes(os.urandom(64 * PAGE))
    subprocess.run(["annexsync", "add", "exact.bin"], cwd=local, check=True, capture_output=True)
    keys = {"exact.bin": annex(local, "lookupkey", "exact.bin").strip()}
    # the object and the transfer's info file (one page, git-annex's layout)
    script = (f'"$PY" -c "$FILL" .git {65 * PAGE} && cd {local} && '
              'annexsync copy --to origin --json exact.bin; echo "rc=$?"; '
              f'"$PY" -c "$INSPECT" {remote} {keys["exact.bin"]}')
    p = on_small_disk(remote, "1M", script)
    assert "Traceback" not in p.stderr, p.stderr
    outcomes, codes, (state,) = reports(p.stdout)
    assert codes == [1], p.stdout + p.stderr
    assert "received but not kept" in str(outcomes["exact.bin"]["note"])
    assert state["present"] == []
    assert_consistent(state)


# --- the P2P server (annexsync p2pstdio) ------------------------------------------------


def _key_for(data: bytes, sized: bool = True) -> Key:
    size = f"-s{len(data)}" if sized else ""
    return Key.parse(f"SHA256E{size}--{hashlib.sha256(data).hexdigest()}.bin")


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, str]:
    server = tmp_path / "server"
    git(tmp_path, "init", "-q", str(server))
    annex(server, "init", "-q", "server")
    git(server, "config", "annex.diskreserve", "0")
    return server, git(server, "config", "annex.uuid").strip()


def test_p2pstdio_refuses_what_does_not_fit_and_serves_on(served: tuple[Path, str]) -> None:
    server, uuid = served
    big, small = os.urandom(3_000_000), b"small\n"
    session = f'annexsync p2pstdio "$1" {CLIENT_UUID}; "$PY" -c "$INSPECT" "$1" >&2'
    peer = RawPeer(unshared(["sh", "-c", session, "sh", str(server)], tmpfs=(server, "2M")), ENV)
    try:
        assert peer.until_our_turn() == [AuthSuccess(uuid)]
        assert peer.request(P2PVersion(4)) == [P2PVersion(4)]
        # A sized key that cannot fit: PUT-FROM, the payload, FAILURE.
        assert peer.request(Put(b"big.bin", _key_for(big))) == [PutFrom(0)]
        assert peer.request(Data(len(big)), Payload(big), Valid()) == [Failure()]
        # No size in the key, so no reserve check: the disk fills in the middle.
        assert peer.request(Put(b"big.bin", _key_for(big, sized=False))) == [PutFrom(0)]
        assert peer.request(Data(len(big)), Payload(big), Valid()) == [Failure()]
        # The session goes on.
        assert peer.request(Put(b"small.txt", _key_for(small))) == [PutFrom(0)]
        assert peer.request(Data(len(small)), Payload(small), Valid()) == [Success()]
        assert peer.request(CheckPresent(_key_for(small))) == [Success()]
        assert peer.request(CheckPresent(_key_for(big))) == [Failure()]
    finally:
        assert peer.close() == 0
    assert peer.proc.stderr is not None
    err = peer.proc.stderr.read().decode()
    assert "Traceback" not in err, err
    state = json.loads(err.strip().splitlines()[-1])
    assert state["present"] == [str(_key_for(small))]
    assert_consistent(state)


def test_git_annex_copy_to_a_full_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         served: tuple[Path, str]) -> None:
    """Real git-annex as the client: the file that does not fit fails, the rest arrive."""
    server, _uuid = served
    log = install_fake_ssh(tmp_path, monkeypatch)
    client = tmp_path / "client"
    git(tmp_path, "clone", "-q", str(server), str(client))
    git(client, "remote", "set-url", "origin", f"ssh://localhost{server}")
    git(client, "config", "remote.origin.annex-shell", "annexsync")
    git(client, "config", "annex.sshcaching", "false")
    annex(client, "init", "-q", "client")
    files = {"a.bin": os.urandom(3_000_000), "b.txt": b"bee\n", "c.txt": b"sea\n"}
    for name, data in files.items():
        (client / name).write_bytes(data)
    annex(client, "add", "-q", *files)
    keys = [annex(client, "lookupkey", name).strip() for name in files]
    script = (f'git -C {client} annex copy --to origin a.bin b.txt c.txt; echo "rc=$?"; '
              f'"$PY" -c "$INSPECT" . {" ".join(keys)}')
    p = on_small_disk(server, "2M", script)
    _, codes, (state,) = reports(p.stdout)
    assert codes == [1], p.stdout + p.stderr
    assert "copy: 1 failed" in p.stderr, p.stdout + p.stderr
    assert state["present"] == sorted(keys[1:])
    assert_consistent(state)
    assert "Traceback" not in p.stderr, p.stderr
    sessions = log.read_text().count("'p2pstdio'")
    assert sessions == 1, f"{sessions} p2pstdio sessions: the server did not stay up"


# --- the HTTP server (annexsync p2phttp) ------------------------------------------------


@pytest.fixture
def http_server(served: tuple[Path, str]) -> Iterator[tuple[str, str]]:
    server, uuid = served
    wrap = lambda argv: unshared(argv, tmpfs=(server, "2M"))  # noqa: E731
    with our_p2phttp(server, "--wideopen", "-J2", wrap=wrap) as proc:
        yield f"{proc.base}/git-annex/{uuid}", uuid


@pytest.mark.asyncio
async def test_p2phttp_answers_a_full_disk_cleanly_and_serves_on(
        http_server: tuple[str, str]) -> None:  # fmt: skip
    base, _ = http_server
    q = f"clientuuid={CLIENT_UUID}"
    big, small = os.urandom(3_000_000), b"small\n"
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        async def put(key: Key, data: bytes) -> tuple[int, object]:
            async with s.post(f"{base}/v4/put?key={key}&{q}", data=data,
                              headers={"X-git-annex-data-length": str(len(data))}) as r:
                if r.status != 200:
                    return r.status, await r.text()
                return r.status, (await r.json())["stored"]

        async def present(key: Key) -> object:
            async with s.post(f"{base}/v4/checkpresent?key={key}&{q}") as r:
                return (await r.json())["present"]

        assert await put(_key_for(big), big) == (200, False)
        assert await put(_key_for(big, sized=False), big) == (200, False)
        assert await put(_key_for(small), small) == (200, True)
        assert await present(_key_for(small)) is True
        assert await present(_key_for(big, sized=False)) is False


def test_drop_on_a_full_disk_keeps_the_copy_the_log_counts(tmp_path: Path) -> None:
    """The absent line is written before the content goes (``remove_content``).

    In the other order a full disk would leave a line claiming a copy that is
    gone, and other repositories would count it when deciding to drop theirs.
    """
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    keys = make_origin(origin, locked={"d.bin": os.urandom(8 * PAGE)}, unlocked={})
    key = keys["d.bin"]
    make_clone(origin, clone)
    script = (
        'annexsync get d.bin 2> /dev/null && annexsync whereis > /dev/null && '
        '"$PY" -c "$FILL" .git 0 && '
        f'annexsync drop --json d.bin; echo "rc=$?"; "$PY" -c "$INSPECT" . {key}; '
        f'rm .git/filler; annexsync drop --json d.bin; echo "rc=$?"; "$PY" -c "$INSPECT" . {key}'
    )
    p = on_small_disk(clone, "1M", script)
    assert "Traceback" not in p.stderr, p.stderr
    outcomes, codes, (full, roomy) = reports(p.stdout)
    assert codes == [1, 0], p.stdout + p.stderr
    assert full["present"] == [key] and full["recorded"] == [key]
    assert_consistent(full)
    assert roomy["present"] == [] and roomy["recorded"] == []
    assert_consistent(roomy)
