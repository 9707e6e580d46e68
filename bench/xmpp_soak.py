"""Soak of the push scheduler over a real prosody: rounds of three devices committing
at once, and connection kills mid-push; prints deadlocks, stalls, lost commits and the
latency distribution (issue 13; goals 0, 0, 0).

    .venv/bin/python bench/xmpp_soak.py [--rounds 100] [--kills 100] [--stall 20]

The devices are those of tests/integration/test_xmpp_pushes.py (push_helpers): laptop
and desktop on one account, phone on another, each a real XmppLink + PushHub over its
own git repository, with a push job that moves git data with real git.  The laptop
and the phone reach prosody through loopback relays that a kill cuts (both sides of
the TCP connection aborted) while a push is running.

* a round: every device commits a new file at once; it converged when every device
  has every file and all three are at one commit.  Latency = commit to the file
  being in another device's branch.
* deadlock: some push is active but no push ended for ``--stall`` seconds;
* stall: a round (or a kill) that took more than ``--stall`` seconds to converge;
* lost commit: a (device, file) pair still missing after a final quiet period of
  60 s, when nothing is running.

Not a test: figures, not assertions; the exit status is 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.push_helpers import Dev, git, make_devs, make_repos, run_dev  # noqa: E402
from tests.integration.xmpp_helpers import Relay  # noqa: E402
from tests.xmpp_server import Prosody, prosody  # noqa: E402


class Soak:
    def __init__(self, devs: list[Dev], relays: dict[str, Relay], stall: float) -> None:
        self.devs, self.relays, self.stall = devs, relays, stall
        self.expected: dict[str, float] = {}  # file -> commit time
        self.seen: dict[tuple[str, str], float] = {}  # (device, file) -> first seen
        self.deadlocks = self.stalls = 0
        self.times: dict[str, list[float]] = {"round": [], "kill": []}  # to convergence

    def ended(self) -> int:
        return sum(1 for d in self.devs for p in d.hub.statuses() if p.outcome is not None) + \
            sum(len(d.job.log) for d in self.devs)

    def active(self) -> bool:
        return any(p.active for d in self.devs for p in d.hub.statuses())

    async def look(self) -> bool:
        """Record what each device has now; True when every device has every file and
        all are at one commit (so a round starts from one history, not from tips still
        merging each other's merges)."""
        now = time.monotonic()
        complete = len({await git(d.path, "rev-parse", "HEAD") for d in self.devs}) == 1
        for d in self.devs:
            files = set((await git(d.path, "ls-tree", "--name-only", "HEAD")).split())
            for f in self.expected:
                if f in files:
                    self.seen.setdefault((d.name, f), now)
                else:
                    complete = False
        return complete

    async def converge(self) -> float:
        """Wait until converged; count a stall past ``stall`` s and a deadlock when nothing ends."""
        start = last_change = time.monotonic()
        ended = self.ended()
        stalled = False
        while not await self.look():
            await asyncio.sleep(0.05)
            now = time.monotonic()
            if self.ended() != ended:
                ended, last_change = self.ended(), now
            elif self.active() and now - last_change > self.stall:
                self.deadlocks += 1
                last_change = now
            if not stalled and now - start > self.stall:
                self.stalls, stalled = self.stalls + 1, True
                self.dump()
            if now - start > 10 * self.stall:
                return now - start  # give up on this round; the final check counts the loss
        return time.monotonic() - start

    def dump(self) -> None:
        """What each device's schedulers hold now (to diagnose a stall)."""
        t = asyncio.get_running_loop().time()
        names = {d.id: d.name for d in self.devs}
        for d in self.devs:
            present = {names.get(k, k[:6]): v for k, v in d.hub._present.items()}
            print(f"  {d.name}: online={d.hub._online} present={present} running={d.job.running}")
            for r in d.hub._repos.values():
                m = r.runner.machine if r.runner else None
                if m is None:
                    continue
                for dev, p in m._peers.items():
                    print(f"    peer {names.get(dev, dev[:6])}: present={p.present} dirty={m.dirty(dev)} "
                          f"confirmed={p.confirmed} gen={m._generation} adv_deadline="
                          f"{None if p.advertise_deadline is None else round(p.advertise_deadline - t, 1)} "
                          f"retry_in={round(p.retry_at - t, 1)} wants_pull={p.wants_pull} failures={p.failures}")
                for v in m.jobs():
                    print(f"    job {v.job_id} {names.get(v.device_id, v.device_id[:6])} {v.direction.value} "
                          f"{v.phase.value} wait={v.waiting_for} deadline_in="
                          f"{None if v.deadline is None else round(v.deadline - t, 1)} {v.outcome} {v.reason}")
        print(flush=True)

    async def commit_all(self, tag: str) -> None:
        now = time.monotonic()
        for d in self.devs:
            self.expected[f"{tag}-{d.name}.txt"] = now
        await asyncio.gather(*(d.commit(f"{tag}-{d.name}.txt") for d in self.devs))

    async def kill(self, i: int) -> None:
        """Commit on a relayed device and cut its connection once a push is running."""
        victim = next(d for d in self.devs if d.name == ("laptop", "phone")[i % 2])
        name = f"kill{i}-{victim.name}.txt"
        self.expected[name] = time.monotonic()
        await victim.commit(name)
        deadline = time.monotonic() + 10
        while not any(d.job.running for d in self.devs) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        self.relays[victim.name].cut()

    def latencies(self) -> list[float]:
        own = {f: f.rsplit("-", 1)[1].removesuffix(".txt") for f in self.expected}
        return sorted(t - self.expected[f] for (d, f), t in self.seen.items() if own[f] != d)

    async def run(self, rounds: int, kills: int, every: bool = False) -> None:
        """The rounds, then the kills, each until converged; prints each one's time
        (``every``) or only those past ``stall``."""
        await self.converge()
        for what, count, act in (("round", rounds, lambda i: self.commit_all(f"r{i}")),
                                 ("kill", kills, self.kill)):  # fmt: skip
            for i in range(count):
                await act(i)
                took = await self.converge()
                self.times[what].append(took)
                if every or took > self.stall:
                    print(f"{what} {i}: converged after {took:.1f} s", flush=True)

    def report(self) -> int:
        """Print the figures; 1 when a goal (no deadlock, stall or lost commit) is missed."""
        lost = len(self.expected) * len(self.devs) - len(self.seen)
        lat = self.latencies()
        print(f"rounds: {len(self.times['round'])}, kills mid-push: {len(self.times['kill'])}, "
              f"commits: {len(self.expected)}")
        print(f"deadlocks: {self.deadlocks}, stalls (> {self.stall:g} s): {self.stalls}, "
              f"lost commits: {lost}")
        if lat:
            print(f"latency to another device (s): n={len(lat)} min={lat[0]:.3f} "
                  f"p50={statistics.median(lat):.3f} p90={percentile(lat, 0.9):.3f} "
                  f"p99={percentile(lat, 0.99):.3f} max={lat[-1]:.3f}")
        for label, xs in ((k, sorted(v)) for k, v in self.times.items()):
            if xs:
                print(f"{label} to convergence (s): p50={statistics.median(xs):.3f} "
                      f"p90={percentile(xs, 0.9):.3f} max={xs[-1]:.3f}")
        outcomes: dict[str, int] = {}
        for d in self.devs:
            for p in d.hub.statuses():
                if p.outcome not in (None, "done"):
                    key = f"{p.outcome}: {p.reason}"
                    outcomes[key] = outcomes.get(key, 0) + 1
        for key, n in sorted(outcomes.items()):
            print(f"last push not done ({n}x): {key}")
        return 0 if (self.deadlocks, self.stalls, lost) == (0, 0, 0) else 1


def percentile(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


async def soak(server: Prosody, root: Path, rounds: int, kills: int, stall: float) -> int:
    alice, carol = server.register("alice", "pw"), server.register("carol", "pw")
    repos = await make_repos(root, ["laptop", "desktop", "phone"])
    async with Relay(server.port) as r1, Relay(server.port) as r2:
        relays = {"laptop": r1, "phone": r2}
        devs = make_devs(server, repos, {"laptop": alice, "desktop": alice, "phone": carol},
                         via={k: r.address for k, r in relays.items()})  # fmt: skip
        s = Soak(list(devs.values()), relays, stall)
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(run_dev(d)) for d in devs.values()]
            await s.run(rounds, kills)
            quiet = time.monotonic()
            while (s.active() or not await s.look()) and time.monotonic() - quiet < 60:
                await asyncio.sleep(0.2)
            await s.look()
            for t in tasks:
                t.cancel()
    code = s.report()
    print(f"reconnects: laptop {devs['laptop'].link.sessions - 1}, phone {devs['phone'].link.sessions - 1}")
    return code


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--stall", type=float, default=20.0)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so prosody is stopped in `finally`
    with tempfile.TemporaryDirectory() as d, prosody(Path(d) / "prosody") as server:
        root = Path(d) / "repos"
        root.mkdir()
        sys.exit(asyncio.run(soak(server, root, args.rounds, args.kills, args.stall)))


if __name__ == "__main__":
    main()
