"""Soak: cut the XMPP connection 50 times and restart prosody; print the figures.

    python bench/xmpp_reconnect.py [CUTS]

Uses the same scenario as tests/integration/test_xmpp_reconnect.py (a loopback
relay that is cut, then a prosody restart) and prints how long each return
took, whether every peer was marked unknown after a cut, and the asyncio task
and fd counts before and after.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.integration.test_xmpp_reconnect import cut_and_restart  # noqa: E402
from tests.xmpp_server import prosody  # noqa: E402


def main() -> None:
    cuts = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    with tempfile.TemporaryDirectory() as d, prosody(Path(d)) as server:
        figures = asyncio.run(cut_and_restart(server, cuts))
    for k, v in figures.items():
        print(f"{k}: {v}")
    ok = figures["after_cuts"] == figures["baseline"] and figures["unknown_after_cut"] == cuts
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
