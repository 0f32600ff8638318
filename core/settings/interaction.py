"""The ``interaction`` section: danmaku, the room's chat limits and the interaction workers."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.settings import parsing
from core.settings import memory
from core.settings.parsing import ConfigError, parse_bool, workers_parser

__all__ = ["InteractionSettings", "default_interaction_workers"]

MAX_INTERACTION_WORKERS = 64  #: interaction worker processes a node may run ('cores' stops there too)
#: memory one interaction worker is counted for: measured at 128 MB RSS idle and 152 MB holding
#: 500 WebSockets (benchmarks/danmaku.py --processes, 1,000 viewers), with room to grow
WORKER_MEMORY = 256 << 20
#: the most the default starts: a node's PostgreSQL connections then stay under the server's
#: default max_connections (control plane 5 + 10, 16 workers x (2 + 2): 79 of 97), and 16 workers
#: hold ~2.5 GB
DEFAULT_CEILING = 16


def default_interaction_workers() -> int:
    """One per usable CPU, at most as many as a quarter of the usable memory holds at
    ``WORKER_MEMORY`` each, at most ``DEFAULT_CEILING``; at least 1 (the control plane alone)."""
    return max(1, min(parsing.usable_cpus(), memory.workers_memory_holds(WORKER_MEMORY), DEFAULT_CEILING))


@dataclass
class InteractionSettings:
    """Danmaku and the room's chat limits."""

    danmaku_max_chars: int = field(default=100, metadata={"help": "longest danmaku accepted"})
    danmaku_user_rate: float = field(default=1.0, metadata={"help": "danmaku per second a user may send (sustained)"})
    danmaku_user_burst: int = field(default=5, metadata={"help": "danmaku a user may send in a burst"})
    danmaku_room_rate: float = field(default=200.0, metadata={"help": "danmaku per second a room accepts"})
    danmaku_batch_ms: int = field(
        default=100,
        metadata={"help": "longest a danmaku waits to share a frame with others under load (a quiet room sends "
                          "at once; 0: no batching, one frame per danmaku)"})
    danmaku_write_ms: int = field(
        default=250,
        metadata={"help": "danmaku rows are written in batches this often, after they are broadcast (a kill -9 "
                          "loses at most about this long of rows)"})
    websocket_compression: bool = field(
        default=False,
        metadata={"help": "offer permessage-deflate on Socket.IO WebSockets (off, as in Node's engine.io: "
                          "compressing each frame per viewer costs server and viewer CPU)",
                  "parse": parse_bool})
    interaction_workers: int = field(
        default_factory=default_interaction_workers,
        metadata={"help": "processes serving Socket.IO WebSockets on this node; default 'auto': one per CPU this "
                          "process may use, at most one per 1 GB of its memory (a quarter of it at 256 MB a "
                          "worker) and at most 16; 'cores': one per CPU (at most 64); more than 1: each new "
                          "WebSocket is handed to the least loaded worker process, rooms spread across them "
                          "through Redis (REDIS_URL) or, without it, the control plane's local bus; long-polling "
                          "clients stay on the control plane; 1 (and the default on one CPU): the control plane "
                          "serves them itself",
                  "parse": workers_parser(MAX_INTERACTION_WORKERS, auto=default_interaction_workers)})
    blocked_words: list[str] = field(
        default_factory=list,
        metadata={"help": "words refused in every room, comma separated",
                  "parse": lambda s: [w.strip().lower() for w in s.split(",") if w.strip()]},
    )

    def validate(self) -> None:
        if not 1 <= self.danmaku_max_chars <= 1000:
            raise ConfigError("danmaku_max_chars: 1 to 1000")
        if self.danmaku_user_rate <= 0 or self.danmaku_room_rate <= 0 or self.danmaku_user_burst < 1:
            raise ConfigError("danmaku rates: positive")
        if not 0 <= self.danmaku_batch_ms <= 2000:
            raise ConfigError("danmaku_batch_ms: 0 to 2000")
        if not 10 <= self.danmaku_write_ms <= 5000:
            raise ConfigError("danmaku_write_ms: 10 to 5000")
        if not 1 <= self.interaction_workers <= MAX_INTERACTION_WORKERS:
            raise ConfigError(f"interaction_workers: 1 to {MAX_INTERACTION_WORKERS}, 'cores' or 'auto', "
                              f"got {self.interaction_workers}")
