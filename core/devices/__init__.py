"""This device's identity and the devices paired with it (spec pairing.md 6.2, 6.6)."""
