"""Async entry points for a scheduler job with one paired device (xmpp-sync C.5).

The push scheduler (advertise/request signalling, issue 13) decides *when*;
these do the work, the same way the repository worker does with any remote
(``core.daemon.jobs``): in a worker thread, with the device's own
``PairedRemote`` (a visitor XMPP connection of its own, closed when the job
ends), every network wait bounded by the session and P2P timeouts.

Callers inside the daemon should hold the repository worker's ``lock``
(``RepoWorker.lock``) around them, as the worker does around its jobs: one
writer per repository.
"""

from __future__ import annotations

from pathlib import Path

from core.daemon import jobs
from core.daemon.threads import run_blocking
from core.devices import paired
from core.errors import RemoteUnavailable


async def _remote_name(repo_path: str, device_id: str) -> str:
    name = await run_blocking(paired.remote_of, Path(repo_path), device_id)
    if name is None:
        raise RemoteUnavailable(f"{repo_path} has no remote for device {device_id}; "
                                "it does not share this repository")  # fmt: skip
    return name


async def push_to_device(repo_path: str, device_id: str) -> jobs.RemoteOutcome:
    """Push our branch and git-annex branch to ``device_id``: they land in
    ``refs/synced/<our repo uuid>/<our device id>/`` there (B fast-forward,
    git-annex forced) and the device merges them at once (C.3).

    Returns the outcome (``ok``; ``unreachable`` when the device is offline,
    with the reason in words).

    Raises:
        RemoteUnavailable: the repository has no remote for that device.
        MergeFailed: never for a paired device (no pull-and-retry fallback).
    """
    return await run_blocking(jobs.push_remote, repo_path, await _remote_name(repo_path,
                                                                              device_id))


async def pull_from_device(repo_path: str, device_id: str) -> jobs.RemoteOutcome:
    """Fetch ``device_id``'s branches through CONNECT and merge them (its
    branch and git-annex branch), as for any remote (8.2 step 3).

    Raises:
        RemoteUnavailable: the repository has no remote for that device.
        MergeConflict: a conflict the person must resolve.
        MergeFailed: git could not merge what was fetched.
    """
    return await run_blocking(jobs.pull_remote, repo_path, await _remote_name(repo_path,
                                                                              device_id))


__all__ = ["pull_from_device", "push_to_device"]
