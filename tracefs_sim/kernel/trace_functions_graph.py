"""The ``function_graph`` tracer (kernel/trace/trace_functions_graph.c, Linux 6.12).

Recording: every trace array (top level and each instance) owns an ``FgraphOps``
(``tr.gops``, as ``tr->gops``) whose ftrace_ops shares the array's own filter
hashes (``fgraph.init_ops(gops, tr.ops)``), so set_ftrace_filter/notrace and
set_ftrace_pid of that array select the functions.  ``init`` registers it with the
fgraph core; its entry callback applies set_graph_notrace, the pid lists,
set_graph_function (the per-task ``TRACE_GRAPH_FL`` bit and its 2-bit depth),
max_graph_depth, funcgraph-irqs and tracing_thresh, then writes a TRACE_GRAPH_ENT
record; the return callback writes TRACE_GRAPH_RET (with tracing_thresh, only returns
that took at least that long, and no entries at all).

Records (Debian 6.12: no CONFIG_FUNCTION_GRAPH_RETVAL, packed):
``funcgraph_entry`` (11) = trace_entry + func u64 @8 + depth int @16 (20 bytes);
``funcgraph_exit`` (10) = trace_entry + func @8, depth @16, overrun u32 @20,
calltime u64 @24, rettime u64 @32 (40 bytes).

Printing follows print_graph_function_flags(): an entry immediately followed (same
CPU) by its own return from the same task is a leaf ``func();`` with the duration,
and the return record is then skipped; otherwise ``func() {`` and later ``}``.  The
kernel's per-open ``fgraph_data`` (last pid per CPU for the context-switch banner,
depth for comment indentation, entry funcs for ``} /* func */``, irq depth) is kept
per ``TraceIter`` here (see ``_IterStates``), and the look-ahead walks the CPU's ring
buffer with ``iter_cpu`` (the kernel peeks with ring_buffer_iter_peek / consume+peek).

Tracer options are read from the printed array's ``tracer_flags`` (the kernel keeps
one ``tracer_flags.val`` for all arrays).
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .fgraph import FgraphEnt, FgraphOps, FgraphRet
from .sched import TRACE_FLAG_HARDIRQ
from .trace import Tracer
from .trace_flags import (
    ITER_CONTEXT_INFO,
    ITER_LATENCY_FMT,
    TRACE_BPRINT,
    TRACE_BPUTS,
    TRACE_FN,
    TRACE_GRAPH_ENT,
    TRACE_GRAPH_RET,
    TRACE_PRINT,
    TRACE_STACK,
)
from .trace_output import Printer, TraceIter, find_mark

if TYPE_CHECKING:
    from .core import Kernel
    from .fgraph import Fgraph
    from .ftrace import Ftrace
    from .ring_buffer import RingBuffer
    from .sched import Task
    from .trace import TraceArray

# ---------------------------------------------------------------- trace.h constants
TRACE_GRAPH_PRINT_OVERRUN = 0x1
TRACE_GRAPH_PRINT_CPU = 0x2
TRACE_GRAPH_PRINT_OVERHEAD = 0x4
TRACE_GRAPH_PRINT_PROC = 0x8
TRACE_GRAPH_PRINT_DURATION = 0x10
TRACE_GRAPH_PRINT_ABS_TIME = 0x20
TRACE_GRAPH_PRINT_REL_TIME = 0x40
TRACE_GRAPH_PRINT_IRQS = 0x80
TRACE_GRAPH_PRINT_TAIL = 0x100
TRACE_GRAPH_SLEEP_TIME = 0x200
TRACE_GRAPH_GRAPH_TIME = 0x400
TRACE_GRAPH_PRINT_FILL_SHIFT = 28
TRACE_GRAPH_PRINT_FILL_MASK = 0x3 << TRACE_GRAPH_PRINT_FILL_SHIFT
FLAGS_FILL_FULL = 1 << TRACE_GRAPH_PRINT_FILL_SHIFT
FLAGS_FILL_START = 2 << TRACE_GRAPH_PRINT_FILL_SHIFT
FLAGS_FILL_END = 3 << TRACE_GRAPH_PRINT_FILL_SHIFT

# the tracer's options in trace_opts[] order, with their bits and defaults
OPTIONS: tuple[tuple[str, int, bool], ...] = (
    ("funcgraph-overrun", TRACE_GRAPH_PRINT_OVERRUN, False),
    ("funcgraph-cpu", TRACE_GRAPH_PRINT_CPU, True),
    ("funcgraph-overhead", TRACE_GRAPH_PRINT_OVERHEAD, True),
    ("funcgraph-proc", TRACE_GRAPH_PRINT_PROC, False),
    ("funcgraph-duration", TRACE_GRAPH_PRINT_DURATION, True),
    ("funcgraph-abstime", TRACE_GRAPH_PRINT_ABS_TIME, False),
    ("funcgraph-irqs", TRACE_GRAPH_PRINT_IRQS, True),
    ("funcgraph-tail", TRACE_GRAPH_PRINT_TAIL, False),
    ("sleep-time", TRACE_GRAPH_SLEEP_TIME, True),
)
# graph-time has no option file without CONFIG_FUNCTION_PROFILER's option, but is set
ALWAYS_FLAGS = TRACE_GRAPH_GRAPH_TIME

# per-task variable bits (trace.h enum)
TRACE_GRAPH_FL = 1
TRACE_GRAPH_DEPTH_START_BIT = 1
TRACE_GRAPH_NOTRACE = 1 << 3
TRACE_IRQ_BIT = 16  # trace_recursion.h: "abuse" bit for set_graph_function in hardirq

FTRACE_RETFUNC_DEPTH = 50
TRACE_GRAPH_INDENT = 2
TRACE_GRAPH_PROCINFO_LENGTH = 14

_ENT = struct.Struct("<Qi")  # ftrace_graph_ent: func, depth (packed)
_RET = struct.Struct("<QiIQQ")  # ftrace_graph_ret: func, depth, overrun, calltime, rettime
ENT_SIZE = 8 + _ENT.size  # 20
RET_SIZE = 8 + _RET.size  # 40
_I32 = struct.Struct("<i")
_U64_MASK = (1 << 64) - 1

_Rec = tuple[int, bytearray, int, int]  # ring_buffer.iter_cpu(): ts, page, offset, length
_Version = tuple[int, ...]  # what changes a CPU buffer: a cached look-ahead walk is stale

_FILL_FULL_TEXT = "              |  "
_BANNER = " ------------------------------------------\n"


# ------------------------------------------------------------------ pure formatters
def graph_duration(duration: int) -> str:
    """trace_print_graph_duration(): ``usecs[.nsecs] us`` padded to the column.

    At most 7 digits: the fraction shrinks as the integer part grows, and vanishes
    from 7 integer digits on.
    """
    usecs, nsecs_rem = divmod(duration & _U64_MASK, 1000)
    us = str(usecs)
    n = len(us)
    s = us
    if n < 7:
        frac = f"{nsecs_rem:03d}"[:min(5, 8 - n) - 1]
        s += "." + frac
        n += len(frac) + 1
    return s + " us " + " " * max(0, 8 - n)


def graph_proc(comm: str, pid: int) -> str:
    """print_graph_proc(): ``comm-pid`` (comm cut to 7) centred in 14 columns."""
    text = f"{comm[:7]}-{pid}"
    spaces = TRACE_GRAPH_PROCINFO_LENGTH - len(text) if len(text) < TRACE_GRAPH_PROCINFO_LENGTH else 0
    return " " * (spaces // 2) + text + " " * (spaces - spaces // 2)


# the header's columns in order: (flag, caption, underline, width in the latency
# banner's indent); _HEADER_LAT stands for the latency-format column
_HEADER_LAT = 1 << 32
_HEADER_COLUMNS = (
    (TRACE_GRAPH_PRINT_ABS_TIME, "     TIME       ", "      |         ", 16),
    (TRACE_GRAPH_PRINT_REL_TIME, "   REL TIME     ", "      |         ", 16),
    (TRACE_GRAPH_PRINT_CPU, " CPU", " |  ", 4),
    (TRACE_GRAPH_PRINT_PROC, "  TASK/PID       ", "   |    |        ", 17),
    (_HEADER_LAT, "||||   ", "||||   ", 0),
    (TRACE_GRAPH_PRINT_DURATION, "  DURATION   ", "   |   |      ", 0),
)
_LAT_BANNER = ("  _-----=> irqs-off        ", " / _----=> need-resched    ",
               "| / _---=> hardirq/softirq ", "|| / _--=> preempt-depth   ",
               "||| /                      ")


def graph_headers(flags: int, lat: bool) -> str:
    """__print_graph_headers_flags(): the column captions (two or seven lines)."""
    if lat:
        flags |= _HEADER_LAT
    cols = [col for col in _HEADER_COLUMNS if flags & col[0]]
    out = []
    if lat:
        # print_lat_header(): "%.*s" of a 37-space string
        pad = " " * min(sum(col[3] for col in cols), 16 + 4 + 17)
        out.extend(f"#{pad}{line}\n" for line in _LAT_BANNER)
    out.append("#" + "".join(col[1] for col in cols) + "               FUNCTION CALLS\n")
    out.append("#" + "".join(col[2] for col in cols) + "               |   |   |   |\n")
    return "".join(out)


# ------------------------------------------------------------------ iterator state
class _CpuData:
    """struct fgraph_cpu_data."""

    __slots__ = ("last_pid", "depth", "depth_irq", "enter_funcs")

    def __init__(self) -> None:
        self.last_pid = -1
        self.depth = 0
        self.depth_irq = -1
        self.enter_funcs = [0] * FTRACE_RETFUNC_DEPTH


class _Look:
    """A cached non-consuming walk of one CPU's buffer, for the leaf look-ahead."""

    __slots__ = ("rb", "gen", "last", "ver")

    def __init__(self, rb: RingBuffer, gen: Iterator[_Rec], ver: _Version) -> None:
        self.rb = rb
        self.gen = gen
        self.last: _Rec | None = None
        self.ver = ver


