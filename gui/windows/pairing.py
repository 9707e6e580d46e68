"""The pairing wizards: "Pair a device…" (show a code) and "Join with a code…" (pairing.md 6.10).

Both reach the core only through the facade (``Core.pair_show``,
``Core.pair_join``), run as tasks owned by ``Actions``, and show the outcome
in words: the peer's device name and the transport, or why it failed.

*Pair a device…*: choose the LAN, one's own devices (the XMPP account) or a
friend's address; then the code in large type, its QR code (``segno``,
rendered to a QPixmap), the time left counting down each second, Cancel
(cancels the task: the carrier closes the window in ``finally``).

*Join with a code…*: the code typed, progress ("looking on this network…",
then "asking your devices and contacts over XMPP…"), the outcome.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import segno
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFont, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from core.errors import CoreError
from gui import format as fmt
from gui.actions import Actions
from gui.bridge import Bridge

if TYPE_CHECKING:  # the pairing modules load on first use (app start stays fast)
    from core.pairing.service import OpenWindow, PairOutcome


def qr_pixmap(text: str, scale: int = 6) -> QPixmap:
    """The QR code of ``text`` as a pixmap (segno writes PNG; Qt reads it)."""
    buf = io.BytesIO()
    segno.make(text, error="m").save(buf, kind="png", scale=scale, border=2)
    pix = QPixmap()
    pix.loadFromData(buf.getvalue(), "PNG")
    return pix


def outcome_text(o: PairOutcome, tr: Callable[[str], str]) -> str:
    return tr("Paired with %1 (over %2).").replace("%1", o.name).replace("%2", o.transport)


def _label(name: str, text: str = "") -> QLabel:
    label = QLabel(text)
    label.setObjectName(name)
    label.setWordWrap(True)
    return label


class _PairingDialog(QDialog):
    """Shared: a task owned by ``Actions``, its outcome, Cancel and Close."""

    def __init__(self, bridge: Bridge, actions: Actions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge, self.commands = bridge, actions
        self.task: asyncio.Task[Any] | None = None
        self.outcome: PairOutcome | None = None
        self.setMinimumWidth(440)
        self.lay = QVBoxLayout(self)
        self.said = _label("pair-result")
        self.cancel = QPushButton(self.tr("Cancel"))
        self.cancel.setObjectName("pair-cancel")
        self.cancel.clicked.connect(self._cancel)

    def _finish_layout(self) -> None:
        self.lay.addWidget(self.said)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.cancel)
        self.lay.addLayout(row)

    def _run(self, name: str, coro: Any) -> None:
        self.said.setText("")
        self.task = self.commands.submit(name, self._guarded(coro))

    async def _guarded(self, coro: Any) -> None:
        try:
            self.outcome = await coro
            self.said.setText(outcome_text(self.outcome, self.tr))
        except CoreError as e:
            self.said.setText(self.tr("Not paired: %1").replace("%1", str(e)))
        finally:
            self.cancel.setText(self.tr("Close"))
            self._ended()

    def _ended(self) -> None:
        pass

    def _cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.reject()

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt's name
        if self.task is not None and not self.task.done():
            self.task.cancel()
        super().closeEvent(event)


class PairDialog(_PairingDialog):
    """Pair a device…: choose how, then show the code until a device joins."""

    def __init__(self, bridge: Bridge, actions: Actions, parent: QWidget | None = None) -> None:
        super().__init__(bridge, actions, parent)
        self.setWindowTitle(self.tr("Pair a device"))
        self.setObjectName("pair-dialog")
        self.window_open: OpenWindow | None = None
        self.lay.addWidget(_label("pair-how-label", self.tr("Where is the other device?")))
        self.lan = QRadioButton(self.tr("On this network"))
        self.own = QRadioButton(self.tr("One of my devices, over my XMPP account"))
        self.friend = QRadioButton(self.tr("A friend's device, at this address:"))
        group = QButtonGroup(self)
        for name, b in (("pair-lan", self.lan), ("pair-own", self.own), ("pair-friend", self.friend)):
            b.setObjectName(name)
            group.addButton(b)
            self.lay.addWidget(b)
        self.lan.setChecked(True)
        self.friend_jid = QLineEdit()
        self.friend_jid.setObjectName("pair-friend-jid")
        self.friend_jid.setPlaceholderText("friend@example.org")
        self.lay.addWidget(self.friend_jid)
        self.start = QPushButton(self.tr("Show a code"))
        self.start.setObjectName("pair-start")
        self.start.clicked.connect(self._start)
        self.lay.addWidget(self.start)
        self.code = _label("pair-code")
        font = QFont()
        font.setPointSize(28)
        font.setBold(True)
        self.code.setFont(font)
        self.code.setWordWrap(False)
        self.code.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.code.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.qr = _label("pair-qr")
        self.qr.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.left = _label("pair-left")
        for w in (self.code, self.qr, self.left):
            self.lay.addWidget(w)
        self._finish_layout()
        self._ticker = QTimer(self)
        self._ticker.setInterval(1000)
        self._ticker.timeout.connect(self._tick)

    def how(self) -> str:
        return "own" if self.own.isChecked() else "friend" if self.friend.isChecked() else "lan"

    def _start(self) -> None:
        self.start.setEnabled(False)
        friend = self.friend_jid.text().strip() or None
        core = self.commands.core
        self._run("pair", core.pair_show(self.how(), friend, on_open=self._opened))

    def _opened(self, w: OpenWindow) -> None:
        self.window_open = w
        self.code.setText(w.code)
        self.qr.setPixmap(qr_pixmap(w.code))
        where = {"lan": self.tr("on this network"), "own": self.tr("among your devices"),
                 "friend": self.tr("for your friend")}[w.how]  # fmt: skip
        self.said.setText(self.tr("Type this code on the other device (waiting %1).")
                            .replace("%1", where))  # fmt: skip
        self._tick()
        self._ticker.start()

    def _tick(self) -> None:
        if self.window_open is None:
            return
        left = max(0.0, self.window_open.expires - self.bridge.now())
        self.left.setText(self.tr("Time left: %1").replace("%1", fmt.duration(left)))

    def _ended(self) -> None:
        self._ticker.stop()
        self.start.setEnabled(True)
        self.left.setText("")


class JoinDialog(_PairingDialog):
    """Join with a code…: type it; the LAN first, then XMPP contacts."""

    def __init__(self, bridge: Bridge, actions: Actions, parent: QWidget | None = None) -> None:
        super().__init__(bridge, actions, parent)
        self.setWindowTitle(self.tr("Join with a code"))
        self.setObjectName("join-dialog")
        self.lay.addWidget(_label("join-label", self.tr("The code the other device shows:")))
        self.code = QLineEdit()
        self.code.setObjectName("join-code")
        self.code.setPlaceholderText("7-guitar-tracker")
        self.lay.addWidget(self.code)
        self.join = QPushButton(self.tr("Join"))
        self.join.setObjectName("join-start")
        self.join.clicked.connect(self._start)
        self.lay.addWidget(self.join)
        self.progress = _label("join-progress")
        self.lay.addWidget(self.progress)
        self._finish_layout()

    def _start(self) -> None:
        self.join.setEnabled(False)
        core = self.commands.core
        self._run("join", core.pair_join(self.code.text(), on_progress=self._progress))

    def _progress(self, text: str) -> None:
        self.progress.setText(self.tr(text))

    def _ended(self) -> None:
        self.join.setEnabled(True)
        self.progress.setText("")
