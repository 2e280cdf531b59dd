"""``dynamic_events`` (trace_dynevent.c) and the stack tracer's files (trace_stack.c).

``dynamic_events``: an O_TRUNC open for write releases every dynamic event (EBUSY, and
the open fails, when one is in use); each ``write()`` runs its lines through
``trace_parse_run_command``; reads show every event's definition.  The probe kinds'
own files (``kprobe_events``…) are the same file restricted to one kind
(probe_files.py).
"""

from __future__ import annotations

from collections.abc import Callable

from ..kernel.core import Kernel
from ..kernel.ftrace import ITER_FILTER
from ..kernel.trace_dynevent import DynEventOps, DynEvents
from .files import parse_ulong, seq_file
from .ftrace_files import regex_file
from .node import File, Node


def dyn_events_file(dyn: DynEvents, kind: DynEventOps | None = None,
                    create: Callable[[str], int] | None = None,
                    show: Callable[[], str] | None = None) -> File:
    """``dynamic_events``, or with ``kind`` one kind's ``*_events`` file: O_TRUNC
    releases (that kind's) events, a write runs each line through ``create`` (default
    create_dyn_event: every kind in turn), a read shows the definitions."""
    def write(data: bytes) -> None:
        dyn.write(data, create)

    return seq_file(0o640, show or (lambda: dyn.show(kind)), write, lambda: dyn.open_trunc(kind))


def stack_files(kernel: Kernel) -> dict[str, Node]:
    """stack_max_size, stack_trace and stack_trace_filter of the stack tracer
    (kernel/trace_stack.py)."""
    st = kernel.stack_tracer
    ft = kernel.ftrace

    def write_max(data: bytes) -> None:
        st.max_size_write(parse_ulong(data))

    return {
        "stack_max_size": seq_file(0o640, st.max_size_show, write_max),
        "stack_trace": seq_file(0o440, st.trace_show),
        # ftrace_regex_open(NULL, &trace_ops, FTRACE_ITER_FILTER, ...): no trace array
        "stack_trace_filter": regex_file(lambda r, w, t: ft.regex_open(None, st.ops, ITER_FILTER, r, w, t)),
    }


def dynamic_events_file(kernel: Kernel) -> File:
    """The top level's ``dynamic_events``: every kind."""
    return dyn_events_file(kernel.dynevent)
