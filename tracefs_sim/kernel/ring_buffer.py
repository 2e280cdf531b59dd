"""The per-CPU lockless ring buffer (kernel/trace/ring_buffer.c, Linux 6.12, x86_64).

Why byte-exact: ``trace_pipe_raw`` hands whole sub-buffers to trace-cmd/libtraceevent,
which decode them with ``events/header_page`` and ``events/header_event``.  So every
sub-buffer ("page") here *is* a ``struct buffer_data_page``::

    0   u64  time_stamp     absolute time of the first event on the page
    8   long commit         bytes of event data (+ RB_MISSED_EVENTS bit 31 /
                            RB_MISSED_STORED bit 30 when handed to a reader)
    16  data[subbuf_size - 16]

holding ``struct ring_buffer_event`` records (``u32 type_len:5, time_delta:27``, 4-byte
aligned): data (type_len 1..28, payload ``type_len*4`` bytes at +4; type_len 0 with
``array[0]`` = payload+4 and payload at +8 when the aligned payload exceeds 112 bytes),
PADDING (29), TIME_EXTEND (30), TIME_STAMP (31, absolute mode).

Structure (same as the kernel's): each CPU has ``nr_pages`` sub-buffers in a ring plus
one *reader page* that a consuming reader swaps with the ring's head page.  The writer
fills the tail page; when it does not fit, the page is finished with padding
(``rb_reset_tail``) and the tail moves on (``rb_move_tail``): onto the head page it
either drops the oldest page (overwrite mode, its entries count as ``overrun``) or drops
the new event (producer/consumer mode, ``dropped events``).  The simulation is
single-threaded, so the kernel's commit page is always the tail page.

Writer hot path (no per-record Python object)::

    off = rb.reserve(cpu, n, ts)          # payload offset, or -1: event dropped
    if off >= 0:
        buf = rb.cpu_buffers[cpu].page    # bytearray of the tail sub-buffer
        struct.pack_into(fmt, buf, off, ...)   # exactly n bytes at buf[off:off+n]
        rb.commit(cpu)

``reserve`` writes the event header(s) and the page time stamp; ``commit`` counts the
entry and wakes waiters.  Call them back to back (no reader call in between, no other
``reserve`` on that CPU).  The bytes between ``off+n`` and the aligned end of the
payload (``ALIGN(n,4)``, or 12 for n in 5..8) keep whatever the recycled page held, as
in the kernel; ``write()`` zeroes them.  ``tail_page_data`` is an alias of ``page``.

Readers (all per CPU, all return the live page bytearray + offsets; use the bytes before
the next write/consume):

* ``iter_cpu(cpu)``: non-consuming walk (the ``trace`` file), yields
  ``(ts, page, payload_offset, payload_len)`` oldest first;
* ``peek(cpu)`` / ``consume(cpu)`` / ``lost_events(cpu)``: ``trace_pipe``;
* ``read_page(cpu, full=False, length=None)``: one whole sub-buffer as ``bytes``
  (``ring_buffer_read_page``, for ``trace_pipe_raw``).

``payload_len`` is what ``ring_buffer_event_length()`` reports: the aligned length.
"""

from __future__ import annotations

import builtins
import errno
import struct
from collections.abc import Callable, Iterator
from itertools import accumulate, repeat
from operator import rshift

from .errors import KernelError
from .lib import MASK32, MASK64, PAGE_SIZE
from .waitqueue import WaitQueue

BUF_PAGE_HDR_SIZE = 16  # offsetof(struct buffer_data_page, data)
RB_EVNT_HDR_SIZE = 4
RB_ALIGNMENT = 4
RINGBUF_TYPE_DATA_TYPE_LEN_MAX = 28
RB_MAX_SMALL_DATA = RB_ALIGNMENT * RINGBUF_TYPE_DATA_TYPE_LEN_MAX  # 112
RB_EVNT_MIN_SIZE = 8
RB_LEN_TIME_EXTEND = 8
RINGBUF_TYPE_PADDING = 29
RINGBUF_TYPE_TIME_EXTEND = 30
RINGBUF_TYPE_TIME_STAMP = 31
TS_SHIFT = 27
TS_MASK = (1 << TS_SHIFT) - 1
TS_MSB = 0xF8 << 56
ABS_TS_MASK = MASK64 - TS_MSB
RB_MISSED_EVENTS = 1 << 31
RB_MISSED_STORED = 1 << 30
RB_MISSED_MASK = 3 << 30
RB_WRITE_MASK = 0xFFFFF
RB_BUFFER_OFF = 1 << 20  # ring_buffer_record_off() bit in record_disabled
MAX_SUBBUF_ORDER = 7  # buffer_subbuf_size_write(): 1..128 system pages

_U32 = struct.Struct("<I")
_U32X2 = struct.Struct("<II")
_U64 = struct.Struct("<Q")
_HDR = struct.Struct("<Qq")
_pack_u32 = _U32.pack_into
# rb_calculate_event_length() of a small (type_len) event, header included, by payload
# length: 4-byte aligned, at least 8 (the fast path's table lookup)
_EVENT_TOTAL = tuple(8 if n <= 4 else 16 if n <= 8 else (n + 7) & -4 for n in range(113))
_pack_u32x2 = _U32X2.pack_into
_unpack_u32 = _U32.unpack_from
_unpack_u32x2 = _U32X2.unpack_from


def rb_calculate_event_length(length: int) -> int:
    """Bytes an event with ``length`` payload bytes takes (``rb_calculate_event_length``).

    Quirk kept: a 12-byte event (payload 5..8) is grown to 16 so a TIME_EXTEND can
    always be turned into padding, so such events have type_len 3.
    """
    if not length:
        length = 1
    if length > RB_MAX_SMALL_DATA:
        length += 4
    length = (length + RB_EVNT_HDR_SIZE + 3) & ~3
    if length == RB_LEN_TIME_EXTEND + RB_ALIGNMENT:
        length += RB_ALIGNMENT
    return length


