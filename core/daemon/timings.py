"""The daemon's timers in one value, so tests can shorten them.

Defaults are the assistant's (assistant-behaviour.md 2, 3.1, 6; kept by 8).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.daemon.batching import BatchRules


@dataclass(frozen=True)
class Timings:
    batch: BatchRules = BatchRules()  # committer: 1 s quiet, 10/s burst, 5000 per commit
    push_delay: float = 2.0  # Pusher: push within 2 s of a commit
    push_retry: float = 1800.0  # PushRetrier: failed pushes again after 30 min
    push_timeout: float = 1800.0  # shown as RemoteStatus.push_deadline (gitops.NETWORK_TIMEOUT)
    probe_interval: float = 30.0  # NetWatch round: route, clock jump, waiting remotes
    clock_tolerance: float = 30.0  # wall vs monotonic drift that means "slept"
    idle_tick: float = 30.0  # a worker re-checks its timers at least this often
    fallback_reconnect: float = 3600.0  # NetWatcherFallback: reconnect every remote hourly
    retry_base: float = 2.0  # transfer retry back-off base (doubling, capped at 5 min)
    watch_step_ms: int = 50  # watchfiles polling step
    watch_debounce_ms: int = 50  # watchfiles grouping: batching is ours, keep it short
    xmpp_backoff_first: float = 1.0  # XMPP reconnect: 1 s doubling ... (xmpp-sync C.6)
    xmpp_backoff_most: float = 300.0  # ... to 5 min
    devices_refresh: float = 30.0  # how often what is owed to paired devices is recomputed
    stop_grace: float = 10.0  # how long stop() waits for threads to finish
    job_retry_base: float = 1.0  # a failed repository job again after 1 s, doubling ...
    job_retry_max: float = 300.0  # ... capped at 5 min
    stale_lock: float = 60.0  # a git lock nobody has open, unchanged this long, goes (Repair.hs)
