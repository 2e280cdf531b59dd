"""The tracing core (kernel/trace/trace.c): trace arrays, tracers, options, error_log.

A ``TraceArray`` is the top-level tracing directory or one ``instances/NAME``: its
ring buffer (and snapshot buffer), options, clock, tracer, cpumask and error log.
``Tracing`` owns the global pieces: the instance list, the tracer registry, the
saved cmdlines/tgids and the output printers.

Writers fill records through ``event_reserve``/``event_buf``/``event_commit``; the
ring buffer never interprets them, ``trace_output`` does.
"""

from __future__ import annotations

import errno
import gc
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .clock import TraceClock
from .errors import KernelError
from .ftrace import TrFtraceState
from .kconfig import IS_ENABLED
from .lib import strim
from .ring_buffer import RingBuffer
from .sched import TASK_COMM_LEN, TRACE_FLAG_NMI, Task
from .trace_output import TraceIter, TraceOutput, render_records

if TYPE_CHECKING:
    from .core import Kernel
    from .fgraph import FgraphOps
    from .ftrace import FtraceOps
    from .trace_events import EventFile, InstanceEvents

from .trace_flags import (  # noqa: F401  (re-exported for users of .trace)
    _B,
    DEFAULT_FLAGS,
    ITER_ANNOTATE,
    ITER_BIN,
    ITER_BLOCK,
    ITER_CONTEXT_INFO,
    ITER_DISPLAY_GRAPH,
    ITER_EVENT_FORK,
    ITER_FIELDS,
    ITER_FUNC_FORK,
    ITER_FUNCTION,
    ITER_HASH_PTR,
    ITER_HEX,
    ITER_IRQ_INFO,
    ITER_LATENCY_FMT,
    ITER_MARKERS,
    ITER_OVERWRITE,
    ITER_PAUSE_ON_TRACE,
    ITER_PRINT_PARENT,
    ITER_PRINTK,
    ITER_PRINTK_MSGONLY,
    ITER_RAW,
    ITER_RECORD_CMD,
    ITER_RECORD_TGID,
    ITER_STACKTRACE,
    ITER_STOP_ON_FREE,
    ITER_SYM_ADDR,
    ITER_SYM_OFFSET,
    ITER_TRACE_PRINTK,
    ITER_VERBOSE,
    TOP_LEVEL_TRACE_FLAGS,
    TRACE_BLK,
    TRACE_BPRINT,
    TRACE_BPUTS,
    TRACE_BRANCH,
    TRACE_CTX,
    TRACE_ENTRY,
    TRACE_FLAG_NAMES,
    TRACE_FN,
    TRACE_FUNC_REPEATS,
    TRACE_GRAPH_ENT,
    TRACE_GRAPH_RET,
    TRACE_HWLAT,
    TRACE_MMIO_MAP,
    TRACE_MMIO_RW,
    TRACE_OSNOISE,
    TRACE_PRINT,
    TRACE_RAW_DATA,
    TRACE_STACK,
    TRACE_TIMERLAT,
    TRACE_USER_STACK,
    TRACE_WAKE,
    ZEROED_TRACE_FLAGS,
)

TRACE_MARKER_MAX_SIZE = 4096
MAX_TRACER_SIZE = 100       # trace.h: the longest tracer name current_tracer reads
DUMP_ALL, DUMP_ORIG = 1, 2  # enum ftrace_dump_mode: every CPU, the current CPU only
TRACE_MAX_PRINT = 1000      # trace_printk_seq(): the longest line ftrace_dump prints
UINT_MAX = 0xFFFFFFFF
FAULTED_SIZE = len("<faulted>")
TRACING_LOG_ERRS_MAX = 8
TRACING_LOG_LOC_MAX = 128
CMD_PREFIX = "  Command: "
SAVED_CMDLINES_DEFAULT = 128
TRACE_BUF_SIZE_DEFAULT = 1441792  # 1408 KB: CONFIG default trace_buf_size
SIMULATED_MEM_AVAILABLE = 256 << 20  # what the simulated machine can give ring buffers

_PRINT_HDR = struct.Struct("<HBBiQ")  # trace_entry + unsigned long ip
_RAW_HDR = struct.Struct("<HBBiI")  # trace_entry + unsigned int id


@dataclass
class Tracer:
    """A registered tracer (``struct tracer``): name, its options, and hooks."""

    name: str
    options: tuple[tuple[str, bool], ...] = ()
    init: Callable[[TraceArray], None] | None = None
    reset: Callable[[TraceArray], None] | None = None
    allow_instances: bool = True
    use_max_tr: bool = False
    print_header: Callable[[TraceArray], str] | None = None
    print_line: Callable[..., str | None] | None = None
    # option name -> callback(tr, set) returning False to refuse the change (flag_changed/set_flag)
    set_flag: Callable[[TraceArray, str, bool], bool] | None = None


@dataclass
class ErrLogEntry:
    ts: int
    loc: str
    text: str
    cmd: str
    pos: int