def rb_fix_abs_ts(abs_ts: int, save_ts: int) -> int:
    """Restore the 5 MSBs an absolute TIME_STAMP drops (``rb_fix_abs_ts``)."""
    if save_ts & TS_MSB:
        abs_ts |= save_ts & TS_MSB
        if abs_ts < save_ts:
            abs_ts += 1 << 59
    return abs_ts


def subbuf_order_from_kb(kb: int) -> int:
    """``buffer_subbuf_size_write()`` math: KB -> order, EINVAL outside 1..128 pages.

    Mirrors the C integer widths: ``val *= 1024`` wraps at 64 bits, ``pages`` is an
    int and ``fls()`` takes 32 bits, so 0 KB gives fls(-1) = 32 -> EINVAL and 3 KB
    rounds up to order 0 (4 KB).
    """
    val = (kb * 1024) & MASK64
    pages = (((val + PAGE_SIZE - 1) & MASK64) // PAGE_SIZE) & MASK32
    order = ((pages - 1) & MASK32).bit_length()
    if order > MAX_SUBBUF_ORDER:
        raise KernelError(errno.EINVAL)
    return order


class BufferPage:
    """``struct buffer_page``: bookkeeping of one sub-buffer; ``data`` is the page itself.

    ``data`` is allocated lazily (None until the writer first reaches the page) so a
    large, mostly idle many-CPU buffer costs little memory.  ``commit`` and ``entries``
    are only meaningful once the writer has left the page (the tail page's values live
    in ``CpuBuffer.write`` / ``CpuBuffer.entries - CpuBuffer.tail_base``).
    """

    __slots__ = ("data", "commit", "entries", "real_end", "read")

    def __init__(self) -> None:
        self.data: bytearray | None = None
        self.commit = 0
        self.entries = 0
        self.real_end = 0
        self.read = 0

    def clear(self) -> None:
        """``rb_clear_buffer_page``: the old time_stamp bytes stay, like the kernel."""
        self.commit = 0
        self.entries = 0
        self.read = 0


class CpuBuffer:
    """``struct ring_buffer_per_cpu``.  Public hot-path attributes: ``page`` (tail page
    bytearray), ``write`` (tail write index into the data area), ``waitq``,
    ``full_waitq``."""

    __slots__ = (
        "cpu", "ring", "head", "tail_idx", "tp", "page", "write", "write_stamp",
        "slow", "record_disabled", "reader", "read_stamp", "tail_base",
        "entries", "overrun", "commit_overrun", "dropped_events", "read",
        "bytes_base", "read_bytes", "lost_events", "last_overrun",
        "pages_touched", "pages_lost", "pages_read", "shortest_full",
        "waitq", "full_waitq", "_wl", "last_w", "force_stamp",
    )

    def __init__(self, cpu: int, nr_pages: int, subbuf_size: int) -> None:
        self.cpu = cpu
        self.waitq = WaitQueue()
        self.full_waitq = WaitQueue()
        # Direct view of the waiter list: commit() tests it without a method call.
        self._wl: list = self.waitq._waiters
        self.record_disabled = 0
        self.slow = False
        self.shortest_full = 0
        # discard(): start of the last reserved event; force_stamp: the next event
        # carries an absolute TIME_STAMP (rb_try_to_discard zeroes before_stamp)
        self.last_w = -1
        self.force_stamp = False
        self.install_pages(nr_pages, subbuf_size)
        self.reset_counters()

    def install_pages(self, nr_pages: int, subbuf_size: int) -> None:
        """Fresh ring + reader page (allocation / ``ring_buffer_subbuf_order_set``)."""
        self.ring = [BufferPage() for _ in range(nr_pages)]
        self.reader = BufferPage()
        self.head = 0
        self.set_tail(0, subbuf_size)

    def set_tail(self, idx: int, subbuf_size: int) -> None:
        """Make ring[idx] (or the reader page when idx < 0) the tail/commit page."""
        page = self.reader if idx < 0 else self.ring[idx]
        if page.data is None:
            page.data = bytearray(subbuf_size)
        self.tail_idx = idx
        self.tp = page
        self.page = page.data
        self.write = 0

    def reset_counters(self) -> None:
        self.last_w = -1
        self.force_stamp = False
        self.write_stamp = 0
        self.read_stamp = 0
        self.tail_base = 0
        self.entries = 0
        self.overrun = 0
        self.commit_overrun = 0
        self.dropped_events = 0
        self.read = 0
        self.bytes_base = 0
        self.read_bytes = 0
        self.lost_events = 0
        self.last_overrun = 0
        self.pages_touched = 0
        self.pages_lost = 0
        self.pages_read = 0
        self.shortest_full = 0

    @property
    def tail_page_data(self) -> bytearray:
        """Alias of ``page``."""
        return self.page

    def page_commit(self, page: BufferPage) -> int:
        """``rb_page_commit``: the tail page's commit is the live write index."""
        return self.write if page is self.tp else page.commit


# per type_len: a translate() table mapping a header's low byte to 0 when its type_len
# is that one (the byte's top 3 bits belong to the time delta), else to 1
_NOT_TL = [bytes(0 if b & 31 == tl else 1 for b in range(256)) for tl in range(32)]


PageRecord = tuple[int, int, bytearray, int, int]   # ts, cpu, page, payload offset, length


class CopiedRecords:
    """One CPU's records with their payloads copied out, as parallel lists (no object
    per record besides its time stamp and payload: a whole buffer's worth is kept at
    once, and a payload is hashable)."""

    __slots__ = ("ts", "payloads")

    def __init__(self) -> None:
        self.ts: list[int] = []
        self.payloads: list[bytes] = []


def _decode_page(data: bytearray, pos: int, end: int, stamp: int, cpu: int,
                 out: list[PageRecord] | CopiedRecords, structs: RunPayloads) -> bool:
    """Append ``(ts, cpu, data, payload_offset, payload_len)`` for the data events of
    ``data[pos:end]`` to a list (``stamp``: the time the first delta applies to), or
    their time stamps and payloads to ``CopiedRecords`` (``structs``: the buffer's cache
    of the Structs that cut a run's payloads).  False when an absolute TIME_STAMP went
    backwards."""
    if isinstance(out, CopiedRecords):
        add_ts, add_payload, add = out.ts.append, out.payloads.append, None
    else:
        add_ts = add_payload = None
        add = out.append
    monotonic = True
    # the events are word-aligned: index the page as u32 words (no unpack per event;
    # cast() refuses a sub-buffer that is not a whole number of words)
    with memoryview(data) as mv, mv.cast("I") as words:
        tl = words[pos >> 2] & 31 if pos < end else 0
        if 0 < tl <= RINGBUF_TYPE_DATA_TYPE_LEN_MAX:
            # a run of data events of one length (most of a page of function entries):
            # the headers sit a stride apart up to the first other one, so the records
            # of the run come out of C loops
            stride = 4 + (tl << 2)
            run_end = pos + (end - pos) // stride * stride
            n = data[pos:run_end:stride].translate(_NOT_TL[tl]).find(1)
            if n < 0:
                n = (run_end - pos) // stride
            run_end = pos + n * stride
            stamps = accumulate(map(rshift, words[pos >> 2:run_end >> 2:stride >> 2], repeat(5)),
                                initial=stamp)
            if isinstance(out, CopiedRecords):
                next(stamps)
                out.ts.extend(stamps)
                if n:
                    stamp = out.ts[-1]
                    out.payloads.extend(_run_payloads(structs, n, stride)(data, pos))
            else:
                ts = list(stamps)
                stamp = ts[-1]
                out.extend(zip(ts[1:], repeat(cpu), repeat(data), range(pos + 4, run_end, stride),
                               repeat(tl << 2)))
            pos = run_end
        while pos < end:
            w = words[pos >> 2]
            tl = w & 31
            if 0 < tl <= RINGBUF_TYPE_DATA_TYPE_LEN_MAX:
                stamp += w >> 5
                size = tl << 2
                if add is None:
                    add_ts(stamp)
                    add_payload(bytes(data[pos + 4:pos + 4 + size]))
                else:
                    add((stamp, cpu, data, pos + 4, size))
                pos += 4 + size
            elif tl == 0:
                a0 = words[(pos >> 2) + 1]
                stamp += w >> 5
                if add is None:
                    add_ts(stamp)
                    add_payload(bytes(data[pos + 8:pos + 4 + a0]))
                else:
                    add((stamp, cpu, data, pos + 8, a0 - 4))
                pos += 4 + a0
            elif tl == RINGBUF_TYPE_PADDING:
                if not w >> 5:
                    break
                pos += 4 + words[(pos >> 2) + 1]
            elif tl == RINGBUF_TYPE_TIME_EXTEND:
                stamp += (words[(pos >> 2) + 1] << TS_SHIFT) + (w >> 5)
                pos += RB_LEN_TIME_EXTEND
            else:
                abs_ts = rb_fix_abs_ts((words[(pos >> 2) + 1] << TS_SHIFT) | (w >> 5), stamp)
                monotonic = monotonic and abs_ts >= stamp
                stamp = abs_ts
                pos += RB_LEN_TIME_EXTEND
    return monotonic


RunPayloads = dict[tuple[int, int], Callable[[bytearray, int], tuple[bytes, ...]]]
RUN_PAYLOADS_MAX = 1024     # Structs kept per buffer (one per run length and stride seen)


def _run_payloads(cache: RunPayloads, n: int, stride: int) -> Callable[[bytearray, int], tuple[bytes, ...]]:
    """The Struct that cuts the payloads of a run of ``n`` records ``stride`` apart."""
    fn = cache.get((n, stride))
    if fn is None:
        if len(cache) >= RUN_PAYLOADS_MAX:
            cache.clear()
        fn = cache[(n, stride)] = struct.Struct("<" + f"4x{stride - 4}s" * n).unpack_from
    return fn


class RingBuffer:
    """``struct trace_buffer``: ``nr_cpus`` per-CPU buffers of ``nr_pages`` sub-buffers.

    ``size_bytes`` is the per-CPU size requested (``ring_buffer_alloc`` /
    ``ring_buffer_resize``); the page count is ``max(2, DIV_ROUND_UP(size, capacity))``
    with ``capacity = subbuf_size - 16``.
    """

    def __init__(self, nr_cpus: int, size_bytes: int, subbuf_size: int = PAGE_SIZE,
                 overwrite: bool = True) -> None:
        if subbuf_size < PAGE_SIZE or subbuf_size & (subbuf_size - 1):
            raise KernelError(errno.EINVAL)
        self.nr_cpus = nr_cpus
        self.subbuf_size = subbuf_size
        self.capacity = subbuf_size - BUF_PAGE_HDR_SIZE
        # Fixed at allocation: ring_buffer_subbuf_order_set() does not update it.
        self.max_data_size = self.capacity - 8
        self.overwrite = overwrite
        self.time_stamp_abs = False
        self.record_disabled = 0
        self.waitq = WaitQueue()  # "any CPU" waiters (trace_pipe, RING_BUFFER_ALL_CPUS)
        self._any_wl: list = self.waitq._waiters
        nr_pages = self._pages_for(size_bytes)
        self.cpu_buffers = [CpuBuffer(cpu, nr_pages, subbuf_size) for cpu in range(nr_cpus)]
        self._run_structs: RunPayloads = {}

    # ------------------------------------------------------------------ sizes
    def _pages_for(self, size: int) -> int:
        return max(2, -(-size // self.capacity))

    @property
    def subbuf_order(self) -> int:
        return (self.subbuf_size // PAGE_SIZE).bit_length() - 1

    def nr_pages(self, cpu: int) -> int:
        return len(self.cpu_buffers[cpu].ring)

    def size_bytes(self, cpu: int) -> int:
        """``ring_buffer_size``: capacity * nr_pages (what trace.c caches as entries)."""
        return self.capacity * len(self.cpu_buffers[cpu].ring)

    def max_event_size(self) -> int:
        """``ring_buffer_max_event_size``."""
        return self.max_data_size - (RB_LEN_TIME_EXTEND if self.time_stamp_abs else 0)

    def resize(self, size_bytes: int, cpu: int | None = None) -> None:
        """``ring_buffer_resize``: keeps data; shrinking drops the oldest pages.

        Pages are inserted just before the head page (``rb_insert_pages``) and removed
        right after the tail page (``rb_remove_pages``), counting lost entries as
        overrun.
        """
        nr = self._pages_for(size_bytes)
        for c in range(self.nr_cpus) if cpu is None else (cpu,):
            cb = self.cpu_buffers[c]
            diff = nr - len(cb.ring)
            if diff > 0:
                self._insert_pages(cb, diff)
            elif diff < 0:
                self._remove_pages(cb, -diff)

    def _insert_pages(self, cb: CpuBuffer, n: int) -> None:
        ring = cb.ring
        ring[cb.head:cb.head] = [BufferPage() for _ in range(n)]
        cb.head += n
        if cb.tail_idx >= 0:
            cb.tail_idx = ring.index(cb.tp)

    def _remove_pages(self, cb: CpuBuffer, n: int) -> None:
        ring = cb.ring
        size = len(ring)
        start = cb.head if cb.tail_idx < 0 else cb.tail_idx
        gone = [(start + i) % size for i in range(1, n + 1)]
        head_page = ring[cb.head]
        if cb.head in gone:
            head_page = ring[(gone[-1] + 1) % size]
        for i in gone:
            page = ring[i]
            if page.entries:
                cb.overrun += page.entries
                cb.bytes_base -= page.commit
                cb.pages_lost += 1
        gone_set = set(gone)
        cb.ring = [p for i, p in enumerate(ring) if i not in gone_set]
        cb.head = cb.ring.index(head_page)
        if cb.tail_idx >= 0:
            cb.tail_idx = cb.ring.index(cb.tp)

    def set_subbuf_order(self, order: int) -> None:
        """``ring_buffer_subbuf_order_set``: all data is discarded (new pages) but the
        statistics counters are *not* reset, exactly like the kernel."""
        if order < 0:
            raise KernelError(errno.EINVAL)
        psize = PAGE_SIZE << order
        if psize <= BUF_PAGE_HDR_SIZE or psize > RB_WRITE_MASK + 1:
            raise KernelError(errno.EINVAL)
        if psize == self.subbuf_size:
            return
        old_capacity = self.capacity
        self.subbuf_size = psize
        self.capacity = psize - BUF_PAGE_HDR_SIZE
        for cb in self.cpu_buffers:
            nr = max(2, -(-(old_capacity * len(cb.ring)) // self.capacity))
            cb.install_pages(nr, psize)

    def set_subbuf_size(self, kb: int) -> None:
        """``buffer_subbuf_size_kb`` write: KB rounded up to 2^order pages."""
        self.set_subbuf_order(subbuf_order_from_kb(kb))

    # ------------------------------------------------------------------ modes
    def _update_slow(self) -> None:
        glob = bool(self.record_disabled) or self.time_stamp_abs
        for cb in self.cpu_buffers:
            cb.slow = glob or bool(cb.record_disabled)

    def set_overwrite(self, on: bool) -> None:
        """``ring_buffer_change_overwrite`` (options/overwrite)."""
        self.overwrite = bool(on)

    def set_time_stamp_abs(self, on: bool) -> None:
        """``ring_buffer_set_time_stamp_abs``: every event gets a TIME_STAMP."""
        self.time_stamp_abs = bool(on)
        self._update_slow()

    def record_disable(self, cpu: int | None = None) -> None:
        """``ring_buffer_record_disable[_cpu]``: counted, pair with record_enable."""
        if cpu is None:
            self.record_disabled += 1
        else:
            self.cpu_buffers[cpu].record_disabled += 1
        self._update_slow()

    def record_enable(self, cpu: int | None = None) -> None:
        if cpu is None:
            self.record_disabled -= 1
        else:
            self.cpu_buffers[cpu].record_disabled -= 1
        self._update_slow()

    def record_off(self) -> None:
        """``ring_buffer_record_off``: the on/off switch tracing_on uses."""
        self.record_disabled |= RB_BUFFER_OFF
        self._update_slow()

    def record_on(self) -> None:
        self.record_disabled &= ~RB_BUFFER_OFF
        self._update_slow()

    def record_is_on(self) -> bool:
        return not self.record_disabled

    def record_is_set_on(self) -> bool:
        return not self.record_disabled & RB_BUFFER_OFF

    # ------------------------------------------------------------------ writer
    def reserve(self, cpu: int, length: int, ts: int) -> int:
        """Reserve ``length`` payload bytes at time ``ts`` on ``cpu``'s tail page.

        Returns the payload offset in ``cpu_buffers[cpu].page`` or -1 (dropped).
        Fast path: small event, no time extend, fits on the current (non-empty) page.
        """
        cb = self.cpu_buffers[cpu]
        w = cb.write
        if cb.slow or length > 112 or not w:
            return self._reserve(cb, length, ts)
        delta = ts - cb.write_stamp
        total = _EVENT_TOTAL[length]
        nw = w + total
        if delta >> 27 or nw > self.capacity:
            return self._reserve(cb, length, ts)
        cb.write = nw
        cb.write_stamp = ts
        cb.last_w = w
        w += 16
        _pack_u32(cb.page, w, (delta << 5) | ((total - 4) >> 2))
        return w + 4

    def commit(self, cpu: int) -> None:
        """``ring_buffer_unlock_commit``: count the entry, wake readers if any wait."""
        cb = self.cpu_buffers[cpu]
        cb.entries += 1
        if cb._wl or self._any_wl:
            cb.waitq.wake_up()
            self.waitq.wake_up()

    def discard(self, cpu: int) -> None:
        """``ring_buffer_discard_commit`` of the event just reserved on ``cpu`` (not
        committed): ``rb_event_discard`` makes it padding (after its time extend, if
        any) and, as it is the last event of the tail page, ``rb_try_to_discard`` moves
        the write index back over it.  It never counts as an entry, and the next event
        on this CPU gets an absolute time stamp."""
        cb = self.cpu_buffers[cpu]
        start = cb.last_w
        if start < 0:
            return
        cb.last_w = -1
        page = cb.page
        o = BUF_PAGE_HDR_SIZE + start
        end = BUF_PAGE_HDR_SIZE + cb.write
        head = _unpack_u32(page, o)[0]
        if head & 31 in (RINGBUF_TYPE_TIME_EXTEND, RINGBUF_TYPE_TIME_STAMP):
            o += RB_LEN_TIME_EXTEND
            head = _unpack_u32(page, o)[0]
        if end - o >= RB_EVNT_MIN_SIZE:
            _pack_u32x2(page, o, RINGBUF_TYPE_PADDING | ((head >> 5 or 1) << 5),
                        end - o - RB_EVNT_HDR_SIZE)
        cb.write = start
        if start:
            cb.force_stamp = True
            cb.slow = True

    def write(self, cpu: int, ts: int, payload: bytes) -> bool:
        """``ring_buffer_write``: reserve + copy (alignment bytes zeroed) + commit."""
        n = len(payload)
        off = self.reserve(cpu, n, ts)
        if off < 0:
            return False
        cb = self.cpu_buffers[cpu]
        page = cb.page
        end = off + n
        page[off:end] = payload
        if n > 8:
            pad = -n & 3
        elif n > 4:
            pad = 12 - n
        else:
            pad = 4 - n
        if pad:
            page[end:end + pad] = bytes(pad)
        cb.entries += 1
        if cb._wl or self._any_wl:
            cb.waitq.wake_up()
            self.waitq.wake_up()
        return True

    def _reserve(self, cb: CpuBuffer, length: int, ts: int) -> int:
        """General reserve (``rb_reserve_next_event`` + ``__rb_reserve_next``)."""
        if self.record_disabled or cb.record_disabled:
            return -1
        if length > self.max_data_size:
            return -1
        total = rb_calculate_event_length(length)
        absolute = self.time_stamp_abs
        if cb.force_stamp:
            cb.force_stamp = False
            cb.slow = bool(self.record_disabled or cb.record_disabled) or absolute
            # after a discard the write stamp is bogus: an absolute stamp unless the
            # event starts a page (__rb_reserve_next: before_stamp != write_stamp)
            if not absolute and cb.write and cb.write + total + RB_LEN_TIME_EXTEND <= self.capacity:
                absolute = True
        if absolute:
            total += RB_LEN_TIME_EXTEND
            if total > self.max_data_size:
                return -1
        capacity = self.capacity
        if total > capacity:  # only after shrinking the sub-buffer size
            return -1
        while True:
            w = cb.write
            extend = False
            delta = 0
            if not absolute and w:
                delta = ts - cb.write_stamp
                if delta < 0 or delta >> TS_SHIFT:
                    extend = True
            need = total + RB_LEN_TIME_EXTEND if extend else total
            if w + need > capacity:
                if not self._move_tail(cb, w):
                    return -1
                continue
            break
        cb.write = w + need
        cb.write_stamp = ts
        cb.last_w = w
        page = cb.page
        o = BUF_PAGE_HDR_SIZE + w
        if absolute:
            stamp = ts & ABS_TS_MASK if ts & TS_MSB else ts
            _pack_u32x2(page, o, RINGBUF_TYPE_TIME_STAMP | ((stamp & TS_MASK) << 5),
                        (stamp >> TS_SHIFT) & 0xFFFFFFFF)
            o += RB_LEN_TIME_EXTEND
            total -= RB_LEN_TIME_EXTEND
            delta = 0
        elif extend:
            # rb_add_timestamp(): a clock going backwards or a jump > 2^59 is stored as 0.
            if delta < 0 or delta > 1 << 59:
                delta = 0
            _pack_u32x2(page, o, RINGBUF_TYPE_TIME_EXTEND | ((delta & TS_MASK) << 5),
                        (delta >> TS_SHIFT) & 0xFFFFFFFF)
            o += RB_LEN_TIME_EXTEND
            delta = 0
        body = total - RB_EVNT_HDR_SIZE
        if not w:
            _U64.pack_into(page, 0, ts & MASK64)
        if body > RB_MAX_SMALL_DATA:
            _pack_u32x2(page, o, delta << 5, body)
            return o + 8
        _pack_u32(page, o, (delta << 5) | (body >> 2))
        return o + 4

    def _reset_tail(self, cb: CpuBuffer, tail: int) -> None:
        """``rb_reset_tail``: pad the rest of the page the event did not fit on."""
        bsize = self.capacity
        tp = cb.tp
        if tail >= bsize:
            tp.real_end = 0
            return
        tp.real_end = tail
        o = BUF_PAGE_HDR_SIZE + tail
        if tail > bsize - RB_EVNT_MIN_SIZE:
            _pack_u32(cb.page, o, RINGBUF_TYPE_PADDING)  # null event: end of page
            return
        _pack_u32x2(cb.page, o, RINGBUF_TYPE_PADDING | (1 << 5), bsize - tail - RB_EVNT_HDR_SIZE)
        cb.write = bsize  # the padding counts in entries_bytes

    def _move_tail(self, cb: CpuBuffer, tail: int) -> bool:
        """``rb_move_tail``: True to retry on the next page, False if dropped."""
        ring = cb.ring
        if cb.tail_idx < 0:
            # Writer on the reader page: its next page is the (empty) head page.
            nxt = cb.head
        else:
            nxt = cb.tail_idx + 1
            if nxt == len(ring):
                nxt = 0
            if nxt == cb.head:
                if not self.overwrite:
                    cb.dropped_events += 1
                    self._reset_tail(cb, tail)
                    return False
                # rb_handle_head_page(): the oldest page is overwritten.
                hp = ring[nxt]
                cb.overrun += hp.entries
                cb.bytes_base -= hp.commit
                cb.pages_lost += 1
                cb.head = nxt + 1 if nxt + 1 < len(ring) else 0
        self._reset_tail(cb, tail)
        tp = cb.tp
        tp.commit = cb.write
        tp.entries = cb.entries - cb.tail_base
        cb.bytes_base += cb.write
        np = ring[nxt]
        np.commit = 0
        np.entries = 0
        cb.set_tail(nxt, self.subbuf_size)
        cb.tail_base = cb.entries
        cb.pages_touched += 1
        if cb.full_waitq and cb.reader is not cb.tp and self._full_hit(cb, cb.shortest_full):
            cb.shortest_full = 0
            cb.full_waitq.wake_up()
        return True

    # ------------------------------------------------------------------ statistics
    def entries(self, cpu: int) -> int:
        """``rb_num_of_entries``: written - overrun - read."""
        cb = self.cpu_buffers[cpu]
        return cb.entries - (cb.overrun + cb.read)

    def overrun(self, cpu: int) -> int:
        return self.cpu_buffers[cpu].overrun

    def commit_overrun(self, cpu: int) -> int:
        return self.cpu_buffers[cpu].commit_overrun

    def bytes(self, cpu: int) -> int:
        """``ring_buffer_bytes_cpu``: unconsumed bytes incl. event headers, time
        extends and page-end padding (entries_bytes - read_bytes)."""
        cb = self.cpu_buffers[cpu]
        return cb.bytes_base + cb.write - cb.read_bytes

    def dropped_events(self, cpu: int) -> int:
        return self.cpu_buffers[cpu].dropped_events

    def read_events(self, cpu: int) -> int:
        return self.cpu_buffers[cpu].read

    def entries_total(self) -> int:
        return sum(self.entries(c) for c in range(self.nr_cpus))

    def overrun_total(self) -> int:
        return sum(cb.overrun for cb in self.cpu_buffers)

    def oldest_event_ts(self, cpu: int) -> int:
        """``ring_buffer_oldest_event_ts``: time_stamp of the reader page (if the writer
        is on it) or the head page; stale after a reset, as in the kernel."""
        cb = self.cpu_buffers[cpu]
        page = cb.reader if cb.tail_idx < 0 else cb.ring[cb.head]
        return _U64.unpack_from(page.data, 0)[0] if page.data is not None else 0

    def empty(self, cpu: int | None = None) -> bool:
        """``ring_buffer_empty[_cpu]`` (``rb_per_cpu_empty``)."""
        if cpu is None:
            return all(self._cpu_empty(cb) for cb in self.cpu_buffers)
        return self._cpu_empty(self.cpu_buffers[cpu])

    @staticmethod
    def _cpu_empty(cb: CpuBuffer) -> bool:
        reader = cb.reader
        if reader.read != cb.page_commit(reader):
            return False
        if cb.tp is reader:
            return True
        if cb.tail_idx != cb.head:
            return False
        return cb.write == 0

    # ------------------------------------------------------------------ waiting
    def nr_dirty_pages(self, cpu: int) -> int:
        """``ring_buffer_nr_dirty_pages``."""
        cb = self.cpu_buffers[cpu]
        cnt = cb.pages_touched - cb.pages_lost
        return 0 if cnt < cb.pages_read else cnt - cb.pages_read

    def _full_hit(self, cb: CpuBuffer, full: int) -> bool:
        nr = len(cb.ring)
        if not nr or not full:
            return True
        return (self.nr_dirty_pages(cb.cpu) + 1) * 100 >= full * nr

    def watermark_hit(self, cpu: int | None, percent: int) -> bool:
        """``rb_watermark_hit``: may a reader waiting for ``percent`` (buffer_percent)
        proceed?  All CPUs: any data.  Per CPU: data, and with percent != 0 the writer
        must be off the reader page and enough pages must be dirty."""
        if cpu is None:
            return not self.empty()
        cb = self.cpu_buffers[cpu]
        if self._cpu_empty(cb):
            return False
        if not percent:
            return True
        ret = cb.reader is not cb.tp and self._full_hit(cb, percent)
        if not ret and (not cb.shortest_full or cb.shortest_full > percent):
            cb.shortest_full = percent
        return ret

    def wake_waiters(self, cpu: int | None = None) -> None:
        """``ring_buffer_wake_waiters`` (file flush/close)."""
        cbs = self.cpu_buffers if cpu is None else [self.cpu_buffers[cpu]]
        for cb in cbs:
            cb.waitq.wake_up()
            cb.full_waitq.wake_up()
        if cpu is None:
            self.waitq.wake_up()

    # ------------------------------------------------------------------ reset
    def reset(self, cpu: int | None = None) -> None:
        """``ring_buffer_reset[_cpu]``: empty pages, zero counters (page time stamps
        stay, so ``oldest_event_ts`` shows the old value like the kernel)."""
        for cb in self.cpu_buffers if cpu is None else (self.cpu_buffers[cpu],):
            for page in cb.ring:
                page.clear()
            cb.reader.clear()
            cb.reader.real_end = 0
            cb.head = 0
            cb.set_tail(0, self.subbuf_size)
            cb.reset_counters()

    # ------------------------------------------------------------------ readers
    def _get_reader_page(self, cb: CpuBuffer) -> BufferPage | None:
        """``rb_get_reader_page``: swap the head page in when the reader page is done."""
        for _ in range(3):
            reader = cb.reader
            if reader.read < cb.page_commit(reader):
                break
            if cb.tp is reader:
                return None
            if cb.entries - (cb.overrun + cb.read) == 0:
                return None
            reader.clear()
            reader.real_end = 0
            new = cb.ring[cb.head]
            cb.ring[cb.head] = reader
            if new is cb.tp:
                cb.tail_idx = -1
            cb.head = cb.head + 1 if cb.head + 1 < len(cb.ring) else 0
            cb.pages_read += 1
            cb.reader = new
            new.read = 0
            if cb.overrun != cb.last_overrun:
                cb.lost_events = cb.overrun - cb.last_overrun
                cb.last_overrun = cb.overrun
        else:
            return None
        reader = cb.reader
        if reader.read == 0:
            cb.read_stamp = _U64.unpack_from(reader.data, 0)[0]
        return reader

    def _advance_reader(self, cb: CpuBuffer) -> int:
        """``rb_advance_reader``: step over one event; returns its length."""
        reader = cb.reader
        data = reader.data
        pos = BUF_PAGE_HDR_SIZE + reader.read
        w = _unpack_u32(data, pos)[0]
        tl = w & 31
        if tl == 0:
            length = 4 + _unpack_u32(data, pos + 4)[0]
            cb.read += 1
            cb.read_stamp += w >> 5
        elif tl <= RINGBUF_TYPE_DATA_TYPE_LEN_MAX:
            length = 4 + tl * 4
            cb.read += 1
            cb.read_stamp += w >> 5
        elif tl == RINGBUF_TYPE_PADDING:
            length = 4 + _unpack_u32(data, pos + 4)[0]
        elif tl == RINGBUF_TYPE_TIME_EXTEND:
            cb.read_stamp += (_unpack_u32(data, pos + 4)[0] << TS_SHIFT) + (w >> 5)
            length = RB_LEN_TIME_EXTEND
        else:
            stamp = (_unpack_u32(data, pos + 4)[0] << TS_SHIFT) | (w >> 5)
            cb.read_stamp = rb_fix_abs_ts(stamp, cb.read_stamp)
            length = RB_LEN_TIME_EXTEND
        reader.read += length
        cb.read_bytes += length
        return length

    def peek(self, cpu: int) -> tuple[int, bytearray, int, int] | None:
        """``ring_buffer_peek``: next data event ``(ts, page, offset, length)`` or None.

        Time extends and padding in front of it are consumed (internal data).
        """
        cb = self.cpu_buffers[cpu]
        while True:
            reader = self._get_reader_page(cb)
            if reader is None:
                return None
            data = reader.data
            pos = BUF_PAGE_HDR_SIZE + reader.read
            w = _unpack_u32(data, pos)[0]
            tl = w & 31
            if tl == 0:
                return cb.read_stamp + (w >> 5), data, pos + 8, _unpack_u32(data, pos + 4)[0] - 4
            if tl <= RINGBUF_TYPE_DATA_TYPE_LEN_MAX:
                return cb.read_stamp + (w >> 5), data, pos + 4, tl * 4
            if tl == RINGBUF_TYPE_PADDING and not w >> 5:
                return None  # null padding inside commit: cannot happen
            self._advance_reader(cb)

    def lost_events(self, cpu: int) -> int:
        """Events overwritten before the event ``peek`` returned (trace_pipe's
        "CPU:%d [LOST %lu EVENTS]"); cleared by ``consume``/``read_page``."""
        return self.cpu_buffers[cpu].lost_events

    def consume(self, cpu: int) -> tuple[int, bytearray, int, int] | None:
        """``ring_buffer_consume``: return and remove the next data event."""
        ev = self.peek(cpu)
        if ev is not None:
            cb = self.cpu_buffers[cpu]
            cb.lost_events = 0
            self._advance_reader(cb)
        return ev

    def _read_pages(self, cpu: int) -> Iterator[tuple[bytearray, int, int, int]]:
        """The unconsumed part of every page of ``cpu``, oldest first:
        ``(data, start, end, stamp)`` with the offsets past the page header and the
        time stamp the first event's delta applies to."""
        cb = self.cpu_buffers[cpu]
        reader = cb.reader
        pages: list[BufferPage] = [reader]
        if cb.tail_idx >= 0:
            ring = cb.ring
            i = cb.head
            while True:
                pages.append(ring[i])
                if i == cb.tail_idx:
                    break
                i = i + 1 if i + 1 < len(ring) else 0
        first = True
        for page in pages:
            end = cb.page_commit(page)
            pos = page.read if first else 0
            if first and pos:
                stamp = cb.read_stamp
            elif pos < end:
                stamp = _U64.unpack_from(page.data, 0)[0]
            first = False
            if pos < end:
                yield page.data, pos + BUF_PAGE_HDR_SIZE, end + BUF_PAGE_HDR_SIZE, stamp

    def read_records(self, cpu: int, out: list[PageRecord] | CopiedRecords) -> bool:
        """Append ``(ts, cpu, page, payload_offset, payload_len)`` for every unconsumed
        data event of ``cpu`` to a list (or their time stamps and payloads to
        ``CopiedRecords``), oldest first: the non-consuming walk
        (``ring_buffer_read_start``/``ring_buffer_iter_peek``) in bulk, for the ``trace``
        file, which renders everything at once.  False when a time stamp went backwards
        (an absolute TIME_STAMP), so CPUs cannot be merged by a sort.  Writers must not
        run meanwhile (the kernel's ``trace`` file stops them too)."""
        monotonic = True
        for data, pos, end, stamp in self._read_pages(cpu):
            monotonic = _decode_page(data, pos, end, stamp, cpu, out, self._run_structs) and monotonic
        return monotonic

    def iter_cpu(self, cpu: int) -> Iterator[tuple[int, bytearray, int, int]]:
        """Non-consuming iteration over the unconsumed data events of ``cpu``, oldest
        first, ``(ts, page, payload_offset, payload_len)``; decoded a page at a time."""
        for data, pos, end, stamp in self._read_pages(cpu):
            recs: list[PageRecord] = []
            _decode_page(data, pos, end, stamp, cpu, recs, self._run_structs)
            for ts, _cpu, page, off, length in recs:
                yield ts, page, off, length

    def read_page(self, cpu: int, full: bool = False, length: int | None = None) -> builtins.bytes | None:
        """``ring_buffer_read_page``: consume up to one sub-buffer, return it whole.

        ``length`` is the reader's buffer size (trace.c passes the read() count;
        default one sub-buffer).  A page the writer has left is handed over whole
        (``commit`` = ``real_end``, padding excluded); otherwise (partly read, writer
        still on it, short ``length``) events are copied one by one (time extend kept
        with its event) and the header time stamp is the read stamp.  Lost events set
        RB_MISSED_EVENTS and, if 8 bytes fit after the data, RB_MISSED_STORED + the
        count.  The rest is zero-filled.  None when nothing could be transferred
        (empty, ``full`` and the writer is on the page, or ``length`` too small).
        """
        cb = self.cpu_buffers[cpu]
        subbuf = self.subbuf_size
        cap = subbuf - BUF_PAGE_HDR_SIZE
        ln = subbuf if length is None else length
        if ln <= BUF_PAGE_HDR_SIZE:
            return None
        ln = min(ln - BUF_PAGE_HDR_SIZE, cap)
        reader = self._get_reader_page(cb)
        if reader is None:
            return None
        read = reader.read
        size = cb.page_commit(reader)
        missed = cb.lost_events
        data = reader.data
        if read or ln < size - read or reader is cb.tp:
            if full and reader is cb.tp:
                return None
            if ln > size - read:
                ln = size - read
            if ln < self._ts_length(data, read):
                return None
            stamp = cb.read_stamp
            start = read
            while True:
                ln -= self._advance_reader(cb)
                if reader.read >= size:
                    break
                if ln < self._ts_length(data, reader.read):
                    break
            body = data[BUF_PAGE_HDR_SIZE + start:BUF_PAGE_HDR_SIZE + reader.read]
            commit = len(body)
        else:
            cb.read += reader.entries
            cb.read_bytes += size
            stamp = _U64.unpack_from(data, 0)[0]
            commit = reader.real_end or size
            body = data[BUF_PAGE_HDR_SIZE:BUF_PAGE_HDR_SIZE + commit]
            # The page goes to the reader; an empty spare takes its place.
            reader.clear()
        cb.lost_events = 0
        out = bytearray(subbuf)
        out[BUF_PAGE_HDR_SIZE:BUF_PAGE_HDR_SIZE + commit] = body
        flags = 0
        if missed:
            if cap - commit >= 8:
                _U64.pack_into(out, BUF_PAGE_HDR_SIZE + commit, missed)
                flags = RB_MISSED_STORED
            flags |= RB_MISSED_EVENTS
        _HDR.pack_into(out, 0, stamp, commit | flags)
        return bytes(out)

    @staticmethod
    def _ts_length(data: bytearray, read: int) -> int:
        """``rb_event_ts_length``: a time extend counts together with its event."""
        pos = BUF_PAGE_HDR_SIZE + read
        w = _unpack_u32(data, pos)[0]
        tl = w & 31
        extra = 0
        if tl >= RINGBUF_TYPE_TIME_EXTEND:
            extra = RB_LEN_TIME_EXTEND
            pos += RB_LEN_TIME_EXTEND
            w = _unpack_u32(data, pos)[0]
            tl = w & 31
        if tl == 0 or tl == RINGBUF_TYPE_PADDING:
            if tl == RINGBUF_TYPE_PADDING and not w >> 5:
                return 1 << 32  # null event: "undefined" (-1) length
            return extra + 4 + _unpack_u32(data, pos + 4)[0]
        if tl <= RINGBUF_TYPE_DATA_TYPE_LEN_MAX:
            return extra + 4 + tl * 4
        return extra + RB_LEN_TIME_EXTEND
