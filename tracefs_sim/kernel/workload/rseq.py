"""Restartable sequences (kernel/rseq.c, include/linux/rseq.h).

glibc registers an rseq area in every thread it starts (the tracer sees the rseq()
syscall, flags 0; RSEQ_FLAG_UNREGISTER undoes it).  A registered thread gets
TIF_NOTIFY_RESUME when it is switched out (rseq_preempt()), migrated (rseq_migrate(),
also a fork child put on its CPU), when registering, and when task work is queued for
its return (fput()'s deferred ____fput after a close()); on its way back to user space
resume_user_mode_work() runs __rseq_handle_notify_resume(), which stores the CPU and
concurrency ID in the area: ``rseq_update``.  A signal delivered to it does the same
from setup_rt_frame().  fork copies the registration (not for CLONE_VM), exec drops it.
No traced program runs inside an rseq critical section the model knows of, so
``rseq_ip_fixup`` does not fire.

``mm_cid`` is modelled: the thread's rank among its process' live threads (the lowest
free concurrency ID of the mm), capped at the number of CPUs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..sched import Task
from .process import CLONE_VM
from .syscall_define import SyscallDefines
from .syscalls import SyscallCtx, arg_int

if TYPE_CHECKING:
    from . import Workload

RSEQ_FLAG_UNREGISTER = 1


class Rseq:
    SYSCALLS = SyscallDefines()

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.registered: dict[int, tuple[int, int, int]] = {}   # pid -> (area, len, sig)
        self.notify: set[int] = set()                            # TIF_NOTIFY_RESUME
        self.SYSCALLS.register(wl.syscalls, self)

    @SYSCALLS.exit("rseq")
    def _sys_rseq(self, ctx: SyscallCtx, ret: int) -> None:
        """sys_rseq() returned ``ret``: registered (notify-resume set) or unregistered."""
        if ret != 0:
            return
        pid = ctx.task.pid
        if arg_int(ctx.args[2]) & RSEQ_FLAG_UNREGISTER:
            self.registered.pop(pid, None)
            self.notify.discard(pid)
            return
        self.registered[pid] = (ctx.args[0], ctx.args[1] & 0xFFFFFFFF, ctx.args[3] & 0xFFFFFFFF)
        self.notify.add(pid)

    def set_notify_resume(self, task: Task) -> None:
        """rseq_preempt()/rseq_migrate()/task work: the next return to user space
        updates the area."""
        if task.pid in self.registered:
            self.notify.add(task.pid)

    def fork(self, parent: Task, child: Task, flags: int) -> None:
        """rseq_fork(), then wake_up_new_task()'s rseq_migrate() of the child."""
        reg = self.registered.get(parent.pid)
        if reg is not None and not flags & CLONE_VM:
            self.registered[child.pid] = reg
            self.notify.add(child.pid)

    def exec(self, task: Task) -> None:
        """rseq_execve(): the new image registers again."""
        self.registered.pop(task.pid, None)
        self.notify.discard(task.pid)

    def forget(self, pid: int) -> None:
        self.registered.pop(pid, None)
        self.notify.discard(pid)

    def _update(self, task: Task, cpu: int) -> None:
        """rseq_update_cpu_node_id(): ``rseq_update`` (interrupts on)."""
        wl = self.wl
        if not wl.tp("rseq_update"):
            return
        mm_cid = 0
        t = wl.traced.thread(task.pid)
        if t is not None:
            live = t.proc.live()
            mm_cid = min(next((i for i, o in enumerate(live) if o is t), 0), wl.k.nr_cpus - 1)
        wl.emit_ctx(0, 0, "rseq_update", cpu, 0, mm_cid)

    def resume(self, task: Task, cpu: int) -> None:
        """resume_user_mode_work() → rseq_handle_notify_resume()."""
        if task.pid in self.notify:
            self.notify.discard(task.pid)
            if task.pid in self.registered:
                self._update(task, cpu)

    def signal(self, task: Task, cpu: int) -> None:
        """setup_rt_frame() → rseq_signal_deliver()."""
        if task.pid in self.registered:
            self._update(task, cpu)
