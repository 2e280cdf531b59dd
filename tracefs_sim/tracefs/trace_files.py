"""The files of trace.c's init_tracer_tracefs(): one table for the top level and instances.

``instance_files(kernel, tr)`` builds the per-instance directory (also used for the top
level); ``build_top_level(kernel)`` adds the top-level-only files.  The files of other
subsystems come from their builders by explicit calls: events (event_files.py), the
function tracer's filters and lists (ftrace_files.py), dynamic events and the stack
tracer (dynevent_files.py), the probe kinds (probe_files.py).  Each builder must make
exactly the files the tree expects of it: a missing builder fails at import, a missing
or renamed file fails the build (``TreeBuildError``), never a silently absent file.

The only files that do nothing are those in ``NOT_SIMULATED``, each with its reason.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass

from ..kernel import Kernel
from ..kernel.errors import WOULD_BLOCK, KernelError, _WouldBlock
from ..kernel.lib import PAGE_SIZE, bitmap_parse, strim, user_cstring
from ..kernel.refdata import data_bytes
from ..kernel.ring_buffer import RingBuffer, subbuf_order_from_kb
from ..kernel.sched import PID_MAX_DEFAULT
from ..kernel.trace import (
    MAX_TRACER_SIZE,
    TOP_LEVEL_TRACE_FLAGS,
    TRACE_FLAG_NAMES,
    PipeReader,
    TraceArray,
    Tracer,
    join_text,
    trace_file_text,
)
from ..kernel.waitqueue import WaitQueue
from .dynevent_files import dynamic_events_file, stack_files
from .event_files import event_instance_files, event_top_files, events_dir
from .files import TRACE_MODE_READ, TRACE_MODE_WRITE, parse_ulong, seq_file
from .ftrace_files import ftrace_files, ftrace_top_files
from .node import POLLIN, POLLOUT, Dir, File, Node, OpenFile, OpenMode, pin_files
from .probe_files import probe_top_files


class TreeBuildError(RuntimeError):
    """A file builder did not make the files the tree expects of it."""


def _add_built(d: Dir, builder: Callable[..., dict[str, Node]], built: dict[str, Node],
               names: tuple[str, ...]) -> None:
    """Add the files ``builder`` made, which must be exactly ``names``."""
    if sorted(built) != sorted(names):
        raise TreeBuildError(f"{builder.__module__}.{builder.__name__}() built {sorted(built)}, "
                             f"the tree expects {sorted(names)}")
    for name in names:
        d.add(name, built[name])


# ------------------------------------------------------------------ files not simulated
@dataclass(frozen=True)
class NotSimulated:
    mode: int
    reason: str


NOT_SIMULATED: dict[str, NotSimulated] = {
    "printk_formats": NotSimulated(
        TRACE_MODE_READ,
        "lists the address and format of every trace_printk()/trace_bputs() format and "
        "tracepoint_string() built into the kernel; those strings and their addresses were "
        "not captured from the reference kernel, and a loaded Python module's trace_printk() "
        "stores its text in the record (TRACE_PRINT), registering no format: reads empty"),
}


class NotSimulatedFile(File):
    """A file of ``NOT_SIMULATED``: its real mode, reads empty, refuses writes (EINVAL)."""

    __slots__ = ("reason",)

    def __init__(self, name: str) -> None:
        spec = NOT_SIMULATED[name]
        super().__init__(spec.mode, seq_file(spec.mode, lambda: "").opener)
        self.reason = spec.reason


# ----------------------------------------------------------------------------- trace
class TraceOpenFile(OpenFile):
    """``trace`` / ``per_cpu/cpuN/trace`` / ``snapshot``: a seq-file snapshot at open."""

    def __init__(self, node: File, mode: OpenMode, tr: TraceArray, cpu: int | None,
                 snapshot: bool) -> None:
        super().__init__(node, mode)
        self.tr, self.cpu, self.snapshot = tr, cpu, snapshot
        if mode.write and mode.trunc and not snapshot:
            tr.tracing.reset_buffer(tr, cpu)
        self._data: bytes | None = None

    def read(self, offset: int, size: int) -> memoryview | _WouldBlock:
        """The text from ``offset`` (a view of the text rendered at the first read: a
        128 KiB read of a big trace is not copied before the reply copies it)."""
        if self._data is None or offset == 0:
            self._data = join_text(trace_file_text(self.tr, self.cpu, self.snapshot))
        return memoryview(self._data)[offset:offset + size]

    def write(self, offset: int, data: bytes) -> int:
        if not self.snapshot:
            return len(data)  # tracing_write_stub
        snapshot_write(self.tr, self.cpu, data)
        return len(data)


def snapshot_write(tr: TraceArray, cpu: int | None, data: bytes) -> None:
    """tracing_snapshot_write(): the buffers expand, then the number is parsed."""
    tracing = tr.tracing
    tracing.update_buffers()
    tracing.snapshot_write(tr, cpu, parse_ulong(data))


def trace_file(tr: TraceArray, cpu: int | None = None, snapshot: bool = False) -> File:
    return File(TRACE_MODE_WRITE, lambda node, m: TraceOpenFile(node, m, tr, cpu, snapshot))


class PipeOpenFile(OpenFile):
    """``trace_pipe``: a consuming reader; blocks (WOULD_BLOCK) while empty."""

    nonseekable = True

    def __init__(self, node: File, mode: OpenMode, tr: TraceArray, cpu: int | None) -> None:
        super().__init__(node, mode)
        self.reader = PipeReader(tr, cpu)
        self.tr, self.cpu = tr, cpu

    def read(self, offset: int, size: int) -> bytes | _WouldBlock:
        data = self.reader.read(size)
        return WOULD_BLOCK if data is None else data

    def poll(self) -> int:
        return POLLIN if (not self.reader.empty() or self.reader.leftover) else 0

    @property
    def wait_queue(self) -> WaitQueue | None:
        rb = self.tr.buffer
        return rb.waitq if self.cpu is None else rb.cpu_buffers[self.cpu].waitq

    def release(self) -> None:
        self.reader.close()


class RawOpenFile(OpenFile):
    """``per_cpu/cpuN/trace_pipe_raw`` / ``snapshot_raw``: whole sub-buffers, binary."""

    nonseekable = True

    def __init__(self, node: File, mode: OpenMode, tr: TraceArray, cpu: int, snapshot: bool) -> None:
        super().__init__(node, mode)
        self.tr, self.cpu, self.snapshot = tr, cpu, snapshot
        self.page = b""
        self.pos = 0

    def _rb(self) -> RingBuffer | None:
        return self.tr.max_buffer if self.snapshot else self.tr.buffer

    def read(self, offset: int, size: int) -> bytes | _WouldBlock:
        if self.pos >= len(self.page):
            rb = self._rb()
            page = rb.read_page(self.cpu, length=size) if rb is not None else None
            if page is None:
                if self.snapshot or not self.tr.is_on():
                    return b""
                return WOULD_BLOCK
            self.page, self.pos = page, 0
        data = self.page[self.pos:self.pos + size]
        self.pos += len(data)
        return data

    def poll(self) -> int:
        rb = self._rb()
        if rb is None or rb.empty(self.cpu):
            return 0
        if self.tr.buffer_percent and not rb.watermark_hit(self.cpu, self.tr.buffer_percent):
            return 0
        return POLLIN

    @property
    def wait_queue(self) -> WaitQueue | None:
        return self.tr.buffer.cpu_buffers[self.cpu].waitq


# ------------------------------------------------------------------- simple control files
def _on_off(tr: TraceArray) -> File:
    tracing = tr.tracing

    def show() -> str:
        return f"{1 if tr.is_on() else 0}\n"

    def write(data: bytes) -> None:
        val = parse_ulong(data)
        if val:
            if not tr.is_on():
                tracing.tracer_tracing_on(tr)
        elif tr.is_on():
            tracing.tracer_tracing_off(tr)

    return seq_file(TRACE_MODE_WRITE, show, write)


def _buffer_size(tr: TraceArray, cpu: int | None) -> File:
    tracing = tr.tracing

    def show() -> str:
        cache = tr.size_cache
        if cpu is not None:
            return f"{cache[cpu] >> 10}\n"
        sizes = set(cache)
        if len(sizes) != 1:
            return "X\n"
        size = sizes.pop()
        if tr.is_top and not tracing.buffer_expanded:
            return f"{size >> 10} (expanded: {tracing.trace_buf_size >> 10})\n"
        return f"{size >> 10}\n"

    def write(data: bytes) -> None:
        val = parse_ulong(data)
        if not val:
            raise KernelError(errno.EINVAL)
        tracing.resize(tr, val << 10, cpu)

    return seq_file(TRACE_MODE_WRITE, show, write)


def _buffer_total(tr: TraceArray) -> File:
    tracing = tr.tracing

    def show() -> str:
        size = sum(c >> 10 for c in tr.size_cache)
        if tr.is_top and not tracing.buffer_expanded:
            return f"{size} (expanded: {(tracing.trace_buf_size >> 10) * tracing.nr_cpus})\n"
        return f"{size}\n"

    return seq_file(TRACE_MODE_READ, show)


def _subbuf_size(tr: TraceArray) -> File:
    def show() -> str:
        return f"{tr.buffer.subbuf_size >> 10}\n"

    def write(data: bytes) -> None:
        order = subbuf_order_from_kb(parse_ulong(data))
        tr.buffer.set_subbuf_order(order)
        if tr.allocated_snapshot and tr.max_buffer is not None:
            tr.max_buffer.set_subbuf_order(order)

    return seq_file(TRACE_MODE_WRITE, show, write)


def _percent(tr: TraceArray) -> File:
    def show() -> str:
        return f"{tr.buffer_percent}\n"

    def write(data: bytes) -> None:
        val = parse_ulong(data)
        if val > 100:
            raise KernelError(errno.EINVAL)
        tr.buffer_percent = val

    return seq_file(TRACE_MODE_WRITE, show, write)


def _current_tracer(tr: TraceArray) -> File:
    tracing = tr.tracing

    def show() -> str:
        return tr.current_trace.name + "\n"

    def write(data: bytes) -> None:
        # tracing_set_trace_write(): the first MAX_TRACER_SIZE bytes, strim()med; the
        # whole count is returned
        tracing.set_tracer(tr, strim(user_cstring(data[:MAX_TRACER_SIZE])))

    return seq_file(TRACE_MODE_WRITE, show, write)


def _trace_clock(tr: TraceArray) -> File:
    tracing = tr.tracing

    def write(data: bytes) -> None:
        # tracing_clock_write(): char buf[64]
        if len(data) >= 64:
            raise KernelError(errno.EINVAL)
        tracing.set_clock(tr, strim(user_cstring(data)))

    return seq_file(TRACE_MODE_WRITE, tr.clock.show, write)


def _trace_options(tr: TraceArray) -> File:
    tracing = tr.tracing

    def write(data: bytes) -> None:
        # tracing_trace_options_write(): char buf[64], the whole buffer is one option
        if len(data) >= 64:
            raise KernelError(errno.EINVAL)
        tracing.set_option(tr, user_cstring(data))

    return seq_file(TRACE_MODE_WRITE, lambda: tracing.options_text(tr), write)


def _flag_file(tr: TraceArray, mask: int) -> File:
    tracing = tr.tracing

    def show() -> str:
        return "1\n" if tr.flags & mask else "0\n"

    def write(data: bytes) -> None:
        val = parse_ulong(data)
        if val not in (0, 1):
            raise KernelError(errno.EINVAL)
        tracing.set_flag(tr, mask, bool(val))

    return seq_file(TRACE_MODE_WRITE, show, write)


def _tracer_opt_file(tr: TraceArray, name: str) -> File:
    tracing = tr.tracing

    def owner() -> Tracer:
        for t in tracing.tracers.values():
            if any(o == name for o, _ in t.options):
                return t
        return tr.current_trace

    def show() -> str:
        return "1\n" if tr.tracer_flags.get(name) else "0\n"

    def write(data: bytes) -> None:
        val = parse_ulong(data)
        if val not in (0, 1):
            raise KernelError(errno.EINVAL)
        tracing.set_tracer_option(tr, owner(), name, bool(val))

    return seq_file(TRACE_MODE_WRITE, show, write)


def options_dir(tr: TraceArray) -> Dir:
    d = Dir(0o750)
    for i, name in enumerate(TRACE_FLAG_NAMES):
        if tr.is_top or not (1 << i) & TOP_LEVEL_TRACE_FLAGS:
            d.add(name, _flag_file(tr, 1 << i))
    for name in tr.tracing.tracer_options():
        d.add(name, _tracer_opt_file(tr, name))
    return d


def _cpumask(tr: TraceArray) -> File:
    nr = tr.tracing.nr_cpus

    def show() -> str:
        return f"{tr.cpumask:x}\n"

    def write(data: bytes) -> None:
        # tracing_cpumask_write(): cpumask_parse_user() over nr_cpu_ids bits
        if not data:
            raise KernelError(errno.EINVAL)
        err, mask = bitmap_parse(user_cstring(data), nr)
        if err:
            raise KernelError(-err)
        old = tr.cpumask
        tr.cpumask = mask
        for cpu in range(nr):
            was = old >> cpu & 1
            now = tr.cpumask >> cpu & 1
            for rb in (tr.buffer, tr.max_buffer):  # tracing_set_cpumask(): both buffers
                if rb is None:
                    continue
                if was and not now:
                    rb.record_disable(cpu)
                elif now and not was:
                    rb.record_enable(cpu)

    return seq_file(TRACE_MODE_WRITE, show, write)


def _nsecs_file(get: Callable[[], int], put: Callable[[int], None]) -> File:
    """tracing_nsecs_read/write: shown and written in microseconds."""

    def show() -> str:
        ns = get()
        return f"{ns // 1000 if ns != -1 else -1}\n"

    def write(data: bytes) -> None:
        put(parse_ulong(data) * 1000)

    return seq_file(TRACE_MODE_WRITE, show, write)


def _err_log(tr: TraceArray) -> File:
    def trunc() -> None:
        tr.err_log.clear()

    return seq_file(TRACE_MODE_WRITE, tr.err_log_text, lambda data: None, trunc)


def _marker(tr: TraceArray, raw: bool) -> File:
    tracing = tr.tracing

    class MarkerFile(OpenFile):
        def write(self, offset: int, data: bytes) -> int:
            if raw:
                return tracing.mark_raw_write(tr, data)
            return tracing.mark_write(tr, data)

    return File(0o220, lambda node, m: MarkerFile(node, m))


def _free_buffer(tr: TraceArray) -> File:
    tracing = tr.tracing

    class FreeBufferFile(OpenFile):
        def write(self, offset: int, data: bytes) -> int:
            return len(data)  # the release does the work

        def release(self) -> None:
            tracing.free_buffer(tr)

    return File(0o200, lambda node, m: FreeBufferFile(node, m))


def _stats(tr: TraceArray, cpu: int) -> File:
    def show() -> str:
        rb = tr.buffer
        lines = [f"entries: {rb.entries(cpu)}\n", f"overrun: {rb.overrun(cpu)}\n",
                 f"commit overrun: {rb.commit_overrun(cpu)}\n", f"bytes: {rb.bytes(cpu)}\n"]
        oldest = rb.oldest_event_ts(cpu)
        now = tr.clock.now() if tr.clock.name != "counter" else tr.clock._counter
        if tr.clock.in_ns:
            for label, t in (("oldest event ts", oldest), ("now ts", now)):
                us = (t + 500) // 1000
                lines.append(f"{label}: {us // 1_000_000:5d}.{us % 1_000_000:06d}\n")
        else:
            lines.append(f"oldest event ts: {oldest}\nnow ts: {now}\n")
        lines.append(f"dropped events: {rb.dropped_events(cpu)}\n")
        lines.append(f"read events: {rb.read_events(cpu)}\n")
        return "".join(lines)

    return seq_file(TRACE_MODE_READ, show)


def per_cpu_dir(tr: TraceArray) -> Dir:
    d = Dir(0o750)
    for cpu in range(tr.tracing.nr_cpus):
        d.add(f"cpu{cpu}", _cpu_dir(tr, cpu))
    return d


def _cpu_dir(tr: TraceArray, cpu: int) -> Dir:
    """tracing_init_tracefs_percpu(): ``per_cpu/cpuN``."""
    c = Dir(0o750)
    c.add("buffer_size_kb", _buffer_size(tr, cpu))
    c.add("snapshot", trace_file(tr, cpu, snapshot=True))
    c.add("snapshot_raw", File(TRACE_MODE_READ, lambda n, m: RawOpenFile(n, m, tr, cpu, True)))
    c.add("stats", _stats(tr, cpu))
    c.add("trace", trace_file(tr, cpu))
    c.add("trace_pipe", File(TRACE_MODE_READ, lambda n, m: PipeOpenFile(n, m, tr, cpu)))
    c.add("trace_pipe_raw", File(TRACE_MODE_READ, lambda n, m: RawOpenFile(n, m, tr, cpu, False)))
    return c


EVENT_INSTANCE_FILES = ("set_event", "set_event_notrace_pid", "set_event_pid")
FTRACE_INSTANCE_FILES = ("set_ftrace_filter", "set_ftrace_notrace", "set_ftrace_notrace_pid",
                         "set_ftrace_pid")


def instance_files(kernel: Kernel, tr: TraceArray) -> Dir:
    """init_tracer_tracefs(): the files every trace array has."""
    tracing = tr.tracing
    d = Dir(0o750 if not tr.is_top else 0o700)
    d.add("available_tracers", seq_file(TRACE_MODE_READ, lambda: tracing.available_tracers(tr)))
    d.add("buffer_percent", _percent(tr))
    d.add("buffer_size_kb", _buffer_size(tr, None))
    d.add("buffer_subbuf_size_kb", _subbuf_size(tr))
    d.add("buffer_total_size_kb", _buffer_total(tr))
    d.add("current_tracer", _current_tracer(tr))
    d.add("error_log", _err_log(tr))
    d.add("free_buffer", _free_buffer(tr))
    d.add("options", options_dir(tr))
    d.add("per_cpu", per_cpu_dir(tr))
    d.add("snapshot", trace_file(tr, None, snapshot=True))
    d.add("timestamp_mode", seq_file(TRACE_MODE_READ, lambda: _timestamp_mode(tr)))
    d.add("trace", trace_file(tr))
    d.add("trace_clock", _trace_clock(tr))
    d.add("trace_marker", _marker(tr, raw=False))
    d.add("trace_marker_raw", _marker(tr, raw=True))
    d.add("trace_options", _trace_options(tr))
    d.add("trace_pipe", File(TRACE_MODE_READ, lambda n, m: PipeOpenFile(n, m, tr, None)))
    d.add("tracing_cpumask", _cpumask(tr))
    def set_max_latency(v: int) -> None:
        tr.max_latency = v

    d.add("tracing_max_latency", _nsecs_file(lambda: tr.max_latency, set_max_latency))
    d.add("tracing_on", _on_off(tr))
    # events and event control files (trace_events.c), function tracer filters (ftrace.c)
    d.add("events", events_dir(kernel, tr))
    _add_built(d, event_instance_files, event_instance_files(kernel, tr), EVENT_INSTANCE_FILES)
    _add_built(d, ftrace_files, ftrace_files(kernel, tr), FTRACE_INSTANCE_FILES)
    if not tr.is_top:
        # every open of an instance's file takes trace_array_get() (tracing_open_generic_tr
        # and its kin): rmdir is EBUSY while one is open
        pin_files(d, tr)
    return d


def _timestamp_mode(tr: TraceArray) -> str:
    """tracing_time_stamp_mode_show(): the mode of the instance's ring buffer."""
    return "delta [absolute]\n" if tr.buffer.time_stamp_abs else "[delta] absolute\n"


