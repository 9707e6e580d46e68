"""Interop: our branch reader/writer against real git-annex (spec 12.3, 12.4, 12.6, 12.7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dulwich.objects import Commit
from dulwich.repo import Repo

from core.repo import logs
from core.repo.branch import BRANCH, AnnexBranch
from core.repo.state import AnnexState, Trust, location_log_path
from tests.conftest import annex, git, run

pytestmark = pytest.mark.interop

FAKE = "5e1f0000-aaaa-4bbb-8ccc-000000000001"
FAKE2 = "5e1f0000-aaaa-4bbb-8ccc-000000000002"


def ours(path: Path) -> tuple[AnnexBranch, AnnexState]:
    repo = Repo(str(path))
    branch = AnnexBranch(repo, path / ".git")
    return branch, AnnexState(branch)


def uuid_of(path: Path) -> str:
    return git(path, "config", "annex.uuid").strip()


def add_file(path: Path, name: str, content: str) -> str:
    (path / name).write_text(content)
    annex(path, "add", "-q", name)
    git(path, "commit", "-qm", f"add {name}")
    return annex(path, "lookupkey", name).strip()


def whereis(path: Path, *args: str) -> list[dict[str, object]]:
    out = annex(path, "whereis", "--json", *args)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def uuids(entries: object) -> set[str]:
    assert isinstance(entries, list)
    return {str(e["uuid"]) for e in entries}


@pytest.fixture
def rich_repo(annex_repo: Path, tmp_path: Path) -> Path:
    """A repository configured through git-annex commands only (12.3)."""
    r = annex_repo
    special = tmp_path / "special"
    special.mkdir()
    annex(r, "initremote", "d", "type=directory", f"directory={special}", "encryption=none")
    for i in range(3):
        add_file(r, f"f{i}.txt", f"content {i}\n")
    annex(r, "copy", "--to", "d", "f0.txt", "f1.txt")
    annex(r, "describe", "here", "laptop one, renamed")
    annex(r, "trust", "--force", "here")
    annex(r, "untrust", "d")
    annex(r, "group", "here", "client")
    annex(r, "group", "here", "archive")
    annex(r, "wanted", "here", "include=*.mp3 or largerthan=1mb")
    annex(r, "required", "d", "include=*.txt")
    annex(r, "groupwanted", "archive", "anything")
    annex(r, "numcopies", "2")
    annex(r, "mincopies", "2")
    annex(r, "config", "--set", "annex.largefiles", "largerthan=100kb and not include=*.c")
    annex(r, "maxsize", "here", "10000000000")
    return r


# --- 12.3: a repository made by git-annex, read by us --------------------------


def test_state_matches_git_annex(rich_repo: Path) -> None:
    r = rich_repo
    here = uuid_of(r)
    _, state = ours(r)
    info = json.loads(annex(r, "info", "--json", "--fast"))
    levels = {
        "trusted repositories": Trust.TRUSTED,
        "semitrusted repositories": Trust.SEMITRUSTED,
        "untrusted repositories": Trust.UNTRUSTED,
    }
    desc = state.descriptions()
    for field, level in levels.items():
        for repo in info[field]:
            u = repo["uuid"]
            assert state.trust_of(u) == level
            if u in desc:
                shown = repo["description"]
                assert shown in (desc[u], f"[{desc[u]}]") or shown.startswith(desc[u] + " [")
    assert desc[here] == "laptop one, renamed"
    assert state.groups()[here] == frozenset(annex(r, "group", "here").split())
    assert state.preferred_content()[here] == annex(r, "wanted", "here").strip()
    d_uuid = next(u for u, c in state.remotes().items() if c.get("name") == "d")
    assert state.remotes()[d_uuid] == {"name": "d", "type": "directory", "encryption": "none"}
    assert state.required_content()[d_uuid] == annex(r, "required", "d").strip()
    assert state.group_preferred_content() == {"archive": annex(r, "groupwanted", "archive").strip()}
    assert state.numcopies() == int(annex(r, "numcopies").strip())
    assert state.mincopies() == int(annex(r, "mincopies").strip())
    assert state.config() == {"annex.largefiles": "largerthan=100kb and not include=*.c"}
    assert state.maxsize() == {here: 10000000000}
    for entry in whereis(r):
        assert isinstance(entry["key"], str)
        found = state.locations(entry["key"])
        trust = state.trust()
        assert {u for u in found if trust.get(u) != Trust.UNTRUSTED} == uuids(entry["whereis"])
        assert {u for u in found if trust.get(u) == Trust.UNTRUSTED} == uuids(entry["untrusted"])


def test_defaults_without_logs(annex_repo: Path) -> None:
    _, state = ours(annex_repo)
    assert state.numcopies() == 1 and state.mincopies() == 1
    assert state.trust_of(uuid_of(annex_repo)) == Trust.SEMITRUSTED


# --- writes by us, accepted by git-annex ----------------------------------------


def test_our_writes_accepted(annex_repo: Path) -> None:
    r = annex_repo
    key = add_file(r, "a.txt", "hello\n")
    branch, state = ours(r)
    with branch.transaction(commit="update"):
        state.set_description(FAKE, "made by annexsync")
        state.set_groups(FAKE, {"backup", "archive"})
        state.set_trust(FAKE, Trust.TRUSTED)
        state.set_location(key, FAKE, True)
        state.set_numcopies(2)
    where = whereis(r, "a.txt")[0]
    assert uuids(where["whereis"]) == {uuid_of(r), FAKE}
    assert annex(r, "numcopies").strip() == "2"
    assert annex(r, "group", FAKE).split() == ["archive", "backup"]
    annex(r, "fsck", "--fast", "-q")  # numcopies 2 satisfied by our line
    state.set_location(key, FAKE, False)
    branch.commit()
    assert uuids(whereis(r, "a.txt")[0]["whereis"]) == {uuid_of(r)}
    failed = run(["git", "annex", "fsck", "--fast"], r, check=False)
    assert failed.returncode != 0 and "Only 1 of 2" in failed.stdout + failed.stderr


def test_vector_clock_text_matches(annex_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Same prior state, same clock: our writers produce git-annex's bytes."""
    r = annex_repo
    here = uuid_of(r)
    monkeypatch.setenv("GIT_ANNEX_VECTOR_CLOCK", "1000")
    annex(r, "describe", "here", "first")  # clock rule: init's real time + 1
    annex(r, "group", "here", "g1")
    journal = r / ".git/annex/journal"
    branch, state = ours(r)
    state.set_description(FAKE, "fake")
    branch.commit()
    cases = [
        ("uuid.log", lambda: state.set_description(here, "second one"), ["describe", "here", "second one"]),
        ("uuid.log", lambda: state.set_description(here, "two\nlines"), ["describe", "here", "two\nlines"]),
        ("group.log", lambda: state.set_groups(here, {"g1", "g2"}), ["group", "here", "g2"]),
        ("trust.log", lambda: state.set_trust(FAKE, Trust.UNTRUSTED), ["untrust", FAKE]),
        ("numcopies.log", lambda: state.set_numcopies(3), ["numcopies", "3"]),
    ]
    for path, write, command in cases:
        write()
        mine = (journal / path).read_bytes()
        (journal / path).unlink()
        annex(r, *command)
        assert git(r, "show", f"git-annex:{path}").encode() == mine, path


