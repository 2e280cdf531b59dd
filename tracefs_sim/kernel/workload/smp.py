"""Cross-CPU work: function-call IPIs and reschedule IPIs (kernel/smp.c,
arch/x86/kernel/smp.c, the x2APIC of arch/x86/kernel/apic/x2apic_phys.c).

A wakeup of a task onto another CPU that idles goes through that CPU's wake list
(ttwu_queue_wakelist() → __smp_call_single_queue(): ``csd_queue_cpu`` with
sched_ttwu_pending); the first entry queued sends the call-function-single IPI
(``ipi_send_cpu``; a halted idle CPU does not poll need_resched, so it needs one).  The
target runs it in sysvec_call_function_single (``call_function_single_entry``,
``csd_function_entry``/``_exit`` around the callback, ``call_function_single_exit``).
A task made runnable on another CPU whose current task it should preempt — a fork
child put on an idle CPU by wake_up_new_task() — gets a reschedule IPI
(resched_curr() → smp_send_reschedule(): ``ipi_send_cpu`` with no callback, then
``reschedule_entry``/``_exit`` there; a SYSVEC_SIMPLE vector: no irq_enter/irq_exit).

Sending is a write of the x2APIC ICR (MSR 0x830: destination APIC ID in the high half,
the vector in the low bits, physical destination mode), which ``write_msr`` records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .defs import D
from .process import task_struct

if TYPE_CHECKING:
    from . import Workload

RESCHEDULE_VECTOR = 0xFD
CALL_FUNCTION_VECTOR = 0xFC
CALL_FUNCTION_SINGLE_VECTOR = 0xFB
MSR_X2APIC_ICR = 0x830
IPI_NS = 1_400              # from the ICR write to the handler on the target


class Smp:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        n = wl.k.nr_cpus
        # call_single_queue per CPU: (function, csd, callback, ttwu)
        self.queue: list[list[tuple[str, int, Callable[[], None], bool]]] = [[] for _ in range(n)]

    def _send(self, dst: int, vector: int, callsite: int, callback: int, depth: int) -> None:
        """The IPI leaves this CPU: ``ipi_send_cpu`` then the ICR write."""
        wl = self.wl
        wl.emit_ctx(D, depth, "ipi_send_cpu", dst, callsite, callback)
        wl.emit_ctx(D, depth, "write_msr", MSR_X2APIC_ICR, dst << 32 | vector, 0)

    def _deliver(self, dst: int, handler: Callable[[int], None], softirqs: bool = True,
                 entry: str = "sysvec_reschedule_ipi") -> None:
        """The target takes the interrupt a little after the send, on its own timeline;
        the sender goes on from where it was (its CPU's clock did not move)."""
        wl = self.wl
        clock = wl.k.boot_clock
        saved = clock.pinned
        if saved is not None:
            clock.pin(max(saved + IPI_NS, clock.floor(dst) + 1))
        wl.irq.interrupt(dst, handler, softirqs=softirqs, entry=entry)
        if saved is not None:
            clock.pin(saved + clock.PIN_STEP)

    # ------------------------------------------------------------------ function calls
    def queue_csd(self, dst: int, function: str, csd: int, callsite: int, fn: Callable[[], None],
                  depth: int, ttwu: bool = False) -> None:
        """__smp_call_single_queue(): ``csd_queue_cpu``; the first entry on the target's
        queue sends the call-function-single IPI, which runs the queue there."""
        wl = self.wl
        sym = wl.sites.sym
        wl.emit_ctx(D, depth, "csd_queue_cpu", dst, callsite, sym(function), csd)
        first = not self.queue[dst]
        self.queue[dst].append((function, csd, fn, ttwu))
        if not first:
            return
        self._send(dst, CALL_FUNCTION_SINGLE_VECTOR, callsite,
                   sym("generic_smp_call_function_single_interrupt"), depth)
        self._deliver(dst, lambda base: self._call_function_single(dst), entry="sysvec_call_function_single")

    def _call_function_single(self, cpu: int) -> None:
        """sysvec_call_function_single → __flush_smp_call_function_queue(): the queued
        callbacks, the wakeups last (sched_ttwu_pending() once, with the first entry's
        csd, for every task on the wake list)."""
        wl = self.wl
        sym = wl.sites.sym
        wl.emit("call_function_single_entry", CALL_FUNCTION_SINGLE_VECTOR)
        frames = wl.sites.enter_chain(("__sysvec_call_function_single",
                                       "generic_smp_call_function_single_interrupt"))
        entries, self.queue[cpu] = self.queue[cpu], []
        wakes = [e for e in entries if e[3]]
        for function, csd, fn, _ in (e for e in entries if not e[3]):
            wl.emit("csd_function_entry", sym(function), csd)
            fn()
            wl.emit("csd_function_exit", sym(function), csd)
        if wakes:
            function, csd = wakes[0][0], wakes[0][1]
            wl.emit("csd_function_entry", sym(function), csd)
            inner = wl.sites.enter_chain((function,), "generic_smp_call_function_single_interrupt")
            for _, _, fn, _ in wakes:
                fn()
            wl.sites.leave_chain(inner)
            wl.emit("csd_function_exit", sym(function), csd)
        wl.sites.leave_chain(frames)
        wl.emit("call_function_single_exit", CALL_FUNCTION_SINGLE_VECTOR)

    def ttwu_queue_wakelist(self, dst: int, pid: int, activate: Callable[[], None], depth: int) -> None:
        """ttwu_queue_wakelist(): the wakeup of task ``pid`` is done by the idle ``dst``
        itself (``activate``: ttwu_do_activate() there), in its IPI."""
        wl = self.wl
        csd = task_struct(pid) + wl.k.mem.offset("task_struct", "wake_entry")
        callsite = wl.sites.call_ret("ttwu_queue_wakelist", "__smp_call_single_queue")
        self.queue_csd(dst, "sched_ttwu_pending", csd, callsite, activate, depth, ttwu=True)

    # ------------------------------------------------------------------ reschedule
    def send_reschedule(self, dst: int, caller: str, depth: int) -> None:
        """resched_curr() of another CPU's run queue (called from ``caller``), whose
        current task does not poll: the reschedule IPI."""
        wl = self.wl
        self._send(dst, RESCHEDULE_VECTOR, wl.sites.call_ret(caller, "resched_curr"), 0, depth)
        self._deliver(dst, lambda base: self._reschedule(), softirqs=False)

    def _reschedule(self) -> None:
        """sysvec_reschedule_ipi(): scheduler_ipi() folds need_resched."""
        wl = self.wl
        wl.emit("reschedule_entry", RESCHEDULE_VECTOR)
        wl.emit("reschedule_exit", RESCHEDULE_VECTOR)
