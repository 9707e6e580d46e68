"""Status values: every Health state, the priority between them, tooltip, progress, JSON."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import pytest

from core.status import (
    Alert,
    Conflict,
    Health,
    PeerSession,
    RemoteStatus,
    RepoStatus,
    Status,
    TransferStatus,
    status_from_json,
    to_json,
)

NOW = 1_000_000.0


def remote(**kw: object) -> RemoteStatus:
    base: dict[str, object] = dict(name="laptop", uuid="u-1", kind="path", reachable=True,
                                   last_sync=NOW - 5)
    base.update(kw)
    return RemoteStatus(**base)  # type: ignore[arg-type]


def transfer(state: str = "running", done: int = 50, total: int | None = 100) -> TransferStatus:
    return TransferStatus(id=1, repo="/r", path="a.jpg", key="SHA256E-s100--x.jpg",
                          direction="download", remote="laptop", bytes_done=done,
                          bytes_total=total, speed=10.0, state=state)  # type: ignore[arg-type]


def repo(**kw: object) -> RepoStatus:
    base: dict[str, object] = dict(path="/r", uuid="u-0", description="here",
                                   remotes=(remote(),))
    base.update(kw)
    return RepoStatus(**base)  # type: ignore[arg-type]


def status(*repos: RepoStatus, **kw: object) -> Status:
    return Status(repos=repos, **kw)  # type: ignore[arg-type]


# --- each state ----------------------------------------------------------------


def test_synced_when_nothing_is_pending() -> None:
    s = status(repo())
    assert s.health(NOW) is Health.SYNCED
    assert s.tooltip(NOW) == "annexsync: everything synced"


def test_no_folder_is_not_synced_but_setup() -> None:
    """Issue 18: before any folder exists the icon was a green check."""
    assert Status().health(NOW) is Health.SETUP
    assert Status().tooltip(NOW) == "annexsync: no folder synced yet"


@pytest.mark.parametrize("pending", [
    dict(uncommitted=1),
    dict(queued=2),
    dict(scanning=True),
    dict(transfers=(transfer("running"),)),
    dict(transfers=(transfer("queued"),)),
    dict(remotes=(remote(pending=True),)),
])
def test_syncing_while_anything_is_pending(pending: dict[str, object]) -> None:
    s = status(repo(**pending))
    assert s.health(NOW) is Health.SYNCING
    assert s.tooltip(NOW).startswith("annexsync: syncing")


def test_finished_transfers_do_not_keep_it_syncing() -> None:
    assert status(repo(transfers=(transfer("done"),))).health(NOW) is Health.SYNCED
    for state in ("failed", "cancelled"):  # issue 18: the content is not where it is wanted
        s = status(repo(transfers=(transfer(state),)))
        assert s.health(NOW) is Health.ATTENTION
        assert s.tooltip(NOW) == "annexsync: 1 file not copied (transfer cancelled or failed)"


def test_a_cancelled_transfer_done_later_is_settled() -> None:
    later = dataclasses.replace(transfer("done"), id=2)
    assert status(repo(transfers=(later, transfer("cancelled")))).health(NOW) is Health.SYNCED
    again = dataclasses.replace(transfer("queued"), id=2)
    assert status(repo(transfers=(again, transfer("failed")))).health(NOW) is Health.SYNCING
    other = dataclasses.replace(transfer("done"), id=2, key="SHA256E-s1--other")
    assert status(repo(transfers=(other, transfer("cancelled")))).health(NOW) is Health.ATTENTION


def test_a_transfer_failed_for_a_waiting_remote_is_waiting() -> None:
    dropped = dataclasses.replace(transfer("failed"), remote="")
    assert status(repo(transfers=(dropped,), remotes=(remote(reachable=False),))
                  ).health(NOW) is Health.WAITING
    s = status(repo(transfers=(transfer("failed"),), remotes=(remote(reachable=False),)))
    assert s.health(NOW) is Health.WAITING


def test_a_failing_remote_is_an_error_in_words_never_synced_or_syncing() -> None:
    """Issue 18: an ssh remote on an unknown host left "everything synced" (or "syncing"
    forever, with a push owed)."""
    for pending in (False, True):
        s = status(repo(remotes=(remote(reachable=None, error="host not found",
                                        detail="ssh: Could not resolve hostname ...",
                                        pending=pending),)))
        assert s.health(NOW) is Health.ERROR
        assert s.tooltip(NOW) == "annexsync: laptop: host not found"
        assert s.repos[0].remotes[0].state_words() == "failing: host not found"
    waiting = remote(reachable=False, error="connection refused")
    assert status(repo(remotes=(waiting,))).health(NOW) is Health.WAITING
    assert waiting.state_words() == "waiting: connection refused"


def test_a_missing_folder_is_an_error() -> None:
    s = status(repo(missing=True))
    assert s.health(NOW) is Health.ERROR
    assert s.tooltip(NOW) == "annexsync: error in /r: folder not found (unplugged or moved?)"


def test_without_a_daemon_it_is_stopped_and_says_what_is_known() -> None:
    assert Status(daemon=False).health(NOW) is Health.STOPPED
    assert Status(daemon=False).tooltip(NOW) == "annexsync: not running"
    s = status(repo(uncommitted=2), daemon=False)
    assert s.health(NOW) is Health.STOPPED
    assert s.tooltip(NOW) == "annexsync: not running; last known: 2 changes not committed"
    assert status(repo(), daemon=False).headline(NOW) == "not running; last known: no changes waiting"
    broken = status(repo(error="cannot open"), daemon=False)
    assert broken.headline(NOW) == "not running; last known: error in /r: cannot open"


class _Node:
    """A peer of a kind Status does not know yet (an XMPP peer, a cluster node)."""

    def __init__(self, failure: str | None, waiting: bool) -> None:
        self.peer_name, self.failure, self.waiting = "node1", failure, waiting


def test_any_peer_shape_joins_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    base = status(repo())
    monkeypatch.setattr(Status, "peers", lambda self: (_Node("authentication failed", False),))
    assert base.health(NOW) is Health.ERROR
    assert base.headline(NOW) == "node1: authentication failed"
    monkeypatch.setattr(Status, "peers", lambda self: (_Node(None, True),))
    assert base.health(NOW) is Health.WAITING and base.headline(NOW) == "waiting for node1"


def test_waiting_when_a_remote_is_unreachable() -> None:
    s = status(repo(remotes=(remote(reachable=False, waiting_since=NOW - 60, pending=True),)))
    assert s.health(NOW) is Health.WAITING  # its pending push waits for it: not SYNCED
    assert s.tooltip(NOW) == "annexsync: waiting for laptop"


def test_unreachable_remote_with_local_work_is_syncing() -> None:
    s = status(repo(uncommitted=3, remotes=(remote(reachable=False),)))
    assert s.health(NOW) is Health.SYNCING
    assert "3 changes to commit" in s.tooltip(NOW)


def test_never_tried_remote_is_not_waiting() -> None:
    assert status(repo(remotes=(remote(reachable=None),))).health(NOW) is Health.SYNCED


def test_offline() -> None:
    s = status(repo(uncommitted=1), online=False)
    assert s.health(NOW) is Health.OFFLINE
    assert "offline" in s.tooltip(NOW)


def test_paused_until_a_time_then_not() -> None:
    s = status(repo(uncommitted=1), paused_until=NOW + 60)
    assert s.health(NOW) is Health.PAUSED
    assert "paused until" in s.tooltip(NOW)
    assert s.health(NOW + 61) is Health.SYNCING


def test_paused_indefinitely() -> None:
    s = status(repo(), paused_until=math.inf)
    assert s.health(NOW) is Health.PAUSED
    assert s.tooltip(NOW) == "annexsync: paused"


def test_attention_for_conflicts() -> None:
    c = Conflict("/r", "doc.txt", ("doc.variant-aaaa.txt", "doc.variant-bbbb.txt"))
    s = status(repo(conflicts=(c,)), paused_until=math.inf, online=False)
    assert s.health(NOW) is Health.ATTENTION  # above paused and offline
    assert "1 conflict to resolve" in s.tooltip(NOW)


def test_error_beats_everything() -> None:
    c = Conflict("/r", "doc.txt", ())
    s = status(repo(error="cannot open", conflicts=(c,)), paused_until=math.inf)
    assert s.health(NOW) is Health.ERROR
    assert "cannot open" in s.tooltip(NOW)


def test_failed_merge_is_an_error_never_synced() -> None:
    s = status(repo(merge_error="could not merge refs/heads/synced/main: Not possible"))
    assert s.health(NOW) is Health.ERROR
    assert "could not merge refs/heads/synced/main" in s.tooltip(NOW)
    assert s.repos[0].problem == "could not merge refs/heads/synced/main: Not possible"
    assert status_from_json(json.loads(json.dumps(to_json(s)))) == s
    assert status(repo(error="cannot open", merge_error="x")).repos[0].problem == "cannot open"


def test_every_health_state_is_reachable() -> None:
    c = Conflict("/r", "x", ())
    examples = {
        Health.SYNCED: status(repo()),
        Health.SYNCING: status(repo(uncommitted=1)),
        Health.WAITING: status(repo(remotes=(remote(reachable=False),))),
        Health.OFFLINE: status(repo(), online=False),
        Health.PAUSED: status(repo(), paused_until=math.inf),
        Health.ATTENTION: status(repo(conflicts=(c,))),
        Health.ERROR: status(repo(error="boom")),
        Health.SETUP: status(),
        Health.STOPPED: status(repo(), daemon=False),
    }
    assert set(examples) == set(Health)
    for want, s in examples.items():
        assert s.health(NOW) is want
        assert s.tooltip(NOW).startswith("annexsync: ")


# --- progress and tooltip details ---------------------------------------------------


def test_progress_over_running_transfers_with_sizes() -> None:
    ts = (transfer("running", 50, 100), dataclasses.replace(transfer("running", 150, 300), id=2),
          dataclasses.replace(transfer("running", 7, None), id=3), transfer("queued", 0, 1000))
    s = status(repo(transfers=ts))
    assert s.progress() == pytest.approx(200 / 400)
    assert "3 transfers running (50%)" in s.tooltip(NOW)
    assert status(repo()).progress() is None


def test_tooltip_counts_queued_transfers() -> None:
    s = status(repo(queued=4))
    assert "4 transfers queued" in s.tooltip(NOW)


# --- values ---------------------------------------------------------------------


def test_values_are_frozen() -> None:
    s = status(repo())
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.online = False  # type: ignore[misc]


def test_json_round_trip() -> None:
    s = status(
        repo(transfers=(transfer(),), conflicts=(Conflict("/r", "a", ("a.variant-1",)),),
             remotes=(remote(reachable=False, waiting_since=NOW, error="timed out",
                             detail="git fetch timed out"),), missing=True),
        paused_until=math.inf, daemon=False,
        alerts=(Alert(1, "warning", "Failed to sync with laptop", NOW, True),),
        activity=("Committed 1 change",),
        sessions=(PeerSession("desk", "incoming", "refused", "d-1", None, 10, 20, NOW,
                              "the device could not prove the pairing"),),
    )
    data = json.loads(json.dumps(to_json(s)))
    assert data["paused_until"] == "inf"
    assert status_from_json(data) == s


def test_a_session_in_words() -> None:
    done = PeerSession("desk", "outgoing", "done", repo="/r", bytes_in=1000, bytes_out=234)
    assert done.text == "session to desk (/r): done, 1,234 bytes"
    refused = PeerSession("alice@x/annexsync.visit-1", "incoming", "refused",
                          reason="the device is not paired with this one")
    assert refused.text == ("session from alice@x/annexsync.visit-1: refused, 0 bytes: "
                            "the device is not paired with this one")


def test_facade_does_not_import_qt() -> None:
    # In a fresh interpreter: pytest-qt has already imported PySide6 here.
    code = ("import sys, core.api, core.status, core.settings, core.secrets, core.instance; "
            "print([m for m in sys.modules if m.startswith('PySide6')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "[]"


def test_a_remote_not_yet_resynced_is_work_not_synced() -> None:
    """A remote the worker has not fetched from since it (or the folder) came back is
    owed a fetch and merge: until that ran, the folder is not "synced" with it."""
    from core.daemon.repoworker import RemoteState
    from core.remotetypes import RemoteInfo, RemoteKind

    state = RemoteState(RemoteInfo("usb", "u-1", RemoteKind.PATH), reachable=True)
    assert state.desynced
    repo = RepoStatus("/r", "u-0", "laptop", remotes=(state.status(),))
    assert repo.busy()
    state.desynced = False
    assert not RepoStatus("/r", "u-0", "laptop", remotes=(state.status(),)).busy()
