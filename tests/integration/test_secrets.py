"""core.secrets against a real Secret Service (private D-Bus + gnome-keyring)."""

from __future__ import annotations

from core import secrets


def test_round_trip_through_a_real_secret_service(real_keyring: object) -> None:
    secrets.store("annexsync:test", "alice", "pw-1")
    assert secrets.get("annexsync:test", "alice") == "pw-1"
    secrets.delete("annexsync:test", "alice")
    assert secrets.get("annexsync:test", "alice") is None
