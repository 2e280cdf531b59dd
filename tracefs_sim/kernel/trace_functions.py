"""The ``function`` tracer (kernel/trace/trace_functions.c) and its filter commands.

``boot()`` registers the tracer with the tracing core (replacing trace.py's built-in
placeholder) and the set_ftrace_filter commands of ftrace_cmds.py.  The tracer uses the
trace array's own ftrace_ops (``tr.ops``: global_ops at the top level, FL_PID), so the
array's set_ftrace_filter/notrace/pid select what it sees.

Records: TRACE_FN (``struct ftrace_entry``: ip, parent_ip) and, with
``func_stack_trace``, a TRACE_STACK entry whose first caller is the trampoline marker
(``FTRACE_TRAMPOLINE_MARKER``, printed ``[FTRACE TRAMPOLINE]``), then the call chain
from ``kernel.workload.sites.current_stack()``.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

from .errors import KernelError
from .ftrace import Ftrace, FtraceOps, OpsFunc, ftrace_stub, ksym
from .ftrace_cmds import FuncCommands
from .trace import Tracer
from .trace_flags import (
    ITER_PRINT_PARENT,
    ITER_SYM_ADDR,
    ITER_SYM_OFFSET,
    TRACE_FN,
    TRACE_FUNC_REPEATS,
    TRACE_STACK,
)
from .trace_output import FTRACE_TRAMPOLINE_MARKER, Printer, TraceIter

if TYPE_CHECKING:
    from .core import Kernel
    from .mm import Regs
    from .trace import TraceArray

U16_MAX = 0xFFFF
_REPEATS = struct.Struct("<QQHHI")  # struct func_repeats_entry
FTRACE_STACK_ENTRIES = 8  # kept short: the tests and golden show 5 callers
_FN = struct.Struct("<QQ")

OPT_STACK = "func_stack_trace"
OPT_NO_REPEATS = "func-no-repeats"
OPTIONS = ((OPT_STACK, False), (OPT_NO_REPEATS, False))


def _tr_ops(tr: TraceArray) -> FtraceOps:
    """tr->ops (every array has one from its creation: ftrace.instance_create)."""
    ops = tr.ops
    assert ops is not None
    return ops


class FunctionTracer:
    """trace_functions.c for one kernel."""

    def __init__(self, kernel: Kernel, ftrace: Ftrace) -> None:
        self.k = kernel
        self.ft = ftrace
        # the callbacks by (func_stack_trace, func-no-repeats), as select_trace_function()
        self.calls: dict[tuple[bool, bool], OpsFunc] = {
            (False, False): self._recursion_call("function_trace_call", False),
            (False, True): self._recursion_call("function_no_repeats_trace_call", True),
            (True, False): self._stack_call("function_stack_trace_call", False),
            (True, True): self._stack_call("function_stack_no_repeats_trace_call", True),
        }
        self.cmds = FuncCommands(kernel, self)

    # ------------------------------------------------------------------ records
    def trace_function(self, tr: TraceArray, ip: int, parent_ip: int) -> None:
        """trace_function(): one TRACE_FN entry on the current CPU."""
        cpu = self.k.sched.cpu
        off = tr.event_reserve(cpu, TRACE_FN, 8 + _FN.size)
        if off < 0:
            return
        _FN.pack_into(tr.event_buf(cpu), off + 8, ip, parent_ip)
        tr.event_commit(cpu)

    def trace_stack(self, tr: TraceArray) -> None:
        """__trace_stack() from a function callback or probe: with the ORC unwinder the
        callback's own frames are skipped and the unwind starts in the ftrace
        trampoline (``[FTRACE TRAMPOLINE]``), then the traced function and its callers."""
        calls = [FTRACE_TRAMPOLINE_MARKER, *self.k.workload.sites.current_stack()][:FTRACE_STACK_ENTRIES]
        cpu = self.k.sched.cpu
        n = len(calls)
        off = tr.event_reserve(cpu, TRACE_STACK, 16 + 8 * (n + 1))
        if off < 0:
            return
        # struct stack_entry: int size, then the callers (ended by a 0 here)
        struct.pack_into(f"<i4x{n + 1}Q", tr.event_buf(cpu), off + 8, n, *calls, 0)
        tr.event_commit(cpu)

    def is_repeat(self, tr: TraceArray, ip: int, parent_ip: int) -> bool:
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

    def trace_last_func_repeats(self, tr: TraceArray, last: list[int]) -> None:
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
    def _recursion_call(self, name: str, no_repeats: bool) -> OpsFunc:
        """function_trace_call() / function_no_repeats_trace_call(): guarded by the
        ftrace recursion bits."""
        trylock, unlock = self.ft.recursion_trylock, self.ft.recursion_unlock
        trace_function, is_repeat = self.trace_function, self.is_repeat

        @ksym(name)
        def call(ip: int, pip: int, op: FtraceOps, fregs: Regs | None) -> None:
            tr = op.private
            if not tr.function_enabled:
                return
            bit = trylock(ip, pip)
            if bit < 0:
                return
            try:
                if not (no_repeats and is_repeat(tr, ip, pip)):
                    trace_function(tr, ip, pip)
            finally:
                unlock(bit)

        return call

    def _stack_call(self, name: str, no_repeats: bool) -> OpsFunc:
        """function_stack_trace_call() / function_stack_no_repeats_trace_call(): guarded
        by the per-CPU data->disabled count (interrupts off in the kernel)."""
        trace_function, trace_stack, is_repeat = self.trace_function, self.trace_stack, self.is_repeat

        @ksym(name)
        def call(ip: int, pip: int, op: FtraceOps, fregs: Regs | None) -> None:
            tr = op.private
            if not tr.function_enabled:
                return
            disabled = tr.data_disabled + 1
            tr.data_disabled = disabled
            try:
                if disabled == 1 and not (no_repeats and is_repeat(tr, ip, pip)):
                    trace_function(tr, ip, pip)
                    trace_stack(tr)
            finally:
                tr.data_disabled = disabled - 1

        return call

    def select_trace_function(self, stack: bool, no_repeats: bool) -> OpsFunc:
        return self.calls[(stack, no_repeats)]

    # ------------------------------------------------------------------ tracer hooks
    def init(self, tr: TraceArray) -> None:
        """function_trace_init()."""
        if tr.ops is None:
            raise KernelError(errno.ENOMEM)  # the instance has no ops
        func = self.select_trace_function(tr.tracer_opt(OPT_STACK), tr.tracer_opt(OPT_NO_REPEATS))
        tr.ops.func = func  # ftrace_init_array_ops()
        tr.ops.private = tr
        self._set_quiet(tr, tr.tracer_opt(OPT_NO_REPEATS))
        self.k.trace.cmdline_ref += 1  # tracing_start_cmdline_record()
        tr.function_enabled = False
        self.ft.register_ops(tr.ops)
        tr.function_enabled = True

    def reset(self, tr: TraceArray) -> None:
        """function_trace_reset()."""
        ops = _tr_ops(tr)
        tr.function_enabled = False
        try:
            self.ft.unregister_ops(ops)
        except KernelError:
            pass
        tracing = self.k.trace
        if tracing.cmdline_ref:
            tracing.cmdline_ref -= 1
        ops.func = ftrace_stub  # ftrace_reset_array_ops()
        ops.quiet = None

    def set_flag(self, tr: TraceArray, name: str, value: bool) -> bool:
        """func_set_flag(): swap the callback while the tracer runs."""
        if name not in (OPT_STACK, OPT_NO_REPEATS) or tr.current_trace.name != "function":
            return True
        ops = _tr_ops(tr)
        stack = value if name == OPT_STACK else tr.tracer_opt(OPT_STACK)
        norep = value if name == OPT_NO_REPEATS else tr.tracer_opt(OPT_NO_REPEATS)
        func = self.select_trace_function(stack, norep)
        if ops.func is func or ops.saved_func is func:
            return True
        self.ft.unregister_ops(ops)
        ops.func = func
        self._set_quiet(tr, norep)
        self.ft.register_ops(ops)
        return True

    @staticmethod
    def _set_quiet(tr: TraceArray, no_repeats: bool) -> None:
        """The callbacks record into ``tr``'s ring buffer only: while it records nothing
        (tracing_on 0) they leave no trace, except func-no-repeats, whose repeat count
        goes on and is written once recording resumes."""
        ops = _tr_ops(tr)
        if no_repeats:
            ops.quiet = None
        else:
            ops.quiet = lambda: not tr.buffer.record_is_on() or not tr.function_enabled


def boot(kernel: Kernel) -> FunctionTracer:
    """init_function_trace(): the function tracer and the function commands."""
    tracing = kernel.trace
    ftr = FunctionTracer(kernel, kernel.ftrace)
    ftr.cmds.register()
    tracing.register_tracer(Tracer("function", OPTIONS, init=ftr.init, reset=ftr.reset,
                                   allow_instances=True, set_flag=ftr.set_flag))
    tracing.output.register(TRACE_FUNC_REPEATS, FuncRepeatsPrinter())
    return ftr


class FuncRepeatsPrinter(Printer):
    """trace_func_repeats_print(): the function line, then how often it was repeated
    and when the last repeat was (``last_ts``, in the trace clock's format)."""

    @staticmethod
    def _fields(it: TraceIter) -> tuple[int, int, int, int]:
        ip, pip, count, top, bottom = _REPEATS.unpack_from(it.buf, it.off + 8)
        return ip, pip, count, (top << 32) | bottom

    def trace(self, it: TraceIter) -> str:
        ip, pip, count, delta = self._fields(it)
        out = it.kernel.trace.output
        flags = it.flags & (ITER_PRINT_PARENT | ITER_SYM_OFFSET | ITER_SYM_ADDR)
        text = out.sym(ip, flags)
        if flags & ITER_PRINT_PARENT and pip:
            text += " <-" + out.sym(pip, flags)
        return f"{text} (repeats: {count}, last_ts:{out.print_time(it, it.ts - delta)})\n"

    def raw(self, it: TraceIter) -> str:
        ip, pip, count, delta = self._fields(it)
        return f"{ip} {pip} {count} {delta}\n"

    def binary(self, it: TraceIter) -> bytes:  # no binary form: trace_nop_print()
        return f"type: {TRACE_FUNC_REPEATS}\n".encode()
