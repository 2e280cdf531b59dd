"""The way back to user space (kernel/entry/common.c exit_to_user_mode_prepare()) and the
per-task state it settles: rseq's notify-resume work, then the FPU registers; the same
for a signal frame (arch/x86/kernel/signal.c setup_rt_frame()); and what fork, exec and
exit do to that state (``rseq.py``, ``fpu.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..sched import Task
from .fpu import Fpu
from .rseq import Rseq

if TYPE_CHECKING:
    from . import Workload
    from .syscalls import SyscallCtx

# syscalls whose success leaves task work for the return (fput() → ____fput)
TASK_WORK = frozenset(("close", "dup2", "dup3"))


class Entry:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.rseq = Rseq(wl)
        self.fpu = Fpu(wl)

    def syscall_exit(self, ctx: SyscallCtx, ret: int) -> None:
        """syscall_exit_to_user_mode(), after the exit tracepoints."""
        if ctx.sc.name in TASK_WORK and ret >= 0:
            self.rseq.set_notify_resume(ctx.task)
        self.exit_to_user_mode(ctx.task, self.wl.k.sched.cpu)

    def exit_to_user_mode(self, task: Task, cpu: int) -> None:
        """exit_to_user_mode_loop() (resume_user_mode_work(): rseq), then
        arch_exit_to_user_mode_prepare() (switch_fpu_return())."""
        self.rseq.resume(task, cpu)
        self.fpu.exit_to_user(task, cpu)

    def switch(self, cpu: int, prev: Task, nxt: Task) -> None:
        """context_switch(): prepare_task_switch()'s rseq_preempt(prev), __switch_to()'s
        FPU switch."""
        self.rseq.set_notify_resume(prev)
        self.fpu.switch(cpu, prev, nxt)

    def migrate(self, task: Task) -> None:
        """set_task_cpu() → rseq_migrate()."""
        self.rseq.set_notify_resume(task)

    def signal_frame(self, task: Task, cpu: int) -> None:
        """handle_signal() → setup_rt_frame(): rseq_signal_deliver(), then the frame's
        FPU state and the handler's init state."""
        self.rseq.signal(task, cpu)
        self.fpu.signal_frame(task, cpu)

    def sigreturn(self, task: Task, cpu: int) -> None:
        self.fpu.sigreturn(task, cpu)

    def fork(self, parent: Task, child: Task, flags: int, cpu: int) -> None:
        """copy_thread() → fpu_clone(); copy_process() → rseq_fork()."""
        self.fpu.fork(parent, child, cpu)
        self.rseq.fork(parent, child, flags)

    def exec(self, task: Task) -> None:
        """begin_new_exec(): rseq_execve(), flush_thread() → fpu_flush_thread()."""
        self.rseq.exec(task)
        self.fpu.exec(task)

    def exit(self, task: Task, cpu: int) -> None:
        """do_exit() → exit_thread() → fpu__drop()."""
        self.fpu.exit(task, cpu)
        self.rseq.forget(task.pid)