# --- 12.4: journal interplay -----------------------------------------------------

NOCOMMIT = ("-c", "annex.alwayscommit=false")  # git options, before "annex"


def nocommit(path: Path, *args: str) -> str:
    return git(path, *NOCOMMIT, "annex", *args)


def test_read_returns_journal_version(annex_repo: Path) -> None:
    r = annex_repo
    nocommit(r, "describe", "here", "journalled")
    assert (r / ".git/annex/journal/uuid.log").exists()
    _, state = ours(r)
    assert state.descriptions()[uuid_of(r)] == "journalled"
    assert "journalled" not in git(r, "show", "git-annex:uuid.log")


@pytest.mark.parametrize("method", ["journal-then-commit", "one-transaction"])
def test_journal_lines_survive_our_commit(annex_repo: Path, method: str) -> None:
    """6.4 lost-line regression: git-annex journal + our change of the same log + our commit."""
    r = annex_repo
    key = add_file(r, "a.txt", "hello\n")
    nocommit(r, "setpresentkey", key, FAKE, "1")
    nocommit(r, "describe", "here", "journalled")
    path = location_log_path(key)
    branch, state = ours(r)
    assert FAKE in state.locations(key)
    if method == "journal-then-commit":
        state.set_location(key, FAKE2, True)  # 6.4 A
        assert {FAKE, FAKE2} <= state.locations(key)
        branch.commit()  # 6.4 B
    else:
        with branch.transaction(commit="update"):  # 6.4 B with our change in memory
            state.set_location(key, FAKE2, True)
    assert not list((r / ".git/annex/journal").iterdir())
    text = git(r, "show", f"git-annex:{path}")
    assert FAKE in text and FAKE2 in text
    assert "journalled" in git(r, "show", "git-annex:uuid.log")
    annex(r, "merge")
    where = whereis(r, "a.txt")[0]
    assert {FAKE, FAKE2, uuid_of(r)} == uuids(where["whereis"])


