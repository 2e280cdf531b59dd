"""The timer wheel (kernel/time/timer.c): per-CPU bases of ``timer_list`` timers in
jiffies, the TIMER_SOFTIRQ that expires them, and what the idle code asks of it.

Every CPU has three bases: BASE_LOCAL (pinned timers), BASE_GLOBAL (the rest, which the
timer migration hierarchy hands to an active CPU while this one idles: ``tmigr.py``)
and BASE_DEF (deferrable timers: they never wake an idle CPU, they run at the next tick
it takes).  A timer is queued in the bucket calc_wheel_index() picks, so it expires at
its ``bucket_expiry`` jiffy, never before its ``expires``.

``timer_start``/``timer_cancel`` (a pending timer re-armed or deleted, and every expiry:
detach_timer()) and ``timer_expire_entry``/``_exit`` fire as 6.12 fires them;
``timer_base_idle`` when the idle code marks the bases idle (tick stopped) and when it
clears them (tick restarted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..clock import TICK_NS, jiffies_of
from ..sched import TRACE_FLAG_IRQS_OFF, TRACE_FLAG_SOFTIRQ
from .defs import TIMER_DEFERRABLE, TIMER_IRQSAFE, TIMER_PINNED, D, wheel_bucket
from .hrtimer import KTIME_MAX

if TYPE_CHECKING:
    from . import Workload

BASE_LOCAL, BASE_GLOBAL, BASE_DEF = 0, 1, 2
NR_BASES = 3
TIMER_CPUMASK = 0x3FFFF
TIMER_ARRAYSHIFT = 22

TimerFn = Callable[["WheelTimer"], None]


def jiffy_ns(j: int) -> int:
    """The boot time (ns) at which jiffy ``j`` began."""
    return (j - jiffies_of(0)) * TICK_NS


@dataclass(slots=True, eq=False)
class WheelTimer:
    """A struct timer_list: ``flags`` are its TIMER_* bits (the CPU and the wheel index
    are added when it is queued)."""

    addr: int
    function: str
    fn: TimerFn
    flags: int = 0
    expires: int = 0          # jiffies
    bucket: int = 0           # bucket_expiry: the jiffy it fires at
    cpu: int = -1             # the CPU whose base holds it (-1: not pending)
    base: int = -1
    idx: int = 0

    @property
    def pending(self) -> bool:
        return self.cpu >= 0


class TimerWheel:
    """The timer_bases of every CPU."""

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        n = wl.k.nr_cpus
        self.bases: list[list[list[WheelTimer]]] = [[[] for _ in range(NR_BASES)] for _ in range(n)]
        self.is_idle = [False] * n      # BASE_LOCAL's is_idle

    # ------------------------------------------------------------------ queueing
    def init(self, timer: WheelTimer, depth: int = 0) -> None:
        """timer_setup() → debug_init(): timer_init."""
        self.wl.emit_ctx(0, depth, "timer_init", timer.addr)

    def _detach(self, timer: WheelTimer, depth: int) -> None:
        """detach_timer(): timer_cancel (under the base lock, interrupts off)."""
        self.bases[timer.cpu][timer.base].remove(timer)
        timer.cpu = -1
        timer.base = -1
        self.wl.emit_ctx(D, depth, "timer_cancel", timer.addr)

    def mod_timer(self, timer: WheelTimer, expires: int, cpu: int, depth: int = 0) -> None:
        """__mod_timer() on ``cpu`` (the current CPU, or the target of add_timer_on()
        for a pinned timer): a pending timer is detached first; the timer goes to the
        base its flags pick (deferrable → BASE_DEF, pinned → BASE_LOCAL, else
        BASE_GLOBAL) in the bucket for ``expires`` (timer_start)."""
        wl = self.wl
        if timer.pending:
            self._detach(timer, depth + 1)
        now = jiffies_of(wl.k.boot_clock.peek())
        base = BASE_DEF if timer.flags & TIMER_DEFERRABLE else \
            BASE_LOCAL if timer.flags & TIMER_PINNED else BASE_GLOBAL
        timer.expires = expires
        timer.bucket, timer.idx = wheel_bucket(expires, now)
        timer.cpu = cpu
        timer.base = base
        self.bases[cpu][base].append(timer)
        if wl.tp("timer_start"):
            flags = cpu | timer.flags | timer.idx << TIMER_ARRAYSHIFT
            wl.emit_ctx(D, depth + 1, "timer_start", timer.addr, wl.sites.sym(timer.function),
                        expires, timer.bucket, now, flags)

    def del_timer(self, timer: WheelTimer, depth: int = 0) -> bool:
        """del_timer(): a pending timer is detached (timer_cancel)."""
        if not timer.pending:
            return False
        self._detach(timer, depth + 1)
        return True

    # ------------------------------------------------------------------ queries
    def next_bucket(self, cpu: int, base: int) -> int | None:
        """The base's next_expiry (jiffies); None: nothing pending."""
        q = self.bases[cpu][base]
        return min(t.bucket for t in q) if q else None

    def due(self, cpu: int, jiffies: int) -> bool:
        """run_local_timers(): has a base of ``cpu`` a timer due at ``jiffies``?"""
        for q in self.bases[cpu]:
            if any(t.bucket <= jiffies for t in q):
                return True
        return False

    def fetch_next(self, cpu: int, basej: int, basem: int) -> tuple[int, int, int]:
        """fetch_next_timer_interrupt(): (nextevt jiffies, tevt.local ns, tevt.global ns)
        of the pinned and the global base (deferrable timers are not waited for)."""
        far = basej + (1 << 30)
        loc = self.next_bucket(cpu, BASE_LOCAL)
        glob = self.next_bucket(cpu, BASE_GLOBAL)
        nl = loc if loc is not None else far
        ng = glob if glob is not None else far
        local_first = nl <= ng
        nextevt = nl if local_first else ng
        tl = tg = KTIME_MAX
        if nextevt <= basej + 1:
            nextevt = max(nextevt, basej)
            tl = basem + (nextevt - basej) * TICK_NS
            if not local_first:
                tg = tl
            return nextevt, tl, tg
        if not local_first and glob is not None:
            tg = basem + (ng - basej) * TICK_NS
        if loc is not None:
            tl = basem + (nl - basej) * TICK_NS
        return nextevt, tl, tg

    def global_expiry(self, cpu: int, basej: int, basem: int) -> int:
        """fetch_next_timer_interrupt_remote(): the next global timer of ``cpu`` (ns)."""
        return self.fetch_next(cpu, basej, basem)[2]

    # ------------------------------------------------------------------ idle
    def set_idle(self, cpu: int, depth: int) -> None:
        """timer_base_try_to_set_idle(): the bases go idle (timer_base_idle, under both
        base locks)."""
        if not self.is_idle[cpu]:
            self.is_idle[cpu] = True
            self.wl.emit_ctx(D, depth + 2, "timer_base_idle", 1, cpu)

    def clear_idle(self, cpu: int, depth: int) -> None:
        """timer_clear_idle(): timer_base_idle (unlocked, interrupts off)."""
        self.is_idle[cpu] = False
        self.wl.emit_ctx(D, depth, "timer_base_idle", 0, cpu)

    # ------------------------------------------------------------------ expiry
    def run_softirq(self, cpu: int, depth: int) -> None:
        """run_timer_softirq(): the expired timers of BASE_LOCAL, BASE_GLOBAL and BASE_DEF,
        then the global timers of idle CPUs this one handles (tmigr_handle_remote())."""
        wl = self.wl
        jiffies = jiffies_of(wl.k.boot_clock.peek())
        for base in (BASE_LOCAL, BASE_GLOBAL, BASE_DEF):
            self.expire_base(cpu, base, jiffies, depth)
        wl.tmigr.handle_remote(cpu, depth)

    def expire_base(self, cpu: int, base: int, jiffies: int, depth: int) -> None:
        """__run_timers(): each expired timer, bucket by bucket: detached (timer_cancel),
        then its function between timer_expire_entry and _exit (interrupts stay off
        for a TIMER_IRQSAFE timer: only the base lock is dropped)."""
        wl = self.wl
        sched = wl.k.sched
        q = self.bases[cpu][base]
        while True:
            due = [t for t in q if t.bucket <= jiffies]
            if not due:
                return
            timer = min(due, key=lambda t: t.bucket)
            baseclk = timer.bucket
            self._detach(timer, depth + 1)
            saved = sched.irq_flags
            sched.irq_flags = TRACE_FLAG_SOFTIRQ | (TRACE_FLAG_IRQS_OFF if timer.flags & TIMER_IRQSAFE else 0)
            tp = wl.tp("timer_expire_entry")
            if tp:
                tp.fire(timer.addr, jiffies, wl.sites.sym(timer.function), baseclk)
            wl.sites.call("call_timer_fn", "run_timer_softirq")
            timer.fn(timer)
            wl.emit("timer_expire_exit", timer.addr)
            sched.irq_flags = saved

    def forward(self, timer: WheelTimer, now: int) -> None:
        """Re-bucket a pending timer whose expiry passed while the machine did not run
        (no trace: nothing recorded then)."""
        if timer.pending and timer.bucket <= now:
            timer.expires = now + 1
            timer.bucket, timer.idx = wheel_bucket(timer.expires, now)
