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
(``slab``), memory management (``mm``: mms, faults, pages, TLB), syscalls (``syscalls``), process life (``process``), the simulated shell
session (``shell``) and host processes seen from the mount (``hostprocs``).  ``Workload``
owns one of each and the tracepoint helpers they share.

Tracepoints fire through ``k.events`` at the places the real kernel emits them, with the
values (in field order) and the context (irq flags, preempt depth) it would record.

Time: ``catch_up()`` runs the ticks that elapsed since the last call (bounded per call);
in deterministic mode (``--seed``) each call runs a fixed number of ticks instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..clock import TICK_NS
from ..sched import TRACE_FLAG_HARDIRQ, TRACE_FLAG_SOFTIRQ
from .callsite import CallSites
from .defs import MAX_TICKS_PER_CATCH_UP
from .fs import Fs
from .hostprocs import HostProcs
from .mm import Mm
from .mmap import Mmap
from .net.socket import Net
from .process import Process
from .sched import SchedModel
from .shell import ShellSession
from .signal import Signals
from .slab import Slab
from .sys import Sys
from .syscalls import Syscalls
from .time import Time
from .timer import Timers
from .traced import TracedTasks

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
        self.mm = Mm(self)
        # the families whose syscall bodies traced host tasks run
        self.fs = Fs(self)
        self.mmap = Mmap(self)
        self.process = Process(self)
        self.signals = Signals(self)
        self.time = Time(self)
        self.sys = Sys(self)
        self.net = Net(self)
        self.timers = Timers(self)
        self.shell = ShellSession(self)
        self.hostprocs = HostProcs(self)
        self.traced = TracedTasks(self)
        self.owed: list[list[int]] = [[] for _ in range(kernel.nr_cpus)]  # held CPUs' ticks
        # RCU callbacks waiting for a grace period, per CPU: run by a later tick's RCU softirq
        self.rcu_cbs: list[list[Callable[[], None]]] = [[] for _ in range(kernel.nr_cpus)]

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

    def call_rcu(self, cpu: int, fn: Callable[[], None]) -> None:
        """call_rcu(): ``fn`` runs in the RCU softirq of a later tick on ``cpu`` (at once
        when nothing is attached: no tick would record it, and the pid-list hooks it may
        run must not wait)."""
        if self.quiet():
            fn()
        else:
            self.rcu_cbs[cpu % self.k.nr_cpus].append(fn)

    def rcu_core(self, cpu: int) -> None:
        """rcu_core() → rcu_do_batch(): the callbacks whose grace period ended."""
        cbs = self.rcu_cbs[cpu]
        if cbs:
            self.rcu_cbs[cpu] = []
            for fn in cbs:
                fn()

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
            k.boot_clock.advance(TICK_NS)
            self.ticks += 1
            if not self.quiet():
                for cpu in range(k.nr_cpus):
                    self.timers.tick(cpu)
            return
        self.catch_up_to(k.boot_clock.ns())

    def catch_up_to(self, now: int) -> None:
        """Run the ticks due up to boot time ``now``, each at its own time.  A CPU whose
        timeline is held (a traced task's syscall that may be asleep there) owes its
        ticks until it is released; they run first then, still at their own times."""
        if not self.enabled or self.k.deterministic:
            return
        k = self.k
        clock = k.boot_clock
        hold = self.traced.hold
        due: list[int] = []
        n = (now - self.last_ns) // TICK_NS
        if n > 0:
            self.last_ns += n * TICK_NS
            first = max(1, n - MAX_TICKS_PER_CATCH_UP + 1)
            due = [self.last_ns - (n - i) * TICK_NS for i in range(first, n + 1)]
            self.ticks += n - len(due)
        owed = self.owed
        if not due and (not any(owed) or not any(owed[c] and hold[c] is None
                                                 for c in range(k.nr_cpus))):
            return
        if self.quiet():
            self.ticks += len(due)
            for c in range(k.nr_cpus):
                owed[c].clear()
                self.rcu_core(c)
            return
        saved = clock.pinned
        try:
            for c in range(k.nr_cpus):
                if owed[c] and hold[c] is None:
                    for t in owed[c]:
                        clock.pin(t)
                        self.timers.tick(c)
                    owed[c].clear()
            for t in due:
                self.ticks += 1
                clock.pin(t)
                for c in range(k.nr_cpus):
                    h = hold[c]
                    if h is not None and t > h:
                        owed[c].append(t)
                    else:
                        self.timers.tick(c)
        finally:
            clock.pin(saved)


def boot(kernel: Kernel) -> Workload:
    return Workload(kernel)
