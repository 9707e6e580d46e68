"""A thin asyncio adapter around ``Scheduler``, transport-agnostic.

It knows no XMPP: it is given callables that send a message and run a push,
and carries out the machine's actions with structured tasks (spec C.5, C.6,
B.11): every send and every job is a task of one ``TaskGroup`` owned by
``run()``; each send waits at most the IQ limit (``asyncio.timeout``); a job
the machine ends (timeout, presence lost, disconnect) has its task cancelled,
and its cleanup runs in the job's own ``finally``.  The receive path calls
``receive()`` and gets back, at once, the answers it must send (rule 4 of the
machine: answers never wait behind a push).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.scheduler.events import (
    Action,
    AdvertiseAnswered,
    AnswerAdvertise,
    AnswerOffer,
    AnswerRequest,
    Disconnected,
    EndJob,
    Event,
    JobFinished,
    JobWaiting,
    OfferRefused,
    PeerUnreachable,
    PresenceChanged,
    Reject,
    RequestScan,
    SendAdvertise,
    SendPushRequest,
    StartJob,
    Tick,
    Wait,
    WakeAt,
)
from core.scheduler.machine import Scheduler

logger = logging.getLogger(__name__)

Answer = AnswerAdvertise | AnswerRequest | AnswerOffer | Reject


@dataclass(frozen=True)
class JobResult:
    ok: bool
    reason: str = ""
    changed: bool = False  # the git-annex branch merge changed something (C.7)
    refused: bool = False  # outgoing: the peer answered push-open busy


class JobControl:
    """Handed to a running job so it can say what it waits for (resets its deadline)."""

    def __init__(self, runner: SchedulerRunner, job_id: int) -> None:
        self._runner = runner
        self.job_id = job_id

    def waiting(self, wait: Wait) -> None:
        self._runner.receive(JobWaiting(self.job_id, wait))


Send = Callable[[SendAdvertise | SendPushRequest], Awaitable[bool]]
RunJob = Callable[[StartJob, JobControl], Awaitable[JobResult]]


class SchedulerRunner:
    """Runs a ``Scheduler``: ``send`` returns the advertise answer (want), ``run_job`` runs a push."""

    def __init__(
        self,
        machine: Scheduler,
        send: Send,
        run_job: RunJob,
        on_scan: Callable[[str], None],
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.machine = machine
        self._send = send
        self._run_job = run_job
        self._on_scan = on_scan
        self._clock = clock or asyncio.get_running_loop().time
        self._tg: asyncio.TaskGroup | None = None
        self._jobs: dict[int, asyncio.Task[None]] = {}
        self._wake: float | None = None
        self._wake_changed = asyncio.Event()
        self._closing = False
        # Which stream and which presence of the device a send went out on (B.49): lost
        # streams so far, and per device the times it left (offline, unreachable).
        self._stream = 0
        self._left: dict[str, int] = {}

    async def run(self) -> None:
        """Own every task until cancelled; on the way out, all of them are cancelled and awaited."""
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                try:
                    await self._timer()
                finally:
                    self._shut_down()
        finally:
            self._tg = None

    def _shut_down(self) -> None:
        """End every job as a lost connection does, so each one's cleanup runs (C.6)."""
        self._closing = True
        for action in self.machine.handle(Disconnected(), self._clock()):
            if isinstance(action, EndJob):
                self._carry_out(action)

    def receive(self, event: Event) -> list[Answer]:
        """Feed one event; return the answers the receive path must send now."""
        if self._tg is None:
            raise RuntimeError("the scheduler runner is not running")
        if isinstance(event, Disconnected):
            self._stream += 1
        elif isinstance(event, PeerUnreachable) or (isinstance(event, PresenceChanged)
                                                     and not event.available):  # fmt: skip
            self._left[event.device_id] = self._left.get(event.device_id, 0) + 1
        answers: list[Answer] = []
        for action in self.machine.handle(event, self._clock()):
            if isinstance(action, (AnswerAdvertise, AnswerRequest, AnswerOffer, Reject)):
                if isinstance(action, Reject):
                    logger.info("ignored a message: %s", action.reason)
                answers.append(action)
            else:
                self._carry_out(action)
        return answers

    def _carry_out(self, action: Action) -> None:
        assert self._tg is not None
        if self._closing and not isinstance(action, EndJob):
            return
        if isinstance(action, (SendAdvertise, SendPushRequest)):
            self._tg.create_task(self._deliver(action))
        elif isinstance(action, StartJob):
            self._jobs[action.job_id] = self._tg.create_task(self._job(action))
        elif isinstance(action, EndJob):
            task = self._jobs.pop(action.job_id, None)
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        elif isinstance(action, RequestScan):
            self._on_scan(action.device_id)
        elif isinstance(action, WakeAt):
            self._wake = action.when
            self._wake_changed.set()

    async def _deliver(self, action: SendAdvertise | SendPushRequest) -> None:
        """Send and feed the outcome back -- unless the stream it went out on is gone
        meanwhile, or the device left (and maybe came back): the answer (or silence)
        then says nothing about the device now (B.49)."""
        sent_on = self._sent_on(action.device_id)
        try:
            async with asyncio.timeout(self.machine.limits.iq):
                want = await self._send(action)
        except Exception as exc:  # any failure to deliver means unreachable (B.2, B.6)
            logger.info("%s to %s failed: %r", type(action).__name__, action.device_id, exc)
            if sent_on == self._sent_on(action.device_id):
                self.receive(PeerUnreachable(action.device_id))
            return
        if sent_on != self._sent_on(action.device_id):
            return
        if isinstance(action, SendAdvertise):
            self.receive(AdvertiseAnswered(action.device_id, want))

    def _sent_on(self, device_id: str) -> tuple[int, int]:
        return self._stream, self._left.get(device_id, 0)

    async def _job(self, start: StartJob) -> None:
        result = JobResult(False, "the job ended unexpectedly")
        try:
            result = await self._run_job(start, JobControl(self, start.job_id))
        except Exception as exc:
            result = JobResult(False, str(exc) or type(exc).__name__)
        finally:
            if self._jobs.pop(start.job_id, None) is not None and self._tg is not None:
                if result.refused:
                    self.receive(OfferRefused(start.job_id))
                else:
                    self.receive(JobFinished(start.job_id, result.ok, result.reason, result.changed))

    async def _timer(self) -> None:
        """Feed ``Tick`` when the machine's next deadline is due."""
        while True:
            self._wake_changed.clear()
            delay = None if self._wake is None else max(0.0, self._wake - self._clock())
            try:
                async with asyncio.timeout(delay):
                    await self._wake_changed.wait()
            except TimeoutError:
                self._wake = None
                self.receive(Tick())
