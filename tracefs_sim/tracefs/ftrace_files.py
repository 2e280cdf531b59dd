"""The ftrace files of tracefs (kernel/trace/ftrace.c, trace_functions_graph.c).

Per trace array (``ftrace_files(kernel, tr)``; ftrace_create_filter_files() and
ftrace_init_tracefs()): ``set_ftrace_filter``, ``set_ftrace_notrace``,
``set_ftrace_pid``, ``set_ftrace_notrace_pid``.

Top level only (``ftrace_top_files(kernel)``; ftrace_init_dyn_tracefs(),
init_graph_tracefs(), tracer_init_tracefs()): ``available_filter_functions``,
``available_filter_functions_addrs``, ``enabled_functions``, ``touched_functions``,
``dyn_ftrace_total_info``, ``set_graph_function``, ``set_graph_notrace``,
``max_graph_depth``.

The filter files keep a per-open copy of the hash (``O_TRUNC``: an empty one) and a
trace_parser; the kernel swaps the copy in at release.  Over FUSE the release comes
after ``close()`` returns, so the copy is committed at the first FLUSH that follows a
write (bash flushes before writing too: such flushes are ignored), and at release when
nothing committed it yet.  Writes after a commit (a dup'ed fd) start a new copy of the
committed hash and keep the partial word.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..kernel.errors import KernelError, _WouldBlock
from ..kernel.fgraph import GRAPH_FILTER_FUNCTION, GRAPH_FILTER_NOTRACE
from ..kernel.ftrace import ITER_DO_PROBES, ITER_FILTER, ITER_NOTRACE
from ..kernel.ftrace_iter import enabled_functions_text, touched_functions_text
from ..kernel.trace_parser import TraceParser
from .files import parse_ulong, seq_file
from .node import File, Node, OpenFile, OpenMode

if TYPE_CHECKING:
    from ..kernel.core import Kernel
    from ..kernel.trace import TraceArray

TRACE_MODE_WRITE = 0o640
TRACE_MODE_READ = 0o440


class _RegexIter(Protocol):
    """A filter file's per-open iterator (kernel RegexIter / GraphRegexIter)."""

    parser: TraceParser
    pos: int

    def write(self, data: bytes) -> int: ...

    def show(self) -> str: ...

    def release(self) -> None: ...


IterFactory = Callable[[bool, bool, bool], _RegexIter]


class RegexOpenFile(OpenFile):
    """An open set_ftrace_filter/notrace or set_graph_function/notrace."""

    def __init__(self, node: File, mode: OpenMode, factory: IterFactory) -> None:
        super().__init__(node, mode)
        self._factory = factory
        self.it: _RegexIter = factory(mode.read, mode.write, mode.write and mode.trunc)
        self._buf = b""
        self._dirty = False  # written since the last commit
        self._committed = False

    def read(self, offset: int, size: int) -> bytes | _WouldBlock:
        if not self.mode.read:
            raise KernelError(errno.EBADF)
        if offset == 0 or not self._buf:
            self._buf = self.it.show().encode("utf-8", "surrogateescape")
        return self._buf[offset:offset + size]

    def write(self, offset: int, data: bytes) -> int:
        if not self.mode.write:
            raise KernelError(errno.EBADF)
        if self._committed:
            # more writes after the commit: continue on a fresh copy, keep the parser
            old = self.it
            self.it = self._factory(self.mode.read, True, False)
            self.it.parser = old.parser
            self.it.pos = old.pos
            self._committed = False
        self._dirty = True
        return self.it.write(data)

    def _commit(self) -> None:
        self.it.release()
        self._committed = True
        self._dirty = False

    def flush(self) -> None:
        if self._dirty:
            self._commit()

    def release(self) -> None:
        if not self._committed:
            try:
                self._commit()
            except KernelError:
                pass


def regex_file(factory: IterFactory) -> File:
    def opener(node: File, mode: OpenMode) -> OpenFile:
        return RegexOpenFile(node, mode, factory)

    return File(TRACE_MODE_WRITE, opener)


