"""Sleeps of traced host tasks on an hrtimer (kernel/time/hrtimer.c, posix-timers.c):
nanosleep and clock_nanosleep.

do_nanosleep() arms an on-stack hrtimer_sleeper (hrtimer_init, hrtimer_start with the
caller's request plus the task's 50 us timer slack) and schedules; the timer's expiry
in the hrtimer interrupt of the task's CPU wakes it (hrtimer_expire_entry →
hrtimer_wakeup → sched_waking/sched_wakeup → hrtimer_expire_exit), at the real time:
the expiry, or earlier when the tracer saw the task back sooner.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..sched import TRACE_FLAG_HARDIRQ, TRACE_FLAG_IRQS_OFF
from .defs import TIMER_VECTOR, D
from .syscalls import Body, SyscallCtx, arg_int, task_stack

if TYPE_CHECKING:
    from . import Workload

TIMESPEC = struct.Struct("<qq")
CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME = 0, 1, 7
HRTIMER_MODE_ABS, HRTIMER_MODE_REL = 0, 1
TIMER_ABSTIME = 1
TIMER_SLACK_NS = 50_000         # the default current->timer_slack_ns
SLEEPER = 0x3D00                # the hrtimer_sleeper on the task's stack (its timer first)
HARDIRQ = TRACE_FLAG_HARDIRQ | TRACE_FLAG_IRQS_OFF


class Time:
    """The bodies of the hrtimer sleeps."""

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        reg = wl.syscalls.register
        reg("nanosleep", Body(self._nanosleep, wake=self._expire))
        reg("clock_nanosleep", Body(self._clock_nanosleep, wake=self._expire))

    def _request(self, ctx: SyscallCtx, i: int) -> int | None:
        raw = ctx.caps.get(i)
        if raw is None or len(raw) < TIMESPEC.size:
            return None
        sec, nsec = TIMESPEC.unpack_from(raw)
        return sec * 1_000_000_000 + nsec

    def _nanosleep(self, ctx: SyscallCtx) -> None:
        """nanosleep() → get_timespec64(), hrtimer_nanosleep(rqtp, REL, CLOCK_MONOTONIC)."""
        self._sleep_path(ctx, 0, CLOCK_MONOTONIC, HRTIMER_MODE_REL)

    def _clock_nanosleep(self, ctx: SyscallCtx) -> None:
        """clock_nanosleep() → get_timespec64(), common_nsleep() → hrtimer_nanosleep()."""
        clock = arg_int(ctx.args[0])
        mode = HRTIMER_MODE_ABS if arg_int(ctx.args[1]) & TIMER_ABSTIME else HRTIMER_MODE_REL
        ctx.regs["common_nsleep"] = (clock, ctx.args[1] & 0xFFFFFFFF, ctx.frame + 0x20)
        self._sleep_path(ctx, 2, clock, mode, "common_nsleep")

    def _sleep_path(self, ctx: SyscallCtx, i: int, clock: int, mode: int, via: str = "") -> None:
        """hrtimer_nanosleep() → do_nanosleep(): the sleeper armed (hrtimer_init,
        hrtimer_start), left open where the task schedules."""
        wl = self.wl
        s = wl.syscalls
        rq = self._request(ctx, i)
        ctx.regs["get_timespec64"] = (ctx.frame + 0x20, ctx.args[i])
        ctx.rets["get_timespec64"] = 0 if rq is not None else (-14 & 0xFFFFFFFFFFFFFFFF)
        s.call(ctx, "get_timespec64")
        if rq is None or rq < 0:
            return
        if via:
            s.open(ctx, via)
        timer = task_stack(ctx.task.pid) + SLEEPER
        ctx.regs["hrtimer_nanosleep"] = (rq, mode, clock)
        s.open(ctx, "hrtimer_nanosleep")
        wl.emit("hrtimer_init", timer, clock, mode)
        ctx.regs["do_nanosleep"] = (timer, mode)
        s.open(ctx, "do_nanosleep")
        now = wl.k.boot_clock.ns()
        if mode == HRTIMER_MODE_REL:
            soft = now + rq
        elif clock in (CLOCK_MONOTONIC, CLOCK_BOOTTIME):
            soft = wl.k.boot_clock.from_monotonic(rq)
        else:
            soft = rq              # CLOCK_REALTIME: the timer's base keeps wall time
        hard = soft + TIMER_SLACK_NS
        ctx.data["timer"] = timer
        ctx.data["expires"] = hard if mode == HRTIMER_MODE_REL or clock != CLOCK_REALTIME else 0
        ctx.regs["hrtimer_start_range_ns"] = (timer, soft, TIMER_SLACK_NS, mode)
        s.call(ctx, "hrtimer_start_range_ns")
        wl.emit_ctx(D, 1, "hrtimer_start", timer, wl.sites.sym("hrtimer_wakeup"), hard, soft, mode, 0)

    def _expire(self, ctx: SyscallCtx, at: int) -> bool:
        """The sleeper's timer expired (the sleep returned 0): the hrtimer interrupt of the
        task's CPU at the expiry (or ``at``, when the task was seen back sooner) wakes it."""
        if ctx.ret != 0 or "timer" not in ctx.data:
            return False
        wl = self.wl
        k = wl.k
        sched = k.sched
        t = ctx.thread
        expires = ctx.data["expires"]
        when = min(expires, at) if expires else at
        k.boot_clock.pin(max(when, ctx.t0))
        cpu = t.cpu
        saved = sched.cpu, sched.irq_flags, sched.preempt_count
        sched.run_on(cpu)
        base = wl.base_depth()
        timer = ctx.data["timer"]
        sched.irq_flags, sched.preempt_count = HARDIRQ, base
        wl.emit("local_timer_entry", TIMER_VECTOR)
        frames = wl.sites.enter_chain(("__sysvec_apic_timer_interrupt", "hrtimer_interrupt",
                                       "__hrtimer_run_queues"))
        wl.emit_ctx(HARDIRQ, base + 1, "hrtimer_cancel", timer)
        wl.emit("hrtimer_expire_entry", timer, k.boot_clock.ns(), wl.sites.sym("hrtimer_wakeup"))
        wake = wl.sites.enter_chain(("hrtimer_wakeup",), "__hrtimer_run_queues")
        wl.traced.wake(t, cpu)
        wl.sites.leave_chain(wake)
        wl.emit("hrtimer_expire_exit", timer)
        wl.sites.leave_chain(frames)
        wl.emit("local_timer_exit", TIMER_VECTOR)
        sched.irq_flags, sched.preempt_count = saved[1], saved[2]
        sched.run_on(saved[0])
        return True
