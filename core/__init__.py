"""Shared core at the bottom of every layer: settings, task ownership, logs, pub/sub, CPU offload, time."""