class PidOpenFile(OpenFile):
    """set_ftrace_pid / set_ftrace_notrace_pid: O_TRUNC clears, each write adds."""

    def __init__(self, node: File, mode: OpenMode, kernel: Kernel, tr: TraceArray,
                 notrace: bool) -> None:
        super().__init__(node, mode)
        self.pid = kernel.ftrace.pid
        self.tr = tr
        self.notrace = notrace
        self._buf = b""
        if mode.write and mode.trunc:
            self.pid.pid_reset(tr, notrace)

    def read(self, offset: int, size: int) -> bytes | _WouldBlock:
        if offset == 0 or not self._buf:
            self._buf = self.pid.pid_show(self.tr, self.notrace).encode()
        return self._buf[offset:offset + size]

    def write(self, offset: int, data: bytes) -> int:
        if not data:
            return 0
        return self.pid.pid_write(self.tr, data, self.notrace)


def ftrace_files(kernel: Kernel, tr: TraceArray) -> dict[str, Node]:
    """The ftrace files of one trace array (top level or ``instances/NAME``), over
    ``tr.ops`` (the function tracer's FtraceOps: global_ops at the top level, one per
    instance, made when the array is)."""
    ft = kernel.ftrace

    def filter_iter(read: bool, write: bool, trunc: bool) -> _RegexIter:
        return ft.regex_open(tr, tr.ops, ITER_FILTER | ITER_DO_PROBES, read, write, trunc)

    def notrace_iter(read: bool, write: bool, trunc: bool) -> _RegexIter:
        return ft.regex_open(tr, tr.ops, ITER_NOTRACE, read, write, trunc)

    def pid_file(notrace: bool) -> File:
        def opener(node: File, mode: OpenMode) -> OpenFile:
            return PidOpenFile(node, mode, kernel, tr, notrace)

        return File(TRACE_MODE_WRITE, opener)

    return {
        "set_ftrace_filter": regex_file(filter_iter),
        "set_ftrace_notrace": regex_file(notrace_iter),
        "set_ftrace_pid": pid_file(False),
        "set_ftrace_notrace_pid": pid_file(True),
    }


def _cached_bytes(make: Callable[[], str]) -> Callable[[], bytes]:
    cache: list[bytes] = []

    def show() -> bytes:
        if not cache:
            cache.append(make().encode())
        return cache[0]

    return show


def ftrace_top_files(kernel: Kernel) -> dict[str, Node]:
    """The ftrace files that only the top-level tracing directory has."""
    ft = kernel.ftrace
    records = ft.records
    fg = kernel.fgraph

    def graph_iter(typ: int) -> IterFactory:
        def make(read: bool, write: bool, trunc: bool) -> _RegexIter:
            return fg.graph_open(typ, read, write, trunc)

        return make

    def depth_show() -> str:
        v = fg.max_depth & 0xFFFFFFFF
        return f"{v - (1 << 32) if v & 0x80000000 else v}\n"  # "%d" of an unsigned int

    def depth_write(data: bytes) -> None:
        # kstrtoul_from_user() reads at most 66 bytes
        val = parse_ulong(data[:66])
        if val >= 1 << 64:
            raise KernelError(errno.ERANGE)
        fg.max_depth = val & 0xFFFFFFFF

    return {
        "available_filter_functions":
            seq_file(TRACE_MODE_READ, _cached_bytes(records.available_filter_functions_text)),
        "available_filter_functions_addrs":
            seq_file(TRACE_MODE_READ, _cached_bytes(records.available_filter_functions_addrs_text)),
        "enabled_functions": seq_file(TRACE_MODE_READ, lambda: enabled_functions_text(ft)),
        "touched_functions": seq_file(TRACE_MODE_READ, lambda: touched_functions_text(ft)),
        "dyn_ftrace_total_info": seq_file(TRACE_MODE_READ, records.dyn_ftrace_total_info_text),
        "set_graph_function": regex_file(graph_iter(GRAPH_FILTER_FUNCTION)),
        "set_graph_notrace": regex_file(graph_iter(GRAPH_FILTER_NOTRACE)),
        "max_graph_depth": seq_file(TRACE_MODE_WRITE, depth_show, depth_write),
    }
