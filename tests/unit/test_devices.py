"""Device identity, paired records, device statuses and health (pairing 6.2, 6.6; issue 11)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from core.devices.hub import device_statuses
from core.devices.identity import IdentityError, key_name, load_identity, load_or_create
from core.devices.paired import PairedDevice, PairedStore, PairSecret, SharedRepo, Transports
from core.secrets import SecretsUnavailable
from core.status import DeviceStatus, Health, RepoStatus, Status
from core.xmpp.buddies import Device
from tests.unit.test_daemon_secrets import MemoryKeyring


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    before = keyring.get_keyring()
    k = MemoryKeyring()
    keyring.set_keyring(k)
    yield k
    keyring.set_keyring(before)


def test_identity_made_once_private_key_only_in_the_keyring(tmp_path: Path,
                                                            memory_keyring: MemoryKeyring) -> None:
    ident = load_or_create(tmp_path, "laptop")
    assert load_or_create(tmp_path) == ident
    stored = memory_keyring.store[("annexsync", key_name(ident.device_id))]
    assert bytes.fromhex(stored) not in (tmp_path / "device.json").read_bytes()
    assert stored not in (tmp_path / "device.json").read_text()
    pub = ident.private_key().public_key().public_bytes_raw()
    assert pub == ident.public_key


def test_two_instances_share_one_keyring(tmp_path: Path, memory_keyring: MemoryKeyring) -> None:
    a, b = load_or_create(tmp_path / "a"), load_or_create(tmp_path / "b")
    assert a.device_id != b.device_id
    assert a.private_key().private_bytes_raw() != b.private_key().private_bytes_raw()


def test_no_safe_keyring_writes_no_identity(tmp_path: Path) -> None:
    from keyring.backends import fail

    before = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(SecretsUnavailable):
            load_or_create(tmp_path)
    finally:
        keyring.set_keyring(before)
    assert load_identity(tmp_path) is None


def test_a_lost_key_is_an_error_not_a_new_identity(tmp_path: Path,
                                                   memory_keyring: MemoryKeyring) -> None:
    ident = load_or_create(tmp_path)
    memory_keyring.store.clear()
    with pytest.raises(IdentityError):
        ident.private_key()
    assert load_or_create(tmp_path) == ident


def test_store_keeps_the_secret_in_the_keyring_only(tmp_path: Path,
                                                    memory_keyring: MemoryKeyring) -> None:
    store = PairedStore(tmp_path, "own-id")
    dev = PairedDevice("00000000-0000-0000-0000-000000000002", "desk",
                       transports=Transports("bob@x/annexsync-00000000", ("10.0.0.2:4000",)))
    secret = PairSecret(b"\x01" * 32, b"\x02" * 32, 5.0)
    store.add(dev, secret)
    assert store.records() == [dev] and store.secret(dev.device_id) == secret
    assert ("annexsync", f"pair:own-id:{dev.device_id}") in memory_keyring.store
    text = (tmp_path / "paired.json").read_text()
    assert secret.pair_secret.hex() not in text and "pair_secret" not in text
    assert json.loads(text)["devices"][0]["transports"]["lan"] == ["10.0.0.2:4000"]
    store.forget(dev.device_id)
    assert store.records() == [] and store.secret(dev.device_id) is None


def test_device_statuses_merge_seen_and_paired() -> None:
    seen = (Device("alice@x/annexsync-1", "id-1", "laptop", "online", 5.0),
            Device("bob@x/annexsync-3", "id-3", "friend", "offline", 4.0))
    records = [PairedDevice("id-1", "My laptop", (SharedRepo("/r", "u"),)),
               PairedDevice("id-2", "desk", transports=Transports("alice@x/annexsync-2"))]
    out = device_statuses(seen, records, {"id-2": True})
    by = {d.device_id: d for d in out}
    assert by["id-1"] == DeviceStatus("My laptop", "id-1", "alice@x", "online", 5.0, True, False,
                                      "XMPP")  # online there: the transport in use
    assert by["id-2"].presence == "offline" and by["id-2"].paired and by["id-2"].owed
    assert by["id-2"].transport == "XMPP" and by["id-3"].transport is None
    assert by["id-2"].account == "alice@x"
    assert not by["id-3"].paired


_FOLDER = (RepoStatus("/r", "u", "here"),)  # no folder at all would be SETUP


def test_an_offline_paired_device_is_pending_work_only_when_owed() -> None:
    idle = Status(repos=_FOLDER, devices=(DeviceStatus("desk", "id-2", presence="offline", paired=True),))
    assert idle.health(0) is Health.SYNCED
    owed = Status(repos=_FOLDER, devices=(DeviceStatus("desk", "id-2", presence="offline", paired=True, owed=True),))
    assert owed.health(0) is Health.WAITING
    assert "waiting for desk" in owed.tooltip(0)
    online = Status(repos=_FOLDER, devices=(DeviceStatus("desk", "id-2", presence="online", paired=True, owed=True),))
    assert online.health(0) is Health.SYNCED
    unpaired = Status(repos=_FOLDER, devices=(DeviceStatus("x", "id-9", presence="offline", owed=True),))
    assert unpaired.health(0) is Health.SYNCED


def test_status_json_round_trip_with_devices() -> None:
    from core.status import XmppStatus, status_from_json, to_json

    s = Status(xmpp=XmppStatus("a@x", "online"), devices=(DeviceStatus("d", "id", "a@x"),))
    assert status_from_json(json.loads(json.dumps(to_json(s)))) == s


def test_remote_types_do_not_import_the_factory() -> None:
    """style.md 2: the kinds' shared types live apart from core.remotes (no new circle)."""
    import core.remotetypes

    source = Path(core.remotetypes.__file__ or "").read_text()
    assert "core.remotes " not in source and "from core.remotes import" not in source
    for module in ("core/devices/paired.py", "core/devices/hub.py", "core/p2p/tunnel.py"):
        text = (Path(core.remotetypes.__file__ or "").parent.parent / module).read_text()
        assert "from core.remotes import" not in text, module


def test_processes_making_the_identity_at_once_agree_on_one(
        tmp_path: Path, memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The tray app and a command started together both find no identity:
    the first one written wins, the other takes it, and no key is orphaned."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from core.devices import identity

    both_looked = threading.Barrier(2)
    real_store = identity.secrets.store

    def store(service: str, name: str, value: str) -> None:
        both_looked.wait(10)  # each has seen that there is no device.json yet
        real_store(service, name, value)

    monkeypatch.setattr(identity.secrets, "store", store)
    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda _: load_or_create(tmp_path), range(2))
    assert a == b == load_identity(tmp_path)
    keys = [name for _, name in memory_keyring.store if name.startswith("device-key:")]
    assert keys == [key_name(a.device_id)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["device.json"]