class _GraphData:
    """struct fgraph_data of one open trace/trace_pipe: per-CPU state, the return
    records already shown as part of a leaf, and the look-ahead walks."""

    __slots__ = ("cpu", "skip", "look")

    def __init__(self, nr_cpus: int) -> None:
        self.cpu = [_CpuData() for _ in range(nr_cpus)]
        self.skip: set[tuple[int, int, int, int]] = set()
        self.look: dict[int, _Look] = {}


class _IterStates:
    """graph_trace_open()'s iter->private, keyed by the iterator object.

    ``TraceIter`` has no private slot: states are held (with the iterator, so its id
    stays unique) for the most recent iterators; a fresh pass (``it.idx == 1``)
    starts from a fresh state, as a new open does.
    """

    MAX = 16

    def __init__(self) -> None:
        self._d: OrderedDict[int, tuple[TraceIter, _GraphData]] = OrderedDict()

    def get(self, it: TraceIter, nr_cpus: int) -> _GraphData:
        key = id(it)
        ent = self._d.get(key)
        if ent is None or ent[0] is not it or it.idx <= 1 or len(ent[1].cpu) != nr_cpus:
            data = _GraphData(nr_cpus)
            self._d[key] = (it, data)
            self._d.move_to_end(key)
            while len(self._d) > self.MAX:
                self._d.popitem(last=False)
            return data
        self._d.move_to_end(key)
        return ent[1]


