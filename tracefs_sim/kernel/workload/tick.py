"""The scheduler tick and dynticks idle (kernel/time/tick-sched.c, the tick half of
kernel/time/timer.c's get_next_timer_interrupt()).

The reference kernel is CONFIG_NO_HZ_FULL without ``nohz_full=``: no CPU is a full
dynticks CPU, so only idle stops the tick.  A CPU running a task ticks every jiffy
(``sched_timer``, an hrtimer whose function is tick_nohz_handler()).  A CPU entering
idle without a cpuidle driver (a qemu VM: default_idle_call()) keeps the tick on the
first pass of the idle loop; once a tick came in idle, tick_nohz_idle_stop_tick() asks
the timer wheel and the timer migration hierarchy for the next event, marks the timer
bases idle, stops the tick (``tick_stop``) and programs ``sched_timer`` for that event
(or cancels it: nothing to wait for).  Leaving idle restarts it (tick_nohz_idle_exit():
``timer_base_idle``, ``tmigr_cpu_active``, the timer moved back to the next jiffy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..clock import TICK_NS, jiffies_of
from .defs import PCPU_BASE, PCPU_STRIDE, TICK_SCHED_TIMER, D
from .hrtimer import HRTIMER_MODE_ABS_PINNED_HARD, KTIME_MAX, HrTimer

if TYPE_CHECKING:
    from . import Workload

TICK_DO_TIMER_NONE = -1
TICK_DEP_MASK_NONE = 0
TIMER_SOFTIRQ = 1


@dataclass(slots=True, eq=False)
class TickSched:
    """struct tick_sched of one CPU (the flags the model needs)."""

    timer: HrTimer
    stopped: bool = False        # TS_FLAG_STOPPED
    inidle: bool = False         # TS_FLAG_INIDLE
    got_idle_tick: bool = False
    next_tick: int = 0
    last_tick: int = 0
    timer_expires: int = 0
    do_timer_last: bool = False


def jiffy_start(ns: int) -> int:
    """last_jiffies_update at ``ns``: the start of the current jiffy."""
    return ns // TICK_NS * TICK_NS


class Tick:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.do_timer_cpu = 0
        self.ts = [TickSched(HrTimer(PCPU_BASE + cpu * PCPU_STRIDE + TICK_SCHED_TIMER,
                                     "tick_nohz_handler", self._handler))
                   for cpu in range(wl.k.nr_cpus)]

    def stopped(self, cpu: int) -> bool:
        return self.ts[cpu].stopped

    # ------------------------------------------------------------------ the tick
    def _handler(self, timer: HrTimer, now: int) -> int | None:
        """tick_nohz_handler(): the jiffies duty, update_process_times(); re-armed one
        jiffy on unless the tick is stopped (dynticks idle re-arms it itself)."""
        wl = self.wl
        cpu = wl.k.sched.cpu
        ts = self.ts[cpu]
        frames = wl.sites.enter_chain(("tick_nohz_handler",), "__hrtimer_run_queues")
        if self.do_timer_cpu == TICK_DO_TIMER_NONE:
            self.do_timer_cpu = cpu
        if ts.inidle:
            ts.got_idle_tick = True
        if ts.stopped:
            ts.next_tick = 0
        self.update_process_times(cpu, now)
        wl.sites.leave_chain(frames)
        if ts.stopped:
            return None
        return (now // TICK_NS + 1) * TICK_NS

    def update_process_times(self, cpu: int, now: int) -> None:
        """update_process_times(): account_process_tick(), run_local_timers() (TIMER_SOFTIRQ
        when a wheel timer is due or idle CPUs' global timers wait), RCU's tick, then
        sched_tick()."""
        wl = self.wl
        frames = wl.sites.enter_chain(("update_process_times",), "tick_nohz_handler")
        wl.sites.call("account_process_tick", "update_process_times")
        if wl.timers.due(cpu, jiffies_of(now)) or wl.tmigr.requires_handle_remote(cpu, now):
            wl.irq.raise_softirq(cpu, TIMER_SOFTIRQ)
        wl.rcu.sched_clock_irq(cpu)
        st = wl.sites.enter_chain(("sched_tick",), "update_process_times")
        wl.background.sched_tick(cpu)
        wl.sites.leave_chain(st)
        wl.sites.leave_chain(frames)

    # ------------------------------------------------------------------ idle
    def idle_enter(self, cpu: int) -> None:
        """tick_nohz_idle_enter()."""
        self.ts[cpu].inidle = True

    def got_tick(self, cpu: int) -> bool:
        """tick_nohz_idle_got_tick()."""
        ts = self.ts[cpu]
        got, ts.got_idle_tick = ts.got_idle_tick, False
        return got

    def next_timer(self, cpu: int, basej: int, basem: int, stop: bool, depth: int) -> tuple[int, bool]:
        """__get_next_timer_interrupt(): the next wheel event (ns) and, on the tick-stop
        path, whether the bases went idle.  The timer migration hierarchy decides who
        waits for the global timers: tmigr_quick_check() on the way, tmigr_cpu_deactivate()
        when the tick stops, tmigr_cpu_new_timer() once idle."""
        wl = self.wl
        timers, tmigr = wl.timers, wl.tmigr
        nextevt, tl, tg = timers.fetch_next(cpu, basej, basem)
        possible = nextevt > basej + 1
        if possible:
            if timers.is_idle[cpu]:
                nxt = tmigr.cpu_new_timer(cpu, tg, depth + 2)
            elif stop:
                nxt = tmigr.cpu_deactivate(cpu, tg, depth + 2)
            else:
                nxt = tmigr.quick_check(cpu, tg)
            if nxt < tl:
                nxt = max(nxt, basem)
                nextevt = basej + (nxt - basem) // TICK_NS
                tl = nxt
        idle = timers.is_idle[cpu]
        if stop:
            if not idle and nextevt > basej + 1:
                timers.set_idle(cpu, depth)
                idle = True
            if not idle and possible:
                tmigr.cpu_activate(cpu, depth + 2)
        return tl, idle

    def idle_stop_tick(self, cpu: int, depth: int) -> None:
        """tick_nohz_idle_stop_tick() → tick_nohz_next_event() → tick_nohz_stop_tick()."""
        wl = self.wl
        ts = self.ts[cpu]
        now = wl.k.boot_clock.peek()
        basem = jiffy_start(now)
        basej = jiffies_of(now)
        if wl.rcu.needs_cpu(cpu) or wl.irq.pending(cpu, TIMER_SOFTIRQ):
            next_tick = basem + TICK_NS
        else:
            next_tick = self.next_timer(cpu, basej, basem, False, depth)[0]
        if next_tick - basem <= TICK_NS and not ts.stopped:
            ts.timer_expires = 0
            return                                   # the tick is retained
        ts.timer_expires = next_tick
        self._stop_tick(cpu, basej, basem, depth)

    def _stop_tick(self, cpu: int, basej: int, basem: int, depth: int) -> None:
        """tick_nohz_stop_tick()."""
        wl = self.wl
        ts = self.ts[cpu]
        if ts.stopped:
            expires, idle = KTIME_MAX, True
        else:
            expires, idle = self.next_timer(cpu, basej, basem, True, depth)
        expires = min(expires, ts.timer_expires)
        if not idle:
            return
        if self.do_timer_cpu == cpu:
            self.do_timer_cpu = TICK_DO_TIMER_NONE
            ts.do_timer_last = True
        elif self.do_timer_cpu != TICK_DO_TIMER_NONE:
            ts.do_timer_last = False
        if ts.stopped and expires == ts.next_tick:
            return
        if not ts.stopped:
            ts.last_tick = ts.timer.expires
            ts.stopped = True
            wl.emit_ctx(D, depth, "tick_stop", 1, TICK_DEP_MASK_NONE)
        ts.next_tick = expires
        if expires == KTIME_MAX:
            wl.hrtimers.cancel(ts.timer, depth)
        else:
            wl.hrtimers.start(cpu, ts.timer, expires, HRTIMER_MODE_ABS_PINNED_HARD, depth=depth)

    def idle_exit(self, cpu: int, depth: int) -> None:
        """tick_nohz_idle_exit(): a stopped tick restarts (tick_nohz_restart_sched_tick():
        timer_clear_idle(), then tick_nohz_restart(): the timer cancelled and started
        again at the next jiffy of its old period)."""
        ts = self.ts[cpu]
        ts.inidle = False
        if not ts.stopped:
            return
        wl = self.wl
        now = wl.k.boot_clock.peek()
        if self.do_timer_cpu == TICK_DO_TIMER_NONE:
            self.do_timer_cpu = cpu
        wl.timers.clear_idle(cpu, depth)
        wl.tmigr.cpu_activate(cpu, depth)
        ts.stopped = False
        wl.hrtimers.cancel(ts.timer, depth)
        expires = ts.last_tick
        if expires <= now:
            expires += ((now - expires) // TICK_NS + 1) * TICK_NS
        wl.hrtimers.start(cpu, ts.timer, expires, HRTIMER_MODE_ABS_PINNED_HARD, depth=depth)
        ts.next_tick = 0

    # ------------------------------------------------------------------ resync
    def set_state(self, cpu: int, idle: bool, now: int) -> None:
        """Put ``cpu``'s tick in the state its idleness gives, without a trace: running
        (sched_timer at the next jiffy) or stopped (sched_timer at the next non-deferrable
        wheel event, KTIME_MAX: not queued)."""
        wl = self.wl
        ts = self.ts[cpu]
        ts.inidle = idle
        ts.got_idle_tick = False
        basem = jiffy_start(now)
        nxt = (now // TICK_NS + 1) * TICK_NS
        wl.hrtimers.drop(ts.timer)
        if not idle:
            ts.stopped = False
            ts.next_tick = 0
            expires = nxt
        else:
            ts.stopped = True
            ts.last_tick = nxt
            _, tl, tg = wl.timers.fetch_next(cpu, jiffies_of(now), basem)
            expires = ts.next_tick = tl if tl < KTIME_MAX else KTIME_MAX
        if expires != KTIME_MAX:
            ts.timer.expires = ts.timer.softexpires = max(expires, nxt)
            wl.hrtimers.queues[cpu].append(ts.timer)
            ts.timer.cpu = cpu
