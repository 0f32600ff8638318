"""``BatchedSender``: the datagrams of one event-loop turn leave in the fewest syscalls.

With every peer connection on one socket (``udp_mux``), one publisher packet becomes one
datagram per viewer, all from the same socket: Linux's ``sendmmsg(2)`` takes them in one
system call. It is called through the C library with cffi in ABI mode (cffi is already
installed for libsrtp; nothing is compiled at install time). Where ``sendmmsg`` is missing
(not Linux/glibc) the sender falls back to one ``sendto`` per datagram, same semantics.

Semantics, whatever the strategy:

* ``add(data, addr)`` queues a datagram and schedules one ``flush`` at the end of the
  current loop turn (``call_soon``); ``flush`` may also be called directly;
* a batch the kernel takes only in part (``sendmmsg`` returns a count) is continued
  from the first datagram it did not take;
* a full socket buffer (``EAGAIN``) keeps the rest queued and waits until the socket is
  writable; ``backlog`` then reports the bytes waiting (callers drop instead of adding to
  it: a viewer's slow-viewer skip reads it), and datagrams past ``limit_bytes`` are
  dropped and counted;
* any other error concerns the first datagram not taken (its destination, e.g.
  ``ENETUNREACH``): that datagram is dropped and counted, the rest go on.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import platform
import socket
import struct
import sys
from typing import Any, Callable, Optional, Sequence

__all__ = ["BatchSend", "BatchedSender", "SenderStats", "best_sender", "mmsg_sender", "sendto_sender"]

logger = logging.getLogger(__name__)

Datagram = tuple[bytes, Any]  #: (data, (host, port))
#: ``send(queue, start) -> datagrams taken from queue[start:]`` (at least 1), or raises
#: ``OSError`` about ``queue[start]`` (``BlockingIOError`` when the socket is full)
BatchSend = Callable[[Sequence[Datagram], int], int]

MAX_BATCH = 256  #: datagrams per sendmmsg call (the kernel caps a call at UIO_MAXIOV, 1024)


class SenderStats:
    __slots__ = ("datagrams", "syscalls", "partial", "blocked", "errors", "overflow")

    def __init__(self) -> None:
        self.datagrams = 0  #: datagrams the kernel took
        self.syscalls = 0  #: send calls made (sendmmsg or sendto)
        self.partial = 0  #: batches the kernel took only in part
        self.blocked = 0  #: times the socket was full (EAGAIN): waited for it to drain
        self.errors = 0  #: datagrams dropped on an error about their destination
        self.overflow = 0  #: datagrams dropped because the backlog was over its limit

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class BatchedSender:
    """Queues datagrams for one socket and sends them in batches (see module docstring)."""

    def __init__(self, sock: socket.socket, send: Optional[BatchSend] = None,
                 limit_bytes: int = 4 << 20) -> None:
        self._sock = sock
        self._send = send or best_sender(sock)
        self._loop = asyncio.get_running_loop()
        self._queue: list[Datagram] = []
        self._scheduled = False
        self._blocked = False
        self._backlog = 0
        self.limit_bytes = limit_bytes
        self.stats = SenderStats()

    def add(self, data: bytes, addr: Any) -> None:
        """Queue one datagram; it leaves at the end of this loop turn (or when the socket
        drains, if it is full)."""
        if self._blocked:
            if self._backlog > self.limit_bytes:
                self.stats.overflow += 1
                return
            self._backlog += len(data)
        self._queue.append((data, addr))
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def backlog(self) -> int:
        """Bytes waiting for the socket to drain (0 while it takes everything)."""
        return self._backlog

    def flush(self) -> None:
        """Send what is queued, in as few calls as the strategy allows."""
        self._scheduled = False
        if self._blocked or not self._queue:
            return
        queue, send, stats = self._queue, self._send, self.stats
        start, end = 0, len(queue)
        while start < end:
            try:
                taken = send(queue, start)
            except BlockingIOError:
                stats.syscalls += 1
                stats.blocked += 1
                self._block(start)
                return
            except OSError as exc:  # about queue[start]'s destination: drop that one
                stats.syscalls += 1
                stats.errors += 1
                if stats.errors % 1000 == 1:
                    logger.warning("datagram to %s not sent: %s (%d so far)", queue[start][1], exc, stats.errors)
                start += 1
                continue
            stats.syscalls += 1
            stats.datagrams += taken
            if taken < min(end - start, MAX_BATCH):
                stats.partial += 1
            start += taken
        queue.clear()

    def _block(self, start: int) -> None:
        del self._queue[:start]
        self._blocked = True
        self._backlog = sum(len(d) for d, _ in self._queue)
        self._loop.add_writer(self._sock.fileno(), self._writable)

    def _writable(self) -> None:
        self._loop.remove_writer(self._sock.fileno())
        self._blocked = False
        self._backlog = 0
        self.flush()

    def close(self) -> None:
        """Forget what is queued (the socket is closing)."""
        if self._blocked:
            self._loop.remove_writer(self._sock.fileno())
            self._blocked = False
        self._queue.clear()
        self._backlog = 0


# ----------------------------------------------------------------------- strategies
def sendto_sender(sock: socket.socket) -> BatchSend:
    """One ``sendto`` per datagram: the portable fallback."""
    sendto = sock.sendto

    def send(queue: Sequence[Datagram], start: int) -> int:
        data, addr = queue[start]
        sendto(data, addr)
        return 1

    return send


_CDEF = """
struct iovec { void *iov_base; size_t iov_len; };
struct msghdr {
    void *msg_name; unsigned int msg_namelen; struct iovec *msg_iov; size_t msg_iovlen;
    void *msg_control; size_t msg_controllen; int msg_flags;
};
struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; };
int sendmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags);
"""


def _libc() -> Any:
    """(ffi, libc) with ``sendmmsg``, or None where the layout above is not the C library's
    (only Linux with glibc on 64-bit is declared here)."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc" or sys.maxsize < 2**32:
        return None
    try:
        import cffi

        ffi = cffi.FFI()
        ffi.cdef(_CDEF)
        libc = ffi.dlopen(None)
        libc.sendmmsg  # noqa: B018 - raises AttributeError if the symbol is missing
    except Exception as exc:  # pragma: no cover - platform dependent
        logger.info("sendmmsg unavailable (%s): one sendto per datagram", exc)
        return None
    if ffi.sizeof("struct mmsghdr") != 64:  # pragma: no cover
        return None
    return ffi, libc