def test_git_annex_commits_our_journal(annex_repo: Path) -> None:
    r = annex_repo
    key = add_file(r, "a.txt", "hello\n")
    _, state = ours(r)
    state.set_location(key, FAKE, True)  # journal only, not committed
    assert FAKE in uuids(whereis(r, "a.txt")[0]["whereis"])
    assert FAKE in git(r, "show", f"git-annex:{location_log_path(key)}")


def test_no_api_commits_behind_the_journal(annex_repo: Path) -> None:
    """Every public way to move the branch stages the journal first (6.4)."""
    r = annex_repo
    key = add_file(r, "a.txt", "hello\n")
    branch, state = ours(r)
    nocommit(r, "setpresentkey", key, FAKE, "1")
    with branch.transaction(commit="update"):
        state.set_groups(FAKE, {"x"})
    assert FAKE in git(r, "show", f"git-annex:{location_log_path(key)}")
    nocommit(r, "setpresentkey", key, FAKE2, "1")
    git(r, "update-ref", "refs/remotes/zz/git-annex", "git-annex")
    state.set_description(FAKE, "x")
    git(r, "update-ref", "refs/heads/synced/git-annex", "git-annex~1")
    branch.commit()
    branch.merge_refs()
    annex(r, "merge")
    assert {FAKE, FAKE2} <= uuids(whereis(r, "a.txt")[0]["whereis"])


# --- 12.6: location log edge cases ------------------------------------------------

MESSY = (
    "garbage line here\n"
    "1287290770 1 {a}\r\n"
    "1287290770s 0 {a}\n"
    "1287290777.5s 0 {b}\n"
    "1287290770.1s 1 {b}\n"
    "1287290775.25s 1 {c}\r\n"
    "1287290760s 0 {c}\n"
)