@dataclass
class TraceArray:
    """``struct trace_array``: the top-level tracing dir or one instance."""

    tracing: Tracing
    name: str
    buffer: RingBuffer
    clock: TraceClock
    flags: int
    current_trace: Tracer
    cpumask: int
    max_buffer: RingBuffer | None = None
    allocated_snapshot: bool = False
    buffer_percent: int = 50
    max_latency: int = 0
    err_log: list[ErrLogEntry] = field(default_factory=list)
    tracer_flags: dict[str, bool] = field(default_factory=dict)   # Tracing.tracer_flags
    ref: int = 0            # trace_ref: consuming readers (trace_pipe), hold the tracer
    file_ref: int = 0       # trace_array_get() by open files of an instance
    freed: bool = False     # removed (rmdir): trace_array_get() fails with ENODEV
    time_start: int = 0
    snapshot_disabled: int = 0
    snapshot: int = 0       # tr->snapshot: armed snapshot users (tracing_arm_snapshot)
    size_cache: list[int] = field(default_factory=list)
    # the fields of struct trace_array that other subsystems own, set when they create
    # the instance (trace_events, ftrace, the function and function_graph tracers)
    events: InstanceEvents | None = None
    ops: FtraceOps | None = None            # tr->ops: the function tracer's ftrace_ops
    ftrace_state: TrFtraceState = field(default_factory=TrFtraceState)  # pids, probes, :mod:
    gops: FgraphOps | None = None           # tr->gops: the function_graph tracer's
    function_enabled: bool = False          # tr->function_enabled
    data_disabled: int = 0                  # the per-CPU data->disabled, summed
    last_func_repeats: dict[int, list[int]] = field(default_factory=dict)  # per CPU
    clear_trace: bool = False               # tr->clear_trace: reset after an event removal

    @property
    def kernel(self) -> Kernel:
        return self.tracing.kernel

    @property
    def is_top(self) -> bool:
        return self is self.tracing.global_trace

    def array_get(self) -> None:
        """trace_array_get(): an open file keeps its instance (rmdir is EBUSY)."""
        if self.freed:
            raise KernelError(errno.ENODEV)
        self.file_ref += 1

    def array_put(self) -> None:
        if self.file_ref:
            self.file_ref -= 1

    # -------------------------------------------------------------- record writing
    def event_reserve(self, cpu: int, type_id: int, size: int) -> int:
        """Reserve ``size`` bytes (including the 8-byte trace_entry) on ``cpu``.

        Returns the offset of the entry in ``event_buf(cpu)``, or -1 when dropped.
        The common fields are filled from the current context.
        """
        rb = self.buffer
        off = rb.reserve(cpu, size, self.clock.now())
        if off < 0:
            return -1
        sched = self.tracing.kernel.sched
        TRACE_ENTRY.pack_into(rb.cpu_buffers[cpu].page, off, type_id, sched.irq_flags,
                         sched.preempt_count, sched.current.pid)
        return off

    def event_buf(self, cpu: int) -> bytearray:
        return self.buffer.cpu_buffers[cpu].page

    def event_commit(self, cpu: int) -> None:
        self.buffer.commit(cpu)

    def update_size_cache(self, cpu: int | None = None) -> None:
        """trace.c keeps per_cpu data->entries: the size it last set (not re-read)."""
        n = self.tracing.nr_cpus
        if len(self.size_cache) != n:
            self.size_cache = [self.buffer.size_bytes(c) for c in range(n)]
        for c in (range(n) if cpu is None else [cpu]):
            self.size_cache[c] = self.buffer.size_bytes(c)

    def is_on(self) -> bool:
        return self.buffer.record_is_set_on()

    # --------------------------------------------------------------------- flags
    def flag(self, mask: int) -> bool:
        return bool(self.flags & mask)

    def tracer_opt(self, name: str) -> bool:
        return self.tracer_flags.get(name, False)

    # ------------------------------------------------------------------ error_log
    def log_err(self, loc: str, cmd: str, err_text: str, pos: int) -> None:
        """tracing_log_err(): keep at most TRACING_LOG_ERRS_MAX entries, oldest dropped."""
        loc_full = f"{loc}: error: "[:TRACING_LOG_LOC_MAX - 1]
        entry = ErrLogEntry(self.tracing.kernel.boot_clock.ns(), loc_full, err_text, cmd, pos)
        if len(self.err_log) >= TRACING_LOG_ERRS_MAX:
            self.err_log.pop(0)
        self.err_log.append(entry)

    def err_log_text(self) -> str:
        out = []
        for e in self.err_log:
            sec, nsec = divmod(e.ts, 1_000_000_000)
            out.append(f"[{sec:5d}.{nsec // 1000:06d}] {e.loc}{e.text}\n{CMD_PREFIX}{e.cmd}\n"
                       f"{' ' * (len(CMD_PREFIX) + e.pos)}^\n")
        return "".join(out)


