"""XMPP: one account per instance, presence, buddies (spec xmpp-sync.md C.1, C.6).

``payloads`` and ``buddies`` are pure (no slixmpp, no asyncio); ``client`` is
the slixmpp glue and the connection loop.
"""
