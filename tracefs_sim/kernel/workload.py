"""The simulated machine's activity: what tracers and probes see.

Background: per-CPU timer ticks (hardirq → hrtimer → tick → softirqs), kworkers woken
to run work items, RCU, and a simulated shell session whose children (cat, ls, sleep,
seq) fork, exec, read, write and exit.  Foreground: every request that reaches the
mount runs the syscall path of the real kernel (``x64_sys_call`` → ``ksys_read`` →
``vfs_read`` → …) in the caller's task, so a probe on ``vfs_read`` fires when the user
runs ``cat``.

Code paths are trees of real function names of the reference kernel; names that are
not traceable there are dropped at boot, so every site that fires is a real site.
Each function passes through its ftrace call site (``Ftrace.func_entry``/``func_exit``),
so a disabled site costs one list lookup.  Tracepoints fire through ``k.events``.

Time: ``catch_up()`` runs the ticks that elapsed since the last call (bounded per call);
in deterministic mode (``--seed``) each call runs a fixed number of ticks instead.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from .sched import (
    TRACE_FLAG_HARDIRQ,
    TRACE_FLAG_IRQS_OFF,
    TRACE_FLAG_SOFTIRQ,
    Task,
)

if TYPE_CHECKING:
    from .core import Kernel

Tree = tuple  # (name, child, child, ...) ; a str is a leaf

TICK_NS = 4_000_000  # HZ=250
MAX_TICKS_PER_CATCH_UP = 25

TIMER_IRQ: Tree = ("__sysvec_apic_timer_interrupt", ("hrtimer_interrupt", (
    "__hrtimer_run_queues", ("tick_nohz_handler", ("update_process_times", "account_process_tick",
                                                    "rcu_sched_clock_irq", "sched_tick"))),
    "_raw_spin_lock", "_raw_spin_unlock"))
SOFTIRQ: Tree = ("irq_exit_rcu", ("handle_softirqs", ("run_timer_softirq", "_raw_spin_lock",
                                                      "_raw_spin_unlock"), "rcu_core"))
WORK: Tree = ("process_one_work", ("vmstat_update", "mutex_lock", "mutex_unlock"), "kfree")
SCHEDULE: Tree = ("schedule", "pick_next_task_fair", "_raw_spin_lock", "_raw_spin_unlock")
WAKEUP: Tree = ("try_to_wake_up", "ttwu_do_activate", "_raw_spin_lock", "_raw_spin_unlock")

SYSCALL_ENTRY: dict[str, tuple[str, ...]] = {
    "read": ("x64_sys_call", "__x64_sys_read", "ksys_read", "vfs_read"),
    "write": ("x64_sys_call", "__x64_sys_write", "ksys_write", "vfs_write"),
    "openat": ("x64_sys_call", "__x64_sys_openat", "do_sys_openat2", "do_filp_open", "path_openat",
               "do_dentry_open"),
    "close": ("x64_sys_call", "__x64_sys_close", "filp_close"),
    "newfstatat": ("x64_sys_call", "__x64_sys_newfstatat", "vfs_fstatat", "vfs_getattr"),
    "mkdir": ("x64_sys_call", "__x64_sys_mkdir"),
    "rmdir": ("x64_sys_call", "__x64_sys_rmdir"),
    "getdents64": ("x64_sys_call", "__x64_sys_getdents64", "iterate_dir"),
}
SYSCALL_LEAVES: dict[str, tuple[Tree, ...]] = {
    "read": ("fdget_pos", "rw_verify_area", "security_file_permission", "__fsnotify_parent"),
    "write": ("fdget_pos", "rw_verify_area", "security_file_permission", "__fsnotify_parent"),
    "openat": (("getname", "getname_flags", "kmem_cache_alloc_noprof"), "alloc_fd",
               "security_file_open", "fd_install"),
    "close": ("fput",),
    "newfstatat": ("security_inode_getattr",),
    "mkdir": (), "rmdir": (), "getdents64": (),
}
# x86_64 syscall numbers
SYSCALL_NR = {"read": 0, "write": 1, "close": 3, "newfstatat": 262, "openat": 257, "mkdir": 83,
              "rmdir": 84, "getdents64": 217, "clock_nanosleep": 230, "execve": 59,
              "exit_group": 231, "clone": 56, "wait4": 61}

KTHREADS = (("rcu_preempt", 18, None), ("ksoftirqd/0", 17, 0), ("ksoftirqd/1", 27, 1),
            ("kworker/0:0", 9, 0), ("kworker/1:1", 46, 1), ("kworker/u8:3", 100, None),
            ("kcompactd0", 39, None))


class Workload:
    """Drives simulated tasks through real kernel code paths."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self.rng = random.Random(kernel.seed if kernel.seed is not None else 12345)
        self.last_ns = kernel.boot_clock.ns()
        self._idx: dict[str, int] = {}
        self.kthreads: list[Task] = []
        for comm, pid, cpu in KTHREADS:
            t = kernel.sched.task(pid, comm, kthread=True)
            t.prio = 120 if not comm.startswith("rcu") else 120
            if cpu is not None and cpu >= kernel.nr_cpus:
                continue
            self.kthreads.append(t)
        self.shell = kernel.sched.task(168, "sh")
        self.children: list[Task] = []
        self.enabled = True
        self.ticks = 0

    # ------------------------------------------------------------------ call sites
    def _index(self, name: str) -> int:
        idx = self._idx.get(name)
        if idx is None:
            i = self.k.kallsyms.index_of(name)
            idx = -1 if i is None else i
            self._idx[name] = idx
        return idx

    def call(self, tree: Tree | str, parent: str | None = None) -> None:
        """Run one function (and its callees) through the ftrace call sites."""
        if isinstance(tree, str):
            name, kids = tree, ()
        else:
            name, kids = tree[0], tree[1:]
        ft = getattr(self.k, "ftrace", None)
        idx = self._index(name)
        if ft is None or idx < 0:
            for kid in kids:
                self.call(kid, parent)
            return
        pidx = self._index(parent) if parent else -1
        pip = self.k.kallsyms.addrs[pidx] + 0x2B if pidx >= 0 else 0
        token = ft.func_entry(idx, pip)
        for kid in kids:
            self.call(kid, name)
        ft.func_exit(idx, token)

    def enter_chain(self, names: tuple[str, ...]) -> list[tuple[int, Any]]:
        """Enter nested functions without returning (the syscall is in progress)."""
        ft = getattr(self.k, "ftrace", None)
        frames: list[tuple[int, Any]] = []
        parent = None
        for name in names:
            idx = self._index(name)
            if idx < 0:
                continue
            if ft is not None:
                pidx = self._index(parent) if parent else -1
                pip = self.k.kallsyms.addrs[pidx] + 0x2B if pidx >= 0 else 0
                frames.append((idx, ft.func_entry(idx, pip)))
            parent = name
        return frames

    def leave_chain(self, frames: list[tuple[int, Any]]) -> None:
        ft = getattr(self.k, "ftrace", None)
        if ft is None:
            return
        for idx, token in reversed(frames):
            ft.func_exit(idx, token)

    def tp(self, name: str) -> Any:
        ev = getattr(self.k, "events", None)
        if ev is None:
            return None
        tp = ev.tracepoint(name)
        return tp if tp is not None and tp.enabled else None

    # ------------------------------------------------------------------ syscalls
    def syscall_begin(self, op: str, args: tuple[int, ...] = ()) -> list[tuple[int, Any]]:
        """Entry of a syscall in the current task: tracepoints, then its call chain."""
        nr = SYSCALL_NR.get(op, 0)
        tp = self.tp("sys_enter")
        if tp:
            a = (list(args) + [0] * 6)[:6]
            tp.fire(nr, a)
        tp = self.tp(f"sys_enter_{op}")
        if tp:
            tp.fire_defaults(nr, *args)
        chain = SYSCALL_ENTRY.get(op, ("x64_sys_call",))
        frames = self.enter_chain(chain)
        parent = chain[-1] if chain else None
        for leaf in SYSCALL_LEAVES.get(op, ()):
            self.call(leaf, parent)
        return frames

    def syscall_end(self, op: str, frames: list[tuple[int, Any]], ret: int = 0) -> None:
        self.leave_chain(frames)
        nr = SYSCALL_NR.get(op, 0)
        tp = self.tp(f"sys_exit_{op}")
        if tp:
            tp.fire_defaults(nr, ret)
        tp = self.tp("sys_exit")
        if tp:
            tp.fire(nr, ret)

    # ------------------------------------------------------------------ scheduling
    def switch(self, cpu: int, nxt: Task, prev_state: int = 0) -> None:
        k = self.k
        sched = k.sched
        prev = sched.curr[cpu]
        if prev is nxt:
            return
        sched.run_on(cpu)
        self.call(SCHEDULE)
        tracing = k.trace
        tracing.record_task(prev)
        tracing.record_task(nxt)
        tp = self.tp("sched_switch")
        if tp:
            tp.fire(prev.comm, prev.pid, prev.prio, prev_state, nxt.comm, nxt.pid, nxt.prio)
        sched.set_current(cpu, nxt)

    def wakeup(self, cpu: int, task: Task) -> None:
        self.k.sched.run_on(cpu)
        tp = self.tp("sched_waking")
        if tp:
            tp.fire(task.comm, task.pid, task.prio, cpu)
        self.call(WAKEUP)
        tp = self.tp("sched_wakeup")
        if tp:
            tp.fire(task.comm, task.pid, task.prio, cpu)

    # ------------------------------------------------------------------ ticks
    def tick(self, cpu: int) -> None:
        k = self.k
        sched = k.sched
        saved = (sched.cpu, sched.current, sched.irq_flags, sched.preempt_count)
        sched.run_on(cpu)
        sched.irq_flags = TRACE_FLAG_HARDIRQ | TRACE_FLAG_IRQS_OFF
        sched.preempt_count = 0x10001
        tp = self.tp("local_timer_entry")
        if tp:
            tp.fire(236)
        self.call(TIMER_IRQ)
        tp = self.tp("local_timer_exit")
        if tp:
            tp.fire(236)
        sched.irq_flags = TRACE_FLAG_SOFTIRQ
        sched.preempt_count = 0x100
        for vec in (1, 9):  # TIMER_SOFTIRQ, RCU_SOFTIRQ
            tp = self.tp("softirq_entry")
            if tp:
                tp.fire(vec)
            self.call(SOFTIRQ if vec == 1 else "rcu_core")
            tp = self.tp("softirq_exit")
            if tp:
                tp.fire(vec)
        sched.irq_flags, sched.preempt_count = 0, 0
        # now and then a kworker runs a work item, or the shell runs a child
        r = self.rng.random()
        if r < 0.25 and self.kthreads:
            kt = self.rng.choice(self.kthreads)
            idle = sched.idle[cpu]
            self.wakeup(cpu, kt)
            self.switch(cpu, kt)
            sched.set_current(cpu, kt)
            self.call(WORK)
            self.switch(cpu, idle, prev_state=1)
        elif r < 0.35:
            self.run_child(cpu)
        sched.cpu, sched.current, sched.irq_flags, sched.preempt_count = saved

    def run_child(self, cpu: int) -> None:
        """The shell runs ``cat``/``ls``: fork, a few syscalls, exit."""
        k = self.k
        sched = k.sched
        comm = self.rng.choice(("cat", "ls", "sleep", "seq"))
        child = sched.task(sched.alloc_pid(), comm)
        child.tgid = child.pid
        idle = sched.idle[cpu]
        self.switch(cpu, child)
        for op in ("openat", "read", "read", "write", "close"):
            frames = self.syscall_begin(op, (3, 0x7FFC0000, 4096))
            self.syscall_end(op, frames, 0)
        self.switch(cpu, idle, prev_state=0x80)  # TASK_DEAD after exit
        sched.tasks.pop(child.pid, None)

    def catch_up(self) -> None:
        """Run the background activity owed since the last call."""
        if not self.enabled:
            return
        k = self.k
        if k.deterministic:
            n = 2
            k.boot_clock.advance(TICK_NS * n)
        else:
            now = k.boot_clock.ns()
            n = (now - self.last_ns) // TICK_NS
            if n <= 0:
                return
            self.last_ns += n * TICK_NS
            n = min(n, MAX_TICKS_PER_CATCH_UP)
        for _ in range(n):
            self.ticks += 1
            for cpu in range(k.nr_cpus):
                self.tick(cpu)


def boot(kernel: Kernel) -> Workload:
    return Workload(kernel)
