"""``BatchedSender``: the datagrams of one event-loop turn leave in the fewest syscalls.

With every peer connection on one socket (``udp_mux``), one publisher packet becomes one
datagram per viewer, all from the same socket: Linux's ``sendmmsg(2)`` takes them in one
system call. It is called through the C library with cffi in ABI mode (cffi is already
installed for libsrtp; nothing is compiled at install time). Where ``sendmmsg`` is missing
(not Linux/glibc) the sender falls back to one ``sendto`` per datagram, same semantics.

Datagrams are written into slots of one preallocated buffer (the *arena*) that the
``sendmmsg`` vectors point at, so a datagram costs no Python object: ``add_transformed``
copies the RTP packet into its slot and lets a C function rewrite it in place there
(libsrtp's ``srtp_protect``: the SRTP packet never exists as ``bytes``). Given the fields of
an RTP fixed header, it writes that header into the slot in front of the data, so a
viewer's copy of a packet (its own header, the payload everyone shares) is never joined
into a ``bytes`` either. A slot's address and length vectors are only written when they
change: a viewer's copies tend to take the same slot packet after packet.

Semantics, whatever the strategy:

* ``add(data, addr)`` / ``add_transformed`` queue a datagram and schedule one ``flush``
  at the end of the current loop turn (``call_soon``); a full arena flushes at once.
  Between ``hold()`` and ``release()`` (a received packet being fanned out) the flush
  is instead made by ``release``: the copies leave without an event-loop iteration
  of their own, one fewer per publisher packet;
* a batch the kernel takes only in part (``sendmmsg`` returns a count) is continued
  from the first datagram it did not take;
* a full socket buffer (``EAGAIN``) moves what is left to a backlog sent when the socket
  is writable; ``backlog`` reports its bytes (callers drop instead of adding to it: a
  viewer's slow-viewer skip reads it), and datagrams past ``limit_bytes`` are dropped;
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
from typing import Any, Callable, Optional

from mediaserver.sfu.rtp_payloads import RTP_HEADER

__all__ = ["BatchSend", "BatchedSender", "SLOT_SIZE", "SenderStats", "best_sender", "hold",
           "mmsg_sender", "release", "sendto_sender"]

logger = logging.getLogger(__name__)

MAX_BATCH = 256  #: datagrams per sendmmsg call (the kernel caps a call at UIO_MAXIOV, 1024)
SLOT_SIZE = 2304  #: bytes a datagram may take: a 2,048-byte RTP packet plus the SRTP trailer

#: ``send(sender, start, count) -> datagrams taken from slots start..start+count-1`` (at
#: least 1), or raises ``OSError`` about slot ``start`` (``BlockingIOError``: socket full)
BatchSend = Callable[["BatchedSender", int, int], int]

_CDEF = """
struct iovec { void *iov_base; size_t iov_len; };
struct msghdr {
    void *msg_name; unsigned int msg_namelen; struct iovec *msg_iov; size_t msg_iovlen;
    void *msg_control; size_t msg_controllen; int msg_flags;
};
struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; };
int sendmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags);
"""


def _libc() -> tuple[Any, Any]:
    """(ffi, libc): ``libc`` is None where ``sendmmsg`` or the declared layout (Linux,
    glibc, 64-bit) is not the C library's."""
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(_CDEF)
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc" or sys.maxsize < 2**32:
        return ffi, None
    try:
        libc = ffi.dlopen(None)
        libc.sendmmsg  # noqa: B018 - raises AttributeError if the symbol is missing
    except Exception as exc:  # pragma: no cover - platform dependent
        logger.info("sendmmsg unavailable (%s): one sendto per datagram", exc)
        return ffi, None
    return ffi, (libc if ffi.sizeof("struct mmsghdr") == 64 else None)


_FFI, _LIBC = _libc()
_pack_header_into = RTP_HEADER.pack_into
#: callers between ``hold`` and ``release`` now, and the senders with datagrams queued
#: meanwhile (flushed by the last ``release``)
_holds = 0
_held: list["BatchedSender"] = []


def hold() -> None:
    """The caller calls ``release`` before it returns to the event loop: datagrams queued
    until then leave at that ``release`` (not in a loop iteration of their own)."""
    global _holds
    _holds += 1


