"""The files of trace.c's init_tracer_tracefs(): one table for the top level and instances.

``instance_files(kernel, tr)`` builds the per-instance directory (also used for the top
level); ``build_top_level(kernel)`` adds the top-level-only files.  Files of other
subsystems (events, ftrace filters, dynamic events) come from their own modules through
``_optional`` so each piece can land separately; a feature not built yet keeps its file
with the real mode and answers ENODEV, as a kernel without the feature would refuse it.
"""

from __future__ import annotations

import errno
import importlib
from collections.abc import Callable
from importlib import resources

from ..kernel import Kernel
from ..kernel.errors import WOULD_BLOCK, KernelError, _WouldBlock
from ..kernel.trace import (
    TOP_LEVEL_TRACE_FLAGS,
    TRACE_FLAG_NAMES,
    PipeReader,
    TraceArray,
    trace_file_text,
)
from ..kernel.waitqueue import WaitQueue
from .files import parse_ulong, seq_file
from .node import POLLIN, POLLOUT, Dir, File, Node, OpenFile, OpenMode, pin_files

PID_MAX_DEFAULT = 0x8000


def _data_text(name: str) -> bytes:
    try:
        return resources.files("tracefs_sim.data").joinpath(name).read_bytes()
    except (FileNotFoundError, ModuleNotFoundError):
        return b""


def placeholder(mode: int) -> File:
    """A file of a feature not built yet: same mode, reads empty, accepts only an empty
    write (``echo > FILE`` resets it), anything else is EINVAL as an unknown command."""
    from .dynevent_files import inert_file

    return inert_file(mode)


def _optional(module: str, func: str, *args: object) -> dict[str, Node] | Node | None:
    try:
        mod = importlib.import_module(f"tracefs_sim.tracefs.{module}")
    except ModuleNotFoundError as e:
        if e.name != f"tracefs_sim.tracefs.{module}":
            raise
        return None
    fn = getattr(mod, func, None)
    return fn(*args) if fn is not None else None


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

    def read(self, offset: int, size: int) -> bytes | _WouldBlock:
        if self._data is None or offset == 0:
            parts = trace_file_text(self.tr, self.cpu, self.snapshot)
            try:    # one encode for the whole text
                self._data = "".join(parts).encode("utf-8", "surrogateescape")  # type: ignore[arg-type]
            except TypeError:   # binary records (options/bin) among the text
                self._data = b"".join(p.encode("utf-8", "surrogateescape") if isinstance(p, str)
                                      else p for p in parts)
        return self._data[offset:offset + size]

    def write(self, offset: int, data: bytes) -> int:
        if not self.snapshot:
            return len(data)  # tracing_write_stub
        snapshot_write(self.tr, self.cpu, data)
        return len(data)


def snapshot_write(tr: TraceArray, cpu: int | None, data: bytes) -> None:
    """tracing_snapshot_write()."""
    tracing = tr.tracing
    tracing.update_buffers()
    val = parse_ulong(data)
    if tr.current_trace.use_max_tr:
        raise KernelError(errno.EBUSY)
    if val == 0:
        if cpu is not None:
            raise KernelError(errno.EINVAL)
        tracing.free_snapshot(tr)
    elif val == 1:
        tracing.take_snapshot(tr, cpu)
    elif tr.allocated_snapshot and tr.max_buffer is not None:
        tr.max_buffer.reset(cpu)


def trace_file(tr: TraceArray, cpu: int | None = None, snapshot: bool = False) -> File:
    return File(0o640, lambda node, m: TraceOpenFile(node, m, tr, cpu, snapshot))


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

    def _rb(self):
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

    return seq_file(0o640, show, write)


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

    return seq_file(0o640, show, write)


def _buffer_total(tr: TraceArray) -> File:
    tracing = tr.tracing

    def show() -> str:
        size = sum(c >> 10 for c in tr.size_cache)
        if tr.is_top and not tracing.buffer_expanded:
            return f"{size} (expanded: {(tracing.trace_buf_size >> 10) * tracing.nr_cpus})\n"
        return f"{size}\n"

    return seq_file(0o440, show)


