"""Delivery: the per-recipient queue and log (one row per recipient per message), and the engine
that fans sources out, claims rows, renders, signs (DKIM) and hands mail to relays or the sandbox
outbox."""