def _cpu_version(rb: RingBuffer, cpu: int) -> _Version:
    cb = rb.cpu_buffers[cpu]
    return (id(cb), cb.entries, cb.read, cb.overrun, cb.write, cb.tail_idx, cb.head, id(cb.reader))


def _owns_page(rb: RingBuffer, cpu: int, buf: bytes | bytearray) -> bool:
    cb = rb.cpu_buffers[cpu]
    if cb.reader.data is buf:
        return True
    return any(p.data is buf for p in cb.ring)


# ------------------------------------------------------------------ the tracer
class GraphTracer:
    """trace_functions_graph.c for one kernel."""

    def __init__(self, kernel: Kernel, ftrace: Ftrace, fgraph: Fgraph) -> None:
        self.k = kernel
        self.ft = ftrace
        self.fg = fgraph
        self.skip_irqs = False  # ftrace_graph_skip_irqs
        self.states = _IterStates()
        self._irq_range: tuple[int, int] | None = None
        self._sym_cache: dict[int, str] = {}

    # ------------------------------------------------------------------ per-array ops
    def alloc_gops(self, tr: TraceArray) -> FgraphOps:
        """allocate_fgraph_ops() / init_array_fgraph_ops(): share tr.ops' hashes."""
        gops = tr.gops
        if gops is not None:
            return gops
        gops = FgraphOps(self.trace_graph_entry, self.trace_graph_return, private=tr)
        self.fg.init_ops(gops, tr.ops)
        tr.gops = gops
        return gops

    def instance_create(self, tr: TraceArray) -> None:
        self.alloc_gops(tr)

    def instance_destroy(self, tr: TraceArray) -> None:
        """free_fgraph_ops() (the tracer was reset by the rmdir before)."""
        gops, tr.gops = tr.gops, None
        if gops is not None:
            self.fg.unregister_ftrace_graph(gops)

    # ------------------------------------------------------------------ recording
    def _in_hardirq(self) -> bool:
        return bool(self.k.sched.irq_flags & TRACE_FLAG_HARDIRQ)

    def trace_graph_entry(self, trace: FgraphEnt, gops: FgraphOps) -> bool:
        """trace_graph_entry(): True hooks the return."""
        fg = self.fg
        task = self.k.sched.current
        tv = fg.get_task_var(gops, task)
        if tv & TRACE_GRAPH_NOTRACE:
            return False
        if fg.graph_notrace_addr(trace.func):
            # set_graph_notrace: hook the return only to clear the bit again
            fg.set_task_var(gops, tv | TRACE_GRAPH_NOTRACE, task)
            return True
        tr = gops.private
        if not self.ft.pid.trace_task(tr, task):
            return False
        if self._ignore_func(gops, task, tv, trace):
            return False
        if self.skip_irqs and not task.trace_recursion & (1 << TRACE_IRQ_BIT) and self._in_hardirq():
            return False  # ftrace_graph_ignore_irqs()
        if self.k.trace.tracing_thresh:
            return True  # only the returns are recorded
        cpu = self.k.sched.cpu
        off = tr.event_reserve(cpu, TRACE_GRAPH_ENT, ENT_SIZE)
        if off < 0:
            return False
        _ENT.pack_into(tr.event_buf(cpu), off + 8, trace.func & _U64_MASK, trace.depth)
        tr.event_commit(cpu)
        return True

    def _ignore_func(self, gops: FgraphOps, task: Task, tv: int, trace: FgraphEnt) -> bool:
        """ftrace_graph_ignore_func() with ftrace_graph_addr() inlined."""
        if not tv & TRACE_GRAPH_FL:
            h = self.fg.graph_hash
            if not h.empty():
                i = self.ft.records.ip_to_index(trace.func)
                if i is None or i not in h.ents:
                    return True
                # inside a set_graph_function function until it returns (2-bit depth)
                tv = (tv | TRACE_GRAPH_FL) & ~(3 << TRACE_GRAPH_DEPTH_START_BIT)
                tv |= (trace.depth & 3) << TRACE_GRAPH_DEPTH_START_BIT
                self.fg.set_task_var(gops, tv, task)
                if self._in_hardirq():
                    task.trace_recursion |= 1 << TRACE_IRQ_BIT
                else:
                    task.trace_recursion &= ~(1 << TRACE_IRQ_BIT)
        max_depth = self.fg.max_depth
        return trace.depth < 0 or bool(max_depth and trace.depth >= max_depth)

    def trace_graph_return(self, trace: FgraphRet, gops: FgraphOps) -> None:
        """trace_graph_return() / trace_graph_thresh_return() (the kernel picks one at
        init and re-inits when tracing_thresh is written; checking it here is the same)."""
        fg = self.fg
        task = self.k.sched.current
        tv = fg.get_task_var(gops, task)
        if tv & TRACE_GRAPH_FL and trace.depth == (tv >> TRACE_GRAPH_DEPTH_START_BIT) & 3:
            tv &= ~TRACE_GRAPH_FL  # ftrace_graph_addr_finish()
            fg.set_task_var(gops, tv, task)
        if tv & TRACE_GRAPH_NOTRACE:
            fg.set_task_var(gops, tv & ~TRACE_GRAPH_NOTRACE, task)
            return
        thresh = self.k.trace.tracing_thresh
        if thresh and trace.rettime - trace.calltime < thresh:
            return
        tr = gops.private
        cpu = self.k.sched.cpu
        off = tr.event_reserve(cpu, TRACE_GRAPH_RET, RET_SIZE)
        if off < 0:
            return
        _RET.pack_into(tr.event_buf(cpu), off + 8, trace.func & _U64_MASK, trace.depth,
                       trace.overrun & 0xFFFFFFFF, trace.calltime & _U64_MASK,
                       trace.rettime & _U64_MASK)
        tr.event_commit(cpu)

    # ------------------------------------------------------------------ tracer hooks
    def init(self, tr: TraceArray) -> None:
        """graph_trace_init(): register the array's gops (ENOSPC past 16 users)."""
        gops = self.alloc_gops(tr)
        gops.entryfunc = self.trace_graph_entry
        gops.retfunc = self.trace_graph_return
        # the kernel applies these options when they are written, whatever the tracer
        self.skip_irqs = not tr.tracer_opt("funcgraph-irqs")
        self.fg.sleep_time = tr.tracer_opt("sleep-time")
        self.fg.register_ftrace_graph(gops)
        self.k.trace.cmdline_ref += 1  # tracing_start_cmdline_record()

    def reset(self, tr: TraceArray) -> None:
        """graph_trace_reset()."""
        tracing = self.k.trace
        if tracing.cmdline_ref:
            tracing.cmdline_ref -= 1
        gops = tr.gops
        if gops is not None:
            self.fg.unregister_ftrace_graph(gops)

    def set_flag(self, tr: TraceArray, name: str, value: bool) -> bool:
        """func_graph_set_flag()."""
        if name == "funcgraph-irqs":
            self.skip_irqs = not value
        elif name == "sleep-time":
            self.fg.sleep_time = value
        return True

    # ------------------------------------------------------------------ output helpers
    @staticmethod
    def graph_flags(tr: TraceArray) -> int:
        """tracer_flags.val of the array being printed."""
        flags = ALWAYS_FLAGS
        get = tr.tracer_flags.get
        for name, bit, default in OPTIONS:
            if get(name, default):
                flags |= bit
        return flags

    def _ps(self, addr: int) -> str:
        s = self._sym_cache.get(addr)
        if s is None:
            if len(self._sym_cache) > 100_000:
                self._sym_cache.clear()
            s = self._sym_cache[addr] = self.k.kallsyms.format_ps(addr)
        return s

    def _in_irqentry(self, addr: int) -> bool:
        """Is addr in [__irqentry_text_start, __irqentry_text_end)?  On x86_64 6.12 only
        the asm_* entry stubs live there, none traceable: the markers never show."""
        rng = self._irq_range
        if rng is None:
            ks = self.k.kallsyms
            rng = self._irq_range = (ks.addr_of("__irqentry_text_start") or 0,
                                     ks.addr_of("__irqentry_text_end") or 0)
        return rng[0] <= addr < rng[1]

    def _cpu_col(self, cpu: int) -> str:
        """print_graph_cpu(): `` %*d) `` with the width of the highest CPU number."""
        width = len(str(max(self.k.nr_cpus - 1, 0)))
        return f" {cpu:>{width}d}) "

    def _proc(self, pid: int) -> str:
        return graph_proc(self.k.trace.find_cmdline(pid), pid)

    @staticmethod
    def _duration(it: TraceIter, duration: int, flags: int) -> str:
        """print_graph_duration()."""
        if not flags & TRACE_GRAPH_PRINT_DURATION or not it.flags & ITER_CONTEXT_INFO:
            return ""
        fill = flags & TRACE_GRAPH_PRINT_FILL_MASK
        if fill == FLAGS_FILL_FULL:
            return _FILL_FULL_TEXT
        if fill == FLAGS_FILL_START:
            return "  "
        if fill == FLAGS_FILL_END:
            return " |"
        mark = find_mark(duration) + " " if flags & TRACE_GRAPH_PRINT_OVERHEAD else "  "
        return mark + graph_duration(duration) + "|  "

    def _columns(self, it: TraceIter, pid: int, flags: int) -> str:
        """The context columns of print_graph_prologue()/print_graph_irq()."""
        s = ""
        if flags & TRACE_GRAPH_PRINT_ABS_TIME:
            secs, rem = divmod(it.ts, 1_000_000_000)
            s += f"{secs:5d}.{rem // 1000:06d} |  "
        if flags & TRACE_GRAPH_PRINT_REL_TIME:
            usecs = max(it.ts - it.tr.time_start, 0) // 1000
            s += f"{usecs:9d} us |  "
        if flags & TRACE_GRAPH_PRINT_CPU:
            s += self._cpu_col(it.cpu)
        if flags & TRACE_GRAPH_PRINT_PROC:
            s += self._proc(pid) + " | "
        if it.flags & ITER_LATENCY_FMT:
            _t, eflags, preempt, _pid = it.entry()
            s += " " + self.k.trace.output.lat_fmt(eflags, preempt) + " | "
        return s

    def _irq(self, it: TraceIter, addr: int, typ: int, pid: int, flags: int) -> str:
        """print_graph_irq(): ``==========>`` / ``<==========`` around irq entry code."""
        if not self._in_irqentry(addr):
            return ""
        s = self._columns(it, pid, flags) if it.flags & ITER_CONTEXT_INFO else ""
        s += self._duration(it, 0, flags | FLAGS_FILL_START)
        s += "==========>" if typ == TRACE_GRAPH_ENT else "<=========="
        return s + self._duration(it, 0, flags | FLAGS_FILL_END) + "\n"

    def _verif_pid(self, it: TraceIter, pid: int, cd: _CpuData | None) -> str:
        """verif_pid(): the banner when the task changed on this CPU."""
        if cd is None or cd.last_pid == pid:
            return ""
        prev = cd.last_pid
        cd.last_pid = pid
        if prev == -1:
            return ""
        return (_BANNER + self._cpu_col(it.cpu) + self._proc(prev) + " => " + self._proc(pid)
                + "\n" + _BANNER + "\n")

    def _prologue(self, it: TraceIter, cd: _CpuData | None, flags: int, typ: int = 0,
                  addr: int = 0) -> str:
        """print_graph_prologue()."""
        pid = it.pid
        s = self._verif_pid(it, pid, cd)
        if typ:
            s += self._irq(it, addr, typ, pid, flags)
        if not it.flags & ITER_CONTEXT_INFO:
            return s
        return s + self._columns(it, pid, flags)

    # ------------------------------------------------------------------ look-ahead
    def _next_on_cpu(self, it: TraceIter, data: _GraphData) -> _Rec | None:
        """The record after ``it``'s on the same CPU (ring_buffer_iter_peek), or None."""
        cpu, buf, off, ts = it.cpu, it.buf, it.off, it.ts
        look = data.look.get(cpu)
        if look is not None and look.ver == _cpu_version(look.rb, cpu):
            last = look.last
            if last is not None and last[1] is buf and last[2] == off and last[0] == ts:
                nxt = next(look.gen, None)
                look.last = nxt
                return nxt
            for rec in look.gen:
                if rec[1] is buf and rec[2] == off and rec[0] == ts:
                    nxt = next(look.gen, None)
                    look.last = nxt
                    return nxt
        data.look.pop(cpu, None)
        tr = it.tr
        for rb in (tr.buffer, tr.max_buffer):
            if rb is None or cpu >= len(rb.cpu_buffers) or not _owns_page(rb, cpu, buf):
                continue
            gen = rb.iter_cpu(cpu)
            for rec in gen:
                if rec[1] is buf and rec[2] == off and rec[0] == ts:
                    look = _Look(rb, gen, _cpu_version(rb, cpu))
                    look.last = next(gen, None)
                    data.look[cpu] = look
                    return look.last
        return None

    def _leaf_return(self, it: TraceIter, data: _GraphData, func: int) -> tuple[int, ...] | None:
        """get_return_for_leaf(): the matching return record right after the entry."""
        nxt = self._next_on_cpu(it, data)
        if nxt is None:
            return None
        ts, buf, off, _size = nxt
        if buf[off] | (buf[off + 1] << 8) != TRACE_GRAPH_RET:
            return None
        if _I32.unpack_from(buf, off + 4)[0] != it.pid:
            return None
        ret = _RET.unpack_from(buf, off + 8)
        if ret[0] != func:
            return None
        data.skip.add((it.cpu, ts, off, id(buf)))  # ring_buffer_iter_advance()
        return ret

    # ------------------------------------------------------------------ printing
    def print_line(self, it: TraceIter) -> str | None:
        """print_graph_function(): the tracer's print_line (None = not handled)."""
        data = self.states.get(it, self.k.nr_cpus)
        return self.print_graph_function(it, self.graph_flags(it.tr), data)

    def print_graph_function(self, it: TraceIter, flags: int, data: _GraphData | None) -> str | None:
        """print_graph_function_flags(); ``data`` None is the plain event printer's case
        (no open state: no banners, irq filtering, or leaf look-ahead)."""
        if data is not None and data.skip:
            key = (it.cpu, it.ts, it.off, id(it.buf))
            if key in data.skip:
                data.skip.discard(key)
                return ""  # the return of a leaf already printed
        typ = it.type
        if typ == TRACE_GRAPH_ENT:
            return self._print_entry(it, flags, data)
        if typ == TRACE_GRAPH_RET:
            return self._print_return(it, flags, data)
        if typ in (TRACE_STACK, TRACE_FN):
            return None  # not as comments: the normal output
        return self._print_comment(it, flags, data)

    def _print_entry(self, it: TraceIter, flags: int, data: _GraphData | None) -> str:
        """print_graph_entry()."""
        func, depth = _ENT.unpack_from(it.buf, it.off + 8)
        cd = data.cpu[it.cpu] if data is not None else None
        if cd is not None and not flags & TRACE_GRAPH_PRINT_IRQS:  # check_irq_entry()
            if cd.depth_irq >= 0:
                return ""
            if self._in_irqentry(func):
                cd.depth_irq = depth
                return ""
        s = self._prologue(it, cd, flags, TRACE_GRAPH_ENT, func)
        ret = self._leaf_return(it, data, func) if data is not None else None
        indent = " " * (depth * TRACE_GRAPH_INDENT) if depth > 0 else ""
        if ret is not None:
            # print_graph_entry_leaf()
            rfunc, _rdepth, _overrun, calltime, rettime = ret
            if cd is not None:
                cd.depth = depth - 1
                if 0 <= depth < FTRACE_RETFUNC_DEPTH:
                    cd.enter_funcs[depth] = 0
            s += self._duration(it, (rettime - calltime) & _U64_MASK, flags)
            s += indent + self._ps(func) + "();\n"
            return s + self._irq(it, rfunc, TRACE_GRAPH_RET, it.pid, flags)
        # print_graph_entry_nested()
        if cd is not None:
            cd.depth = depth
            if 0 <= depth < FTRACE_RETFUNC_DEPTH:
                cd.enter_funcs[depth] = func
        s += self._duration(it, 0, flags | FLAGS_FILL_FULL)
        return s + indent + self._ps(func) + "() {\n"

    def _print_return(self, it: TraceIter, flags: int, data: _GraphData | None) -> str:
        """print_graph_return()."""
        func, depth, overrun, calltime, rettime = _RET.unpack_from(it.buf, it.off + 8)
        cd = data.cpu[it.cpu] if data is not None else None
        if cd is not None and not flags & TRACE_GRAPH_PRINT_IRQS and cd.depth_irq != -1:
            # check_irq_return(): inside irq code; leaving it at the entry depth
            if cd.depth_irq >= depth:
                cd.depth_irq = -1
            return ""
        func_match = True
        if cd is not None:
            cd.depth = depth - 1
            if 0 <= depth < FTRACE_RETFUNC_DEPTH:
                func_match = cd.enter_funcs[depth] == func
                cd.enter_funcs[depth] = 0
        s = self._prologue(it, cd, flags)
        s += self._duration(it, (rettime - calltime) & _U64_MASK, flags)
        s += " " * (depth * TRACE_GRAPH_INDENT) if depth > 0 else ""
        if func_match and not flags & TRACE_GRAPH_PRINT_TAIL:
            s += "}\n"
        else:
            s += "} /* " + self._ps(func) + " */\n"
        if flags & TRACE_GRAPH_PRINT_OVERRUN:
            s += f" (Overruns: {overrun})\n"
        return s + self._irq(it, func, TRACE_GRAPH_RET, it.pid, flags)

    def _print_comment(self, it: TraceIter, flags: int, data: _GraphData | None) -> str | None:
        """print_graph_comment(): other records as ``/* ... */`` at the current depth."""
        typ = it.type
        if typ in (TRACE_PRINT, TRACE_BPUTS):
            msg: str | None = it.cstr(16)  # trace_print_{printk,bputs}_msg_only()
        else:
            printer = self.k.trace.output.printers.get(typ)
            if printer is None:
                return None
            msg = printer.trace(it)
            if typ == TRACE_BPRINT:
                msg = msg.partition(": ")[2]
        cd = data.cpu[it.cpu] if data is not None else None
        depth = cd.depth if cd is not None else 0
        s = self._prologue(it, cd, flags)
        s += self._duration(it, 0, flags | FLAGS_FILL_FULL)
        if depth > 0:
            s += " " * ((depth + 1) * TRACE_GRAPH_INDENT)
        if msg.endswith("\n"):
            msg = msg[:-1]
        return s + "/* " + msg + " */\n"

    def print_header(self, tr: TraceArray) -> str:
        """print_graph_headers(): after ``# tracer: function_graph\\n#\\n``."""
        if not tr.flags & ITER_CONTEXT_INFO:
            return ""
        lat = bool(tr.flags & ITER_LATENCY_FMT)
        s = ""
        if lat:
            rb = tr.buffer
            cpus = range(tr.tracing.nr_cpus)
            if all(rb.empty(c) for c in cpus):
                return ""
            entries = sum(rb.entries(c) for c in cpus)
            total = entries + sum(rb.overrun(c) for c in cpus)
            s = self.k.trace.output.latency_header(tr, entries, total, 0)
        return s + graph_headers(self.graph_flags(tr), lat)


