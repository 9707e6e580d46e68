"""Pure tests of ``core.p2phttp.models``, ``auth``, ``client.Endpoint`` (spec 2.1, 4-7) and the committer's schedule."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import RemoteProtocolError
from core.p2p.state import Mode
from core.p2phttp import models as m
from core.p2phttp.auth import AuthPolicy, User, format_basic, parse_basic
from core.p2phttp.client import Endpoint

U = "0601e0b6-9bba-44d6-9b5b-8be2e1b00642"
C = "a1b2c3d4-0000-4000-8000-00000000c11e"
K = "SHA256E-s12--a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447.txt"


def parse(method: str, target: str, headers: dict[str, str] | None = None) -> m.ApiRequest:
    return m.parse_request(method, target, (headers or {}).get)


def status(method: str, target: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    with pytest.raises(m.HttpError) as e:
        parse(method, target, headers)
    return e.value.status, e.value.text


def test_routes() -> None:
    r = parse("GET", f"/git-annex/{U}/v4/key/{K}?clientuuid={C}&offset=6&associatedfile=a%20b")
    assert (r.op, r.version, str(r.key), r.offset, r.associated_file) == (m.Op.KEY, 4, K, 6, "a b")
    r = parse("HEAD", f"/git-annex/{U}/key/{K}")
    assert (r.op, r.version, r.client_uuid) == (m.Op.KEY, None, None)
    r = parse("POST", f"//git-annex/{U}/v0/checkpresent?key={K}&clientuuid={C}&bypass=x&bypass=y")
    assert r.bypass == ("x", "y") and r.api_version == 0
    r = parse("POST", f"/git-annex/{U}/v4/keeplocked?lockid=L")
    assert r.lock_id == "L" and r.client_uuid is None
    r = parse("POST", f"/git-annex/{U}/v4/put?key={K}&clientuuid={C}&data-present=true",
              {m.DATA_LENGTH: "0"})
    assert r.data_present and r.data_length == 0
    r = parse("POST", f"/git-annex/{U}/v3/put?key={K}&clientuuid={C}&data-present=true",
              {m.DATA_LENGTH: "0"})
    assert not r.data_present  # ignored below v4 (spec 5.1)


@pytest.mark.parametrize(("method", "target", "want"), [
    ("GET", "/", 404),
    ("GET", f"/git-annex/{U}/v4/nope", 404),
    ("GET", f"/git-annex/{U}/v5/key/{K}?clientuuid={C}", 404),
    ("POST", f"/git-annex/{U}/v0/putoffset?key={K}&clientuuid={C}", 400),
    ("POST", f"/git-annex/{U}/v2/gettimestamp?clientuuid={C}", 400),
    ("PUT", f"/git-annex/{U}/v4/checkpresent?key={K}&clientuuid={C}", 400),
    ("GET", f"/git-annex/{U}/v4/key/{K}", 400),
    ("GET", f"/git-annex/{U}/v4/key/notakey?clientuuid={C}", 400),
    ("GET", f"/git-annex/{U}/v4/key/..%2F..?clientuuid={C}", 400),
    ("POST", f"/git-annex/{U}/v4/checkpresent?key=[!!!]&clientuuid={C}", 400),
    ("POST", f"/git-annex/{U}/v4/checkpresent?key={K}&clientuuid=", 400),
    ("POST", f"/git-annex/{U}/v4/remove-before?key={K}&clientuuid={C}", 400),
    ("POST", f"/git-annex/{U}/v4/put?key={K}&clientuuid={C}", 400),
])  # fmt: skip
def test_refusals(method: str, target: str, want: int) -> None:
    assert status(method, target)[0] == want


def test_encodings() -> None:
    r = parse("POST", f"/git-annex/{U}/v4/checkpresent?key=WORM-s3-m1--a+b%25c%2F%C3%A9.txt&clientuuid={C}")
    assert str(r.key) == "WORM-s3-m1--a b%c/é.txt"
    assert m.format_param("[x]") == "[" + "W3hd" + "]"
    assert m.decode_param(m.format_param("[x]"), "k") == "[x]"
    assert status("POST", f"/git-annex/{U}/v4/checkpresent?key=[YWJj]&clientuuid={C}")[0] == 400


@given(st.text(min_size=1, max_size=40))
def test_param_round_trip(value: str) -> None:
    from urllib.parse import unquote

    wire = m.quote_param(value)
    assert m.decode_param(unquote(wire, errors="surrogateescape"), "x") == value


def test_bodies() -> None:
    assert m.dump(m.removed_body(1, True)) == b'{"removed":true}'
    assert m.dump(m.stored_body(4, False)) == b'{"plusuuids":[],"stored":false}'
    assert m.offset_body(1, None) == {"alreadyhave": True}
    assert m.offset_body(2, None) == {"alreadyhave": True, "plusuuids": []}
    assert m.parse_putoffset({"offset": 5}).offset == 5
    assert m.parse_putoffset({"alreadyhave": True}).offset is None
    with pytest.raises(RemoteProtocolError):
        m.parse_data_length("-1")
    with pytest.raises(RemoteProtocolError):
        m.load(b"[1]", "x")


@given(st.binary(max_size=200))
def test_load_only_declared_errors(raw: bytes) -> None:
    try:
        m.load(raw, "x")
    except RemoteProtocolError:
        pass


@pytest.mark.parametrize(("url", "path"), [
    ("annex+http://h:19430/git-annex/", "/git-annex/U/v4/x"),
    ("annex+http://h:19430", "/git-annex/U/v4/x"),
    ("annex+http://h:19430/", "//git-annex/U/v4/x"),
    ("annex+http://h:19430/sub", "/sub/git-annex/U/v4/x"),
    ("annex+http://h:19430/sub/git-annex/", "/sub/git-annex/git-annex/U/v4/x"),
])  # fmt: skip
def test_endpoint_paths(url: str, path: str) -> None:
    assert Endpoint.parse(url).url("U", "v4/x", {}).raw_path == path


def test_endpoint_default_port() -> None:
    assert Endpoint.parse("annex+https://example.org/git-annex/").origin == "https://example.org:9417"


USERS = {"alice": User("alice", "a"), "bob": User("bob", "b", Mode.READ_ONLY),
         "carol": User("carol", "c", Mode.APPEND_ONLY)}  # fmt: skip


def decide(policy: AuthPolicy, action: m.Action, who: str | None, https: bool = False) -> int:
    header = None if who is None else format_basic(who, {"alice": "a", "bob": "b", "carol": "c"}.get(who, "x"))
    try:
        policy.decide(action, header, https)
    except m.HttpError as e:
        return e.status
    return 200


def test_auth_rules() -> None:
    p = AuthPolicy(users=USERS, authenv_http=True, unauth_readonly=True)
    A = m.Action
    assert decide(p, A.WRITE, None) == 401
    assert decide(p, A.WRITE, "mallory") == 403
    assert decide(p, A.WRITE, "bob") == 403
    assert decide(p, A.LOCK, "bob") == 403
    assert decide(p, A.LOCK, None) == 200
    assert decide(p, A.REMOVE, "carol") == 403
    assert decide(p, A.LOCK, "carol") == 200
    assert decide(p, A.REMOVE, "alice") == 200
    https_only = AuthPolicy(users=USERS, authenv=True)
    assert decide(https_only, A.READ, "alice") == 401
    assert decide(https_only, A.READ, "alice", https=True) == 200
    assert decide(AuthPolicy(), A.READ, None) == 401
    assert parse_basic("basic " + format_basic("u", "p:q").split()[1]) == ("u", "p:q")
    assert parse_basic("Basic " + base64.b64encode(b"alice").decode()) == ("alice", None)
    with pytest.raises(m.HttpError):
        parse_basic("Bearer x")


def test_the_committer_sleeps_until_the_earliest_due_commit_and_at_most_a_quiet_spell() -> None:
    from core.p2p.serving import COMMIT_QUIET
    from core.p2phttp.server import COMMIT_PAUSE, until_next_commit

    now = 100.0
    assert until_next_commit([], now) == COMMIT_QUIET  # idle: once a second
    assert until_next_commit([None, None], now) == COMMIT_QUIET
    assert until_next_commit([None, now + 0.3, now + 0.7], now) == pytest.approx(0.3)
    assert until_next_commit([now + 4.0], now) == COMMIT_QUIET  # a new line may come meanwhile
    assert until_next_commit([now - 2.0], now) == COMMIT_PAUSE  # overdue: soon, but not a spin