class Tracing:
    """Global tracing state: instances, tracers, saved cmdlines, printers."""

    def __init__(self, kernel: Kernel, buffer_kb: int) -> None:
        self.kernel = kernel
        self.nr_cpus = kernel.nr_cpus
        self.trace_buf_size = buffer_kb * 1024
        self.buffer_expanded = False
        self.tracing_thresh = 0
        self.tracers: dict[str, Tracer] = {}
        self.output = TraceOutput(kernel)
        self.instances: dict[str, TraceArray] = {}
        self.instance_hooks: list[tuple[Callable[[TraceArray], None], Callable[[TraceArray], None]]] = []
        self.busy_checks: list[Callable[[TraceArray], bool]] = []
        # saved_cmdlines / saved_tgids (trace_sched_switch.c)
        self.cmdline_size = SAVED_CMDLINES_DEFAULT
        self.cmdlines: dict[int, str] = {}
        self.tgids: dict[int, int] = {}
        self.cmdline_ref = 0
        self.tgid_ref = 0
        self.onoff_gen = 0      # bumped by each tracing_on switch of any instance
        # each tracer's ``struct tracer_flags``: one value for every trace array, whose
        # options/ files and trace_options all show and set it
        self.tracer_flags: dict[str, bool] = {}
        # tracer_alloc_buffers(): the built-in tracers, then global_trace, whose buffer
        # holds the minimum until something expands it (tracing_update_buffers)
        for t in builtin_tracers():
            self.register_tracer(t)
        self.global_trace: TraceArray = self._new_array("", 1, DEFAULT_FLAGS)
        self.printk_trace: TraceArray = self.global_trace  # the trace_printk_dest instance

    # -------------------------------------------------------------------- tracers
    def register_tracer(self, tracer: Tracer) -> None:
        """register_tracer(): replaces a same-named one (plugins refine the built-ins)."""
        self.tracers[tracer.name] = tracer

    def available_tracers(self, tr: TraceArray) -> str:
        names = [t.name for t in self.tracers.values() if tr.is_top or t.allow_instances]
        return " ".join(names) + "\n"

    def tracer_options(self) -> list[str]:
        """Every tracer's option names (the options/ directory has them all)."""
        seen: dict[str, None] = {}
        for t in self.tracers.values():
            for name, _ in t.options:
                seen.setdefault(name, None)
        return list(seen)

    def set_tracer(self, tr: TraceArray, name: str) -> None:
        """tracing_set_tracer()."""
        tracer = self.tracers.get(name)
        if tracer is None:
            raise KernelError(errno.EINVAL)
        self.update_buffers()
        if tracer is tr.current_trace:
            return
        if not tr.is_top and not tracer.allow_instances:
            raise KernelError(errno.EINVAL)
        if tr.ref and tracer is not tr.current_trace:  # trace_pipe readers hold the tracer
            raise KernelError(errno.EBUSY)
        old = tr.current_trace
        if old.reset:
            old.reset(tr)
        tr.current_trace = self.tracers["nop"]
        self.reset_buffer(tr)  # tracer_init() resets the buffers
        if tracer.init:
            tracer.init(tr)
        tr.current_trace = tracer

    # --------------------------------------------------------------------- buffers
    def _new_array(self, name: str, size: int, flags: int) -> TraceArray:
        k = self.kernel
        overwrite = bool(flags & ITER_OVERWRITE)
        rb = RingBuffer(self.nr_cpus, size, overwrite=overwrite)
        clock = TraceClock(k.boot_clock)
        tr = TraceArray(self, name, rb, clock, flags, self.tracers["nop"], (1 << self.nr_cpus) - 1)
        # The snapshot buffer exists from the start at the minimum size (as
        # allocate_trace_buffers() does), so per-CPU disables apply to both buffers.
        tr.max_buffer = RingBuffer(self.nr_cpus, 1, overwrite=overwrite)
        for tracer in self.tracers.values():
            for opt, default in tracer.options:
                self.tracer_flags.setdefault(opt, default)
        tr.tracer_flags = self.tracer_flags
        tr.time_start = clock.now()
        tr.update_size_cache()
        for create, _ in self.instance_hooks:
            create(tr)
        return tr

    def update_buffers(self) -> None:
        """tracing_update_buffers(): expand the boot-time minimal buffer on first use."""
        if self.buffer_expanded:
            return
        self.resize(self.global_trace, self.trace_buf_size)

    def resize(self, tr: TraceArray, size_bytes: int, cpu: int | None = None) -> None:
        """tracing_resize_ring_buffer(); the snapshot buffer follows when allocated.

        __rb_allocate_pages() refuses with ENOMEM what exceeds si_mem_available(); the
        simulated machine has SIMULATED_MEM_AVAILABLE bytes for all CPU buffers together.
        """
        ncpu = 1 if cpu is not None else self.nr_cpus
        if size_bytes * ncpu > SIMULATED_MEM_AVAILABLE:
            raise KernelError(errno.ENOMEM)
        if tr.is_top:
            self.buffer_expanded = True
        tr.buffer.resize(size_bytes, cpu)
        tr.update_size_cache(cpu)
        if tr.max_buffer is not None and tr.allocated_snapshot:
            tr.max_buffer.resize(size_bytes, cpu)

    def reset_buffer(self, tr: TraceArray, cpu: int | None = None) -> None:
        """tracing_reset_online_cpus() / tracing_reset_cpu()."""
        tr.buffer.reset(cpu)
        tr.time_start = tr.clock.now()

    def free_buffer(self, tr: TraceArray) -> None:
        """free_buffer release: optionally stop tracing, shrink to the minimum."""
        if tr.flags & ITER_STOP_ON_FREE:
            self.tracer_tracing_off(tr)
        self.resize(tr, 0)

    def set_clock(self, tr: TraceArray, name: str) -> None:
        tr.clock.select(name)
        # Changing the clock makes old timestamps meaningless: reset the buffers.
        self.reset_buffer(tr)
        if tr.max_buffer is not None:
            tr.max_buffer.reset()

    # -------------------------------------------------------------- tracing on/off
    def tracer_tracing_on(self, tr: TraceArray) -> None:
        tr.buffer.record_on()
        self.onoff_gen += 1     # an event may record again (Tracepoint.silent)

    def tracer_tracing_off(self, tr: TraceArray) -> None:
        tr.buffer.record_off()
        self.onoff_gen += 1

    # --------------------------------------------------------------------- flags
    def set_flag(self, tr: TraceArray, mask: int, enabled: bool) -> None:
        """set_tracer_flag()."""
        if bool(tr.flags & mask) == enabled:
            return
        if mask == ITER_TRACE_PRINTK:
            if enabled:
                self.printk_trace.flags &= ~ITER_TRACE_PRINTK
                self.printk_trace = tr
            else:
                if self.printk_trace is self.global_trace:
                    raise KernelError(errno.EINVAL)
                if self.printk_trace is tr:
                    self.printk_trace = self.global_trace
                    self.global_trace.flags |= ITER_TRACE_PRINTK
        if enabled:
            tr.flags |= mask
        else:
            tr.flags &= ~mask
        # event-fork needs no call: trace_events reads the flag at each fork
        if mask == ITER_FUNC_FORK:
            self.kernel.ftrace.ftrace_pid_follow_fork(tr, enabled)
        if mask == ITER_OVERWRITE:
            tr.buffer.set_overwrite(enabled)
            if tr.max_buffer is not None:
                tr.max_buffer.set_overwrite(enabled)

    def set_option(self, tr: TraceArray, option: str) -> None:
        """trace_set_options(): ``[no]NAME`` (stripped) for a core flag, else an option
        of the current tracer (EINVAL for anything else).  An instance takes the
        top-level-only flags too: only its options/ directory leaves them out."""
        cmp = strim(option)
        neg = cmp.startswith("no")
        name = cmp[2:] if neg else cmp
        for i, fname in enumerate(TRACE_FLAG_NAMES):
            if fname == name:
                self.set_flag(tr, 1 << i, not neg)
                return
        tracer = tr.current_trace
        if any(o == name for o, _ in tracer.options):
            self.set_tracer_option(tr, tracer, name, not neg)
            return
        raise KernelError(errno.EINVAL)

    def set_tracer_option(self, tr: TraceArray, tracer: Tracer, name: str, value: bool) -> None:
        """__set_tracer_option(): the owning tracer's set_flag approves (whether or not
        it is the current tracer: a tracer that only acts while it runs checks that
        itself), then the tracer's flag changes for every array."""
        if tr.tracer_flags.get(name, False) == value:
            return
        if tracer.set_flag is not None and tracer.set_flag(tr, name, value) is False:
            raise KernelError(errno.EINVAL)
        tr.tracer_flags[name] = value

    def options_text(self, tr: TraceArray) -> str:
        """tracing_trace_options_show(): every core flag (an instance's too), then the
        current tracer's options."""
        out = []
        for i, name in enumerate(TRACE_FLAG_NAMES):
            out.append(("" if tr.flags & (1 << i) else "no") + name + "\n")
        for name, _ in tr.current_trace.options:
            out.append(("" if tr.tracer_flags.get(name) else "no") + name + "\n")
        return "".join(out)

    # ------------------------------------------------------------------ instances
    def instance_mkdir(self, name: str) -> TraceArray:
        if name in self.instances:
            raise KernelError(errno.EEXIST)
        g = self.global_trace
        flags = g.flags & ~ZEROED_TRACE_FLAGS
        tr = self._new_array(name, self.trace_buf_size, flags)
        self.instances[name] = tr
        return tr

    def instance_rmdir(self, name: str) -> None:
        tr = self.instances.get(name)
        if tr is None:
            raise KernelError(errno.ENODEV)
        # __remove_instance(): any open file of the instance (tr->ref > 1) or a reader
        # holding its tracer (trace_ref)
        if tr.ref or tr.file_ref or any(check(tr) for check in self.busy_checks):
            raise KernelError(errno.EBUSY)
        if tr.current_trace.reset:
            tr.current_trace.reset(tr)
        for _, destroy in self.instance_hooks:
            destroy(tr)
        if self.printk_trace is tr:
            self.printk_trace = self.global_trace
            self.global_trace.flags |= ITER_TRACE_PRINTK
        del self.instances[name]
        tr.freed = True

    def all_arrays(self) -> list[TraceArray]:
        return [self.global_trace, *self.instances.values()]

    # ------------------------------------------------------------- saved cmdlines
    def record_cmdline(self, task: Task) -> None:
        """tracing_record_cmdline(): remember pid -> comm (bounded like the kernel map)."""
        if task.pid == 0:
            return
        cmdlines = self.cmdlines
        if task.pid not in cmdlines and len(cmdlines) >= self.cmdline_size:
            del cmdlines[next(iter(cmdlines))]
        cmdlines[task.pid] = task.comm

    def record_tgid(self, task: Task) -> None:
        if task.pid == 0:
            return
        self.tgids[task.pid] = task.tgid

    def record_task(self, task: Task) -> None:
        """tracing_record_taskinfo(): called where the kernel records comm/tgid."""
        if self.cmdline_ref and self.global_trace.flags & ITER_RECORD_CMD:
            self.record_cmdline(task)
        if self.tgid_ref or any(tr.flags & ITER_RECORD_TGID for tr in self.all_arrays()):
            self.record_tgid(task)

    def find_cmdline(self, pid: int) -> str:
        if pid == 0:
            return "<idle>"
        return self.cmdlines.get(pid, "<...>")

    def saved_cmdlines_text(self) -> str:
        return "".join(f"{pid} {comm}\n" for pid, comm in self.cmdlines.items())

    def saved_tgids_text(self) -> str:
        return "".join(f"{pid} {tgid}\n" for pid, tgid in sorted(self.tgids.items()) if tgid)

    # ---------------------------------------------------------------- writers
    def mark_write(self, tr: TraceArray, data: bytes) -> int:
        """tracing_mark_write(): a TRACE_PRINT entry with the user's text."""
        if not tr.flags & ITER_MARKERS:
            raise KernelError(errno.EINVAL)
        cnt = min(len(data), TRACE_MARKER_MAX_SIZE)
        if cnt == 0:
            return 0
        meta = _PRINT_HDR.size + 2
        size = cnt + meta
        if cnt < FAULTED_SIZE:
            size += FAULTED_SIZE - cnt
        max_size = tr.buffer.max_event_size()
        if size > max_size:
            cnt = max_size - meta
            size = cnt + meta
        k = self.kernel
        cpu = k.sched.cpu
        off = tr.event_reserve(cpu, TRACE_PRINT, size)
        if off < 0:
            raise KernelError(errno.EBADF)
        buf = tr.event_buf(cpu)
        struct.pack_into("<Q", buf, off + 8, k.kallsyms_addr("tracing_mark_write") + 0x4F)
        text = data[:cnt]
        start = off + _PRINT_HDR.size
        marker = self._marker_file(tr)
        rec = b""
        tt = 0
        if marker is not None and marker.triggers:
            # the triggers of events/ftrace/print see the text without the added newline
            buf[start:start + cnt] = text
            buf[start + cnt] = 0
            rec = bytes(buf[off:off + size])
            tt = marker.events.triggers.event_triggers_call(marker, rec)
        if not text.endswith(b"\n"):
            text += b"\n"
        buf[start:start + len(text)] = text
        buf[start + len(text)] = 0
        tr.event_commit(cpu)
        if tt and marker is not None:
            marker.events.triggers.event_triggers_post_call(marker, tt, rec)
        return cnt

    def _marker_file(self, tr: TraceArray) -> EventFile | None:
        """tr->trace_marker_file: the ftrace/print event of this instance."""
        ev = self.kernel.events
        call = ev.find_event("ftrace", "print")
        return ev.file(tr, call) if call is not None else None

    def trace_printk(self, text: str, ip: int = 0) -> bool:
        """trace_printk(): a TRACE_PRINT entry in the instance that owns trace_printk
        output (``printk_trace``), from the caller's context; ``ip`` names the caller."""
        return self._print_entry(self.printk_trace, text.encode("utf-8", "replace"), ip)

    def array_puts(self, tr: TraceArray, text: str, ip: int = 0) -> bool:
        """__trace_array_puts(): ``text`` as a TRACE_PRINT entry of ``tr`` (a newline
        added when it has none)."""
        if not text.endswith("\n"):
            text += "\n"
        return self._print_entry(tr, text.encode("utf-8", "replace"), ip)

    def _print_entry(self, tr: TraceArray, data: bytes, ip: int) -> bool:
        """A TRACE_PRINT entry (ip, NUL-terminated text) of ``tr`` if it takes printk."""
        if not tr.flags & ITER_PRINTK:
            return False
        data = data[:TRACE_MARKER_MAX_SIZE]
        cpu = self.kernel.sched.cpu
        off = tr.event_reserve(cpu, TRACE_PRINT, _PRINT_HDR.size + len(data) + 2)
        if off < 0:
            return False
        buf = tr.event_buf(cpu)
        struct.pack_into("<Q", buf, off + 8, ip)
        start = off + _PRINT_HDR.size
        buf[start:start + len(data)] = data
        buf[start + len(data)] = 0
        tr.event_commit(cpu)
        return True

    def mark_raw_write(self, tr: TraceArray, data: bytes) -> int:
        """tracing_mark_raw_write(): an id (u32) followed by binary data."""
        if not tr.flags & ITER_MARKERS:
            raise KernelError(errno.EINVAL)
        cnt = len(data)
        if cnt < 4:
            raise KernelError(errno.EINVAL)
        size = 12 + cnt  # sizeof(struct raw_data_entry) + cnt
        if cnt < FAULTED_SIZE + 4:
            size += FAULTED_SIZE + 4 - cnt
        if size > tr.buffer.max_event_size():
            raise KernelError(errno.EINVAL)
        cpu = self.kernel.sched.cpu
        off = tr.event_reserve(cpu, TRACE_RAW_DATA, size)
        if off < 0:
            raise KernelError(errno.EBADF)
        buf = tr.event_buf(cpu)
        buf[off + 8:off + 8 + cnt] = data
        tr.event_commit(cpu)
        return cnt

    # ----------------------------------------------------------------- snapshot
    def alloc_snapshot(self, tr: TraceArray) -> None:
        assert tr.max_buffer is not None
        if not tr.allocated_snapshot:
            tr.max_buffer.resize(tr.buffer.size_bytes(0))
            for cpu in range(self.nr_cpus):
                if tr.buffer.size_bytes(cpu) != tr.max_buffer.size_bytes(cpu):
                    tr.max_buffer.resize(tr.buffer.size_bytes(cpu), cpu)
            tr.allocated_snapshot = True

    def free_snapshot(self, tr: TraceArray) -> None:
        if tr.max_buffer is not None and tr.allocated_snapshot:
            tr.max_buffer.resize(0)
            tr.max_buffer.reset()
        tr.allocated_snapshot = False

    def take_snapshot(self, tr: TraceArray, cpu: int | None = None) -> None:
        """update_max_tr(): swap the live buffer with the snapshot buffer."""
        if tr.snapshot_disabled:
            return
        self.alloc_snapshot(tr)
        assert tr.max_buffer is not None
        live, snap = tr.buffer, tr.max_buffer
        if cpu is None:
            live.cpu_buffers, snap.cpu_buffers = snap.cpu_buffers, live.cpu_buffers
        else:
            live.cpu_buffers[cpu], snap.cpu_buffers[cpu] = snap.cpu_buffers[cpu], live.cpu_buffers[cpu]
        live._update_slow()
        snap._update_slow()
        live.reset(cpu)

    def snapshot_write(self, tr: TraceArray, cpu: int | None, val: int) -> None:
        """tracing_snapshot_write() after its kstrtoul: 0 frees (EINVAL per CPU), 1
        takes a snapshot (per CPU only with CONFIG_RING_BUFFER_ALLOW_SWAP, which the
        reference kernel lacks: EINVAL), anything else clears the snapshot buffer."""
        if tr.current_trace.use_max_tr:
            raise KernelError(errno.EBUSY)
        if val == 0:
            if cpu is not None:
                raise KernelError(errno.EINVAL)
            self.free_snapshot(tr)
        elif val == 1:
            if cpu is not None and not IS_ENABLED("CONFIG_RING_BUFFER_ALLOW_SWAP"):
                raise KernelError(errno.EINVAL)
            self.arm_snapshot(tr)       # tracing_arm_snapshot_locked(): allocates
            self.take_snapshot(tr, cpu)
            self.disarm_snapshot(tr)
        elif tr.allocated_snapshot and tr.max_buffer is not None:
            tr.max_buffer.reset(cpu)

    def arm_snapshot(self, tr: TraceArray) -> None:
        """tracing_arm_snapshot(): one more user that takes snapshots from a context that
        cannot allocate (the snapshot function command): allocate the buffer now."""
        if tr.snapshot == UINT_MAX:
            raise KernelError(errno.EBUSY)
        tr.snapshot += 1
        self.alloc_snapshot(tr)

    def disarm_snapshot(self, tr: TraceArray) -> None:
        """tracing_disarm_snapshot()."""
        if tr.snapshot:
            tr.snapshot -= 1

    def snapshot_instance(self, tr: TraceArray) -> None:
        """tracing_snapshot_instance(): swap in the snapshot buffer, or say in the trace
        why not (tracing stops when the buffer is not allocated)."""
        ip = self.kernel.kallsyms_addr("tracing_snapshot_instance_cond")
        if self.kernel.sched.irq_flags & TRACE_FLAG_NMI:
            self.array_puts(tr, "*** SNAPSHOT CALLED FROM NMI CONTEXT ***\n", ip)
            self.array_puts(tr, "*** snapshot is being ignored        ***\n", ip)
            return
        if not tr.allocated_snapshot:
            self.array_puts(tr, "*** SNAPSHOT NOT ALLOCATED ***\n", ip)
            self.array_puts(tr, "*** stopping trace here!   ***\n", ip)
            self.tracer_tracing_off(tr)
            return
        if tr.current_trace.use_max_tr:
            self.array_puts(tr, "*** LATENCY TRACER ACTIVE ***\n", ip)
            self.array_puts(tr, "*** Can not use snapshot (sorry) ***\n", ip)
            return
        self.take_snapshot(tr)

    # ------------------------------------------------------------------ ftrace_dump
    def ftrace_dump(self, mode: int) -> None:
        """ftrace_dump(DUMP_ALL or DUMP_ORIG) = ftrace_dump_one(&global_trace): stop
        recording, then print every record (DUMP_ORIG: of the current CPU) in the
        latency format to the kernel log, consuming them."""
        tr = self.global_trace
        k = self.kernel
        self.tracer_tracing_off(tr)
        k.printk("Dumping ftrace buffer:")
        rb = tr.buffer
        cpus = [k.sched.cpu] if mode == DUMP_ORIG else list(range(self.nr_cpus))
        it = TraceIter(tr)
        it.flags = tr.flags | ITER_LATENCY_FMT  # the iterator's TRACE_FILE_LAT_FMT
        cnt = 0
        while (line := peek_trace_line(self.output, it, rb, cpus)) is not None:
            if not cnt:
                k.printk("---------------------------------")
            cnt += 1
            rb.consume(it.cpu)
            text = line if isinstance(line, str) else line.decode("utf-8", "replace")
            k.printk(text[:TRACE_MAX_PRINT])  # trace_printk_seq()
        k.printk("---------------------------------" if cnt else "   (ftrace buffer empty)")