def _subbuf_size(tr: TraceArray) -> File:
    def show() -> str:
        return f"{tr.buffer.subbuf_size >> 10}\n"

    def write(data: bytes) -> None:
        val = parse_ulong(data) * 1024
        pages = -(-val // 4096)
        order = (pages - 1).bit_length() if pages > 0 else 64
        if order > 7:
            raise KernelError(errno.EINVAL)
        tr.buffer.set_subbuf_size((1 << order) * 4)
        if tr.allocated_snapshot and tr.max_buffer is not None:
            tr.max_buffer.set_subbuf_size((1 << order) * 4)

    return seq_file(0o640, show, write)


def _percent(tr: TraceArray) -> File:
    def show() -> str:
        return f"{tr.buffer_percent}\n"

    def write(data: bytes) -> None:
        val = parse_ulong(data)
        if val > 100:
            raise KernelError(errno.EINVAL)
        tr.buffer_percent = val

    return seq_file(0o640, show, write)


def _current_tracer(tr: TraceArray) -> File:
    tracing = tr.tracing

    def show() -> str:
        return tr.current_trace.name + "\n"

    def write(data: bytes) -> None:
        # tracing_set_trace_write: strip trailing whitespace (up to MAX_TRACER_SIZE)
        name = data[:100].decode("latin-1").rstrip()
        tracing.set_tracer(tr, name)

    return seq_file(0o640, show, write)


def _trace_clock(tr: TraceArray) -> File:
    tracing = tr.tracing

    def write(data: bytes) -> None:
        name = data[:64].decode("latin-1").strip()
        tracing.set_clock(tr, name)

    return seq_file(0o640, tr.clock.show, write)


def _trace_options(tr: TraceArray) -> File:
    tracing = tr.tracing

    def write(data: bytes) -> None:
        if len(data) >= 64:
            raise KernelError(errno.EINVAL)
        tracing.set_option(tr, data.decode("latin-1").strip())

    return seq_file(0o640, lambda: tracing.options_text(tr), write)


def _flag_file(tr: TraceArray, mask: int) -> File:
    tracing = tr.tracing

    def show() -> str:
        return "1\n" if tr.flags & mask else "0\n"

    def write(data: bytes) -> None:
        val = parse_ulong(data)
        if val not in (0, 1):
            raise KernelError(errno.EINVAL)
        tracing.set_flag(tr, mask, bool(val))

    return seq_file(0o640, show, write)


def _tracer_opt_file(tr: TraceArray, name: str) -> File:
    tracing = tr.tracing

    def owner():
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

    return seq_file(0o640, show, write)


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
        text = data.decode("latin-1").strip().replace(",", "")
        if not text:
            raise KernelError(errno.EINVAL)
        try:
            mask = int(text, 16)
        except ValueError:
            raise KernelError(errno.EINVAL) from None
        old = tr.cpumask
        tr.cpumask = mask & ((1 << nr) - 1)
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

    return seq_file(0o640, show, write)


def _nsecs_file(get: Callable[[], int], put: Callable[[int], None]) -> File:
    """tracing_nsecs_read/write: shown and written in microseconds."""

    def show() -> str:
        ns = get()
        return f"{ns // 1000 if ns != -1 else -1}\n"

    def write(data: bytes) -> None:
        put(parse_ulong(data) * 1000)

    return seq_file(0o640, show, write)


def _err_log(tr: TraceArray) -> File:
    def trunc() -> None:
        tr.err_log.clear()

    return seq_file(0o640, tr.err_log_text, lambda data: None, trunc)


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

    return seq_file(0o440, show)


def per_cpu_dir(tr: TraceArray) -> Dir:
    d = Dir(0o750)
    for cpu in range(tr.tracing.nr_cpus):
        c = Dir(0o750)
        c.add("buffer_size_kb", _buffer_size(tr, cpu))
        c.add("snapshot", trace_file(tr, cpu, snapshot=True))
        c.add("snapshot_raw", File(0o440, lambda n, m, cpu=cpu: RawOpenFile(n, m, tr, cpu, True)))
        c.add("stats", _stats(tr, cpu))
        c.add("trace", trace_file(tr, cpu))
        c.add("trace_pipe", File(0o440, lambda n, m, cpu=cpu: PipeOpenFile(n, m, tr, cpu)))
        c.add("trace_pipe_raw", File(0o440, lambda n, m, cpu=cpu: RawOpenFile(n, m, tr, cpu, False)))
        d.add(f"cpu{cpu}", c)
    return d


def instance_files(kernel: Kernel, tr: TraceArray) -> Dir:
    """init_tracer_tracefs(): the files every trace array has."""
    tracing = tr.tracing
    d = Dir(0o750 if not tr.is_top else 0o700)
    d.add("available_tracers", seq_file(0o440, lambda: tracing.available_tracers(tr)))
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
    d.add("timestamp_mode", seq_file(0o440, lambda: "[delta] absolute\n"))
    d.add("trace", trace_file(tr))
    d.add("trace_clock", _trace_clock(tr))
    d.add("trace_marker", _marker(tr, raw=False))
    d.add("trace_marker_raw", _marker(tr, raw=True))
    d.add("trace_options", _trace_options(tr))
    d.add("trace_pipe", File(0o440, lambda n, m: PipeOpenFile(n, m, tr, None)))
    d.add("tracing_cpumask", _cpumask(tr))
    d.add("tracing_max_latency", _nsecs_file(lambda: tr.max_latency,
                                             lambda v: setattr(tr, "max_latency", v)))
    d.add("tracing_on", _on_off(tr))
    # events and event control files (trace_events.c)
    ev = _optional("event_files", "events_dir", kernel, tr)
    d.add("events", ev if isinstance(ev, Node) else Dir(0o755))
    files = _optional("event_files", "event_instance_files", kernel, tr)
    for name in ("set_event", "set_event_notrace_pid", "set_event_pid"):
        d.add(name, files[name] if isinstance(files, dict) and name in files else placeholder(0o640))
    # function tracer filters (ftrace.c)
    files = _optional("ftrace_files", "ftrace_files", kernel, tr)
    for name in ("set_ftrace_filter", "set_ftrace_notrace", "set_ftrace_notrace_pid", "set_ftrace_pid"):
        d.add(name, files[name] if isinstance(files, dict) and name in files else placeholder(0o640))
    if not tr.is_top:
        # every open of an instance's file takes trace_array_get() (tracing_open_generic_tr
        # and its kin): rmdir is EBUSY while one is open
        pin_files(d, tr)
    return d


def _saved_cmdlines_size(kernel: Kernel) -> File:
    tracing = kernel.trace

    def capacity(val: int) -> int:
        # allocate_cmdlines_buffer(): the pid map plus val comms, rounded up to a page order
        header = (PID_MAX_DEFAULT + 1) * 4 + 8 + 4 + 4 + 8
        orig = header + val * 16
        order = max(0, (-(-orig // 4096) - 1).bit_length())
        return ((4096 << order) - header) // 20

    def show() -> str:
        return f"{capacity(tracing.cmdline_size)}\n"

    def write(data: bytes) -> None:
        val = parse_ulong(data)
        if not val or val > PID_MAX_DEFAULT:
            raise KernelError(errno.EINVAL)
        tracing.cmdline_size = capacity(val)
        tracing.cmdlines.clear()

    tracing.cmdline_size = capacity(tracing.cmdline_size)
    return seq_file(0o640, show, write)


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


TOP_ONLY_PLACEHOLDERS: dict[str, int] = {
    "available_events": 0o440, "available_filter_functions": 0o440,
    "available_filter_functions_addrs": 0o440, "dyn_ftrace_total_info": 0o440,
    "dynamic_events": 0o640, "enabled_functions": 0o440, "kprobe_events": 0o640,
    "kprobe_profile": 0o440, "max_graph_depth": 0o640, "set_graph_function": 0o640,
    "set_graph_notrace": 0o640, "stack_max_size": 0o640, "stack_trace": 0o440,
    "stack_trace_filter": 0o640, "synthetic_events": 0o640, "touched_functions": 0o440,
    "uprobe_events": 0o640, "uprobe_profile": 0o440,
}


def build_top_level(kernel: Kernel) -> Dir:
    """The tracing directory: global_trace's files plus the top-level-only ones."""
    tracing = kernel.trace
    tr = tracing.global_trace
    root = instance_files(kernel, tr)
    readme = _data_text("README.txt")
    root.add("README", seq_file(0o440, lambda: readme))
    root.add("instances", InstancesDir(kernel))
    root.add("printk_formats", seq_file(0o440, lambda: ""))
    root.add("saved_cmdlines", seq_file(0o440, tracing.saved_cmdlines_text))
    root.add("saved_cmdlines_size", _saved_cmdlines_size(kernel))
    root.add("saved_tgids", seq_file(0o440, tracing.saved_tgids_text))

    def set_thresh(v: int) -> None:
        tracing.tracing_thresh = v

    root.add("tracing_thresh", _nsecs_file(lambda: tracing.tracing_thresh, set_thresh))
    extra: dict[str, Node] = {}
    for module, func in (("event_files", "event_top_files"), ("ftrace_files", "ftrace_top_files"),
                         ("dynevent_files", "dynevent_top_files"), ("probe_files", "probe_top_files")):
        files = _optional(module, func, kernel)
        if isinstance(files, dict):
            extra.update(files)
    for name, mode in TOP_ONLY_PLACEHOLDERS.items():
        root.add(name, extra.get(name) or placeholder(mode))
    for name, node in extra.items():
        if root.lookup(name) is None:
            root.add(name, node)
    return root


__all__ = ["build_top_level", "instance_files", "POLLOUT"]
