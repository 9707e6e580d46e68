"""A merge git refuses is an error in the status, never "synced" (issue 8).

A real daemon (``Core``) keeps folder A; B is a real git-annex clone that
pushes a diverging commit to A's ``synced/main``.  A has ``merge.ff=only``,
a setting a user may well have, so git refuses the merge and the folders
differ: the status must say so in words everywhere it is shown (the
snapshot, ``annexsync status`` and ``--json``, the tray's headline), and the
error must go once a later merge succeeds.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from core.api import Core
from core.status import Health, Status
from tests.conftest import annex, git, run
from tests.integration.test_daemon import FAST, repo, running, wait_for

pytestmark = [pytest.mark.asyncio, pytest.mark.interop]
WAIT = 20.0


def _files(path: Path) -> set[str]:
    return set(git(path, "ls-files").split())


async def _status_cli(config: Path, *args: str) -> str:
    out = await asyncio.to_thread(
        run, ["annexsync", "status", "--config-dir", str(config), *args], config)
    return out.stdout


async def test_failed_merge_is_an_error_until_a_merge_succeeds(tmp_path: Path) -> None:
    from gui.tray import headline

    config, pa, pb = tmp_path / "cfg", tmp_path / "A", tmp_path / "B"
    core = Core(config, timings=FAST)
    seen: list[Status] = []
    async with running(core):
        core.subscribe(seen.append)
        await core.add_repository(str(pa), create=True, description="A")
        (pa / "seed.txt").write_text("seed\n")
        await wait_for(lambda: "seed.txt" in _files(pa), "A's first commit", WAIT)
        git(tmp_path, "clone", "-q", str(pa), "B")
        annex(pb, "init", "-q", "B")
        git(pa, "config", "merge.ff", "only")
        (pa / "mine.txt").write_text("from A\n")
        await wait_for(lambda: "mine.txt" in _files(pa), "A's commit", WAIT)
        (pb / "theirs.txt").write_text("from B\n")
        annex(pb, "add", "-q", "theirs.txt")
        annex(pb, "sync", "-q", "--no-pull")  # B's main diverges from A's: git must merge

        await wait_for(lambda: core.status.health(time.time()) is Health.ERROR,
                       "the failed merge in the status", WAIT)
        now = time.time()
        status = core.status
        problem = repo(core, pa).problem or ""
        assert "could not merge refs/heads/synced/main" in problem
        assert "fast-forward" in problem
        assert problem in status.tooltip(now)
        assert problem in headline(status, now, lambda text: text)
        assert "theirs.txt" not in _files(pa)
        shown = json.loads(await _status_cli(config, "--json"))
        assert shown["health"] == "error"
        assert shown["repos"][0]["merge_error"] == problem
        assert f"error: {problem}" in await _status_cli(config)

        git(pa, "config", "--unset", "merge.ff")
        await core.sync_now(str(pa))
        await wait_for(lambda: "theirs.txt" in _files(pa), "the merge after the fix", WAIT)
        await wait_for(lambda: core.status.health(time.time()) is Health.SYNCED,
                       "synced again", WAIT)
        assert repo(core, pa).merge_error is None
        # the CLI reads the running daemon, which may start (and finish) a scan meanwhile
        deadline = time.monotonic() + WAIT
        while (health := json.loads(await _status_cli(config, "--json"))["health"]) != "synced":
            assert health == "syncing" and time.monotonic() < deadline, health
            await asyncio.sleep(0.2)
    failing = [s for s in seen if any(r.merge_error for r in s.repos)]
    assert failing and all(s.health(time.time()) is Health.ERROR for s in failing)
