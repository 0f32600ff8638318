"""The ``media`` section: rooms, WebRTC, the shared UDP port, keyframes, viewers' queues, media workers."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Optional

from core.settings import memory, parsing
from core.settings.parsing import ConfigError, parse_bool, parse_list, parse_rooms, parse_udp_port, workers_parser

__all__ = ["MediaSettings", "ROOM_NAME_RE", "default_media_workers"]


ROOM_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_WORKERS = 256  #: media workers a node may run (the default and 'cores' stop there too)
#: memory one media worker is counted for: measured at 69 MB RSS idle and 81, 94 and 110 MB
#: forwarding one room to 10, 50 and 100 viewers (~0.34 MB a viewer; a 500 kbit/s publisher, WHEP
#: viewers that count packets, ``stagepass serve --workers 2``), so about a room of 500 viewers
WORKER_MEMORY = 256 << 20


def default_media_workers() -> int:
    """One per usable CPU, at most as many as a quarter of the usable memory holds at
    ``WORKER_MEMORY`` each, at most ``MAX_WORKERS``; at least 1 (media in the server's own process)."""
    return max(1, min(parsing.usable_cpus(), memory.workers_memory_holds(WORKER_MEMORY), MAX_WORKERS))


@dataclass
class MediaSettings:
    """The live media path: rooms, WebRTC, keyframes, viewers' queues."""

    rooms: dict[str, str] = field(
        default_factory=dict,
        metadata={
            "help": "rooms and their WHIP stream keys, NAME=KEY[,NAME=KEY]; empty: a room "
            "'demo' with a key generated into DATA_DIR/stream-keys.json",
            "parse": parse_rooms,
        },
    )
    ice_servers: list[str] = field(
        default_factory=list,
        metadata={
            "help": "STUN/TURN URLs offered to peers, comma separated (none by default)",
            "parse": parse_list,
        },
    )
    udp_port: str = field(
        default="0",
        metadata={"help": "the UDP port every WebRTC peer of a media worker shares (ICE mux): N, or N-M "
                          "for several workers (worker i takes N+i); 0: a free port chosen at start; "
                          "'off': one port per peer connection, as aiortc does alone",
                  "parse": parse_udp_port},
    )
    udp_host: str = field(
        default="0.0.0.0", metadata={"help": "address the shared UDP port binds (ICE mux)"}
    )
    public_ip: str = field(
        default="",
        metadata={"help": "the address peers reach the UDP port at, advertised in ICE candidates "
                          "(a host behind 1:1 NAT); empty: this host's own addresses"},
    )
    max_sdp_bytes: int = field(default=65536, metadata={"help": "largest accepted SDP body"})
    rtmp_port: int = field(
        default=1935,
        metadata={"help": "RTMP ingest port (rtmp://HOST:PORT/live, the room's stream key as the "
                          "stream name; on the HTTP host address); 0: no RTMP ingest"},
    )
    rtmp_audio_bitrate: int = field(
        default=64000,
        metadata={"help": "bit/s of the Opus audio an RTMP room's AAC is transcoded to (once per room)"},
    )
    low_rendition: bool = field(
        default=True,
        metadata={"help": "viewers on weak networks are switched to one low rendition per room (360p, "
                          "400 kbit/s, encoded only while someone watches it) or to audio only, from "
                          "their receiver reports and bandwidth estimates (on/off)", "parse": parse_bool},
    )
    keyframe_min_interval: float = field(
        default=0.5,
        metadata={"help": "seconds between keyframe requests (PLI) sent to a publisher: "
                          "joins arriving together share one keyframe, at most 2 a second"},
    )
    subscriber_buffer_bytes: int = field(
        default=262144,
        metadata={
            "help": "bytes a viewer's socket may queue before it drops to the next keyframe"
        },
    )
    publisher_stale_seconds: float = field(
        default=5.0,
        metadata={
            "help": "a publisher that sent no media for this long may be replaced by a new one"
        },
    )
    connect_timeout: float = field(
        default=20.0, metadata={"help": "seconds a new WebRTC session has to connect, and a publisher "
                                        "whose POST opened a broadcast to send its first media"}
    )
    workers: int = field(
        default_factory=default_media_workers,
        metadata={"help": "media worker processes; default 'auto': one per CPU this process may use "
                          "(affinity and cgroup quota counted), at most one per 1 GB of its memory (a quarter "
                          "of it at 256 MB a worker); 'cores': one per CPU; N > 1 runs N media workers (peer "
                          "connections and fanouts) beside the control plane (HTTP, signalling, paywall, "
                          "Socket.IO); 1 (and the default on one CPU or under 2 GB) forwards media in the "
                          "server's own process; at most 256",
                  "parse": workers_parser(MAX_WORKERS, auto=default_media_workers)},
    )

    def validate(self) -> None:
        for name, key in self.rooms.items():
            if not ROOM_NAME_RE.match(name):
                raise ConfigError(
                    f"rooms: {name!r} is not a room name (a-z, 0-9, '-', '_', 1-64 chars)"
                )
            if len(key) < 8:
                raise ConfigError(f"rooms: the stream key of {name!r} is shorter than 8")
        for url in self.ice_servers:
            if not re.match(r"^(stun|stuns|turn|turns):", url):
                raise ConfigError(f"ice_servers: {url!r} is not a stun:/turn: URL")
        self.udp_port = parse_udp_port(str(self.udp_port))
        for name in ("udp_host", "public_ip"):
            if getattr(self, name):
                try:
                    ipaddress.ip_address(getattr(self, name))
                except ValueError:
                    raise ConfigError(f"{name}: {getattr(self, name)!r} is not an IP address") from None
        if not 0 <= self.rtmp_port <= 65535:
            raise ConfigError(f"rtmp_port: {self.rtmp_port} is not a TCP port (0: no RTMP ingest)")
        if not 6000 <= self.rtmp_audio_bitrate <= 510000:
            raise ConfigError("rtmp_audio_bitrate: Opus takes 6000 to 510000 bit/s")
        if not 1024 <= self.max_sdp_bytes <= 1 << 20:
            raise ConfigError("max_sdp_bytes: must be between 1024 and 1048576")
        for name in ("keyframe_min_interval", "publisher_stale_seconds", "connect_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: must be positive")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError(f"workers: between 1 and {MAX_WORKERS} media workers, 'cores' or 'auto', "
                              f"got {self.workers}")
        self._check_udp_ports_cover_workers()
        if self.subscriber_buffer_bytes < 16384:
            raise ConfigError("subscriber_buffer_bytes: must be at least 16384")

    def _check_udp_ports_cover_workers(self) -> None:
        """A fixed port or range needs a port per media worker (worker i takes N+i); the error says
        which flag to set, as a single port with the default of one worker per CPU is a likely case."""
        if self.udp_port == "off":
            return
        first, _, last = self.udp_port.partition("-")
        low, high = int(first), int(last or first)
        if low and high - low + 1 < self.workers:  # 0: each worker picks a free port
            raise ConfigError(
                f"udp_port: {self.udp_port} has {high - low + 1} UDP port(s) but there are {self.workers} media "
                f"workers (--workers / STAGEPASS_WORKERS, by default one per CPU, memory allowing), one port "
                f"each: set --udp-port {low}-{low + self.workers - 1} (STAGEPASS_UDP_PORT), "
                f"or --workers {high - low + 1}")

    def udp_port_for(self, worker: int = 0) -> Optional[int]:
        """The shared UDP port of media worker ``worker`` (0 for a free one), or None when
        each peer connection binds its own ports (``udp_port=off``)."""
        if self.udp_port == "off":
            return None
        first, _, last = self.udp_port.partition("-")
        low, high = int(first), int(last or first)
        if low and not low + worker <= high:
            raise ConfigError(f"udp_port: the range {self.udp_port} has no port for worker {worker}")
        return low + worker if low else 0
