#!/usr/bin/env python3
"""Encrypted session throughput on loopback, side by side with plain TCP.

    python bench/session.py [--mib N] [--runs N] [--chunk BYTES]

One process, one event loop, both ends: a sender writes N MiB in chunks
through the stream (draining after each, as ``runtime.Channel`` does), a
receiver reads until it has them all and answers one byte.  Rows:

    plain      asyncio streams over a loopback TCP socket
    encrypted  the same streams wrapped by ``core.session.stream``
               (Noise_KKpsk2_25519_ChaChaPoly_SHA256; handshake not timed)

Reported: the median over ``--runs`` of MB/s (10^6 bytes per second of wall
time) and CPU seconds of this process (``time.process_time``: both ends'
encryption, decryption, framing and socket work), plus CPU per MB.  Both ends
share one process and one core, so the encrypted figure is a lower bound of
what two machines would see.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402

from core.session import PeerCredentials  # noqa: E402
from core.session.stream import accept_session, connect_session  # noqa: E402

KEY_A, KEY_B = X25519PrivateKey.generate(), X25519PrivateKey.generate()
PSK = os.urandom(32)
A = PeerCredentials("bench-a", KEY_A, "bench-b", KEY_B.public_key(), PSK)
B = PeerCredentials("bench-b", KEY_B, "bench-a", KEY_A.public_key(), PSK)

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def pair(encrypted: bool) -> tuple[Streams, Streams, asyncio.Server]:
    """Connected (client, server) stream pairs over loopback TCP."""
    accepted: asyncio.Queue[Streams] = asyncio.Queue(1)

    async def on_accept(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        if encrypted:
            s = await accept_session(r, w, {"bench-a": B}.get)
            r, w = s.reader, s.writer
        await accepted.put((r, w))

    server = await asyncio.start_server(on_accept, "127.0.0.1", 0, limit=1 << 17)
    port = server.sockets[0].getsockname()[1]
    r, w = await asyncio.open_connection("127.0.0.1", port, limit=1 << 17)
    if encrypted:
        s = await connect_session(r, w, A)
        r, w = s.reader, s.writer
    async with asyncio.timeout(30):
        other = await accepted.get()
    return (r, w), other, server


async def one_run(encrypted: bool, total: int, chunk: int) -> tuple[float, float]:
    (_, cw), (sr, sw), server = await pair(encrypted)
    data = os.urandom(chunk)

    async def send() -> None:
        for _ in range(total // chunk):
            cw.write(data)
            await cw.drain()

    async def receive() -> None:
        got = 0
        while got < total:
            block = await sr.read(1 << 16)
            if not block:
                raise RuntimeError("stream ended early")
            got += len(block)

    cpu, wall = time.process_time(), time.perf_counter()
    try:
        async with asyncio.timeout(600), asyncio.TaskGroup() as tg:
            tg.create_task(send())
            tg.create_task(receive())
        return time.perf_counter() - wall, time.process_time() - cpu
    finally:
        cw.close()
        sw.close()
        server.close()
        await server.wait_closed()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=1 << 18, help="bytes per write (P2P: 256 KiB)")
    args = ap.parse_args()
    total = args.mib * (1 << 20) // args.chunk * args.chunk
    print(f"{total / 1e6:.0f} MB per run, {args.chunk} B writes, median of {args.runs} runs")
    print(f"{'row':<10} {'MB/s':>9} {'CPU s':>8} {'CPU ms/MB':>10}")
    results: dict[str, list[tuple[float, float]]] = {"plain": [], "encrypted": []}
    for _ in range(args.runs):  # rows take turns, run by run
        for row in results:
            results[row].append(asyncio.run(one_run(row == "encrypted", total, args.chunk)))
    for row, runs in results.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"{row:<10} {total / 1e6 / wall:>9.1f} {cpu:>8.2f} {cpu * 1e3 / (total / 1e6):>10.2f}")


if __name__ == "__main__":
    main()
