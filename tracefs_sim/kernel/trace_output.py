"""Printing trace records (kernel/trace/trace_output.c and the iterator parts of trace.c).

Output is looked up by entry type: ``TraceOutput.register(type, printer)``.  A printer
returns the text after the context columns, newline included.  The ring buffer never
formats; this module never stores.

``TraceIter`` is ``struct trace_iterator``: it walks the per-CPU buffers merged by
timestamp (``trace_find_next_entry``), either non-consuming (the ``trace`` file) or
consuming (``trace_pipe``).
"""

from __future__ import annotations

import heapq
import struct
from collections.abc import Iterable, Iterator
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, TypeVar

from .lib import MASK64
from .ring_buffer import CopiedRecords, PageRecord, RingBuffer
from .sched import (
    TRACE_FLAG_BH_OFF,
    TRACE_FLAG_HARDIRQ,
    TRACE_FLAG_IRQS_NOSUPPORT,
    TRACE_FLAG_IRQS_OFF,
    TRACE_FLAG_NEED_RESCHED,
    TRACE_FLAG_NMI,
    TRACE_FLAG_PREEMPT_RESCHED,
    TRACE_FLAG_SOFTIRQ,
)
from .trace_flags import (
    ITER_BIN,
    ITER_CONTEXT_INFO,
    ITER_HEX,
    ITER_IRQ_INFO,
    ITER_LATENCY_FMT,
    ITER_PRINT_PARENT,
    ITER_PRINTK,
    ITER_PRINTK_MSGONLY,
    ITER_RAW,
    ITER_RECORD_TGID,
    ITER_SYM_ADDR,
    ITER_SYM_OFFSET,
    ITER_VERBOSE,
    TRACE_BPUTS,
    TRACE_ENTRY,
    TRACE_FN,
    TRACE_PRINT,
    TRACE_RAW_DATA,
    TRACE_STACK,
)
from .version import utsname

if TYPE_CHECKING:
    from .core import Kernel
    from .trace import TraceArray

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")

UNAME_RELEASE = utsname()[1]   # init_utsname()->release, for the latency header
FTRACE_TRAMPOLINE_MARKER = 0x7FFFFFFF  # ((unsigned long) INT_MAX)


class TraceIter:
    """The record being printed: what a printer may look at."""

    __slots__ = ("tr", "cpu", "ts", "buf", "off", "size", "kernel", "flags", "idx", "in_ns", "lost",
                 "ctx_cache")

    def __init__(self, tr: TraceArray) -> None:
        self.tr = tr
        self.kernel = tr.kernel
        self.cpu = 0
        self.ts = 0
        self.buf: bytes | bytearray = b""
        self.off = 0
        self.size = 0
        self.flags = tr.flags
        self.idx = 0
        self.in_ns = tr.clock.in_ns
        self.lost = 0
        # context prefixes by (entry header, cpu): valid for one rendering pass only,
        # since saved comms change as tasks run
        self.ctx_cache: dict[tuple[bytes, int], str] = {}

    @property
    def type(self) -> int:
        return self.buf[self.off] | (self.buf[self.off + 1] << 8)

    @property
    def pid(self) -> int:
        return struct.unpack_from("<i", self.buf, self.off + 4)[0]

    def entry(self) -> tuple[int, int, int, int]:
        return TRACE_ENTRY.unpack_from(self.buf, self.off)

    def u64(self, rel: int) -> int:
        return _U64.unpack_from(self.buf, self.off + rel)[0]

    def cstr(self, rel: int, limit: int | None = None) -> str:
        start = self.off + rel
        end = self.off + (self.size if limit is None else rel + limit)
        raw = bytes(self.buf[start:end])
        nul = raw.find(b"\0")
        if nul >= 0:
            raw = raw[:nul]
        return raw.decode("utf-8", "replace")


