"""Process life of the simulated tasks (kernel/fork.c, fs/exec.c, kernel/exit.c):
clone with copy_process and the child's first wakeup, execve with the comm change and
the dynamic loader's syscalls, exit with the parent's SIGCHLD, and the task's release."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..sched import TRACE_FLAG_SOFTIRQ, Task
from .defs import (
    CLD_EXITED,
    CLONE_FLAGS,
    GFP_HIGHUSER_MOVABLE,
    GFP_KERNEL,
    GFP_ZERO,
    SIGCHLD,
    STATE_S,
    STATE_Z,
    D,
)
from .syscalls import LIB_DIR, LIBS

if TYPE_CHECKING:
    from . import Workload


class Process:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl

    def clone(self, cpu: int, parent: Task, child: Task, flags: int = CLONE_FLAGS,
              target: int | None = None) -> None:
        """clone(): copy_process() and the new task's first wakeup, in ``parent``."""
        wl = self.wl
        frames = wl.syscalls.begin("clone", (flags, 0, 0, 0x7F3A5C1D5A10, 0))
        wl.slab.cache_alloc("task_struct", "copy_process")
        wl.emit("task_newtask", child.pid, child.comm, flags, 0)
        self.fork(parent, child)
        wake = wl.sites.enter_chain(("wake_up_new_task",), "kernel_clone")
        wl.sched.wakeup_new(cpu if target is None else target, child)
        wl.sites.leave_chain(wake)
        wl.syscalls.end("clone", frames, ret=child.pid)

    def execve(self, task: Task, comm: str, path: str) -> None:
        """execve() in ``task``: a new mm, the comm change, the exec event."""
        wl = self.wl
        frames = wl.syscalls.begin("execve", name=path)
        bprm = wl.slab.kmalloc("alloc_bprm", 432, GFP_KERNEL | GFP_ZERO)
        wl.slab.cache_alloc("mm_struct", "mm_alloc")
        wl.emit("sched_prepare_exec", path, path, task.pid, task.comm)
        old = task.comm
        task.comm = comm[:15]
        wl.emit_ctx(0, 1, "task_rename", task.pid, old, task.comm, 0)
        wl.emit("sched_process_exec", path, task.pid, task.pid)
        wl.slab.kfree("free_bprm", bprm)
        wl.syscalls.end("execve", frames, ret=0)
        for _ in range(2):   # the first page faults of the new image
            wl.slab.page_alloc(GFP_HIGHUSER_MOVABLE | GFP_ZERO, 1)
        self.load_libraries(task.comm)

    def load_libraries(self, comm: str) -> None:
        """What glibc's ld.so does in a new dynamically linked image before main():
        ld.so.preload, ld.so.cache, then each library's ELF header (read), program
        headers (pread64), fstat and mappings."""
        wl = self.wl
        if wl.quiet():
            return
        wl.syscalls.syscall("access", path="/etc/ld.so.preload")
        wl.syscalls.syscall("openat", path="/etc/ld.so.cache")
        wl.syscalls.syscall("fstat", name="ld.so.cache")
        wl.syscalls.syscall("mmap", name="ld.so.cache")
        wl.syscalls.syscall("close", name="ld.so.cache")
        for lib in LIBS.get(comm, ("libc.so.6",)):
            wl.syscalls.syscall("openat", path=f"{LIB_DIR}/{lib}")
            wl.syscalls.syscall("read", name=lib, count=832)
            libc = lib.startswith("libc.")
            if libc:   # the PT_NOTE/PT_GNU_PROPERTY segments, read again by offset
                wl.syscalls.syscall("pread64", name=lib, count=784)
            wl.syscalls.syscall("fstat", name=lib)
            if libc:
                wl.syscalls.syscall("pread64", name=lib, count=784)
            wl.syscalls.syscall("mmap", name=lib)
            wl.syscalls.syscall("mmap", name=lib)
            wl.syscalls.syscall("close", name=lib)

    def exit_task(self, cpu: int, task: Task, parent: Task | None = None) -> None:
        """exit_group() in ``task`` (current on ``cpu``): do_exit(), the parent's
        SIGCHLD and wakeup, the last switch (to the parent when it was woken here)."""
        wl = self.wl
        frames = wl.syscalls.begin("exit_group")
        wl.emit("sched_process_exit", task.comm, task.pid, task.prio)
        if parent is not None:
            for c, t in enumerate(wl.sched.host):
                if t is parent:            # it was blocked in wait4() all along
                    wl.sched.host_off(c, STATE_S)
                    wl.k.sched.set_current(cpu, task)
            wl.emit_ctx(D, 2, "signal_generate", SIGCHLD, 0, CLD_EXITED, parent.comm, parent.pid, 1, 0)
            wl.sched.wakeup(cpu, parent)
        wl.sites.leave_chain(frames)
        nxt = parent if parent is not None and wl.sched.task_cpu.get(parent.pid) == cpu \
            else wl.k.sched.idle[cpu]
        if wl.sched.host[cpu] is task:
            wl.sched.host[cpu] = None
        wl.sched.switch(cpu, nxt, prev_state=STATE_Z)

    def fork(self, parent: Task, child: Task) -> None:
        """copy_process(): fork tracepoint and the pid-list follow-fork hooks."""
        wl = self.wl
        k = wl.k
        wl.emit("sched_process_fork", parent.comm, parent.pid, child.comm, child.pid)
        for tr in k.trace.all_arrays():
            k.ftrace.sched_process_fork(tr, parent, child)
        k.events.on_fork(parent.pid, child.pid)

    def exit(self, task: Task) -> None:
        """delayed_put_task_struct(): sched_process_free (an RCU callback) and the
        pid-list hooks registered on it."""
        wl = self.wl
        k = wl.k
        sched = k.sched
        saved = sched.irq_flags, sched.preempt_count
        sched.irq_flags, sched.preempt_count = TRACE_FLAG_SOFTIRQ, wl.base_depth()
        wl.emit("sched_process_free", task.comm, task.pid, task.prio)
        sched.irq_flags, sched.preempt_count = saved
        for tr in k.trace.all_arrays():
            k.ftrace.sched_process_free(tr, task)
        k.events.on_exit(task.pid)
        wl.sites.forget(id(task))
        wl.sched.forget(task)
        k.sched.tasks.pop(task.pid, None)