def test_messy_location_log(annex_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = annex_repo
    key = add_file(r, "a.txt", "hello\n")
    here = uuid_of(r)
    path = location_log_path(key)
    messy = MESSY.format(a=FAKE, b=FAKE2, c=here).encode()
    branch, state = ours(r)
    with branch.transaction(commit="update") as tx:
        tx.change(path, lambda old: messy)
    assert state.locations(key) == {FAKE, here}
    assert uuids(whereis(r, "a.txt")[0]["whereis"]) == {FAKE, here}
    monkeypatch.setenv("GIT_ANNEX_VECTOR_CLOCK", "1000")
    annex(r, "setpresentkey", key, FAKE2, "1")  # plumbing: leaves a journal file
    expected = logs.change_presence(messy, FAKE2.encode(), logs.PRESENT, 1000)
    assert branch.read(path) == expected
    assert uuids(whereis(r, "a.txt")[0]["whereis"]) == {FAKE, FAKE2, here}


# --- 12.7: union merge both ways ---------------------------------------------------


@pytest.fixture
def two_clones(annex_repo: Path, tmp_path: Path) -> tuple[Path, Path, str]:
    origin = annex_repo
    key = add_file(origin, "a.txt", "hello\n")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    annex(clone, "init", "-q", "the clone")
    git(origin, "remote", "add", "clone", str(clone))
    return origin, clone, key


def test_we_merge_git_annex_branch(two_clones: tuple[Path, Path, str]) -> None:
    origin, clone, key = two_clones
    annex(clone, "describe", "here", "clone renamed")
    annex(clone, "group", "here", "backup")
    annex(clone, "get", "-q", "a.txt")
    git(origin, "fetch", "-q", "clone")
    branch, state = ours(origin)
    state.set_description(uuid_of(origin), "origin by us")
    state.set_groups(uuid_of(origin), {"client"})
    branch.commit()
    assert branch.merge_refs() == [b"refs/remotes/clone/git-annex"]
    assert branch.merge_refs() == []
    tip = Repo(str(origin))[branch.tip()]
    assert isinstance(tip, Commit) and len(tip.parents) == 2
    _, fresh = ours(origin)
    assert fresh.descriptions()[uuid_of(clone)] == "clone renamed"
    assert fresh.descriptions()[uuid_of(origin)] == "origin by us"
    assert fresh.groups() == {uuid_of(clone): {"backup"}, uuid_of(origin): {"client"}}
    assert fresh.locations(key) == {uuid_of(origin), uuid_of(clone)}
    assert uuids(whereis(origin, "a.txt")[0]["whereis"]) == {uuid_of(origin), uuid_of(clone)}
    annex(origin, "fsck", "-q")


def test_git_annex_merges_our_synced_branch(two_clones: tuple[Path, Path, str]) -> None:
    origin, clone, key = two_clones
    annex(clone, "describe", "here", "clone renamed")
    branch, state = ours(origin)
    with branch.transaction(commit="update"):
        state.set_description(uuid_of(origin), "origin by us")
        state.set_location(key, FAKE, True)
    repo = Repo(str(origin))
    repo.refs[b"refs/heads/synced/git-annex"] = repo.refs[BRANCH]
    git(clone, "fetch", "-q", "origin", "+refs/heads/synced/git-annex:refs/remotes/origin/synced/git-annex")
    annex(clone, "merge")
    info = json.loads(annex(clone, "info", "--json", "--fast"))
    descs = {x["uuid"]: x["description"] for k in info if k.endswith("repositories") for x in info[k]}
    assert descs[uuid_of(origin)].startswith("origin by us")
    assert descs[uuid_of(clone)].startswith("clone renamed")
    assert FAKE in uuids(whereis(clone, "a.txt")[0]["whereis"])


def test_recompute_git_annex_merge_commits(two_clones: tuple[Path, Path, str]) -> None:
    origin, clone, key = two_clones
    for i in range(2):
        annex(clone, "describe", "here", f"clone {i}")
        annex(clone, "group", "here", f"g{i}")
        annex(origin, "describe", "here", f"origin {i}")
        annex(origin, "group", "here", f"h{i}")
        annex(clone, "sync", "-q", "--no-content")
        git(origin, "fetch", "-q", "clone")
        annex(origin, "merge")
    annex(clone, "get", "-q", "a.txt")
    annex(clone, "sync", "-q", "--no-content")
    merges = 0
    for path in (origin, clone):
        branch, _ = ours(path)
        repo = branch.repo
        for entry in repo.get_walker(include=[repo.refs[BRANCH]]):
            c = entry.commit
            if len(c.parents) < 2:
                continue
            merges += 1
            out: list[object] = []
            tree = branch._commit_tree(c.parents[0])
            for parent in c.parents[1:]:
                tree = branch._union_trees(tree, branch._commit_tree(parent), out)  # type: ignore[arg-type]
            assert tree == c.tree, c.id
    assert merges >= 2