class Printer:
    """``struct trace_event_functions``: trace/raw/hex/binary renderings."""

    def trace(self, it: TraceIter) -> str:
        return f"type: {it.type}\n"

    def raw(self, it: TraceIter) -> str:
        return self.trace(it)

    def hex(self, it: TraceIter) -> str:
        return f"type: {it.type}\n"

    def binary(self, it: TraceIter) -> bytes:
        return b""


def hex_field(value: int, size: int) -> str:
    """SEQ_PUT_HEX_FIELD on little-endian: the value in big-endian hex, then a space."""
    return f"{value & ((1 << (8 * size)) - 1):0{2 * size}x} "


class TraceOutput:
    """The registry of printers by entry type, plus the line formatter."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.printers: dict[int, Printer] = {}
        self._sym_cache: dict[tuple[int, int], str] = {}

    def register(self, type_id: int, printer: Printer) -> None:
        self.printers[type_id] = printer

    def unregister(self, type_id: int) -> None:
        self.printers.pop(type_id, None)

    # ----------------------------------------------------------------- symbols
    def sym(self, addr: int, flags: int) -> str:
        """seq_print_ip_sym(): %ps, or %pS with sym-offset, plus <addr> with sym-addr."""

        key = (addr, flags & (ITER_SYM_OFFSET | ITER_SYM_ADDR))
        text = self._sym_cache.get(key)
        if text is not None:
            return text
        if not addr:
            return "0"
        mod = self.kernel.module_syms.get(addr)
        if mod is not None:  # a function of a loaded Python module ("[mod]" as %ps shows it)
            return f"{mod[0]} [{mod[1]}]"
        ks = self.kernel.kallsyms
        text = ks.format_pS(addr) if flags & ITER_SYM_OFFSET else ks.format_ps(addr)
        if flags & ITER_SYM_ADDR:
            text += f" <{addr:016x}>"
        if len(self._sym_cache) > 200_000:
            self._sym_cache.clear()
        self._sym_cache[key] = text
        return text

    # ------------------------------------------------------------------ context
    def lat_fmt(self, flags: int, preempt: int) -> str:
        """trace_print_lat_fmt(): irqs-off, need-resched, hardirq/softirq, preempt depths."""
        bh_off = flags & TRACE_FLAG_BH_OFF
        if flags & TRACE_FLAG_IRQS_OFF and bh_off:
            irqs_off = "D"
        elif flags & TRACE_FLAG_IRQS_OFF:
            irqs_off = "d"
        elif bh_off:
            irqs_off = "b"
        elif flags & TRACE_FLAG_IRQS_NOSUPPORT:
            irqs_off = "X"
        else:
            irqs_off = "."
        nr = flags & (TRACE_FLAG_NEED_RESCHED | TRACE_FLAG_PREEMPT_RESCHED)
        need = {(TRACE_FLAG_NEED_RESCHED | TRACE_FLAG_PREEMPT_RESCHED): "N", TRACE_FLAG_NEED_RESCHED: "n", TRACE_FLAG_PREEMPT_RESCHED: "p"}.get(nr, ".")
        nmi, hard, soft = flags & TRACE_FLAG_NMI, flags & TRACE_FLAG_HARDIRQ, flags & TRACE_FLAG_SOFTIRQ
        hs = ("Z" if nmi and hard else "z" if nmi else "H" if hard and soft else "h" if hard
              else "s" if soft else ".")
        p1 = f"{preempt & 0xf:x}" if preempt & 0xf else "."
        p2 = f"{preempt >> 4:x}" if preempt & 0xf0 else "."
        return irqs_off + need + hs + p1 + p2

    def print_time(self, it: TraceIter, ts: int) -> str:
        if it.in_ns:
            t = (ts + 500) // 1000
            return f" {t // 1_000_000:5d}.{t % 1_000_000:06d}"
        return f" {ts:12d}"

    def context(self, it: TraceIter) -> str:
        """trace_print_context()."""
        s = self.context_prefix(it)
        if it.in_ns:
            t = (it.ts + 500) // 1000
            return f"{s} {t // 1_000_000:5d}.{t % 1_000_000:06d}: "
        return f"{s} {it.ts:12d}: "

    def context_prefix(self, it: TraceIter) -> str:
        """The part of trace_print_context() before the time stamp (comm-pid, tgid, CPU,
        flags), remembered per entry header and CPU for the rendering pass."""
        off = it.off
        key = (bytes(it.buf[off + 2:off + 8]), it.cpu)
        s = it.ctx_cache.get(key)
        if s is None:
            _t, eflags, preempt, pid = TRACE_ENTRY.unpack_from(it.buf, off)
            tracing = self.kernel.trace
            comm = tracing.find_cmdline(pid)
            s = f"{comm:>16}-{pid:<7d} "
            if it.flags & ITER_RECORD_TGID:
                tgid = tracing.tgids.get(pid, 0)
                s += f"({tgid:7d}) " if tgid else "(-------) "
            s += f"[{it.cpu:03d}] "
            if it.flags & ITER_IRQ_INFO:
                s += self.lat_fmt(eflags, preempt)
            it.ctx_cache[key] = s
        return s

    def lat_context(self, it: TraceIter, next_ts: int) -> str:
        """trace_print_lat_context() (latency-format)."""

        _t, eflags, preempt, pid = TRACE_ENTRY.unpack_from(it.buf, it.off)
        comm = self.kernel.trace.find_cmdline(pid)
        if it.flags & ITER_VERBOSE:
            s = f"{comm:>16} {pid:7d} {it.cpu:3d} {eflags:d} {preempt & 0xf:08x} {it.idx:08x} "
        else:
            s = f"{comm[:8]:>8}-{pid:<7d} {it.cpu:3d}" + self.lat_fmt(eflags, preempt)
        abs_ts = it.ts - it.tr.time_start
        rel_ts = next_ts - it.ts
        if it.in_ns:
            abs_ts = (abs_ts + 500) // 1000
            rel_ts = (rel_ts + 500) // 1000
        verbose = it.flags & ITER_VERBOSE
        if verbose and it.in_ns:
            s += (f"[{(it.ts + 500) // 1000:08x}] {abs_ts // 1000}.{abs_ts % 1000:03d}ms "
                  f"(+{rel_ts // 1000}.{rel_ts % 1000:03d}ms): ")
        elif verbose:
            s += f"[{it.ts:016x}] {abs_ts} (+{rel_ts}): "
        elif it.in_ns:
            s += f" {abs_ts:4d}us{find_mark(rel_ts * 1000)}: "
        else:
            s += f" {abs_ts:4d}: "
        return s

    # --------------------------------------------------------------------- lines
    def print_line(self, it: TraceIter, next_ts: int | None = None) -> str | bytes:
        """print_trace_line(): the whole rendering of one record."""

        flags = it.flags
        tracer = it.tr.current_trace
        if tracer.print_line is not None:
            text = tracer.print_line(it)
            if text is not None:
                return text
        type_id = it.type
        printer = self.printers.get(type_id)
        if type_id == TRACE_PRINT and flags & ITER_PRINTK and flags & ITER_PRINTK_MSGONLY:
            return it.cstr(16)
        if flags & ITER_BIN:
            bin_head = b""
            if flags & ITER_CONTEXT_INFO:
                bin_head = struct.pack("<iiQ", it.pid, it.cpu, it.ts)
            return bin_head + (printer.binary(it) if printer else b"")
        if flags & ITER_HEX:
            head = ""
            if flags & ITER_CONTEXT_INFO:
                head = hex_field(it.pid, 4) + hex_field(it.cpu, 4) + hex_field(it.ts, 8)
            body = printer.hex(it) if printer else ""
            return head + body + "\n"
        if flags & ITER_RAW:
            head = f"{it.pid} {it.cpu} {it.ts} " if flags & ITER_CONTEXT_INFO else ""
            return head + (printer.raw(it) if printer else f"{type_id} ?\n")
        head = ""
        if flags & ITER_CONTEXT_INFO:
            if flags & ITER_LATENCY_FMT:
                head = self.lat_context(it, it.ts if next_ts is None else next_ts)
            else:
                head = self.context(it)
        if printer is None:
            return head + f"Unknown type {type_id}\n"
        return head + printer.trace(it)

    # -------------------------------------------------------------------- headers
    def header(self, tr: TraceArray, entries: int, total: int, empty: bool, cpu: int | None) -> str:
        """s_show() for the first line: tracer name and the help header."""

        tracer = tr.current_trace
        out = [f"# tracer: {tracer.name}\n#\n"]
        if tracer.print_header is not None:
            out.append(tracer.print_header(tr))
            return "".join(out)
        flags = tr.flags
        if not flags & ITER_CONTEXT_INFO:
            return "".join(out)
        nr = self.kernel.nr_cpus
        if flags & ITER_LATENCY_FMT:
            if empty:
                return "".join(out)
            out.append(self.latency_header(tr, entries, total, 0 if cpu is None else cpu))
            if not flags & ITER_VERBOSE:
                out.append(LAT_HELP_HEADER)
            return "".join(out)
        if flags & ITER_VERBOSE:
            return "".join(out)
        out.append(f"# entries-in-buffer/entries-written: {entries}/{total}   #P:{nr}\n#\n")
        tgid = bool(flags & ITER_RECORD_TGID)
        if flags & ITER_IRQ_INFO:
            sp = " " * (12 if tgid else 2)
            pre = "#                            " + sp
            out.append(f"{pre}  _-----=> irqs-off/BH-disabled\n"
                       f"{pre} / _----=> need-resched\n"
                       f"{pre}| / _---=> hardirq/softirq\n"
                       f"{pre}|| / _--=> preempt-depth\n"
                       f"{pre}||| / _-=> migrate-disable\n"
                       f"{pre}|||| /     delay\n")
            out.append("#           TASK-PID  " + ("     TGID   " if tgid else "  ")
                       + " CPU#  |||||  TIMESTAMP  FUNCTION\n")
            out.append("#              | |    " + ("       |    " if tgid else "  ")
                       + "   |   |||||     |         |\n")
        else:
            out.append("#           TASK-PID    " + ("   TGID   " if tgid else "")
                       + " CPU#     TIMESTAMP  FUNCTION\n")
            out.append("#              | |      " + ("     |    " if tgid else "")
                       + "   |         |         |\n")
        return "".join(out)

    def latency_header(self, tr: TraceArray, entries: int, total: int, cpu: int) -> str:
        """print_trace_header()."""
        nr = self.kernel.nr_cpus
        return (f"# {tr.current_trace.name} latency trace v1.1.5 on {UNAME_RELEASE}\n"
                "# --------------------------------------------------------------------\n"
                f"# latency: {tr.max_latency // 1000} us, #{entries}/{total}, CPU#{cpu} |"
                f" (M:desktop VP:0, KP:0, SP:0 HP:0 #P:{nr})\n"
                "#    -----------------\n"
                "#    | task: -0 (uid:0 nice:0 policy:0 rt_prio:0)\n"
                "#    -----------------\n#\n")


LAT_HELP_HEADER = (
    "#                    _------=> CPU#            \n"
    "#                   / _-----=> irqs-off/BH-disabled\n"
    "#                  | / _----=> need-resched    \n"
    "#                  || / _---=> hardirq/softirq \n"
    "#                  ||| / _--=> preempt-depth   \n"
    "#                  |||| / _-=> migrate-disable \n"
    "#                  ||||| /     delay           \n"
    "#  cmd     pid     |||||| time  |   caller     \n"
    "#     \\   /        ||||||  \\    |    /       \n")

_MARKS = ((1_000_000_000, "$"), (100_000_000, "@"), (10_000_000, "*"), (1_000_000, "#"),
          (100_000, "!"), (10_000, "+"))


def find_mark(d: int) -> str:
    """trace_find_mark(): the overhead mark for a delta in ns."""
    for val, sym in _MARKS:
        if d > val:
            return sym
    return " "


# ------------------------------------------------------------------ merged iteration
CopiedRecord = tuple[int, int, bytes]   # ts, cpu, payload
_R = TypeVar("_R", PageRecord, CopiedRecord)


def merged_records(rb: RingBuffer, cpus: list[int]) -> list[PageRecord]:
    """All records of ``cpus`` in timestamp order (non-consuming; trace_find_next_entry).

    trace_find_next_entry() takes the oldest head, the lowest CPU on a tie: a stable
    sort of the CPUs' records concatenated in CPU order, as long as every CPU's time
    stamps only go forward (otherwise the heads are merged as the kernel does)."""
    per_cpu: list[list[PageRecord]] = []
    monotonic = True
    for cpu in cpus:
        recs: list[PageRecord] = []
        monotonic = rb.read_records(cpu, recs) and monotonic
        per_cpu.append(recs)
    return _merge(per_cpu, monotonic)


def merged_copies(rb: RingBuffer, cpus: list[int]) -> Iterable[CopiedRecord]:
    """``merged_records`` with each payload copied out, ``(ts, cpu, payload)``: while a
    single CPU has records they are walked as they are, without an object per record."""
    copies: list[tuple[int, CopiedRecords]] = []
    monotonic = True
    for cpu in cpus:
        c = CopiedRecords()
        monotonic = rb.read_records(cpu, c) and monotonic
        if c.ts:
            copies.append((cpu, c))
    if len(copies) == 1:
        cpu, c = copies[0]
        return zip(c.ts, repeat(cpu), c.payloads)
    return _merge([list(zip(c.ts, repeat(cpu), c.payloads)) for cpu, c in copies], monotonic)


def _merge(per_cpu: list[list[_R]], monotonic: bool) -> list[_R]:
    if len(per_cpu) == 1:
        return per_cpu[0]
    if not monotonic:
        return list(heapq.merge(*per_cpu, key=itemgetter(0)))
    merged = [rec for recs in per_cpu for rec in recs]
    merged.sort(key=itemgetter(0))
    return merged


def render_records(out: TraceOutput, tr: TraceArray, rb: RingBuffer, cpus: list[int],
                   annotate: bool = False) -> list[bytes]:
    """The text of the records of ``cpus`` in ``rb``, in fragments of lines (the common
    case) or lines, encoded."""
    it = TraceIter(tr)
    slow = (ITER_BIN | ITER_HEX | ITER_RAW | ITER_LATENCY_FMT | ITER_PRINTK_MSGONLY)
    if not tr.flags & slow and tr.flags & ITER_CONTEXT_INFO and tr.current_trace.print_line is None:
        text: list[bytes] = []
        _render_plain(out, it, merged_copies(rb, cpus), text, annotate)
        return text
    # a tracer's own lines (the graph tracer's look-ahead) find records in their pages
    return [_encode(t) for t in _render_lines(out, it, merged_records(rb, cpus), annotate)]


def _encode(text: str | bytes) -> bytes:
    return text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text


def _render_lines(out: TraceOutput, it: TraceIter, records: Iterable[PageRecord],
                  annotate: bool) -> Iterator[str | bytes]:
    """Render records one line group at a time; lat-format needs the next timestamp."""
    tr = it.tr

    lat = bool(tr.flags & ITER_LATENCY_FMT)
    pending: PageRecord | None = None
    started: set[int] = set()

    def emit(rec: PageRecord, next_ts: int | None) -> str | bytes:
        it.ts, it.cpu, it.buf, it.off, it.size = rec
        it.idx += 1
        text = out.print_line(it, next_ts)
        if annotate and rec[1] not in started:
            started.add(rec[1])
            if it.idx > 1 and isinstance(text, str):
                text = f"##### CPU {rec[1]} buffer started ####\n" + text
        return text

    for rec in records:
        if lat:
            if pending is not None:
                yield emit(pending, rec[0])
            pending = rec
        else:
            yield emit(rec, None)
    if pending is not None:
        yield emit(pending, pending[0])


_HDR_LEN = 8        # the entry header: type, flags, preempt count, pid
_FN_LEN = 24        # a function entry: the header, ip, parent_ip


_USEC3 = tuple(f"{n:03d}".encode() for n in range(1000))  # the microseconds, three digits at a time


def _render_plain(out: TraceOutput, it: TraceIter, records: Iterable[CopiedRecord],
                  text: list[bytes], annotate: bool = False) -> None:
    """The common case of print_trace_line() (context info, no raw/hex/bin/latency, the
    tracer prints no lines of its own), without its per-line option checks; appends the
    encoded text to ``text`` in fragments (the ``trace`` file joins them).

    Per rendering pass (saved comms change as tasks run) the context columns are kept per
    entry header and CPU, and a function record's whole text around the time stamp per
    record (header, ip and parent: its payload) and CPU; the seconds and milliseconds
    once per millisecond.  ``annotate``: mark where each CPU's records start (some were
    overwritten)."""
    printers = out.printers
    fn_printer = printers.get(TRACE_FN)
    prefix = out.context_prefix
    nr = it.kernel.nr_cpus
    fn_cache: list[dict[bytes, tuple[bytes, bytes]]] = [{} for _ in range(nr)]
    ctx_cache: list[dict[bytes, bytes]] = [{} for _ in range(nr)]
    fn_body: dict[bytes, bytes] = {}
    fn_get = [c.get for c in fn_cache]
    in_ns = it.in_ns
    ms_start = ms_end = 0   # the millisecond sec_ms names: [ms_start, ms_end) in µs
    sec_ms = b""
    usec3 = _USEC3
    add = text.extend
    started = [False] * nr if annotate else None
    for ts, cpu, payload in records:
        if started is not None and not started[cpu]:
            # print_trace_line()'s annotation: a CPU whose first records were lost
            started[cpu] = True
            if text:
                text.append(f"##### CPU {cpu} buffer started ####\n".encode())
        parts = fn_get[cpu](payload)      # only function records are kept there
        if parts is None:
            type_id = payload[0] | (payload[1] << 8)
            it.ts, it.cpu, it.buf, it.off, it.size = ts, cpu, payload, 0, len(payload)
            hkey = payload[:_HDR_LEN]
            if type_id == TRACE_FN and fn_printer is not None and len(payload) >= _FN_LEN:
                # a new combination of known columns and a known function is common
                pre = ctx_cache[cpu].get(hkey)
                if pre is None:
                    pre = ctx_cache[cpu][hkey] = _encode(prefix(it) + " ")
                body = fn_body.get(payload[_HDR_LEN:])
                if body is None:
                    body = fn_body[payload[_HDR_LEN:]] = _encode(": " + fn_printer.trace(it))
                parts = fn_cache[cpu][payload] = (pre, body)
            else:
                p = printers.get(type_id)
                it.idx += 1
                if p is None:
                    text.append(_encode(out.print_line(it, None)))
                    continue
                pre = ctx_cache[cpu].get(hkey)
                if pre is None:
                    pre = ctx_cache[cpu][hkey] = _encode(prefix(it) + " ")
                parts = (pre, _encode(": " + p.trace(it)))
        if in_ns:
            t = (ts + 500) // 1000
            if not ms_start <= t < ms_end:
                ms = t // 1000
                ms_start, ms_end = ms * 1000, ms * 1000 + 1000
                sec_ms = f"{ms // 1000:5d}.{ms % 1000:03d}".encode()
            add((parts[0], sec_ms, usec3[t - ms_start], parts[1]))
        else:
            add((parts[0], b"%12d" % ts, parts[1]))


# ------------------------------------------------------------------ core printers
class PrintPrinter(Printer):
    """TRACE_PRINT (trace_marker, trace_printk): ``%ps: %s`` with the stored newline."""

    def trace(self, it: TraceIter) -> str:
        return it.kernel.trace.output.sym(it.u64(8), it.flags) + ": " + it.cstr(16)

    def raw(self, it: TraceIter) -> str:
        return f"# {it.u64(8):x} {it.cstr(16)}"


class RawDataPrinter(Printer):
    """TRACE_RAW_DATA (trace_marker_raw): the id and every byte of the record."""

    def trace(self, it: TraceIter) -> str:
        rid = _U32.unpack_from(it.buf, it.off + 8)[0]
        data = bytes(it.buf[it.off + 12:it.off + it.size])
        return f"# {rid:x} buf:" + "".join(f" {b:02x}" for b in data) + "\n"

    raw = trace


class FnPrinter(Printer):
    """TRACE_FN: ``func <-parent``."""

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes, int], str] = {}

    def trace(self, it: TraceIter) -> str:
        off = it.off
        flags = it.flags & (ITER_PRINT_PARENT | ITER_SYM_OFFSET | ITER_SYM_ADDR)
        key = (bytes(it.buf[off + 8:off + 24]), flags)
        text = self._cache.get(key)
        if text is None:
            out = it.kernel.trace.output
            ip, parent = struct.unpack_from("<QQ", it.buf, off + 8)
            text = out.sym(ip, flags)
            if flags & ITER_PRINT_PARENT and parent:
                text += " <-" + out.sym(parent, flags)
            text += "\n"
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[key] = text
        return text

    def raw(self, it: TraceIter) -> str:
        ip, parent = struct.unpack_from("<QQ", it.buf, it.off + 8)
        return f"{ip:x} {parent:x}\n"

    def hex(self, it: TraceIter) -> str:
        ip, parent = struct.unpack_from("<QQ", it.buf, it.off + 8)
        return hex_field(ip, 8) + hex_field(parent, 8)

    def binary(self, it: TraceIter) -> bytes:
        return bytes(it.buf[it.off + 8:it.off + 24])


class StackPrinter(Printer):
    """TRACE_STACK: ``<stack trace>`` then `` => sym`` per caller until ULONG_MAX/0."""

    def trace(self, it: TraceIter) -> str:
        out = it.kernel.trace.output
        lines = ["<stack trace>\n"]
        # struct stack_entry: int size; unsigned long caller[] (at +8 after the entry hdr, +4 pad)
        pos = it.off + 16
        end = it.off + it.size
        while pos + 8 <= end:
            addr = _U64.unpack_from(it.buf, pos)[0]
            if addr == MASK64 or addr == 0:
                break
            if addr == FTRACE_TRAMPOLINE_MARKER:
                lines.append(" => [FTRACE TRAMPOLINE]\n")
            else:
                lines.append(" => " + out.sym(addr, it.flags) + "\n")
            pos += 8
        return "".join(lines)


class BputsPrinter(Printer):
    """TRACE_BPUTS: ``%ps: %s`` with the string stored by address (we store it inline)."""

    def trace(self, it: TraceIter) -> str:
        return it.kernel.trace.output.sym(it.u64(8), it.flags) + ": " + it.cstr(16)


def register_core_printers(out: TraceOutput) -> None:

    out.register(TRACE_FN, FnPrinter())
    out.register(TRACE_PRINT, PrintPrinter())
    out.register(TRACE_RAW_DATA, RawDataPrinter())
    out.register(TRACE_STACK, StackPrinter())
    out.register(TRACE_BPUTS, BputsPrinter())
