"""RCU of the simulated machine (kernel/rcu/tree.c, tree_plugin.h): callbacks, grace
periods and the ``rcu_utilization`` tracepoint.

``rcu_utilization`` brackets the scheduler tick's rcu_sched_clock_irq() ("Start
scheduler-tick"/"End scheduler-tick"), every context switch's rcu_note_context_switch()
("Start context switch"/"End context switch") and the RCU softirq's rcu_core() ("Start
RCU core"/"End RCU core").

Callbacks (call_rcu()) wait on the CPU that queued them for a grace period.  While a CPU
has callbacks it keeps its tick (rcu_needs_cpu()); its tick raises RCU_SOFTIRQ, whose
rcu_core() asks for a grace period: the rcu_preempt kthread wakes, initialises it and
waits one forced-quiescent-state scan (schedule_timeout(jiffies_till_first_fqs = 1 at
HZ=250 with two CPUs)); when that timer wakes it the grace period ends (idle CPUs are in
an extended quiescent state, busy ones reported theirs at their ticks) and it sleeps
until the next request.  The next RCU softirq on the callbacks' CPU invokes them
(rcu_do_batch()).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .defs import KTHREAD_STACK, STATE_I, D
from .irq import RCU_SOFTIRQ
from .timer import WheelTimer

if TYPE_CHECKING:
    from ..sched import Task
    from . import Workload

RCU_GP_PID = 18
JIFFIES_TILL_FIRST_FQS = 1


class RcuModel:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        n = wl.k.nr_cpus
        # callbacks per CPU: (the grace period they wait for, the callback)
        self.cbs: list[list[tuple[int, Callable[[], None]]]] = [[] for _ in range(n)]
        self.gp_seq = 0              # grace periods completed
        self.gp_running = False
        self.gp_wanted = False
        self.kthread: Task = wl.k.sched.task(RCU_GP_PID, "rcu_preempt", kthread=True)
        self.fqs_timer = WheelTimer(KTHREAD_STACK + RCU_GP_PID * 0x4000 + 0x3D60, "process_timeout",
                                    self._fqs_expired)

    # ------------------------------------------------------------------ callbacks
    def call_rcu(self, cpu: int, fn: Callable[[], None]) -> None:
        """call_rcu(): ``fn`` runs after a grace period, in the RCU softirq of ``cpu``
        (at once when the machine does not run: no tick would record it, and the
        pid-list hooks it may run must not wait)."""
        if not self.wl.background.live:
            fn()
            return
        need = self.gp_seq + (2 if self.gp_running else 1)
        self.cbs[cpu % self.wl.k.nr_cpus].append((need, fn))

    def needs_cpu(self, cpu: int) -> bool:
        """rcu_needs_cpu(): callbacks keep the CPU's tick."""
        return bool(self.cbs[cpu])

    def _ready(self, cpu: int) -> bool:
        return any(need <= self.gp_seq for need, _ in self.cbs[cpu])

    def flush(self) -> None:
        """The machine fast-forwarded: every callback's grace period is long over."""
        for cpu, cbs in enumerate(self.cbs):
            self.cbs[cpu] = []
            for _, fn in cbs:
                fn()
        self.gp_running = self.gp_wanted = False
        if self.fqs_timer.pending:
            self.wl.timers.bases[self.fqs_timer.cpu][self.fqs_timer.base].remove(self.fqs_timer)
            self.fqs_timer.cpu = -1

    # ------------------------------------------------------------------ tracepoint sites
    def _s(self, text: str) -> int:
        """The address of a TPS() string (the tracepoint records the pointer)."""
        return self.wl.k.mem.kernel_string(text)

    def sched_clock_irq(self, cpu: int) -> None:
        """rcu_sched_clock_irq() in the tick: RCU_SOFTIRQ when this CPU has callbacks
        (ready to run, or waiting for a grace period nobody asked for yet)."""
        wl = self.wl
        wl.emit("rcu_utilization", self._s("Start scheduler-tick"))
        wl.sites.call("rcu_sched_clock_irq", "update_process_times")
        cbs = self.cbs[cpu]
        if cbs and (self._ready(cpu) or not self.gp_running):
            wl.irq.raise_softirq(cpu, RCU_SOFTIRQ)
        wl.emit("rcu_utilization", self._s("End scheduler-tick"))

    def note_context_switch(self) -> None:
        """rcu_note_context_switch() at the start of __schedule() (interrupts off)."""
        wl = self.wl
        if wl.tp("rcu_utilization"):
            depth = wl.base_depth() or 1
            wl.emit_ctx(D, depth, "rcu_utilization", self._s("Start context switch"))
            wl.emit_ctx(D, depth, "rcu_utilization", self._s("End context switch"))

    def core(self, cpu: int, depth: int) -> None:
        """rcu_core(), the RCU softirq: a grace period asked for when callbacks wait for
        one, the ready callbacks invoked (rcu_do_batch())."""
        wl = self.wl
        wl.emit("rcu_utilization", self._s("Start RCU core"))
        cbs = self.cbs[cpu]
        if cbs and not self.gp_running and not self._ready(cpu):
            self._start_gp(cpu)
        ready = [fn for need, fn in cbs if need <= self.gp_seq]
        if ready:
            self.cbs[cpu] = [(need, fn) for need, fn in cbs if need > self.gp_seq]
            frames = wl.sites.enter_chain(("rcu_do_batch",), "rcu_core")
            for fn in ready:
                fn()
            wl.sites.leave_chain(frames)
        wl.emit("rcu_utilization", self._s("End RCU core"))

    # ------------------------------------------------------------------ grace periods
    def _start_gp(self, cpu: int) -> None:
        """rcu_accelerate_cbs() → rcu_start_this_gp() → rcu_gp_kthread_wake(): the grace
        period kthread wakes to start it."""
        wl = self.wl
        self.gp_running = True
        wl.sites.call(("rcu_gp_kthread_wake", ("swake_up_one", "try_to_wake_up")), "rcu_core")
        wl.background.wake_kthread(cpu, self.kthread, self._gp_init)

    def _gp_init(self, cpu: int) -> int:
        """rcu_gp_kthread(): rcu_gp_init(), then the fqs wait (schedule_timeout): its
        state as it sleeps (TASK_IDLE)."""
        wl = self.wl
        wl.sites.call("rcu_gp_init", "rcu_gp_kthread")
        wl.background.sleep_timeout(cpu, self.fqs_timer, JIFFIES_TILL_FIRST_FQS)
        return STATE_I

    def _fqs_expired(self, timer: WheelTimer) -> None:
        """process_timeout(): the grace period kthread wakes for its scan."""
        wl = self.wl
        cpu = wl.k.sched.cpu
        wl.background.wake_kthread(cpu, self.kthread, self._gp_end)

    def _gp_end(self, cpu: int) -> int:
        """rcu_gp_fqs_loop() finds every CPU quiescent; rcu_gp_cleanup(): the grace
        period ends, the kthread waits for the next request."""
        wl = self.wl
        wl.sites.call("rcu_gp_fqs_loop", "rcu_gp_kthread")
        wl.sites.call("rcu_gp_cleanup", "rcu_gp_kthread")
        self.gp_seq += 1
        self.gp_running = False
        if any(need > self.gp_seq for cbs in self.cbs for need, _ in cbs):
            self.gp_running = True
            wl.sites.call("rcu_gp_init", "rcu_gp_kthread")
            wl.background.sleep_timeout(cpu, self.fqs_timer, JIFFIES_TILL_FIRST_FQS)
        return STATE_I

