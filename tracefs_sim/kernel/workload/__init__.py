"""The simulated machine's activity: what tracers and probes see.

Background: per-CPU timer ticks (hardirq → hrtimer → tick → softirqs), kworkers woken
to run work items, RCU, and a simulated shell session whose children (cat, ls, sleep,
seq) fork, exec, read, write and exit.  Foreground: every request that reaches the
mount runs the syscall path of the real kernel (``x64_sys_call`` → ``ksys_read`` →
``vfs_read`` → …) in the caller's task, so a probe on ``vfs_read`` fires when the user
runs ``cat``.  Host processes that reach the mount are scheduled in (``run_task``), and
the adapter reports the processes they forked and that exited (``host_spawn`` /
``host_exit``), so fork, exec and exit events follow what really ran.

The machine is split as the kernel is: call sites (``callsite``), the scheduler
(``sched``), the timer interrupt and what runs after it (``timer``), slab allocations
(``slab``), syscalls (``syscalls``), process life (``process``), the simulated shell
session (``shell``) and host processes seen from the mount (``hostprocs``).  ``Workload``
owns one of each and the tracepoint helpers they share.

Tracepoints fire through ``k.events`` at the places the real kernel emits them, with the
values (in field order) and the context (irq flags, preempt depth) it would record.

Time: ``catch_up()`` runs the ticks that elapsed since the last call (bounded per call);
in deterministic mode (``--seed``) each call runs a fixed number of ticks instead.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from ..sched import TRACE_FLAG_HARDIRQ, TRACE_FLAG_SOFTIRQ
from .callsite import CallSites
from .defs import MAX_TICKS_PER_CATCH_UP, TICK_NS
from .hostprocs import HostProcs
from .process import Process
from .sched import SchedModel
from .shell import ShellSession
from .slab import Slab
from .syscalls import Syscalls
from .timer import Timers

if TYPE_CHECKING:
    from ..core import Kernel
    from ..trace_events import Tracepoint

__all__ = ["Workload", "boot"]


class Workload:
    """Drives simulated tasks through real kernel code paths."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self.rng = random.Random(kernel.seed if kernel.seed is not None else 12345)
        self.last_ns = kernel.boot_clock.ns()
        self.enabled = True
        self.ticks = 0
        self.calls = 0
        self._tpc: dict[str, Tracepoint | None] = {}
        self.sites = CallSites(kernel)
        self.slab = Slab(self)
        self.sched = SchedModel(self)
        self.syscalls = Syscalls(self)
        self.process = Process(self)
        self.timers = Timers(self)
        self.shell = ShellSession(self)
        self.hostprocs = HostProcs(self)

    # ------------------------------------------------------------------ tracepoints
    def tp(self, name: str) -> Tracepoint | None:
        """The tracepoint ``name`` when something is attached to it, else None."""
        tp = self._tpc.get(name, False)
        if tp is False:
            tp = self.k.events.tracepoint(name)
            self._tpc[name] = tp
        return tp if tp is not None and tp.enabled else None

    def emit(self, name: str, *values: object) -> None:
        """trace_NAME(...) in the current context."""
        tp = self.tp(name)
        if tp:
            tp.fire(*values)

    def emit_ctx(self, flags: int, depth: int, name: str, *values: object) -> None:
        """trace_NAME(...) under extra locks/irq state: the record's flags and preempt
        depth are those of the tracepoint's call site."""
        tp = self.tp(name)
        if tp:
            sched = self.k.sched
            saved = sched.irq_flags, sched.preempt_count
            sched.irq_flags = flags | (saved[0] & (TRACE_FLAG_HARDIRQ | TRACE_FLAG_SOFTIRQ))
            sched.preempt_count = depth
            try:
                tp.fire(*values)
            finally:
                sched.irq_flags, sched.preempt_count = saved

    def base_depth(self) -> int:
        """Preempt depth of the running task: the idle loop runs with preemption off."""
        sched = self.k.sched
        return 1 if sched.current is sched.idle[sched.cpu] else 0

    # ------------------------------------------------------------------ time
    def quiet(self) -> bool:
        """Nothing attached anywhere: no ftrace site (or only callbacks that can record
        nothing, such as the function tracer with tracing off) and no tracepoint is
        live, so the background and the syscall paths would leave no trace and can be
        skipped (an idle machine with tracing off costs nothing observable)."""
        k = self.k
        ft = k.ftrace
        if ft.nr_active and not ft.ops_quiet():
            return False
        if k.kprobes.nr_bp_armed:
            return False
        return not k.events.nr_enabled_tps

    def catch_up(self) -> None:
        """Run the background activity owed since the last call."""
        if not self.enabled:
            return
        k = self.k
        if k.deterministic:
            self.calls += 1
            if self.calls % 4:
                return
            n = 1
            k.boot_clock.advance(TICK_NS * n)
        else:
            now = k.boot_clock.ns()
            n = (now - self.last_ns) // TICK_NS
            if n <= 0:
                return
            self.last_ns += n * TICK_NS
            n = min(n, MAX_TICKS_PER_CATCH_UP)
        if self.quiet():
            self.ticks += n
            return
        for _ in range(n):
            self.ticks += 1
            for cpu in range(k.nr_cpus):
                self.timers.tick(cpu)


def boot(kernel: Kernel) -> Workload:
    return Workload(kernel)
