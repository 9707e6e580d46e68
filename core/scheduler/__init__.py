"""The XMPP push scheduler: signalling and push jobs as a pure state machine (issue 13).

``machine.Scheduler`` is the machine; ``events`` holds its inputs, outputs and
status values.  Import them from those modules.
"""

from __future__ import annotations

from core.scheduler.machine import Scheduler

__all__ = ["Scheduler"]
