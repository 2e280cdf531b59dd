"""Interval timers (kernel/time/itimer.c): setitimer(), alarm() and the ITIMER_REAL
hrtimer of a process (signal->real_timer), which copy_signal() initialises at every
fork of a new process (``hrtimer_init``, CLOCK_MONOTONIC, REL).

setitimer(ITIMER_REAL)/alarm() cancel the armed timer (``hrtimer_cancel`` when queued),
start it for the new value (``hrtimer_start``, REL) and record the new state
(``itimer_state``; the value converted to a timespec, so its nanoseconds are the
microseconds times 1000).  At expiry it_real_fn() runs in the hrtimer interrupt:
``itimer_expire`` and SIGALRM to the process (``signal_generate`` from hardirq context),
which wakes it if it sleeps interruptibly.  An interval timer is re-armed when the
signal is dequeued (get_signal() → dequeue_signal(): ``hrtimer_start``, ABS).

Observed: the arguments (which, the itimerval read at the entry, alarm's seconds), the
process.  Modelled: the signal_struct's address (one per process).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from .defs import D
from .hrtimer import CLOCK_MONOTONIC, HRTIMER_MODE_ABS, HRTIMER_MODE_REL, HrTimer
from .syscall_define import SyscallDefines
from .syscalls import SyscallCtx, arg_int

if TYPE_CHECKING:
    from ..sched import Task
    from . import Workload
    from .traced import Proc

ITIMER_REAL = 0
SIGALRM = 14
SI_KERNEL = 0x80
ITIMERVAL = struct.Struct("<qqqq")      # it_interval (sec, usec), it_value (sec, usec)
SIGNAL_STRUCTS = 0xFFFF888106800000     # signal_cache objects: base + tgid * 0x400


def signal_struct(tgid: int) -> int:
    return SIGNAL_STRUCTS + (tgid & 0xFFFF) * 0x400


class ITimers:
    SYSCALLS = SyscallDefines()

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.timers: dict[int, HrTimer] = {}       # tgid -> its real_timer
        self.interval: dict[int, int] = {}         # tgid -> it_real_incr (ns)
        self._off = 0
        self.SYSCALLS.register(wl.syscalls, self)

    def _timer(self, tgid: int) -> HrTimer:
        t = self.timers.get(tgid)
        if t is None:
            if not self._off:
                self._off = self.wl.k.mem.offset("signal_struct", "real_timer")
            t = self.timers[tgid] = HrTimer(signal_struct(tgid) + self._off, "it_real_fn", self._it_real_fn)
        return t

    def copy_signal(self, child: Task) -> None:
        """copy_signal() → hrtimer_init(&sig->real_timer, CLOCK_MONOTONIC, REL)."""
        self.wl.hrtimers.init(self._timer(child.tgid), CLOCK_MONOTONIC, HRTIMER_MODE_REL)

    def exit(self, proc: Proc) -> None:
        """The process ended: its timer is gone (exit_itimers() cancelled it)."""
        t = self.timers.pop(proc.tgid, None)
        if t is not None and t.queued:
            self.wl.hrtimers.cancel(t)
        self.interval.pop(proc.tgid, None)

    # ------------------------------------------------------------------ syscalls
    @SYSCALLS.enter("setitimer")
    def _setitimer(self, ctx: SyscallCtx) -> None:
        """setitimer() → get_itimerval(), do_setitimer()."""
        which = arg_int(ctx.args[0])
        raw = ctx.caps.get(1)
        if which != ITIMER_REAL or raw is None or len(raw) < ITIMERVAL.size:
            return
        isec, iusec, vsec, vusec = ITIMERVAL.unpack_from(raw)
        if ctx.ret is not None and ctx.ret < 0:
            return
        self._do_setitimer(ctx, vsec, vusec * 1000, isec, iusec * 1000)

    @SYSCALLS.enter("alarm")
    def _alarm(self, ctx: SyscallCtx) -> None:
        """alarm() → alarm_setitimer(): a one-shot ITIMER_REAL of ``seconds``."""
        self._do_setitimer(ctx, ctx.args[0] & 0xFFFFFFFF, 0, 0, 0)

    def _do_setitimer(self, ctx: SyscallCtx, vsec: int, vnsec: int, isec: int, insec: int) -> None:
        """do_setitimer(ITIMER_REAL) under siglock (interrupts off): the timer
        cancelled, started for the value, ``itimer_state``."""
        wl = self.wl
        ctx.regs["do_setitimer"] = (ITIMER_REAL, ctx.frame + 0x40, ctx.frame + 0x60)
        wl.syscalls.call(ctx, "do_setitimer")
        tgid = ctx.task.tgid
        timer = self._timer(tgid)
        wl.hrtimers.cancel(timer, 1)
        value = vsec * 1_000_000_000 + vnsec
        if value:
            self.interval[tgid] = isec * 1_000_000_000 + insec
            wl.hrtimers.start(wl.k.sched.cpu, timer, wl.k.boot_clock.peek() + value, HRTIMER_MODE_REL,
                              depth=1)
        else:
            self.interval.pop(tgid, None)
        wl.emit_ctx(D, 1, "itimer_state", ITIMER_REAL, 0, vsec, vnsec, isec, insec)

    # ------------------------------------------------------------------ expiry
    def _it_real_fn(self, timer: HrTimer, now: int) -> int | None:
        """it_real_fn(): ``itimer_expire``, then SIGALRM to the process."""
        wl = self.wl
        tgid = next((g for g, t in self.timers.items() if t is timer), 0)
        wl.emit("itimer_expire", ITIMER_REAL, tgid, 0)
        proc = wl.traced.procs.get(tgid)
        frames = wl.sites.enter_chain(("it_real_fn", "kill_pid_info", "group_send_sig_info"),
                                      "__hrtimer_run_queues")
        if proc is not None:
            wl.signals.generate(SIGALRM, 0, SI_KERNEL, proc, None, depth=wl.base_depth() + 1)
        wl.sites.leave_chain(frames)
        return None

    def dequeued(self, tgid: int, sig: int) -> None:
        """dequeue_signal() of SIGALRM: an interval timer starts again (hrtimer_restart)."""
        incr = self.interval.get(tgid, 0)
        if sig != SIGALRM or not incr:
            return
        wl = self.wl
        timer = self._timer(tgid)
        if not timer.queued:
            now = wl.k.boot_clock.peek()
            wl.hrtimers.start(wl.k.sched.cpu, timer, now + incr, HRTIMER_MODE_ABS, depth=1)
