"""The core's commands, run for the views.

Views call ``Actions`` methods from Qt slots; each starts the facade command as
a task that this object owns (kept in ``_tasks`` until done, cancelled by
``aclose``), so no task is left unreferenced.  Slot bodies stay short: the
command returns once the core accepted it, and the outcome shows through the
status snapshots.  A ``CoreError`` is a message for the user (``failed``); any
other exception is a bug and goes to ``sys.excepthook`` as well.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from core.errors import CoreError
from core.settings import Settings

if TYPE_CHECKING:
    from core.api import Core

logger = logging.getLogger(__name__)


class Actions(QObject):
    """Starts facade commands as owned tasks and reports their failures."""

    failed = Signal(str)  # a message for the user
    finished = Signal(str)  # the command's name, after it succeeded

    def __init__(self, core: Core, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.core = core
        self._tasks: set[asyncio.Task[Any]] = set()

    def submit(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` as an owned task; return it so callers (and tests) may await it."""
        task = asyncio.get_event_loop().create_task(self._guard(name, coro), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _guard(self, name: str, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            result = await coro
        except CoreError as e:
            logger.info("%s failed: %s", name, e)
            self.failed.emit(str(e))
            raise
        except Exception as e:
            self.failed.emit(self.tr("Internal error in %1: %2").replace("%1", name).replace("%2", str(e)))
            sys.excepthook(type(e), e, e.__traceback__)
            raise
        self.finished.emit(name)
        return result

    @property
    def pending(self) -> int:
        """How many commands are still running."""
        return len(self._tasks)

    async def aclose(self) -> None:
        """Cancel what is still running and wait for it (bounded)."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    # One method per facade command -------------------------------------------------

    def pause(self, until: float | None = None) -> asyncio.Task[Any]:
        """Pause syncing until an epoch time, or indefinitely."""
        return self.submit("pause", self.core.pause(None if until is None or math.isinf(until) else until))

    def resume(self) -> asyncio.Task[Any]:
        """Resume syncing."""
        return self.submit("resume", self.core.resume())

    def sync_now(self, repo: str | None = None) -> asyncio.Task[Any]:
        """Sync one repository now, or all."""
        return self.submit("sync_now", self.core.sync_now(repo))

    def add_repository(self, path: str, *, create: bool, description: str | None = None) -> asyncio.Task[Any]:
        """Create or adopt a repository folder."""
        return self.submit("add_repository", self.core.add_repository(path, create=create, description=description))

    def remove_repository(self, path: str) -> asyncio.Task[Any]:
        """Stop syncing a repository (its files stay)."""
        return self.submit("remove_repository", self.core.remove_repository(path))

    def add_remote(self, repo: str, name: str, url: str) -> asyncio.Task[Any]:
        """Add a path or URL remote to a repository."""
        return self.submit("add_remote", self.core.add_remote(repo, name, url))

    def set_remote_url(self, repo: str, name: str, url: str) -> asyncio.Task[Any]:
        """Point a remote at a new location."""
        return self.submit("set_remote_url", self.core.set_remote_url(repo, name, url))

    def remove_remote(self, repo: str, name: str) -> asyncio.Task[Any]:
        """Stop syncing with a remote (nothing there is deleted)."""
        return self.submit("remove_remote", self.core.remove_remote(repo, name))

    def cancel_transfer(self, transfer_id: int) -> asyncio.Task[Any]:
        """Cancel a queued or running transfer."""
        return self.submit("cancel_transfer", self.core.cancel_transfer(transfer_id))

    def resolve_conflict(self, repo: str, path: str, keep: str | None) -> asyncio.Task[Any]:
        """Keep both variants (``keep=None``) or make one variant the file."""
        return self.submit("resolve_conflict", self.core.resolve_conflict(repo, path, keep))

    def update_settings(self, settings: Settings) -> asyncio.Task[Any]:
        """Save and apply new settings."""
        return self.submit("update_settings", self.core.update_settings(settings))

    def dismiss_alert(self, alert_id: int) -> asyncio.Task[Any]:
        """Remove an alert from the list."""
        return self.submit("dismiss_alert", self.core.dismiss_alert(alert_id))

    def forget_device(self, device_id: str) -> asyncio.Task[Any]:
        """Forget a paired device (its key, record and remotes)."""
        return self.submit("forget device", self.core.forget_device(device_id))

    def file_copies(self, repo: str, path: str) -> asyncio.Task[Any]:
        """Where a file's copies are and whether a drop here is safe (the cluster view)."""
        return self.submit("file_copies", self.core.file_copies(repo, path))