def builtin_tracers() -> list[Tracer]:
    """The tracers of the reference kernel, in available_tracers order.

    function and function_graph are refined by their plugins (trace_functions*.py)
    which re-register them with the real hooks.
    """
    return [
        Tracer("blk", (("blk_classic", False), ("blk_cgroup", False), ("blk_cgname", False)),
               allow_instances=True),
        Tracer("mmiotrace", allow_instances=False),
        Tracer("function_graph", (
            ("funcgraph-overrun", False), ("funcgraph-cpu", True), ("funcgraph-overhead", True),
            ("funcgraph-proc", False), ("funcgraph-duration", True), ("funcgraph-abstime", False),
            ("funcgraph-irqs", True), ("funcgraph-tail", False), ("sleep-time", True),
        )),
        Tracer("function", (("func_stack_trace", False), ("func-no-repeats", False))),
        Tracer("nop", (("test_nop_accept", False), ("test_nop_refuse", False)),
               set_flag=_nop_set_flag),
    ]


def _nop_set_flag(tr: TraceArray, name: str, value: bool) -> bool:
    """trace_nop.c nop_set_flag: test_nop_refuse is refused, test_nop_accept accepted."""
    return name != "test_nop_refuse"


def comm_of(comm: str) -> str:
    return comm[:TASK_COMM_LEN - 1]


