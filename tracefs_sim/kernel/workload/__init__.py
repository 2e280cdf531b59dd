"""The simulated machine's activity: what tracers and probes see.

Background: each CPU's timer interrupts as its clock event device fires them — every
jiffy while it runs a task, only for its next timer while it idles with the tick stopped
(NO_HZ idle) — and what they start: softirqs, the kernel's threads (kworkers, kcompactd,
the RCU grace-period kthread), IPIs between CPUs, and on a plain mount a simulated shell
session whose children (cat, ls, sleep, seq) fork, exec, read, write and exit.
Foreground: every request that reaches the mount runs the syscall path of the real
kernel (``x64_sys_call`` → ``ksys_read`` → ``vfs_read`` → …) in the caller's task, so a
probe on ``vfs_read`` fires when the user runs ``cat``.  Host processes that reach the
mount are scheduled in (``run_task``), and the adapter reports the processes they forked
and that exited (``host_spawn`` / ``host_exit``), so fork, exec and exit events follow
what really ran.

The machine is split as the kernel is: call sites (``callsite``), the scheduler
(``sched``), the idle loop (``idle``), interrupts and softirqs (``irq``), IPIs (``smp``),
hrtimers and the clock event device (``hrtimer``), the tick (``tick``), the timer wheel
(``timer``) and the timer migration hierarchy (``tmigr``), RCU (``rcu``), the way back to
user space with rseq and the FPU (``entry``), the machine's time and its kernel threads
(``background``), slab allocations (``slab``), memory management (``mm``: mms, faults,
pages, TLB), the loopback network (``net``), syscalls (``syscalls``), process life
(``process``), the simulated shell session (``shell``) and host processes seen from the
mount (``hostprocs``).  ``Workload`` owns one of each and the tracepoint helpers they
share.

Tracepoints fire through ``k.events`` at the places the real kernel emits them, with the
values (in field order) and the context (irq flags, preempt depth) it would record.

Time: ``catch_up()`` runs what the machine did up to now (``Background.run_until``); in
deterministic mode (``--seed``) every fourth call lets one jiffy of virtual time pass.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..clock import TICK_NS
from ..sched import TRACE_FLAG_HARDIRQ, TRACE_FLAG_SOFTIRQ
from .background import Background
from .callsite import CallSites
from .entry import Entry
from .fs import Fs
from .hostprocs import HostProcs
from .hrtimer import HrTimers
from .idle import Idle
from .irq import Irqs
from .itimer import ITimers
from .mm import Mm
from .mmap import Mmap
from .net.socket import Net
from .process import Process
from .rcu import RcuModel
from .sched import SchedModel
from .select import Select
from .shell import ShellSession
from .signal import Signals
from .slab import Slab
from .smp import Smp
from .sys import Sys
from .syscalls import Syscalls
from .tick import Tick
from .time import Time
from .timer import TimerWheel
from .tmigr import TimerMigration
from .traced import TracedTasks

if TYPE_CHECKING:
    from ..core import Kernel
    from ..trace_events import Tracepoint

__all__ = ["Workload", "boot"]

# The tracepoints that only the fork, exec and exit paths fire.  The tracer of host
# programs reports forks, execs and exits in both of its modes, so while nothing else is
# attached a traced task's syscalls need not be reported at all (ftracetest's trigger
# tests hang their triggers and histograms on sched_process_fork).  Not
# sched_process_free: the parent's wait4 that reaps a child is a syscall.
LIFECYCLE_TRACEPOINTS = ("sched_process_fork", "task_newtask", "sched_prepare_exec",
                         "sched_process_exec", "sched_process_exit")


class Workload:
    """Drives simulated tasks through real kernel code paths."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self.rng = random.Random(kernel.seed if kernel.seed is not None else 12345)
        self.enabled = True
        self.ticks = 0
        self.calls = 0
        self._tpc: dict[str, Tracepoint | None] = {}
        self._lifecycle_tps: frozenset[Tracepoint] | None = None
        self._tps_key = (-1, -1)     # what _tps_live() last computed its answer for
        self._tps_state = (False, False)
        self.sites = CallSites(kernel)
        self.slab = Slab(self)
        # the machine's time: interrupts, timers, the idle loop, RCU, cross-CPU work
        self.irq = Irqs(self)
        self.hrtimers = HrTimers(self)
        self.timers = TimerWheel(self)
        self.tmigr = TimerMigration(self)
        self.tick = Tick(self)
        self.idle = Idle(self)
        self.smp = Smp(self)
        self.sched = SchedModel(self)
        self.syscalls = Syscalls(self)
        self.mm = Mm(self)
        self.entry = Entry(self)
        self.rcu = RcuModel(self)
        # the families whose syscall bodies traced host tasks run
        self.fs = Fs(self)
        self.mmap = Mmap(self)
        self.process = Process(self)
        self.signals = Signals(self)
        self.time = Time(self)
        self.select = Select(self)
        self.itimers = ITimers(self)
        self.sys = Sys(self)
        self.net = Net(self)
        self.shell = ShellSession(self)
        self.hostprocs = HostProcs(self)
        self.traced = TracedTasks(self)
        self.background = Background(self)
        self.background.register()

    # ------------------------------------------------------------------ tracepoints
    def tp(self, name: str) -> Tracepoint | None:
        """The tracepoint ``name`` when something is attached to it, else None."""
        tp = self._tpc.get(name, False)
        if tp is False:
            tp = self.tracepoint(name)
        return tp if tp is not None and tp.enabled else None

    def tracepoint(self, name: str) -> Tracepoint | None:
        """The tracepoint ``name`` (None: the kernel has none), attached or not: a hot
        path keeps it and tests its ``enabled`` itself."""
        tp = self._tpc.get(name, False)
        if tp is False:
            tp = self.k.events.tracepoint(name)
            self._tpc[name] = tp
        return tp

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
        """call_rcu(): ``fn`` runs after a grace period (``rcu.py``)."""
        self.rcu.call_rcu(cpu, fn)

    # ------------------------------------------------------------------ time
    def quiet(self) -> bool:
        """Nothing attached anywhere could leave a mark: no ftrace site (or only callbacks
        that can record nothing, such as the function tracer with tracing off), and no
        tracepoint that is live (``Tracepoint.silent``: an event enabled only where
        tracing is off, with no trigger, records nothing), so the background and the
        syscall paths would leave no trace and can be skipped (an idle machine with
        tracing off costs nothing observable)."""
        return not self._sites_live() and not self._tps_live()[0]

    def _sites_live(self) -> bool:
        """An ftrace callback that can record, or an armed int3 kprobe."""
        k = self.k
        ft = k.ftrace
        return bool(ft.nr_active and not ft.ops_quiet()) or bool(k.kprobes.nr_bp_armed)

    def _tps_live(self) -> tuple[bool, bool]:
        """(a tracepoint is live, one other than the lifecycle ones is live).

        Recomputed only when what is attached to a tracepoint or an instance's
        tracing_on changed (``TraceEvents.attach_gen``, ``Tracing.onoff_gen``): the
        check runs on every syscall path and interrupt."""
        k = self.k
        events = k.events
        if not events.enabled_tps:
            return False, False
        key = (events.attach_gen, k.trace.onoff_gen)
        if key != self._tps_key:
            lifecycle = self._lifecycle_tps
            if lifecycle is None:
                lifecycle = self._lifecycle_tps = frozenset(
                    self._lifecycle_tracepoint(n) for n in LIFECYCLE_TRACEPOINTS)
            live = [tp for tp in events.enabled_tps if not tp.silent()]
            self._tps_state = (bool(live), any(tp not in lifecycle for tp in live))
            self._tps_key = key
        return self._tps_state

    def syscalls_visible(self) -> bool:
        """Could anything attached see a traced task's syscall (the tracer's syscalls
        mode)?  Not while the only live tracepoints are the lifecycle ones, which the
        fork, exec and exit records fire with the same values in either mode."""
        return self._sites_live() or self._tps_live()[1]

    def _lifecycle_tracepoint(self, name: str) -> Tracepoint:
        tp = self.tracepoint(name)
        if tp is None:
            raise LookupError(f"the kernel has no tracepoint {name}")
        return tp

    def catch_up(self) -> None:
        """Run what the machine did since the last call (deterministic: every fourth
        call one jiffy of virtual time passes)."""
        if not self.enabled:
            return
        k = self.k
        if k.deterministic:
            self.calls += 1
            if self.calls % 4:
                return
            k.boot_clock.advance(TICK_NS)
            self.background.run_until(k.boot_clock.peek())
            return
        self.background.run_until(k.boot_clock.ns())

    def catch_up_to(self, now: int) -> None:
        """Run what the machine did up to boot time ``now`` (a traced task's record):
        each interrupt at its own time; a CPU whose timeline is held (a traced task's
        syscall that may be asleep there) waits until it is released."""
        if not self.enabled or self.k.deterministic:
            return
        self.background.run_until(now)


def boot(kernel: Kernel) -> Workload:
    return Workload(kernel)