class GraphEventPrinter(Printer):
    """graph_trace_{entry,ret}_event: print_graph_function() for any tracer; the other
    renderings are trace_nop_print (``type: N``)."""

    def __init__(self, graph: GraphTracer) -> None:
        self.graph = graph

    def trace(self, it: TraceIter) -> str:
        text = self.graph.print_graph_function(it, GraphTracer.graph_flags(it.tr), None)
        return text if text is not None else ""

    def raw(self, it: TraceIter) -> str:
        return f"type: {it.type}\n"

    def hex(self, it: TraceIter) -> str:
        return f"type: {it.type}\n"

    def binary(self, it: TraceIter) -> bytes:
        return f"type: {it.type}\n".encode()


def boot(kernel: Kernel) -> GraphTracer:
    """init_graph_trace(): the graph events' printers and the function_graph tracer."""
    ft = kernel.ftrace
    fg = kernel.fgraph
    tracing = kernel.trace
    g = GraphTracer(kernel, ft, fg)
    printer = GraphEventPrinter(g)
    tracing.output.register(TRACE_GRAPH_ENT, printer)
    tracing.output.register(TRACE_GRAPH_RET, printer)
    for tr in tracing.all_arrays():
        g.alloc_gops(tr)
    tracing.instance_hooks.append((g.instance_create, g.instance_destroy))
    options = tuple((name, default) for name, _bit, default in OPTIONS)
    tracing.register_tracer(Tracer("function_graph", options, init=g.init, reset=g.reset,
                                   allow_instances=True, print_header=g.print_header,
                                   print_line=g.print_line, set_flag=g.set_flag))
    return g