# ------------------------------------------------------------------------ readers
TRACE_SEQ_BUFFER_SIZE = 8192 - 24 - 8  # (PAGE_SIZE * 2) - sizeof(seq_buf) - sizeof(size_t)


def buffer_totals(rb: RingBuffer, cpus: list[int]) -> tuple[int, int]:
    """get_total_entries(): (entries in buffer, entries written = entries + overrun)."""
    entries = sum(rb.entries(c) for c in cpus)
    total = entries + sum(rb.overrun(c) for c in cpus)
    return entries, total


def trace_file_text(tr: TraceArray, cpu: int | None = None, snapshot: bool = False) -> list[bytes]:
    """The ``trace`` (or ``snapshot``) file, encoded: header then every record,
    non-consuming."""
    tracing = tr.tracing
    out = tracing.output
    rb = tr.max_buffer if snapshot else tr.buffer
    cpus = list(range(tracing.nr_cpus)) if cpu is None else [cpu]
    if rb is None:
        entries = total = 0
        empty = True
    else:
        entries, total = buffer_totals(rb, cpus)
        empty = all(rb.empty(c) for c in cpus)
    if snapshot and empty:
        return [(f"# tracer: {tr.current_trace.name}\n#\n" + snapshot_help(tr, cpu)).encode()]
    chunks = [out.header(tr, entries, total, empty, cpu).encode("utf-8", "surrogateescape")]
    if rb is not None and not empty:
        annotate = bool(tr.flags & ITER_ANNOTATE) and any(rb.overrun(c) for c in cpus)
        # tens of thousands of records and text fragments that all stay alive until the
        # text is joined: the cyclic GC would scan them again and again (and the whole
        # heap at each full collection) while they cannot form a cycle
        enabled = gc.isenabled()
        gc.disable()
        try:
            chunks.extend(render_records(out, tr, rb, cpus, annotate))
        finally:
            if enabled:
                gc.enable()
    return chunks


