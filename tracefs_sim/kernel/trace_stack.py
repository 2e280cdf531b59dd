"""The stack tracer (kernel/trace/trace_stack.c): the deepest kernel stack seen.

An ``ftrace_ops`` (``stack_trace_call``) registered while ``stack_tracer_enabled`` (the
sysctl ``kernel/stack_tracer_enabled``) is 1, on the functions of ``stack_trace_filter``
(all when empty).  At each traced call ``check_stack()`` measures the current task's
stack; a new maximum saves the call chain with the depth of each return address, which
``stack_trace`` prints (``Depth`` from the top of the stack, ``Size`` of each frame).

The simulated stack is the workload's call chain of the current task
(``Workload.stacks``).  Each function's frame size is a fixed pseudo-random multiple of
8 derived from its name (the reference kernel's frame sizes are not captured), and a
syscall's chain sits on the entry code's ``pt_regs``.  Interrupt and softirq code runs
on the per-CPU irq stacks, which the stack tracer ignores ("we do not handle interrupt
stacks yet").
"""

from __future__ import annotations

import errno
import zlib
from typing import TYPE_CHECKING

from .errors import KernelError
from .ftrace import FtraceOps
from .sched import TRACE_FLAG_HARDIRQ, TRACE_FLAG_NMI, TRACE_FLAG_SOFTIRQ

if TYPE_CHECKING:
    from .core import Kernel
    from .mm import Regs

STACK_TRACE_ENTRIES = 500
THREAD_SIZE = 16384
MCOUNT_INSN_SIZE = 5  # call __fentry__
PT_REGS_SIZE = 168
SYSCTL = "kernel/stack_tracer_enabled"
_IRQ = TRACE_FLAG_HARDIRQ | TRACE_FLAG_SOFTIRQ | TRACE_FLAG_NMI


def frame_size(name: str) -> int:
    """Stack bytes a function's frame uses (return address included): 16..384."""
    return 16 + 8 * (zlib.crc32(name.encode()) % 47)


class StackTracer:
    """trace_stack.c for one kernel."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self.enabled = 0                  # stack_tracer_enabled
        self.max_size = 0                 # stack_trace_max_size (stack_max_size file)
        self.dump_trace: list[int] = []   # stack_dump_trace[0..nr_entries)
        self.trace_index: list[int] = []  # stack_trace_index[]
        self.disabled = [0] * kernel.nr_cpus  # per-CPU disable_stack_tracer
        self._sizes: dict[int, int] = {}
        self.ops = FtraceOps(func=self.stack_trace_call, name="trace_ops")

    def stack_trace_call(self, ip: int, pip: int, op: FtraceOps, fregs: Regs | None) -> None:
        """The ops' callback: check_stack() unless this CPU is already in it."""
        cpu = self.k.sched.cpu
        self.disabled[cpu] += 1
        try:
            if self.disabled[cpu] == 1:
                self.check_stack(ip + MCOUNT_INSN_SIZE)
        finally:
            self.disabled[cpu] -= 1

    # ------------------------------------------------------------------ the stack
    def _size_of(self, addr: int) -> int:
        size = self._sizes.get(addr)
        if size is None:
            r = self.k.kallsyms.lookup_addr(addr)
            size = frame_size(r[0] if r else hex(addr))
            self._sizes[addr] = size
        return size

    def current_frames(self, ip: int) -> tuple[list[int], list[int]]:
        """(return addresses, depth of each) of the current task's stack at a call of
        the function at ``ip``: ``ip`` first (its ``call __fentry__`` return), then the
        callers' return addresses down to the entry code; depths from the stack top."""
        stack = self.k.workload.sites.current_stack()
        addrs = [ip, *stack[1:]]  # stack[0] is inside the traced function itself
        sizes = [8]  # the traced function has not set up its frame at __fentry__
        sizes += [self._size_of(a) for a in addrs[1:]]
        if len(addrs) > 1 and self._is_entry(addrs[-1]):
            sizes[-1] += PT_REGS_SIZE
        depths = [0] * len(addrs)
        total = 0
        for i in range(len(addrs) - 1, -1, -1):
            total += sizes[i]
            depths[i] = total
        return addrs, depths

    def _is_entry(self, addr: int) -> bool:
        r = self.k.kallsyms.lookup_addr(addr)
        return r is not None and r[0].startswith("entry_SYSCALL_64")

    def check_stack(self, ip: int) -> None:
        """check_stack(): record the stack when it is the deepest so far."""
        k = self.k
        if k.sched.irq_flags & _IRQ:
            return  # on an interrupt stack
        addrs, depths = self.current_frames(ip)
        if not depths:
            return
        this_size = depths[0]
        if this_size <= self.max_size:
            return
        self.max_size = this_size
        n = min(len(addrs), STACK_TRACE_ENTRIES - 1)
        self.dump_trace = addrs[:n]
        self.trace_index = depths[:n]

    # ------------------------------------------------------------------ sysctl
    def sysctl_read(self) -> str:
        return f"{self.enabled}\n"

    def sysctl_write(self, text: str) -> None:
        """stack_trace_sysctl(): proc_dointvec, then (un)register on a change."""
        word = text.strip()
        try:
            val = int(word, 10)
        except ValueError:
            raise KernelError(errno.EINVAL) from None
        if not -(1 << 31) <= val < 1 << 31:
            raise KernelError(errno.EINVAL)
        was = bool(self.enabled)
        self.enabled = val
        if was == bool(val):
            return
        ft = self.k.ftrace
        if val:
            ft.register_ops(self.ops)
        else:
            ft.unregister_ops(self.ops)

    # ------------------------------------------------------------------ files
    def max_size_show(self) -> str:
        return f"{self.max_size}\n"

    def max_size_write(self, val: int) -> None:
        self.max_size = val

    def trace_show(self) -> str:
        """t_show() over every entry of the saved maximum."""
        nr = len(self.dump_trace)
        out = [f"        Depth    Size   Location    ({nr} entries)\n"
               "        -----    ----   --------\n"]
        if not self.enabled and not self.max_size:
            out.append("#\n#  Stack tracer disabled\n#\n"
                       "# To enable the stack tracer, either add 'stacktrace' to the\n"
                       "# kernel command line\n"
                       "# or 'echo 1 > /proc/sys/kernel/stack_tracer_enabled'\n#\n")
        idx = self.trace_index
        fmt = self.k.kallsyms.format_pS
        for i, addr in enumerate(self.dump_trace):
            size = idx[i] if i + 1 == nr else idx[i] - idx[i + 1]
            out.append(f"{i:3d}) {idx[i]:8d}   {size:5d}   {fmt(addr)}\n")
        return "".join(out)


def boot(kernel: Kernel) -> StackTracer:
    """stack_trace_init(): the tracer and its sysctl."""
    st = StackTracer(kernel)
    kernel.sysctls[SYSCTL] = (st.sysctl_read, st.sysctl_write)
    return st
