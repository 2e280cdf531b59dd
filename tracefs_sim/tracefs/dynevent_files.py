"""``dynamic_events`` (trace_dynevent.c) and the stack tracer's files (trace_stack.c).

``dynamic_events``: an O_TRUNC open for write releases every dynamic event (EBUSY, and
the open fails, when one is in use); each ``write()`` runs its lines through
``trace_parse_run_command``; reads show every event's definition.
"""

from __future__ import annotations

import errno
from typing import Any

from ..kernel.errors import KernelError, _WouldBlock
from .files import parse_ulong, seq_file
from .node import File, Node, OpenFile, OpenMode


class DynEventsOpenFile(OpenFile):
    def __init__(self, node: File, mode: OpenMode, dyn: Any, kind: Any = None) -> None:
        super().__init__(node, mode)
        self.dyn, self.kind = dyn, kind
        if mode.write and mode.trunc:
            dyn.open_trunc(kind)
        self._buf = b""

    def read(self, offset: int, size: int) -> bytes | _WouldBlock:
        if offset == 0 or not self._buf:
            self._buf = self.dyn.show(self.kind).encode()
        return self._buf[offset:offset + size]

    def write(self, offset: int, data: bytes) -> int:
        if self.kind is not None:
            return self.dyn.write(data, lambda line: self.kind_create(line))
        return self.dyn.write(data)

    def kind_create(self, line: str) -> int:
        return self.dyn.create(line)


def dynamic_events_file(kernel: Any) -> File:
    dyn = kernel.dynevent
    return File(0o640, lambda node, m: DynEventsOpenFile(node, m, dyn))


def stack_files(kernel: Any) -> dict[str, Node]:
    """stack_max_size, stack_trace and stack_trace_filter of the stack tracer
    (kernel/trace_stack.py)."""
    st = getattr(kernel, "stack_tracer", None)
    ft = getattr(kernel, "ftrace", None)
    if st is None or ft is None:
        return {}
    from ..kernel.ftrace import ITER_FILTER
    from .ftrace_files import regex_file

    def write_max(data: bytes) -> None:
        st.max_size_write(parse_ulong(data))

    return {
        "stack_max_size": seq_file(0o640, st.max_size_show, write_max),
        "stack_trace": seq_file(0o440, st.trace_show),
        # ftrace_regex_open(NULL, &trace_ops, FTRACE_ITER_FILTER, ...): no trace array
        "stack_trace_filter": regex_file(lambda r, w, t: ft.regex_open(None, st.ops, ITER_FILTER, r, w, t)),
    }


def dynevent_top_files(kernel: Any) -> dict[str, Node]:
    files: dict[str, Node] = {}
    if getattr(kernel, "dynevent", None) is not None:
        files["dynamic_events"] = dynamic_events_file(kernel)
    try:
        files.update(stack_files(kernel))
    except (ImportError, TypeError, AttributeError):
        pass
    try:
        from .probe_files import probe_top_files
    except ImportError:
        pass
    else:
        files.update(probe_top_files(kernel))
    return files


def inert_file(mode: int) -> File:
    """A control file of a feature not simulated yet: reads empty, accepts an empty
    write (scripts reset it with ``echo > FILE``), refuses anything else with EINVAL."""

    def write(data: bytes) -> None:
        if data.strip():
            raise KernelError(errno.EINVAL)

    return seq_file(mode, lambda: "", write if mode & 0o200 else None)
