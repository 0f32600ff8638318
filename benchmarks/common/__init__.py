"""Machinery the benchmarks share: child processes driven by JSON lines, CPU and UDP
readings from ``/proc``, and WHEP viewers that only count packets.

The benchmark scripts run as ``python benchmarks/NAME.py``: this folder is first on
``sys.path``, so they import ``common`` (and ``fanout``) as top-level packages.
"""
