"""Interrupts and softirqs (kernel/softirq.c, kernel/irq/handle.c, the x86 idtentry
code of arch/x86/kernel/apic/apic.c and irq.c).

An interrupt on a CPU runs in hardirq context at the preempt depth of what it
interrupted (1 in the idle task), then irq_exit_rcu() runs the softirqs raised meanwhile,
lowest vector first (``softirq_entry``/``softirq_exit``).  What the CPU does after it is
the machine's (``Background.after_irq``): a halted idle CPU leaves default_idle_call()
and goes on with its idle loop, or runs what the interrupt woke.

The local APIC timer interrupt (sysvec_apic_timer_interrupt: ``local_timer_entry``,
hrtimer_interrupt(), ``local_timer_exit``) fires every hrtimer due on the CPU;
device interrupts go through __common_interrupt() → handle_edge_irq() →
__handle_irq_event_percpu() (``irq_handler_entry``/``irq_handler_exit``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..sched import TRACE_FLAG_IRQS_OFF, TRACE_FLAG_SOFTIRQ
from .defs import HARDIRQ, TIMER_VECTOR

if TYPE_CHECKING:
    from . import Workload

# softirq vectors (include/linux/interrupt.h)
HI_SOFTIRQ, TIMER_SOFTIRQ, NET_TX_SOFTIRQ, NET_RX_SOFTIRQ = 0, 1, 2, 3
SCHED_SOFTIRQ, HRTIMER_SOFTIRQ, RCU_SOFTIRQ = 7, 8, 9
IRQ_HANDLED = 1
APIC_TIMER_ENTRY = "sysvec_apic_timer_interrupt"

SoftirqFn = Callable[[int, int], None]      # (cpu, preempt depth)


class Irqs:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.softirq_pending = [0] * wl.k.nr_cpus
        self.handlers: dict[int, tuple[str, SoftirqFn]] = {}

    def register_softirq(self, nr: int, function: str, fn: SoftirqFn) -> None:
        """open_softirq(): ``function`` is the action's symbol (its call site)."""
        self.handlers[nr] = (function, fn)

    def raise_softirq(self, cpu: int, nr: int) -> None:
        """raise_softirq_irqoff() in the current context: ``softirq_raise``."""
        bit = 1 << nr
        if not self.softirq_pending[cpu] & bit:
            self.softirq_pending[cpu] |= bit
        self.wl.emit("softirq_raise", nr)

    def pending(self, cpu: int, nr: int) -> bool:
        return bool(self.softirq_pending[cpu] & 1 << nr)

    # ------------------------------------------------------------------ interrupts
    def interrupt(self, cpu: int, handler: Callable[[int], None], softirqs: bool = True,
                  entry: str = APIC_TIMER_ENTRY) -> None:
        """An interrupt taken on ``cpu`` through its idtentry ``entry``: irq_enter_rcu()
        (interrupts off, not yet in hardirq context), ``handler(depth)`` in hardirq
        context, then irq_exit_rcu()'s softirqs (``softirqs=False``: a SYSVEC_SIMPLE
        vector, which calls neither irq_enter_rcu() nor irq_exit_rcu()), then what
        follows it on the CPU.  The current task and context are restored afterwards."""
        wl = self.wl
        sched = wl.k.sched
        saved = sched.cpu, sched.current, sched.irq_flags, sched.preempt_count
        bg = wl.background
        sched.set_current(cpu, bg.running(cpu))
        base = wl.base_depth()
        # the timer's idtentry is the root frame call sites know (callsite.ROOT_FRAMES)
        parent = None if entry == APIC_TIMER_ENTRY else entry
        if softirqs:
            sched.irq_flags, sched.preempt_count = TRACE_FLAG_IRQS_OFF, base
            wl.sites.call("irq_enter_rcu", parent)
        sched.irq_flags, sched.preempt_count = HARDIRQ, base
        handler(base)
        if softirqs:
            self.run_softirqs(cpu, base, parent)
        sched.irq_flags, sched.preempt_count = 0, 0
        bg.after_irq(cpu)
        sched.cpu, sched.current, sched.irq_flags, sched.preempt_count = saved
        if saved[0] == cpu:
            sched.current = sched.curr[cpu]

    def run_softirqs(self, cpu: int, base: int, entry: str | None = None) -> None:
        """irq_exit_rcu() → handle_softirqs(): the pending vectors, lowest first, again
        while some are raised meanwhile (none pending: irq_exit_rcu() alone, still in
        hardirq context); ``entry``: the idtentry that calls it (None: the timer's)."""
        pending = self.softirq_pending[cpu]
        wl = self.wl
        if not pending:
            wl.sites.call("irq_exit_rcu", entry)
            return
        sched = wl.k.sched
        sched.irq_flags, sched.preempt_count = TRACE_FLAG_SOFTIRQ, base
        frames = wl.sites.enter_chain(("irq_exit_rcu", "handle_softirqs"), entry)
        while pending:
            self.softirq_pending[cpu] = 0
            nr = 0
            while pending:
                if pending & 1:
                    wl.emit("softirq_entry", nr)
                    function, fn = self.handlers[nr]
                    inner = wl.sites.enter_chain((function,), "handle_softirqs")
                    fn(cpu, base)
                    wl.sites.leave_chain(inner)
                    sched.irq_flags, sched.preempt_count = TRACE_FLAG_SOFTIRQ, base
                    wl.emit("softirq_exit", nr)
                pending >>= 1
                nr += 1
            pending = self.softirq_pending[cpu]
        wl.sites.leave_chain(frames)

    def apic_timer(self, cpu: int) -> None:
        """sysvec_apic_timer_interrupt(): the hrtimers due on ``cpu``."""
        self.interrupt(cpu, lambda base: self.apic_timer_handler(cpu, base))

    def apic_timer_handler(self, cpu: int, base: int) -> None:
        """The local APIC timer vector's handler: local_timer_entry, the due hrtimers."""
        wl = self.wl
        wl.emit("local_timer_entry", TIMER_VECTOR)
        frames = wl.sites.enter_chain(("__sysvec_apic_timer_interrupt", "hrtimer_interrupt"))
        wl.hrtimers.run_queues(cpu, wl.k.boot_clock.peek(), base)
        wl.sites.leave_chain(frames)
        wl.emit("local_timer_exit", TIMER_VECTOR)

    def device(self, cpu: int, irq: int, name: str, action: Callable[[int], None],
               actions: tuple[str, ...] = ()) -> None:
        """A device interrupt on ``cpu``: its handler (``actions``: the functions it
        runs) between irq_handler_entry and irq_handler_exit; ``action`` does what the
        handler does (raise a softirq, wake a task)."""
        def handler(base: int) -> None:
            wl = self.wl
            frames = wl.sites.enter_chain(("__common_interrupt", "handle_edge_irq", "handle_irq_event",
                                           "__handle_irq_event_percpu"))
            wl.emit("irq_handler_entry", irq, name)
            for fn in actions:
                wl.sites.call(fn, "__handle_irq_event_percpu")
            action(base)
            wl.emit("irq_handler_exit", irq, IRQ_HANDLED)
            wl.sites.leave_chain(frames)
        self.interrupt(cpu, handler, entry="common_interrupt")
