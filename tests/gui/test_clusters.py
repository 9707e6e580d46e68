"""The cluster view over a real 3-node cluster with one node down (issue 17).

The gateway repository and its nodes are made by real git-annex and served by
our ``annexsync`` over the fake ssh; the folder synced by the app's real core
is a git-annex client of it with two files on every node.  node1 is moved
away before the core starts.  What the person sees is read from the widgets:
the cluster with 2 of 3 nodes reachable, node1 unreachable with its reason,
keys per node, the headline waiting for node1, and the per-file answer.
The window is saved as ``cluster-view.png`` (into ``ANNEXSYNC_SCREENSHOTS``
when set, which is how docs/screenshots/ gets it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QImage

from tests.conftest import annex, git
from tests.integration.cluster_support import client_of_our_gateway

pytestmark = pytest.mark.interop


def test_cluster_view_with_a_node_down(make_app: Any, run: Any, wait: Any, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    root = tmp_path / "cluster"
    root.mkdir()
    g, client = client_of_our_gateway(root, monkeypatch)
    (g.root / "node1").rename(g.root / "node1.away")
    # gw is non-bare with main checked out: git refuses our push of main there, so it
    # goes to synced/main (repository-format.md 8.2 step 6); origin still ends synced
    annex(client, "wanted", "origin-extra", "nothing")  # the copies stay where they are
    app = make_app("a", show=False)
    run(app.core.add_repository(str(client), create=False))
    window = app.open_window()
    view = window.clusters
    wait(lambda: any(r[3].startswith("unreachable") for r in view.texts()), 60, "node1 down")

    cluster, *nodes = view.texts()
    assert cluster[0] == "origin-mycluster"
    assert cluster[3] == "through origin; 2 of 3 nodes reachable"
    assert cluster[1] == "2"
    by_name = {r[0]: r for r in nodes}
    assert sorted(by_name) == ["origin-node1", "origin-node2", "origin-node3"]
    assert by_name["origin-node1"][3] == "unreachable: connection lost", by_name
    assert by_name["origin-node2"][3] == by_name["origin-node3"][3] == "reachable"
    assert {r[1] for r in nodes} == {"2"}  # keys each holds, from the location logs
    wait(lambda: "origin-node1" in window.headline.text(), 60, "the headline names node1")
    assert window.headline.text() == "Waiting for origin-node1"
    (origin,) = [r for r in app.core.status.repos[0].remotes if r.name == "origin"]
    assert not origin.pending and origin.error is None, origin
    assert git(g.gw, "rev-parse", "synced/main") == git(client, "rev-parse", "main")

    view.file.setText("a.txt")
    view.check.click()
    wait(lambda: "safe to drop here" in view.answer.text(), 60, "the per-file answer")
    answer = view.answer.text()
    assert answer.startswith("a.txt: 4 copies (numcopies 2): "), answer
    assert "origin-node1 (node of origin-mycluster)" in answer and "here" in answer
    assert answer.endswith("\nsafe to drop here: numcopies 2: enough other copies verified"), answer

    window.tabs.setCurrentWidget(view)
    window.resize(720, 440)
    out = Path(os.environ.get("ANNEXSYNC_SCREENSHOTS") or tmp_path) / "cluster-view.png"
    assert window.grab().save(str(out))
    assert not QImage(str(out)).isNull()
