"""Sleeps of traced host tasks on an hrtimer (kernel/time/hrtimer.c, posix-timers.c):
nanosleep and clock_nanosleep, and the timeouts of poll/select/epoll
(schedule_hrtimeout_range(), used by ``select.py``).

The sleeper's on-stack ``hrtimer_sleeper`` is initialised (``hrtimer_init``) and queued
on the task's CPU with the requested expiry plus the slack (``hrtimer_start``; the
clock event device is reprogrammed when it is the CPU's first timer), then the task
schedules.  The machine fires it like any hrtimer (``background.py``): the local APIC
timer interrupt of that CPU at the hard expiry runs hrtimer_wakeup(), which wakes the
task (and the idle CPU runs it at once).  When the tracer saw the task back sooner —
within the slack, an interrupt came early — the interrupt comes at that time.  Woken
otherwise (a signal, poll's data), the sleeper cancels its timer on the way out
(``hrtimer_cancel``); one that never slept drops it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .defs import T_ASLEEP
from .hrtimer import CLOCK_BOOTTIME, CLOCK_MONOTONIC, HRTIMER_MODE_ABS, HRTIMER_MODE_REL, HrTimer
from .syscall_define import SyscallDefines
from .syscalls import SyscallCtx, arg_int, task_stack

if TYPE_CHECKING:
    from . import Workload
    from .traced import Thread

TIMESPEC = struct.Struct("<qq")
TIMER_ABSTIME = 1
TIMER_SLACK_NS = 50_000         # the default current->timer_slack_ns
MAX_SLACK = 100_000_000         # select's estimate cap (100 ms)
SLEEPER = 0x3D00                # do_nanosleep()'s hrtimer_sleeper on the task's stack
HRTIMEOUT_SLEEPER = 0x3C80      # schedule_hrtimeout_range_clock()'s


def timespec_ns(raw: bytes | None) -> int | None:
    """A captured struct __kernel_timespec (or old timeval, ``usec``) as ns."""
    if raw is None or len(raw) < TIMESPEC.size:
        return None
    sec, nsec = TIMESPEC.unpack_from(raw)
    return sec * 1_000_000_000 + nsec


def estimate_accuracy(timeout_ns: int) -> int:
    """select_estimate_accuracy(): 0.1% of the timeout, at least the task's slack."""
    return max(TIMER_SLACK_NS, min(timeout_ns // 1000, MAX_SLACK))


@dataclass(slots=True, eq=False)
class Sleeper:
    """An armed hrtimer_sleeper of a task in a syscall."""

    timer: HrTimer
    thread: Thread
    ctx: SyscallCtx


class Time:
    """The hrtimer sleeps: nanosleep's bodies and the sleeper every one of them arms."""

    SYSCALLS = SyscallDefines()

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.sleepers: dict[int, Sleeper] = {}     # pid -> its armed sleeper
        self.SYSCALLS.register(wl.syscalls, self)

    # ------------------------------------------------------------------ the sleeper
    def arm(self, ctx: SyscallCtx, off: int, clockid: int, mode: int, soft: int, slack: int,
            init_via: str, start_via: str) -> None:
        """hrtimer_init_sleeper() (``hrtimer_init``, in ``init_via``) and
        hrtimer_sleeper_start_expires() (``hrtimer_start`` of [soft, soft + slack], in
        ``start_via``) on the task's CPU; ``soft`` is absolute (boot ns)."""
        wl = self.wl
        t = ctx.thread
        timer = HrTimer(task_stack(t.task.pid) + off, "hrtimer_wakeup", self._hrtimer_wakeup)
        s = wl.syscalls
        ctx.regs["hrtimer_init_sleeper"] = (timer.addr, clockid, mode)
        s.call(ctx, ("hrtimer_init_sleeper", "__hrtimer_init"))
        wl.hrtimers.init(timer, clockid, mode)
        ctx.regs["hrtimer_sleeper_start_expires"] = (timer.addr, mode)
        s.call(ctx, ("hrtimer_sleeper_start_expires", "hrtimer_start_range_ns"))
        wl.hrtimers.start(wl.k.sched.cpu, timer, soft, mode, slack)
        self.sleepers[t.task.pid] = Sleeper(timer, t, ctx)

    def _hrtimer_wakeup(self, timer: HrTimer, now: int) -> None:
        """hrtimer_wakeup(): the sleeper's task is woken (it runs at once on its idle
        CPU)."""
        wl = self.wl
        sl = next((s for s in self.sleepers.values() if s.timer is timer), None)
        if sl is None:
            return None
        del self.sleepers[sl.thread.task.pid]
        t = sl.thread
        if t.state == T_ASLEEP and t.pending is not None and t.pending.ctx is sl.ctx:
            frames = wl.sites.enter_chain(("hrtimer_wakeup",), "__hrtimer_run_queues")
            wl.traced.wake(t, wl.k.sched.cpu)
            wl.sites.leave_chain(frames)
        return None

    @SYSCALLS.wake("nanosleep", "clock_nanosleep")
    def expire(self, ctx: SyscallCtx, at: int) -> bool:
        """The sleep ended by its timer before the machine fired it (the tracer saw the
        task back within the slack): the CPU's timer interrupt comes at ``at``."""
        sl = self.sleepers.get(ctx.thread.task.pid)
        if sl is None or sl.ctx is not ctx or not sl.timer.queued or (ctx.ret is not None and ctx.ret < 0):
            return False
        wl = self.wl
        clock = wl.k.boot_clock
        cpu = sl.timer.cpu
        when = max(min(sl.timer.expires, at), ctx.t0)
        clock.pin(max(when, clock.floor(cpu) + 1))
        sl.timer.softexpires = min(sl.timer.softexpires, clock.peek())
        wl.irq.apic_timer(cpu)
        return sl.thread.state != T_ASLEEP

    @SYSCALLS.exit("nanosleep", "clock_nanosleep")
    def sleep_exit(self, ctx: SyscallCtx, ret: int) -> None:
        """On the way out: a timer still queued is cancelled (hrtimer_cancel() after the
        wait: ``hrtimer_cancel``) when the task slept and was woken otherwise, dropped
        when it never slept."""
        sl = self.sleepers.pop(ctx.thread.task.pid, None)
        if sl is None or sl.ctx is not ctx or not sl.timer.queued:
            return
        wl = self.wl
        if ctx.data.get("slept"):
            ctx.regs["hrtimer_cancel"] = (sl.timer.addr,)
            wl.syscalls.call(ctx, "hrtimer_cancel")
            wl.hrtimers.cancel(sl.timer)
        else:
            wl.hrtimers.drop(sl.timer)
            wl.hrtimers.reprogram(sl.timer.cpu if sl.timer.cpu >= 0 else wl.k.sched.cpu, 1)

    # ------------------------------------------------------------------ nanosleep
    @SYSCALLS.enter("nanosleep")
    def _nanosleep(self, ctx: SyscallCtx) -> None:
        """nanosleep() → get_timespec64(), hrtimer_nanosleep(rqtp, REL, CLOCK_MONOTONIC)."""
        self._sleep_path(ctx, 0, CLOCK_MONOTONIC, HRTIMER_MODE_REL)

    @SYSCALLS.enter("clock_nanosleep")
    def _clock_nanosleep(self, ctx: SyscallCtx) -> None:
        """clock_nanosleep() → get_timespec64(), common_nsleep() → hrtimer_nanosleep()."""
        clock = arg_int(ctx.args[0])
        mode = HRTIMER_MODE_ABS if arg_int(ctx.args[1]) & TIMER_ABSTIME else HRTIMER_MODE_REL
        ctx.regs["common_nsleep"] = (clock, ctx.args[1] & 0xFFFFFFFF, ctx.frame + 0x20)
        self._sleep_path(ctx, 2, clock, mode, "common_nsleep")

    def _sleep_path(self, ctx: SyscallCtx, i: int, clock: int, mode: int, via: str = "") -> None:
        """hrtimer_nanosleep() → do_nanosleep(): the sleeper armed, left open where the
        task schedules."""
        wl = self.wl
        s = wl.syscalls
        rq = timespec_ns(ctx.caps.get(i))
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
        now = wl.k.boot_clock.peek()
        if mode == HRTIMER_MODE_REL:
            soft = now + rq
        elif clock in (CLOCK_MONOTONIC, CLOCK_BOOTTIME):
            soft = wl.k.boot_clock.from_monotonic(rq)
        else:
            soft = rq       # CLOCK_REALTIME: the base keeps wall time; the exit shows the wakeup
        self.arm(ctx, SLEEPER, clock, mode, soft, TIMER_SLACK_NS, "hrtimer_nanosleep", "do_nanosleep")
        ctx.regs["do_nanosleep"] = (timer, mode)
        s.open(ctx, "do_nanosleep")

    # ------------------------------------------------------------------ hrtimeouts
    def hrtimeout(self, ctx: SyscallCtx, timeout_ns: int, caller: str) -> None:
        """schedule_hrtimeout_range(&expire, slack, ABS) of a timed wait that sleeps
        (poll, select, epoll): the sleeper armed for the timeout from now."""
        if timeout_ns <= 0:
            return
        wl = self.wl
        soft = wl.k.boot_clock.peek() + timeout_ns
        slack = estimate_accuracy(timeout_ns)
        ctx.regs["schedule_hrtimeout_range"] = (ctx.frame + 0x60, slack, HRTIMER_MODE_ABS)
        wl.syscalls.open(ctx, "schedule_hrtimeout_range", "schedule_hrtimeout_range_clock")
        self.arm(ctx, HRTIMEOUT_SLEEPER, CLOCK_MONOTONIC, HRTIMER_MODE_ABS, soft, slack,
                 "schedule_hrtimeout_range_clock", "schedule_hrtimeout_range_clock")
