"""High-resolution timers and the per-CPU clock event device that fires them
(kernel/time/hrtimer.c, kernel/time/clockevents.c, tick-oneshot.c, and the local APIC's
TSC-deadline timer of arch/x86/kernel/apic/apic.c).

Every CPU keeps its queued hrtimers (the tick's ``sched_timer``, a sleeper's on-stack
``hrtimer_sleeper``, a process' ITIMER_REAL timer) and the expiry its clock event device
is programmed for: the earliest hard expiry queued there.  The machine's time loop
(``background.py``) fires a CPU's local APIC timer interrupt at that time;
``hrtimer_interrupt()`` runs every timer whose soft expiry has passed and programs the
device again.

6.12 as Debian builds it traces ``hrtimer_cancel`` only for an explicit cancel of a queued
timer (hrtimer_try_to_cancel()), not when the interrupt dequeues an expired one, and
``hrtimer_start`` carries ``was_armed`` (the timer was queued and is moved).

The device is the TSC-deadline mode of the local APIC (``lapic-deadline`` in a KVM guest
with a deadline-capable vCPU): programming it is a write of MSR_IA32_TSC_DEADLINE with the
TSC value of the expiry (lapic_next_deadline()); with nothing left to fire it is switched
to ONESHOT_STOPPED (lapic_timer_shutdown(): LVTT read and masked, the deadline zeroed) and
back to ONESHOT (LVTT rewritten) when a timer is queued again.  Under PARAVIRT_XXL these
wrmsr/rdmsr go through native_write_msr()/native_read_msr(), which fire ``write_msr`` and
``read_msr``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..clock import TSC_KHZ
from .defs import TIMER_VECTOR, D

if TYPE_CHECKING:
    from . import Workload

KTIME_MAX = (1 << 63) - 1
# enum hrtimer_mode
HRTIMER_MODE_ABS, HRTIMER_MODE_REL, HRTIMER_MODE_PINNED = 0x0, 0x1, 0x2
HRTIMER_MODE_HARD = 0x8
HRTIMER_MODE_ABS_PINNED_HARD = HRTIMER_MODE_ABS | HRTIMER_MODE_PINNED | HRTIMER_MODE_HARD
CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME = 0, 1, 7
# MSRs the local APIC timer writes (x2APIC: APIC_BASE_MSR + (reg >> 4))
MSR_IA32_TSC_DEADLINE = 0x6E0
MSR_X2APIC_LVTT = 0x832
APIC_LVT_TIMER_TSCDEADLINE = 0x40000
APIC_LVT_MASKED = 0x10000
LVTT_DEADLINE = TIMER_VECTOR | APIC_LVT_TIMER_TSCDEADLINE
TSC_DIVISOR = 8     # the deadline clockevent counts TSC cycles / 8


def tsc_of(ns: int) -> int:
    """The TSC at boot time ``ns`` (the x86-tsc trace clock's cycles)."""
    return ns * TSC_KHZ // 1_000_000


# what an expired timer's function returns: None (HRTIMER_NORESTART) or its next expiry
HrFn = Callable[["HrTimer", int], "int | None"]


@dataclass(slots=True, eq=False)
class HrTimer:
    """A struct hrtimer: its address, function and expiry range; ``cpu`` is the CPU base
    it is queued on (-1: not queued)."""

    addr: int
    function: str
    fn: HrFn
    expires: int = 0        # hard expiry (ns, CLOCK_MONOTONIC = the boot clock here)
    softexpires: int = 0
    cpu: int = -1

    @property
    def queued(self) -> bool:
        return self.cpu >= 0


class HrTimers:
    """The hrtimer_cpu_base of every CPU and its clock event device."""

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        n = wl.k.nr_cpus
        self.queues: list[list[HrTimer]] = [[] for _ in range(n)]
        self.expires_next: list[int] = [KTIME_MAX] * n     # what the device is programmed for
        self.dev_stopped = [True] * n                        # ONESHOT_STOPPED
        self.in_hrtirq = [False] * n

    # ------------------------------------------------------------------ queue
    def next_expiry(self, cpu: int) -> int:
        q = self.queues[cpu]
        return min(t.expires for t in q) if q else KTIME_MAX

    def _enqueue(self, cpu: int, timer: HrTimer) -> bool:
        """enqueue_hrtimer(): True when it is the CPU's first expiring timer now."""
        timer.cpu = cpu
        q = self.queues[cpu]
        q.append(timer)
        return all(timer.expires <= t.expires for t in q)

    def _remove(self, timer: HrTimer) -> bool:
        """remove_hrtimer()'s dequeue: was it queued?"""
        if timer.cpu < 0:
            return False
        self.queues[timer.cpu].remove(timer)
        timer.cpu = -1
        return True

    # ------------------------------------------------------------------ API
    def init(self, timer: HrTimer, clockid: int, mode: int, depth: int = 0) -> None:
        """hrtimer_init() → debug_init(): hrtimer_init."""
        self.wl.emit_ctx(0, depth, "hrtimer_init", timer.addr, clockid, mode)

    def start(self, cpu: int, timer: HrTimer, expires: int, mode: int, slack: int = 0,
              depth: int = 0, program: bool = True) -> None:
        """hrtimer_start_range_ns() on ``cpu`` (the current CPU): the timer (re)queued with
        [``expires``, ``expires + slack``] under the base lock (``hrtimer_start``, its
        was_armed), and the device reprogrammed when it became the first to expire
        (not while the CPU's hrtimer interrupt runs: it programs on its way out)."""
        wl = self.wl
        was_armed = self._remove(timer)
        timer.softexpires = expires
        timer.expires = expires + slack
        first = self._enqueue(cpu, timer)
        if wl.tp("hrtimer_start"):
            wl.emit_ctx(D, depth + 1, "hrtimer_start", timer.addr, wl.sites.sym(timer.function),
                        timer.expires, timer.softexpires, mode, int(was_armed))
        if program and not self.in_hrtirq[cpu] and (first or was_armed):
            self.reprogram(cpu, depth + 1)

    def cancel(self, timer: HrTimer, depth: int = 0) -> bool:
        """hrtimer_cancel() → hrtimer_try_to_cancel(): a queued timer is removed
        (``hrtimer_cancel``) and the device reprogrammed if it was the first; an
        inactive one leaves no trace."""
        cpu = timer.cpu
        if cpu < 0:
            return False
        self._remove(timer)
        self.wl.emit_ctx(D, depth + 1, "hrtimer_cancel", timer.addr)
        if not self.in_hrtirq[cpu]:
            self.reprogram(cpu, depth + 1)
        return True

    def reprogram(self, cpu: int, depth: int) -> None:
        """hrtimer_force_reprogram(skip_equal): the device follows the first expiry."""
        nxt = self.next_expiry(cpu)
        if nxt != self.expires_next[cpu]:
            self.program(cpu, nxt, depth)

    # ------------------------------------------------------------------ device
    def program(self, cpu: int, expires: int, depth: int) -> None:
        """tick_program_event(): KTIME_MAX stops the device (lapic_timer_shutdown());
        else it is switched back to ONESHOT when stopped and armed with the deadline
        (lapic_next_deadline())."""
        wl = self.wl
        self.expires_next[cpu] = expires
        msr = wl.tp("write_msr")
        if expires == KTIME_MAX:
            if not self.dev_stopped[cpu]:
                self.dev_stopped[cpu] = True
                if msr or wl.tp("read_msr"):
                    wl.emit_ctx(D, depth, "read_msr", MSR_X2APIC_LVTT, LVTT_DEADLINE, 0)
                    wl.emit_ctx(D, depth, "write_msr", MSR_X2APIC_LVTT, LVTT_DEADLINE | APIC_LVT_MASKED, 0)
                    wl.emit_ctx(D, depth, "write_msr", MSR_IA32_TSC_DEADLINE, 0, 0)
            return
        if self.dev_stopped[cpu]:
            self.dev_stopped[cpu] = False
            if msr:
                wl.emit_ctx(D, depth, "write_msr", MSR_X2APIC_LVTT, LVTT_DEADLINE, 0)
        if msr:
            now = wl.k.boot_clock.peek()
            delta = max(expires - now, 1000)          # clockevents_program_min_delta
            tsc = tsc_of(now) + (delta * TSC_KHZ // 1_000_000 // TSC_DIVISOR) * TSC_DIVISOR
            wl.emit_ctx(D, depth, "write_msr", MSR_IA32_TSC_DEADLINE, tsc, 0)

    # ------------------------------------------------------------------ interrupt
    def run_queues(self, cpu: int, now: int, depth: int) -> None:
        """hrtimer_interrupt() → __hrtimer_run_queues(): every timer whose soft expiry
        has passed runs (``hrtimer_expire_entry`` … ``_exit``, the base lock dropped
        around its function); one that restarts is queued again (``hrtimer_start``,
        mode ABS); then the device is programmed for the next expiry."""
        wl = self.wl
        self.in_hrtirq[cpu] = True
        frames = wl.sites.enter_chain(("__hrtimer_run_queues",), "hrtimer_interrupt")
        q = self.queues[cpu]
        while True:
            due = [t for t in q if t.softexpires <= now]
            if not due:
                break
            timer = min(due, key=lambda t: t.softexpires)
            self._remove(timer)
            wl.emit("hrtimer_expire_entry", timer.addr, now, wl.sites.sym(timer.function))
            nxt = timer.fn(timer, now)
            wl.emit("hrtimer_expire_exit", timer.addr)
            if nxt is not None and timer.cpu < 0:
                timer.expires = timer.softexpires = nxt
                self._enqueue(cpu, timer)
                if wl.tp("hrtimer_start"):
                    wl.emit_ctx(D, depth + 1, "hrtimer_start", timer.addr, wl.sites.sym(timer.function),
                                nxt, nxt, HRTIMER_MODE_ABS, 0)
        wl.sites.leave_chain(frames)
        self.in_hrtirq[cpu] = False
        self.program(cpu, self.next_expiry(cpu), depth)

    def drop(self, timer: HrTimer) -> None:
        """Forget a queued timer without a trace (the machine fast-forwarded past it)."""
        self._remove(timer)