def join_text(parts: list[bytes]) -> bytes:
    """The text of ``parts`` as one bytes object.  Joined in slices: ``bytes.join`` keeps
    an 80-byte buffer view per part while it copies, so one join of a big trace's
    fragments (four per record) would first touch several megabytes of fresh memory."""
    if len(parts) <= _JOIN_SLICE:
        return b"".join(parts)
    return b"".join([b"".join(parts[i:i + _JOIN_SLICE]) for i in range(0, len(parts), _JOIN_SLICE)])


_JOIN_SLICE = 4096


def snapshot_help(tr: TraceArray, cpu: int | None) -> str:
    """print_snapshot_help()."""
    s = "#\n# * Snapshot is allocated *\n#\n" if tr.allocated_snapshot else "#\n# * Snapshot is freed *\n#\n"
    s += "# Snapshot commands:\n"
    if cpu is None:
        s += ("# echo 0 > snapshot : Clears and frees snapshot buffer\n"
              "# echo 1 > snapshot : Allocates snapshot buffer, if not already allocated.\n"
              "#                      Takes a snapshot of the main buffer.\n"
              "# echo 2 > snapshot : Clears snapshot buffer (but does not allocate or free)\n"
              "#                      (Doesn't have to be '2' works with any number that\n"
              "#                       is not a '0' or '1')\n")
    else:   # show_snapshot_percpu_help()
        s += "# echo 0 > snapshot : Invalid for per_cpu snapshot file.\n"
        if IS_ENABLED("CONFIG_RING_BUFFER_ALLOW_SWAP"):
            s += ("# echo 1 > snapshot : Allocates snapshot buffer, if not already allocated.\n"
                  "#                      Takes a snapshot of the main buffer for this cpu.\n")
        else:
            s += ("# echo 1 > snapshot : Not supported with this kernel.\n"
                  "#                     Must use main snapshot file to allocate.\n")
        s += ("# echo 2 > snapshot : Clears this cpu's snapshot buffer (but does not allocate)\n"
              "#                      (Doesn't have to be '2' works with any number that\n"
              "#                       is not a '0' or '1')\n")
    return s


