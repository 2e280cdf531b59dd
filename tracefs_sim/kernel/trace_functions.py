"""The ``function`` tracer (kernel/trace/trace_functions.c) and its filter commands.

``boot()`` registers the tracer with the tracing core (replacing trace.py's built-in
placeholder) and the set_ftrace_filter commands of ftrace_cmds.py.  The tracer uses the
trace array's own ftrace_ops (``tr.ops``: global_ops at the top level, FL_PID), so the
array's set_ftrace_filter/notrace/pid select what it sees.

Records: TRACE_FN (``struct ftrace_entry``: ip, parent_ip) and, with
``func_stack_trace``, a TRACE_STACK entry whose first caller is the trampoline marker
(``FTRACE_TRAMPOLINE_MARKER``, printed ``[FTRACE TRAMPOLINE]``), then the call chain
from ``kernel.workload.current_stack()`` when the workload offers one.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from .errors import KernelError
from .ftrace import Ftrace, FtraceOps, _ftrace_stub, ksym
from .ftrace_cmds import FuncCommands, TracingHooks, register_func_commands
from .trace import Tracer
from .trace_output import Printer

if TYPE_CHECKING:
    from .core import Kernel

TRACE_FN = 1
TRACE_STACK = 4
TRACE_FUNC_REPEATS = 19
U16_MAX = 0xFFFF
_REPEATS = struct.Struct("<QQHHI")  # struct func_repeats_entry
FTRACE_TRAMPOLINE_MARKER = 0x7FFFFFFF  # (unsigned long)INT_MAX
FTRACE_STACK_ENTRIES = 8  # kept short: the tests and golden show 5 callers
_FN = struct.Struct("<QQ")

OPT_STACK = "func_stack_trace"
OPT_NO_REPEATS = "func-no-repeats"


class FunctionTracer:
    """trace_functions.c for one kernel."""

    def __init__(self, kernel: Kernel, ftrace: Ftrace) -> None:
        self.k = kernel
        self.ft = ftrace
        self.cmds: FuncCommands | None = None

    # ------------------------------------------------------------------ records
    def trace_function(self, tr: Any, ip: int, parent_ip: int) -> None:
        """trace_function(): one TRACE_FN entry on the current CPU."""
        cpu = self.k.sched.cpu
        off = tr.event_reserve(cpu, TRACE_FN, 8 + _FN.size)
        if off < 0:
            return
        _FN.pack_into(tr.event_buf(cpu), off + 8, ip, parent_ip)
        tr.event_commit(cpu)

    def trace_stack(self, tr: Any, ip: int, parent_ip: int) -> None:
        """__trace_stack() from a function callback."""
        wl = getattr(self.k, "workload", None)
        get = getattr(wl, "current_stack", None)
        calls: list[int] = list(get()) if get is not None else [ip, parent_ip]
        calls = [FTRACE_TRAMPOLINE_MARKER, *calls][:FTRACE_STACK_ENTRIES]
        cpu = self.k.sched.cpu
        size = 16 + 8 * (len(calls) + 1)
        off = tr.event_reserve(cpu, TRACE_STACK, size)
        if off < 0:
            return
        buf = tr.event_buf(cpu)
        struct.pack_into("<i", buf, off + 8, len(calls))
        for n, a in enumerate([*calls, 0]):
            struct.pack_into("<Q", buf, off + 16 + 8 * n, a)
        tr.event_commit(cpu)

    def is_repeat(self, tr: Any, ip: int, parent_ip: int) -> bool:
        """is_repeat_check() + process_repeats(): True for another consecutive call of
        the same function from the same place on this CPU (counted, not recorded);
        otherwise the pending repeats are flushed as a TRACE_FUNC_REPEATS entry."""
        per_cpu = tr.last_func_repeats
        cpu = self.k.sched.cpu
        last = per_cpu.get(cpu)
        if last is None:
            last = per_cpu[cpu] = [0, 0, 0, 0]  # ip, parent_ip, count, ts_last_call
        if last[0] == ip and last[1] == parent_ip and last[2] < U16_MAX:
            last[3] = tr.clock.now()
            last[2] += 1
            return True
        if last[2]:
            self.trace_last_func_repeats(tr, last)
            last[2] = 0
        last[0], last[1] = ip, parent_ip
        return False

    def trace_last_func_repeats(self, tr: Any, last: list[int]) -> None:
        """trace_last_func_repeats(): the count and how long ago the last repeat was."""
        cpu = self.k.sched.cpu
        now = tr.clock.now()
        off = tr.event_reserve(cpu, TRACE_FUNC_REPEATS, 8 + _REPEATS.size)
        if off < 0:
            return
        delta = max(0, now - last[3])
        _REPEATS.pack_into(tr.event_buf(cpu), off + 8, last[0], last[1], last[2],
                           (delta >> 32) & U16_MAX, delta & 0xFFFFFFFF)
        tr.event_commit(cpu)

    # ------------------------------------------------------------------ callbacks
    def _enabled(self, tr: Any) -> bool:
        return bool(tr.function_enabled)

    def _make_calls(self) -> dict[tuple[bool, bool], Any]:
        ft = self.ft

        @ksym("function_trace_call")
        def function_trace_call(ip: int, pip: int, op: FtraceOps, fregs: Any) -> None:
            tr = op.private
            if not tr.function_enabled:
                return
            bit = ft.recursion_trylock(ip, pip)
            if bit < 0:
                return
            try:
                self.trace_function(tr, ip, pip)
            finally:
                ft.recursion_unlock(bit)

        @ksym("function_stack_trace_call")
        def function_stack_trace_call(ip: int, pip: int, op: FtraceOps, fregs: Any) -> None:
            tr = op.private
            if not tr.function_enabled:
                return
            disabled = tr.data_disabled + 1
            tr.data_disabled = disabled
            try:
                if disabled == 1:
                    self.trace_function(tr, ip, pip)
                    self.trace_stack(tr, ip, pip)
            finally:
                tr.data_disabled = disabled - 1

        @ksym("function_no_repeats_trace_call")
        def function_no_repeats_trace_call(ip: int, pip: int, op: FtraceOps, fregs: Any) -> None:
            tr = op.private
            if not tr.function_enabled:
                return
            bit = ft.recursion_trylock(ip, pip)
            if bit < 0:
                return
            try:
                if self.is_repeat(tr, ip, pip):
                    return
                self.trace_function(tr, ip, pip)
            finally:
                ft.recursion_unlock(bit)

        @ksym("function_stack_no_repeats_trace_call")
        def function_stack_no_repeats_trace_call(ip: int, pip: int, op: FtraceOps, fregs: Any) -> None:
            tr = op.private
            if not tr.function_enabled:
                return
            disabled = tr.data_disabled + 1
            tr.data_disabled = disabled
            try:
                if disabled == 1 and not self.is_repeat(tr, ip, pip):
                    self.trace_function(tr, ip, pip)
                    self.trace_stack(tr, ip, pip)
            finally:
                tr.data_disabled = disabled - 1

        return {(False, False): function_trace_call, (True, False): function_stack_trace_call,
                (False, True): function_no_repeats_trace_call,
                (True, True): function_stack_no_repeats_trace_call}

    def select_trace_function(self, stack: bool, no_repeats: bool) -> Any:
        calls = getattr(self, "_calls", None)
        if calls is None:
            calls = self._calls = self._make_calls()
        return calls[(stack, no_repeats)]

    # ------------------------------------------------------------------ tracer hooks
    def init(self, tr: Any) -> None:
        """function_trace_init()."""
        if getattr(tr, "ops", None) is None:
            raise KernelError(12)  # ENOMEM: the instance has no ops
        func = self.select_trace_function(tr.tracer_opt(OPT_STACK), tr.tracer_opt(OPT_NO_REPEATS))
        tr.ops.func = func  # ftrace_init_array_ops()
        tr.ops.private = tr
        self._set_quiet(tr)
        tracing = self.k.trace
        tracing.cmdline_ref += 1  # tracing_start_cmdline_record()
        tr.function_enabled = False
        self.ft.register_ftrace_function(tr.ops)
        tr.function_enabled = True

    def reset(self, tr: Any) -> None:
        """function_trace_reset()."""
        tr.function_enabled = False
        try:
            self.ft.unregister_ftrace_function(tr.ops)
        except KernelError:
            pass
        tracing = self.k.trace
        if tracing.cmdline_ref:
            tracing.cmdline_ref -= 1
        tr.ops.func = _ftrace_stub  # ftrace_reset_array_ops()
        tr.ops.quiet = None

    def set_flag(self, tr: Any, name: str, value: bool) -> bool:
        """func_set_flag(): swap the callback while the tracer runs."""
        if name not in (OPT_STACK, OPT_NO_REPEATS):
            return True
        stack = value if name == OPT_STACK else tr.tracer_opt(OPT_STACK)
        norep = value if name == OPT_NO_REPEATS else tr.tracer_opt(OPT_NO_REPEATS)
        func = self.select_trace_function(stack, norep)
        if tr.ops.func is func or tr.ops.saved_func is func:
            return True
        self.ft.unregister_ftrace_function(tr.ops)
        tr.ops.func = func
        self._set_quiet(tr, norep)
        self.ft.register_ftrace_function(tr.ops)
        return True

    def _set_quiet(self, tr: Any, no_repeats: bool | None = None) -> None:
        """The callbacks record into ``tr``'s ring buffer only: while it records nothing
        (tracing_on 0) they leave no trace, except func-no-repeats, whose repeat count
        goes on and is written once recording resumes."""
        if no_repeats is None:
            no_repeats = tr.tracer_opt(OPT_NO_REPEATS)
        if no_repeats:
            tr.ops.quiet = None
        else:
            tr.ops.quiet = lambda: not tr.buffer.record_is_on() or not tr.function_enabled


def boot(kernel: Kernel) -> FunctionTracer:
    """init_function_trace(): the function tracer and the function commands."""
    ft = kernel.ftrace
    tracing = kernel.trace
    ftr = FunctionTracer(kernel, ft)
    if "traceon" not in ft.commands:
        ftr.cmds = register_func_commands(ft, TracingHooks(kernel))
    old = tracing.tracers.get("function")
    options = old.options if old is not None else ((OPT_STACK, False), (OPT_NO_REPEATS, False))
    tracer = Tracer("function", options, init=ftr.init, reset=ftr.reset, allow_instances=True,
                    set_flag=ftr.set_flag)
    if old is not None:
        tracer.print_header = old.print_header
        tracer.print_line = old.print_line
    tracing.register_tracer(tracer)
    tracing.output.register(TRACE_FUNC_REPEATS, FuncRepeatsPrinter())
    return ftr


class FuncRepeatsPrinter(Printer):
    """trace_func_repeats_print(): the function line, then how often it was repeated
    and when the last repeat was (``last_ts``, in the trace clock's format)."""

    def _fields(self, it: Any) -> tuple[int, int, int, int]:
        ip, pip, count, top, bottom = _REPEATS.unpack_from(it.buf, it.off + 8)
        return ip, pip, count, (top << 32) | bottom

    def trace(self, it: Any) -> str:
        from .trace_flags import ITER_PRINT_PARENT, ITER_SYM_ADDR, ITER_SYM_OFFSET

        ip, pip, count, delta = self._fields(it)
        out = it.kernel.trace.output
        flags = it.flags & (ITER_PRINT_PARENT | ITER_SYM_OFFSET | ITER_SYM_ADDR)
        text = out.sym(ip, flags)
        if flags & ITER_PRINT_PARENT and pip:
            text += " <-" + out.sym(pip, flags)
        return f"{text} (repeats: {count}, last_ts:{out.print_time(it, it.ts - delta)})\n"

    def raw(self, it: Any) -> str:
        ip, pip, count, delta = self._fields(it)
        return f"{ip} {pip} {count} {delta}\n"

    def binary(self, it: Any) -> bytes:  # no binary form: trace_nop_print()
        return f"type: {TRACE_FUNC_REPEATS}\n".encode()
