"""Whether RCU is watching a CPU (kernel/rcu/tree.c rcu_is_watching(), the context
tracking of kernel/context_tracking.c): what FTRACE_OPS_FL_RCU asks before a callback.

RCU stops watching a CPU in its idle loop: default_idle_call() traces ``cpu_idle`` and
calls ``ct_cpuidle_enter()`` before halting, ``ct_cpuidle_exit()`` after.  An interrupt
taken there makes RCU watch again for its handler (``ct_irq_enter()``), so a CPU in
hardirq, softirq or NMI context is watched whatever its idle state.  On x86-64 6.12 the
code between ct_cpuidle_enter() and ct_cpuidle_exit() is ``noinstr``: nothing traceable
runs there on the simulated machine either, and a callback only meets an unwatched CPU
when something is called inside that window (``idle()`` opens it).  ftrace skips an ops
with FTRACE_OPS_FL_RCU there (ftrace_ops_assist_func, __ftrace_ops_list_func).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from .sched import TRACE_FLAG_HARDIRQ, TRACE_FLAG_NMI, TRACE_FLAG_SOFTIRQ

if TYPE_CHECKING:
    from .sched import Sched

IRQ_CONTEXT = TRACE_FLAG_HARDIRQ | TRACE_FLAG_SOFTIRQ | TRACE_FLAG_NMI


class Rcu:
    """Per-CPU extended quiescent state (the idle window) of one kernel."""

    def __init__(self, sched: Sched, nr_cpus: int) -> None:
        self.sched = sched
        self.eqs = [False] * nr_cpus   # in the idle loop's RCU-free window

    def ct_cpuidle_enter(self) -> None:
        """The current CPU enters its idle window: RCU stops watching it."""
        self.eqs[self.sched.cpu] = True

    def ct_cpuidle_exit(self) -> None:
        self.eqs[self.sched.cpu] = False

    def rcu_is_watching(self) -> bool:
        """rcu_is_watching() on the current CPU."""
        sched = self.sched
        return not self.eqs[sched.cpu] or bool(sched.irq_flags & IRQ_CONTEXT)

    @contextmanager
    def idle(self) -> Iterator[None]:
        """Run the body inside the current CPU's idle window (ct_cpuidle_enter/exit)."""
        self.ct_cpuidle_enter()
        try:
            yield
        finally:
            self.ct_cpuidle_exit()
