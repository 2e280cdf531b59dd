"""The timeouts of poll, select and epoll_wait (fs/select.c, fs/eventpoll.c).

A wait with a finite, non-zero timeout that sleeps waits on an hrtimer
(poll_schedule_timeout()/ep_poll() → schedule_hrtimeout_range(): ``time.py``) armed for
the timeout from the call, with select_estimate_accuracy()'s slack; an infinite wait
schedules with no timer, a zero timeout never sleeps.  Whether it slept is what the
tracer saw: it returned 0 (timed out), or took longer than a pass over ready files takes,
or it is still waiting.  What woke it early (pollwake() from a file's wait queue) is the
waker's path; the sleeper cancels its timer on the way out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .syscalls import Body, SyscallCtx, arg_int
from .time import timespec_ns

if TYPE_CHECKING:
    from . import Workload

QUICK_NS = 50_000       # a wait that returned this soon with files ready did not sleep

# syscall -> (the timeout argument, its kind: ms int, timespec, old timeval)
TIMEOUTS: dict[str, tuple[int, str]] = {
    "poll": (2, "ms"), "ppoll": (2, "ts"), "select": (4, "tv"), "pselect6": (4, "ts"),
    "epoll_wait": (3, "ms"), "epoll_pwait": (3, "ms"), "epoll_pwait2": (3, "ts"),
}
PATHS: dict[str, tuple[str, ...]] = {
    "poll": ("do_sys_poll",), "ppoll": ("do_sys_poll",), "select": ("core_sys_select", "do_select"),
    "pselect6": ("core_sys_select", "do_select"), "epoll_wait": ("do_epoll_wait",),
    "epoll_pwait": ("do_epoll_wait",), "epoll_pwait2": ("do_epoll_wait",),
}


class Select:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        for name in TIMEOUTS:
            wl.syscalls.register(name, Body(self._wait, wl.time.sleep_exit, wl.time.expire))

    def timeout_ns(self, ctx: SyscallCtx) -> int | None:
        """The wait's timeout (None: infinite, or not readable)."""
        i, kind = TIMEOUTS[ctx.sc.name]
        if kind == "ms":
            ms = arg_int(ctx.args[i])
            return None if ms < 0 else ms * 1_000_000
        if not ctx.args[i]:
            return None
        raw = ctx.caps.get(i)
        ns = timespec_ns(raw)
        if ns is None:
            return None
        if kind == "tv" and raw is not None:     # struct __kernel_old_timeval: usec
            sec, usec = divmod(ns, 1_000_000_000)
            ns = sec * 1_000_000_000 + usec * 1000
        return ns

    def _wait(self, ctx: SyscallCtx) -> None:
        """The wait's path down to where it sleeps, its timer armed when it does."""
        wl = self.wl
        wl.syscalls.open(ctx, *PATHS[ctx.sc.name])
        timeout = self.timeout_ns(ctx)
        if timeout is None or timeout <= 0:
            return
        ret = ctx.ret
        elapsed = wl.traced.now - ctx.t0
        if ret is None or ret == 0 or elapsed > QUICK_NS:
            wl.time.hrtimeout(ctx, timeout, ctx.sc.name)