def release() -> None:
    """The end of a ``hold``: the last one flushes every sender with datagrams queued. A
    flush that fails is logged, as the event loop would have for a scheduled one, so the
    caller (a publisher's receive path) goes on."""
    global _holds
    _holds -= 1
    if not _holds and _held:
        senders = _held.copy()
        _held.clear()
        for sender in senders:
            try:
                sender.flush()
            except Exception:
                logger.exception("flushing a batch of %d datagrams failed", sender.count)


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
        ffi = _FFI
        self._sock = sock
        self._family = sock.family
        self._send = send or best_sender()
        self._loop = asyncio.get_running_loop()
        self._arena = ffi.new("char[]", MAX_BATCH * SLOT_SIZE)
        self._buffer = ffi.buffer(self._arena)
        self._pointers = [self._arena + i * SLOT_SIZE for i in range(MAX_BATCH)]
        self.hdrs = ffi.new("struct mmsghdr[]", MAX_BATCH)
        self._iovs = ffi.new("struct iovec[]", MAX_BATCH)
        for i in range(MAX_BATCH):
            self._iovs[i].iov_base = self._pointers[i]
            self.hdrs[i].msg_hdr.msg_iov = self._iovs + i
            self.hdrs[i].msg_hdr.msg_iovlen = 1
        # per slot, pointers to its iovec and msghdr, made once: the per-datagram path then
        # sets fields through them instead of indexing the arrays (a new cdata each time)
        self._iov_at = [self._iovs + i for i in range(MAX_BATCH)]
        self._hdr_at = [ffi.addressof(self.hdrs[i], "msg_hdr") for i in range(MAX_BATCH)]
        self._view = memoryview(self._buffer)
        self._lengths = [0] * MAX_BATCH
        self.addrs: list[Any] = [None] * MAX_BATCH
        # the sockaddr each slot's header points at, kept alive while it does (the address
        # cache may drop it meanwhile)
        self._slot_names: list[Any] = [None] * MAX_BATCH
        self._names: dict[Any, tuple[Any, int]] = {}
        self._len_p = ffi.new("int *")
        self.count = 0  #: datagrams in the arena
        self._scheduled = False
        #: the socket was full: datagrams wait in a backlog until it drains
        self.blocked = False
        self._backlog: list[tuple[bytes, Any]] = []
        self.backlog_bytes = 0  #: bytes in that backlog
        self.limit_bytes = limit_bytes
        self.stats = SenderStats()

    # ------------------------------------------------------------ queueing
    def add(self, data: bytes, addr: Any) -> None:
        """Queue one datagram; it leaves at the end of this loop turn."""
        self.add_transformed(data, addr, None, None, 0)

    def add_transformed(self, data: bytes, addr: Any, transform: Any, context: Any, room: int,
                        header: Optional[tuple[int, int, int, int, int]] = None) -> None:
        """Queue ``data`` rewritten in place in its slot by the C function
        ``transform(context, char *buffer, int *length)`` (e.g. libsrtp's ``srtp_protect``,
        which appends up to ``room`` bytes; None: as is). ``header``: the fields of an RTP
        fixed header (``RTP_HEADER``) written in front of ``data`` in the slot. Raises
        ``ValueError`` if the datagram plus ``room`` does not fit a slot, ``OSError`` if
        ``transform`` returns non-zero."""
        i = self.count
        if i == MAX_BATCH:
            self.flush()
            i = self.count
        off = i * SLOT_SIZE
        if header is None:
            n = len(data)
            if n + room > SLOT_SIZE:
                raise ValueError("packet is too long")
            self._view[off:off + n] = data
        else:
            n = 12 + len(data)
            if n + room > SLOT_SIZE:
                raise ValueError("packet is too long")
            view = self._view
            _pack_header_into(view, off, *header)
            view[off + 12:off + n] = data
        if transform is not None:
            len_p = self._len_p
            len_p[0] = n
            status = transform(context, self._pointers[i], len_p)
            if status:
                raise OSError(f"transform failed with status {status}")
            n = len_p[0]
        if self._lengths[i] != n:
            self._iov_at[i].iov_len = self._lengths[i] = n
        if self.addrs[i] is not addr:
            name = self._names.get(addr) or self._sockaddr(addr)
            hdr = self._hdr_at[i]
            hdr.msg_name = name[0]
            hdr.msg_namelen = name[1]
            self.addrs[i] = addr
            self._slot_names[i] = name
        self.count = i + 1
        if not self._scheduled:
            self._scheduled = True
            if _holds:
                _held.append(self)
            else:
                self._loop.call_soon(self.flush)

    def _sockaddr(self, addr: Any) -> tuple[Any, int]:
        if len(self._names) > 65536:
            self._names.clear()
        if self._family == socket.AF_INET:
            raw = struct.pack("=H", socket.AF_INET) + struct.pack("!H", addr[1]) + socket.inet_aton(addr[0]) + bytes(8)
        else:
            host = addr[0] if ":" in addr[0] else "::ffff:" + addr[0]
            raw = (struct.pack("=H", socket.AF_INET6) + struct.pack("!HI", addr[1], 0)
                   + socket.inet_pton(socket.AF_INET6, host) + struct.pack("=I", addr[3] if len(addr) > 3 else 0))
        entry = self._names[addr] = (_FFI.new("char[]", raw), len(raw))
        return entry

    def datagram(self, i: int) -> bytes:
        """A copy of the datagram in slot ``i`` (fallback sends, tests)."""
        off = i * SLOT_SIZE
        return self._buffer[off:off + self._lengths[i]]

    def backlog(self) -> int:
        """Bytes waiting for the socket to drain (0 while it takes everything)."""
        return self.backlog_bytes

    # ------------------------------------------------------------ sending
    def flush(self) -> None:
        """Send what is queued, in as few calls as the strategy allows."""
        self._scheduled = False
        end = self.count
        if not end:
            return
        if self.blocked:
            self._to_backlog(0, end)
            return
        send, stats = self._send, self.stats
        start = 0
        while start < end:
            try:
                taken = send(self, start, end - start)
            except BlockingIOError:
                stats.syscalls += 1
                stats.blocked += 1
                self._block(start, end)
                return
            except OSError as exc:  # about slot start's destination: drop that one
                stats.syscalls += 1
                stats.errors += 1
                if stats.errors % 1000 == 1:
                    logger.warning("datagram to %s not sent: %s (%d so far)", self.addrs[start], exc, stats.errors)
                start += 1
                continue
            stats.syscalls += 1
            stats.datagrams += taken
            if taken < end - start:
                stats.partial += 1
            start += taken
        self.count = 0

    def _to_backlog(self, start: int, end: int) -> None:
        for i in range(start, end):
            if self.backlog_bytes > self.limit_bytes:
                self.stats.overflow += end - i
                break
            data = self.datagram(i)
            self._backlog.append((data, self.addrs[i]))
            self.backlog_bytes += len(data)
        self.count = 0

    def _block(self, start: int, end: int) -> None:
        self.blocked = True
        self._to_backlog(start, end)
        self._loop.add_writer(self._sock.fileno(), self._writable)

    def _writable(self) -> None:
        self._loop.remove_writer(self._sock.fileno())
        self.blocked = False
        backlog, self._backlog, self.backlog_bytes = self._backlog, [], 0
        pending = [(self.datagram(i), self.addrs[i]) for i in range(self.count)]
        self.count = 0
        for data, addr in backlog + pending:  # oldest first; a full arena flushes itself
            self.add(data, addr)
        self.flush()

    def close(self) -> None:
        """Forget what is queued (the socket is closing)."""
        if self.blocked:
            self._loop.remove_writer(self._sock.fileno())
            self.blocked = False
        self._backlog.clear()
        self.backlog_bytes = self.count = 0


# ----------------------------------------------------------------------- strategies
def sendto_sender(sender: BatchedSender, start: int, count: int) -> int:
    """One ``sendto`` per datagram: the portable fallback."""
    sender._sock.sendto(sender.datagram(start), sender.addrs[start])
    return 1


def mmsg_sender(sender: BatchedSender, start: int, count: int) -> int:
    """``sendmmsg`` of slots ``start``.. in one call (Linux, glibc)."""
    sent = _LIBC.sendmmsg(sender._sock.fileno(), sender.hdrs + start, count, 0)
    if sent < 0:
        code = _FFI.errno
        if code in (errno.EAGAIN, errno.EWOULDBLOCK):
            raise BlockingIOError(code, "socket buffer full")
        raise OSError(code, f"sendmmsg: {errno.errorcode.get(code, code)}")
    return sent


def best_sender() -> BatchSend:
    """``sendmmsg`` where the platform has it, else one ``sendto`` per datagram."""
    return mmsg_sender if _LIBC is not None else sendto_sender
