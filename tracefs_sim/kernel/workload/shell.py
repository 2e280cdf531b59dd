"""The simulated shell session of a plain mount: now and then the shell (pid 168) forks
a child that execs cat, ls, sleep or seq, reads a file, writes to stdout and exits, and the
shell reaps it.  It gives an idle mount's trace the fork/exec/exit activity a real
machine shows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .defs import CHILD_PROGRAMS, CLD_EXITED, SIGCHLD, STATE_S, D

if TYPE_CHECKING:
    from . import Workload


class ShellSession:
    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.task = wl.k.sched.task(168, "sh")
        # off once the machine runs traced host programs: its user space is theirs
        self.enabled = True

    def run_child(self, cpu: int, woken: bool = False) -> None:
        """The shell runs ``cat``/``ls``: fork, exec, a few syscalls, exit, reaped
        (``woken``: its wakeup was the machine's, it only runs now)."""
        wl = self.wl
        k = wl.k
        sched = k.sched
        comm, path = wl.rng.choice(CHILD_PROGRAMS)
        shell = self.task
        idle = sched.idle[cpu]
        # the shell wakes up and forks
        if not woken:
            wl.sched.wakeup(cpu, shell)
        wl.sched.switch(cpu, shell)
        child = sched.task(sched.alloc_pid(), shell.comm)
        child.tgid = child.pid
        wl.process.clone(cpu, shell, child)
        frames = wl.syscalls.begin("wait4")
        wl.emit("sched_process_wait", shell.comm, 0, shell.prio)
        wl.sched.switch(cpu, child, prev_state=STATE_S)   # the shell waits for it
        wl.process.execve(child, comm, path)
        data = f"/usr/share/doc/{comm}/README"
        for op, name in (("openat", data), ("newfstatat", data), ("read", "README"),
                         ("read", "README"), ("write", "stdout"), ("close", "README")):
            wl.syscalls.syscall(op, name="" if name == data else name, path=name if name == data else "",
                         count=4096 if op == "read" else 64 if op == "write" else 0)
        wl.process.exit_task(cpu, child, parent=shell)
        # the shell returns from wait4() with the child reaped, handles SIGCHLD, sleeps
        wl.syscalls.end("wait4", frames, ret=child.pid)
        wl.emit_ctx(D, 1, "signal_deliver", SIGCHLD, 0, CLD_EXITED, 0x55D1E7B6E1A0, 0x14000000)
        wl.process.release(child, cpu)     # release_task(): freed after a grace period
        wl.sched.switch(cpu, idle, prev_state=STATE_S)

