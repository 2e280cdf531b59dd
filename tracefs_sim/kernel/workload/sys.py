"""The small syscalls of kernel/sys.c for traced host tasks: uname (down_read of
uts_sem around the copy), getpid/getppid/gettid (the pid in the caller's namespace),
setpgid/setsid (the process group the model keeps for kill(0)/wait4(0))."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .syscall_define import SyscallDefines
from .syscalls import SyscallCtx, arg_int

if TYPE_CHECKING:
    from . import Workload

UTS_SEM = 0xFFFFFFFFB2A4B5C0        # uts_sem (.data)


class Sys:
    """The bodies of kernel/sys.c's syscalls."""

    SYSCALLS = SyscallDefines()

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.SYSCALLS.register(wl.syscalls, self)

    @SYSCALLS.enter("uname")
    def _uname(self, ctx: SyscallCtx) -> None:
        """newuname(): down_read(&uts_sem), the copy to user space, up_read()."""
        ctx.regs["down_read"] = (UTS_SEM,)
        ctx.regs["up_read"] = (UTS_SEM,)
        self.wl.syscalls.call(ctx, "down_read")
        self.wl.syscalls.call(ctx, "up_read")

    @SYSCALLS.enter("getpid", "gettid")
    def _pid(self, ctx: SyscallCtx) -> None:
        """getpid/gettid() → __task_pid_nr_ns(current, type, NULL)."""
        ctx.regs["__task_pid_nr_ns"] = (0, 0 if ctx.sc.name == "gettid" else 1, 0)
        self.wl.syscalls.call(ctx, "__task_pid_nr_ns")

    @SYSCALLS.enter("getppid")
    def _getppid(self, ctx: SyscallCtx) -> None:
        """getppid() (__do_sys_getppid: task_tgid_vnr(rcu_dereference(current->real_parent)))."""
        self.wl.syscalls.call(ctx, "__task_pid_nr_ns")

    @SYSCALLS.exit("setpgid")
    def _setpgid(self, ctx: SyscallCtx, ret: int) -> None:
        if ret != 0:
            return
        tr = self.wl.traced
        pid, pgid = arg_int(ctx.args[0]), arg_int(ctx.args[1])
        proc = tr.procs.get(pid) if pid else ctx.thread.proc
        if proc is not None:
            proc.pgid = pgid or proc.tgid

    @SYSCALLS.exit("setsid")
    def _setsid(self, ctx: SyscallCtx, ret: int) -> None:
        if ret > 0:
            ctx.thread.proc.pgid = ret