_LIBC = _libc()


def mmsg_sender(sock: socket.socket) -> Optional[BatchSend]:
    """``sendmmsg`` on ``sock``: up to ``MAX_BATCH`` datagrams a call; None if unavailable."""
    if _LIBC is None:
        return None
    ffi, libc = _LIBC
    fd = sock.fileno()
    family = sock.family
    hdrs = ffi.new("struct mmsghdr[]", MAX_BATCH)
    iovs = ffi.new("struct iovec[]", MAX_BATCH)
    for i in range(MAX_BATCH):
        hdrs[i].msg_hdr.msg_iov = iovs + i
        hdrs[i].msg_hdr.msg_iovlen = 1
    names: dict[Any, tuple[Any, int]] = {}
    sendmmsg = libc.sendmmsg
    from_buffer = ffi.from_buffer

    def sockaddr(addr: Any) -> tuple[Any, int]:
        if len(names) > 65536:
            names.clear()
        if family == socket.AF_INET:
            raw = struct.pack("=H", socket.AF_INET) + struct.pack("!H", addr[1]) + socket.inet_aton(addr[0]) + bytes(8)
        else:
            host = addr[0] if ":" in addr[0] else "::ffff:" + addr[0]
            raw = (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", addr[1], 0)
                   + socket.inet_pton(socket.AF_INET6, host) + struct.pack("=I", addr[3] if len(addr) > 3 else 0))
        entry = names[addr] = (ffi.new("char[]", raw), len(raw))
        return entry

    def send(queue: Sequence[Datagram], start: int) -> int:
        count = min(len(queue) - start, MAX_BATCH)
        keep = []
        for i in range(count):
            data, addr = queue[start + i]
            name = names.get(addr) or sockaddr(addr)
            buf = from_buffer(data)
            keep.append(buf)
            iov = iovs[i]
            iov.iov_base = buf
            iov.iov_len = len(data)
            hdr = hdrs[i].msg_hdr
            hdr.msg_name = name[0]
            hdr.msg_namelen = name[1]
        sent = sendmmsg(fd, hdrs, count, 0)
        if sent < 0:
            code = ffi.errno
            if code in (errno.EAGAIN, errno.EWOULDBLOCK):
                raise BlockingIOError(code, "socket buffer full")
            raise OSError(code, f"sendmmsg: {errno.errorcode.get(code, code)}")
        return sent

    return send


def best_sender(sock: socket.socket) -> BatchSend:
    """``sendmmsg`` where the platform has it, else one ``sendto`` per datagram."""
    return mmsg_sender(sock) or sendto_sender(sock)
