"""Cheap argon2 for test servers: the suite signs up hundreds of users, and a hash at the
server's default cost (3 passes over 64 MiB) takes 0.2 s of CPU on a quiet machine and
1-2 s at nice 19 on a loaded one (measured 2.1 s at load 20). The lowest costs the
settings accept make a hash take about a millisecond; verification reads the cost from the
stored hash, so nothing else changes. tests/paywall/test_signup_flood.py keeps the
default cost: the hashing load is what it measures."""

from __future__ import annotations

from core.settings.paywall import PaywallSettings

#: for ``Settings.build(**CHEAP_ARGON2, ...)``
CHEAP_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 1024}

#: for ``argon2.PasswordHasher(**CHEAP_HASHER)``
CHEAP_HASHER = {"time_cost": CHEAP_ARGON2["argon2_time_cost"], "memory_cost": CHEAP_ARGON2["argon2_memory_kib"]}

#: for a ``stagepass serve`` process's environment
CHEAP_ARGON2_ENV = {f"STAGEPASS_{name.upper()}": str(value) for name, value in CHEAP_ARGON2.items()}

#: the server's own costs (the settings' defaults), for a test that measures hashing load
DEFAULT_ARGON2 = {name: getattr(PaywallSettings(), name) for name in CHEAP_ARGON2}
