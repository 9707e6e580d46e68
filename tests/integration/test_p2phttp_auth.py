"""Authorisation matrix (spec 6): the same requests against git-annex's server and ours.

For each option set both servers get the same users from the environment;
every (request, credentials) pair must give the same status code.
"""

from __future__ import annotations

import base64
import http.client
from pathlib import Path

import pytest

from tests.integration.test_p2phttp_support import (
    CLIENT_UUID,
    USERS,
    git_annex_p2phttp,
    lookupkey,
    make_server_repo,
    our_p2phttp,
)

pytestmark = pytest.mark.interop

WHO = {
    "anonymous": None,
    "wrong": "Basic " + base64.b64encode(b"alice:nope").decode(),
    "alice": "Basic " + base64.b64encode(b"alice:alicepw").decode(),
    "Alice": "Basic " + base64.b64encode(b"Alice:alicepw").decode(),
    "bob": "Basic " + base64.b64encode(b"bob:bobpw").decode(),
    "carol": "Basic " + base64.b64encode(b"carol:carolpw").decode(),
    "badscheme": "Bearer xyz",
    # no colon: git-annex answers as to wrong credentials, not 400
    "nocolon": "Basic " + base64.b64encode(b"alice").decode(),
    "nocolon-joined": "Basic " + base64.b64encode(b"alicealicepw").decode(),
    "emptyuser": "Basic " + base64.b64encode(b":alicepw").decode(),
}
OPTION_SETS = [
    ("--authenv-http", "--unauth-readonly"),
    ("--authenv-http",),
    ("--authenv",),
    (),
    ("--unauth-readonly", "--unauth-nolocking"),
    ("--authenv-http", "--unauth-readonly", "--unauth-nolocking"),
    ("--unauth-appendonly", "--unauth-nolocking"),
]


def _matrix(port: int, uuid: str, key: str) -> dict[tuple[str, str], tuple[int, str | None]]:
    missing = "SHA256E-s5--0000000000000000000000000000000000000000000000000000000000000000"
    q = f"clientuuid={CLIENT_UUID}"
    requests = {
        "download": ("GET", f"/git-annex/{uuid}/v4/key/{key}?{q}", {}),
        "plain": ("GET", f"/git-annex/{uuid}/key/{key}", {}),
        "checkpresent": ("POST", f"/git-annex/{uuid}/v4/checkpresent?key={key}&{q}", {}),
        "put": ("POST", f"/git-annex/{uuid}/v4/put?key={missing}&{q}",
                {"X-git-annex-data-length": "0"}),
        "putoffset": ("POST", f"/git-annex/{uuid}/v4/putoffset?key={missing}&{q}", {}),
        "gettimestamp": ("POST", f"/git-annex/{uuid}/v4/gettimestamp?{q}", {}),
        "lockcontent": ("POST", f"/git-annex/{uuid}/v4/lockcontent?key={missing}&{q}", {}),
        "remove": ("POST", f"/git-annex/{uuid}/v4/remove?key={missing}&{q}", {}),
        "remove-before": ("POST", f"/git-annex/{uuid}/v4/remove-before?key={missing}&{q}&timestamp=1", {}),
    }  # fmt: skip
    out: dict[tuple[str, str], tuple[int, str | None]] = {}
    for rname, (method, target, headers) in requests.items():
        for who, auth in WHO.items():
            h = dict(headers)
            if auth is not None:
                h["Authorization"] = auth
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                conn.request(method, target, body=b"" if method == "POST" else None, headers=h)
                resp = conn.getresponse()
                resp.read()
                out[(rname, who)] = (resp.status, resp.getheader("WWW-Authenticate"))
            finally:
                conn.close()
    return out


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: " ".join(o) or "none")
def test_auth_matrix_matches_git_annex(tmp_path: Path, options: tuple[str, ...]) -> None:
    results = []
    for name, start in (("theirs", git_annex_p2phttp), ("ours", our_p2phttp)):
        repo = tmp_path / name
        uuid = make_server_repo(repo, {"a.txt": b"auth\n"})
        key = lookupkey(repo, "a.txt")
        with start(repo, *options, "-J2", env=USERS) as proc:
            results.append(_matrix(proc.port, uuid, key))
    theirs, ours = results
    diffs = {k: (theirs[k], ours[k]) for k in theirs if theirs[k] != ours[k]}
    assert not diffs, "\n".join(f"{k}: git-annex {t}, ours {o}" for k, (t, o) in diffs.items())
    if options == OPTION_SETS[0]:  # spec 6, verified matrix
        assert ours[("put", "anonymous")] == (401, 'Basic realm="git-annex", charset="UTF-8"')
        assert ours[("put", "wrong")][0] == ours[("put", "bob")][0] == 403
        assert ours[("put", "carol")][0] == ours[("lockcontent", "carol")][0] == 200
        assert ours[("remove", "carol")][0] == ours[("lockcontent", "bob")][0] == 403
        assert ours[("remove", "alice")][0] == ours[("lockcontent", "anonymous")][0] == 200
