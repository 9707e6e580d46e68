"""Pairing two devices with a short code (pairing.md 6; wire format: docs/pairing.md).

``words`` (the code), ``messages`` (frames and the hello) and ``machine``
(the SPAKE2 handshake and the window) are pure; ``lan`` carries the machine
over TCP with DNS-SD while a window is open; ``result`` turns an agreed
pairing into paired-device records, keyring entries and git remotes (and
undoes an unconfirmed one); ``cli`` is ``annexsync pair``.
"""
