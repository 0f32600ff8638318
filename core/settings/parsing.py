"""How a setting is declared and read: field metadata, value parsers, environment and CLI.

A setting is a dataclass field of a section (see ``composite.SECTIONS``) whose ``metadata`` may hold:

- ``help``: the sentence ``stagepass serve --help`` shows (and the README's table repeats);
- ``parse``: a function from the raw text to the value, raising ``ValueError`` or ``ConfigError``;
  without it the field's type (``int``, ``float``, ``Path``, ``str``) converts the text;
- ``alias``: a second environment variable read when ``STAGEPASS_<NAME>`` is unset
  (``DATABASE_URL``, ``REDIS_URL``).

A field parsed by ``parse_bool`` is a switch on the command line: ``--keep-local`` alone means on.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

__all__ = ["ConfigError", "parse_bool", "parse_rooms", "usable_cpus", "one_per_cpu", "workers_parser", "pool_parser", "parse_udp_port", "parse_list",
           "convert", "values_from_environment", "add_arguments", "values_from_arguments"]


class ConfigError(ValueError):
    """A setting has an invalid value."""


def parse_rooms(text: str) -> dict[str, str]:
    """``"demo=key1,maths=key2"`` -> ``{"demo": "key1", "maths": "key2"}``."""
    rooms: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, key = item.partition("=")
        if not sep or not name or not key:
            raise ConfigError(f"rooms: expected NAME=STREAM_KEY, got {item!r}")
        rooms[name.strip()] = key.strip()
    return rooms


def parse_bool(text: str) -> bool:
    """``on``/``off`` (also 1/0, true/false, yes/no)."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected on or off, got {text!r}")


#: the environment variable loky reads as the most CPUs a process may use
CPU_COUNT_VARIABLE = "LOKY_MAX_CPU_COUNT"


def usable_cpus() -> int:
    """The CPUs this process may run on: the machine's, narrowed by its CPU affinity
    (``taskset``, ``docker --cpuset-cpus``) and by a cgroup CPU quota (``docker --cpus 2``,
    a Kubernetes CPU limit, rounded up), so a container limited to 2 CPUs of a 64-core
    host counts 2, and by ``LOKY_MAX_CPU_COUNT`` when set. At least 1. (loky's count, which
    reads all four; a ``ConfigError`` names the variable when it is not a whole number, where
    loky would end start-up with a bare ``ValueError``.)"""
    from loky import cpu_count

    told = os.environ.get(CPU_COUNT_VARIABLE)
    if told is not None:
        try:
            int(told)  # as loky reads it
        except ValueError:
            raise ConfigError(f"{CPU_COUNT_VARIABLE}: expected a whole number of CPUs this process may use "
                              f"(e.g. 2), got {told!r}") from None
    return max(1, cpu_count(only_physical_cores=False))


def one_per_cpu(limit: int) -> Callable[[], int]:
    """A default of one worker per usable CPU, at most ``limit`` (the most a setting accepts)."""
    return lambda: min(usable_cpus(), limit)


def workers_parser(limit: int, auto: Callable[[], int] | None = None) -> Callable[[str], int]:
    """A parser of a number of worker processes, or ``cores``: one per usable CPU, at most ``limit``
    (a larger number is left for the setting's check to refuse by name); with ``auto``, also
    ``auto``: what it says (the setting's default when that is not one per CPU)."""
    words = "'cores' or 'auto'" if auto is not None else "'cores'"

    def parse_workers(text: str) -> int:
        value = text.strip().lower()
        if value == "cores":
            return one_per_cpu(limit)()
        if value == "auto" and auto is not None:
            return auto()
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"expected a number or {words}, got {text!r}") from None

    return parse_workers


def pool_parser(least: int) -> Callable[[str], int]:
    """A parser of a number of database connections, at least ``least``: ``0`` (for a pool size),
    a negative number or a word is refused with the range it takes."""
    def parse_pool(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"expected a number of connections, {least} or more, got {text!r}") from None
        if value < least:
            raise ValueError(f"expected a number of connections, {least} or more, got {value}")
        return value

    return parse_pool


def parse_udp_port(text: str) -> str:
    """``off``, a port, or a range ``N-M`` (one port per media worker)."""
    value = text.strip().lower()
    if value == "off":
        return value
    first, _, last = value.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        low = high = -1
    if not (0 <= low <= high <= 65535) or (low == 0 and high != 0):
        raise ConfigError(f"udp_port: expected a port, a range N-M or 'off', got {text!r}")
    return value


def parse_list(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [item.strip() for item in text.split(",") if item.strip()]


def convert(f: dataclasses.Field, raw: str) -> Any:
    """The value of setting ``f`` from its raw text; a bad value is a ``ConfigError`` naming it."""
    parse = f.metadata.get("parse")
    try:
        if parse is not None:
            return parse(raw)
        if f.type in ("int", int):
            return int(raw)
        if f.type in ("float", float):
            return float(raw)
        if f.type in ("Path", Path):
            return Path(raw)
        return raw
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"{f.name}: {exc}") from None


def values_from_environment(fields: Iterable[dataclasses.Field], environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings set by ``STAGEPASS_<NAME>`` (or the field's alias), by flat name."""
    values: dict[str, Any] = {}
    for f in fields:
        raw = environ.get("STAGEPASS_" + f.name.upper())
        if raw is None and "alias" in f.metadata:
            raw = environ.get(f.metadata["alias"])
        if raw is not None:
            values[f.name] = convert(f, raw)
    return values


def add_arguments(parser: argparse.ArgumentParser, fields: Iterable[tuple[str, dataclasses.Field]]) -> None:
    """One ``--<name>`` flag per (section, field); its help names the variable and the section."""
    for section, f in fields:
        switch = f.metadata.get("parse") is parse_bool  # --keep-local alone means on
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=None,
            **({"nargs": "?", "const": "on"} if switch else {}),
            help=f"{f.metadata.get('help', '')} (env STAGEPASS_{f.name.upper()}; {section})".replace("%", "%%"),
        )


def values_from_arguments(args: argparse.Namespace, fields: Iterable[dataclasses.Field]) -> dict[str, Any]:
    """The settings given as flags (parsed by a parser ``add_arguments`` filled), by flat name."""
    values: dict[str, Any] = {}
    for f in fields:
        raw = getattr(args, f.name)
        if raw is not None:
            values[f.name] = convert(f, raw)
    return values