def _saved_cmdlines_size(kernel: Kernel) -> File:
    tracing = kernel.trace

    def capacity(val: int) -> int:
        # allocate_cmdlines_buffer(): the pid map plus val comms, rounded up to a page order
        header = (PID_MAX_DEFAULT + 1) * 4 + 8 + 4 + 4 + 8
        orig = header + val * 16
        order = max(0, (-(-orig // PAGE_SIZE) - 1).bit_length())
        return ((PAGE_SIZE << order) - header) // 20

    def show() -> str:
        return f"{capacity(tracing.cmdline_size)}\n"

    def write(data: bytes) -> None:
        val = parse_ulong(data)
        if not val or val > PID_MAX_DEFAULT:
            raise KernelError(errno.EINVAL)
        tracing.cmdline_size = capacity(val)
        tracing.cmdlines.clear()

    tracing.cmdline_size = capacity(tracing.cmdline_size)
    return seq_file(TRACE_MODE_WRITE, show, write)


class InstancesDir(Dir):
    """``instances/``: mkdir creates a full trace array, rmdir removes it (EBUSY in use)."""

    def __init__(self, kernel: Kernel) -> None:
        super().__init__(0o750)
        self.kernel = kernel

    def mkdir(self, name: str) -> Node:
        if self.lookup(name) is not None:
            raise KernelError(errno.EEXIST)
        tr = self.kernel.trace.instance_mkdir(name)
        node = instance_files(self.kernel, tr)
        self.add(name, node)
        return node

    def rmdir(self, name: str) -> None:
        if self.lookup(name) is None:
            raise KernelError(errno.ENOENT)
        self.kernel.trace.instance_rmdir(name)
        self.remove(name)

    def stable_child(self, name: str) -> bool:
        """An instance's tree stays until its rmdir, which drops its dentry (the VFS
        then cannot reach the cached ones below): the VFS may keep them.  A file of a
        removed instance reached anyway (a process's cwd inside it) holds no
        reference: its open fails with ENODEV (File.pin)."""
        return True


EVENT_TOP_FILES = ("available_events",)
FTRACE_TOP_FILES = ("available_filter_functions", "available_filter_functions_addrs",
                    "dyn_ftrace_total_info", "enabled_functions", "max_graph_depth",
                    "set_graph_function", "set_graph_notrace", "touched_functions")
STACK_FILES = ("stack_max_size", "stack_trace", "stack_trace_filter")
PROBE_TOP_FILES = ("kprobe_events", "kprobe_profile", "synthetic_events", "uprobe_events",
                   "uprobe_profile")


def build_top_level(kernel: Kernel) -> Dir:
    """The tracing directory: global_trace's files plus the top-level-only ones."""
    tracing = kernel.trace
    root = instance_files(kernel, tracing.global_trace)
    readme = data_bytes("README.txt")
    root.add("README", seq_file(TRACE_MODE_READ, lambda: readme))
    root.add("instances", InstancesDir(kernel))
    root.add("saved_cmdlines", seq_file(TRACE_MODE_READ, tracing.saved_cmdlines_text))
    root.add("saved_cmdlines_size", _saved_cmdlines_size(kernel))
    root.add("saved_tgids", seq_file(TRACE_MODE_READ, tracing.saved_tgids_text))

    def set_thresh(v: int) -> None:
        tracing.tracing_thresh = v

    root.add("tracing_thresh", _nsecs_file(lambda: tracing.tracing_thresh, set_thresh))
    _add_built(root, event_top_files, event_top_files(kernel), EVENT_TOP_FILES)
    _add_built(root, ftrace_top_files, ftrace_top_files(kernel), FTRACE_TOP_FILES)
    root.add("dynamic_events", dynamic_events_file(kernel))
    _add_built(root, stack_files, stack_files(kernel), STACK_FILES)
    _add_built(root, probe_top_files, probe_top_files(kernel), PROBE_TOP_FILES)
    for name in NOT_SIMULATED:
        root.add(name, NotSimulatedFile(name))
    return root


__all__ = ["NOT_SIMULATED", "POLLOUT", "TreeBuildError", "build_top_level", "instance_files"]