def peek_trace_line(out: TraceOutput, it: TraceIter, rb: RingBuffer, cpus: list[int]) -> str | bytes | None:
    """trace_find_next_entry_inc() + print_trace_line() of a consuming reader: the
    oldest record of ``cpus`` (left in the buffer; ``it`` points at it), rendered, after
    the lost-events line when records were lost before it.  None when all are empty."""
    best = None
    for c in cpus:
        rec = rb.peek(c)
        if rec is not None and (best is None or rec[0] < best[0][0]):
            best = (rec, c)
    if best is None:
        return None
    (ts, buf, off, length), c = best
    lost = rb.lost_events(c)
    it.ts, it.cpu, it.buf, it.off, it.size = ts, c, buf, off, length
    it.idx += 1
    line = out.print_line(it, ts)
    if lost:
        line = f"CPU:{c} [LOST {lost} EVENTS]\n" + (line if isinstance(line, str) else "")
    return line


class PipeReader:
    """tracing_read_pipe(): a consuming reader of one trace array (all CPUs or one)."""

    def __init__(self, tr: TraceArray, cpu: int | None = None) -> None:
        self.tr = tr
        self.cpu = cpu
        self.leftover = b""
        self.pos = 0
        self.it = TraceIter(tr)
        tr.ref += 1
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.tr.ref -= 1

    def _cpus(self) -> list[int]:
        return list(range(self.tr.tracing.nr_cpus)) if self.cpu is None else [self.cpu]

    def empty(self) -> bool:
        rb = self.tr.buffer
        return all(rb.empty(c) for c in self._cpus())

    def read(self, cnt: int) -> bytes | None:
        """Bytes read, ``b""`` at EOF, or None when the reader would wait."""
        if self.leftover:
            data, self.leftover = self.leftover[:cnt], self.leftover[cnt:]
            self.pos += len(data)
            return data
        while True:
            if self.empty():
                if not self.tr.is_on() and self.pos:
                    return b""
                return None
            data = self._fill(min(cnt, TRACE_SEQ_BUFFER_SIZE - 1))
            if data:
                out, self.leftover = data[:cnt], data[cnt:]
                self.pos += len(out)
                return out

    def _fill(self, cnt: int) -> bytes:
        tr = self.tr
        rb = tr.buffer
        out = tr.tracing.output
        it = self.it
        it.flags = tr.flags
        it.in_ns = tr.clock.in_ns
        cpus = self._cpus()
        parts: list[bytes] = []
        used = 0
        while True:
            line = peek_trace_line(out, it, rb, cpus)
            if line is None:
                break
            data = line.encode("utf-8", "surrogateescape") if isinstance(line, str) else line
            if used and used + len(data) > TRACE_SEQ_BUFFER_SIZE:
                break  # no partial lines: this record stays for the next read
            rb.consume(it.cpu)
            parts.append(data)
            used += len(data)
            if used >= cnt:
                break
        return b"".join(parts)
