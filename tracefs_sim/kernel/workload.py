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

from .mm import Regs
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
FORK: Tree = ("kernel_clone", ("copy_process", "kmem_cache_alloc_noprof", "_raw_spin_lock",
                                "_raw_spin_unlock"), "wake_up_new_task")
SCHEDULE: Tree = ("schedule", "pick_next_task_fair", "_raw_spin_lock", "_raw_spin_unlock")
WAKEUP: Tree = ("try_to_wake_up", "ttwu_do_activate", "_raw_spin_lock", "_raw_spin_unlock")

SYSCALL_ENTRY: dict[str, tuple[str, ...]] = {
    "read": ("x64_sys_call", "__x64_sys_read", "ksys_read", "vfs_read"),
    "write": ("x64_sys_call", "__x64_sys_write", "ksys_write", "vfs_write"),
    "openat": ("x64_sys_call", "__x64_sys_openat", "do_sys_openat2", "do_filp_open", "path_openat",
               "vfs_open", "do_dentry_open"),
    "close": ("x64_sys_call", "__x64_sys_close", "filp_close"),
    "newfstatat": ("x64_sys_call", "__x64_sys_newfstatat", "vfs_fstatat", "vfs_getattr"),
    "mkdir": ("x64_sys_call", "__x64_sys_mkdir"),
    "rmdir": ("x64_sys_call", "__x64_sys_rmdir"),
    "getdents64": ("x64_sys_call", "__x64_sys_getdents64", "iterate_dir"),
    "clone": ("x64_sys_call", "__x64_sys_clone"),
}
SYSCALL_LEAVES: dict[str, tuple[Tree, ...]] = {
    "read": ("fdget_pos", "rw_verify_area", "security_file_permission", "__fsnotify_parent"),
    "write": ("fdget_pos", "rw_verify_area", "security_file_permission", "__fsnotify_parent"),
    "openat": (("getname", "getname_flags", "kmem_cache_alloc_noprof"), "alloc_fd",
               "security_file_open", "fd_install"),
    "close": ("fput",),
    "newfstatat": ("security_inode_getattr",),
    "mkdir": (), "rmdir": (), "getdents64": (), "clone": (),
}
# x86_64 syscall numbers
SYSCALL_NR = {"read": 0, "write": 1, "close": 3, "newfstatat": 262, "openat": 257, "mkdir": 83,
              "rmdir": 84, "getdents64": 217, "clock_nanosleep": 230, "execve": 59,
              "exit_group": 231, "clone": 56, "wait4": 61}

KTHREADS = (("rcu_preempt", 18, None), ("ksoftirqd/0", 17, 0), ("ksoftirqd/1", 27, 1),
            ("kworker/0:0", 9, 0), ("kworker/1:1", 46, 1), ("kworker/u8:3", 100, None),
            ("kcompactd0", 39, None))


BACKGROUND_TPS = ("sched_switch", "sched_waking", "sched_wakeup", "local_timer_entry",
                  "local_timer_exit", "softirq_entry", "softirq_exit", "sys_enter", "sys_exit",
                  "sched_process_fork", "sched_process_free", "sys_enter_openat", "sys_enter_read",
                  "sys_enter_write", "sys_enter_close", "sys_exit_openat", "sys_exit_read",
                  "sys_exit_write", "sys_exit_close")


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
        self.stacks: dict[int, list[int]] = {}
        self.calls = 0
        self.cur_name = "null"
        self.cur_count = 0
        self.cur_ret = 0
        self.cur_file = self.cur_dentry = 0
        self.user_buf = 0

    # ------------------------------------------------------------------ call sites
    def _index(self, name: str) -> int:
        idx = self._idx.get(name)
        if idx is None:
            i = self.k.kallsyms.index_of(name)
            idx = -1 if i is None else i
            self._idx[name] = idx
        return idx

    def args_for(self, name: str) -> tuple[int, ...]:
        """The argument registers of a call of ``name`` in the current context."""
        fn = FUNC_ARGS.get(name)
        return fn(self) if fn is not None else ()

    def _enter(self, idx: int, name: str, pip: int) -> Any:
        """Pass a function's ftrace call site: one list lookup when the site is off."""
        k = self.k
        stack = self.stacks.setdefault(id(k.sched.current), [])
        stack.append(k.kallsyms.addrs[idx] + 0x20)
        ft = k.ftrace
        kp = self.kprobes
        bp = kp is not None and idx in kp.bp_funcs
        if ft.site_func[idx] is None and not bp:
            return None
        regs = Regs(self.args_for(name), stack=tuple(reversed(stack[-8:])))
        regs.ip = k.kallsyms.addrs[idx]
        token = ft.func_entry(idx, pip, regs)
        if bp:  # int3 kprobes inside the function body fire after the ftrace site
            kp.breakpoint_hit(idx, pip, regs)
        return token

    def _exit(self, idx: int, name: str, token: Any) -> None:
        k = self.k
        stack = self.stacks.get(id(k.sched.current))
        if stack:
            stack.pop()
        if token is not None:
            fn = FUNC_RET.get(name)
            k.ftrace.func_exit(idx, token, fn(self) if fn is not None else 0)

    def current_stack(self) -> list[int]:
        """Return addresses of the current task's simulated call chain, innermost first."""
        return list(reversed(self.stacks.get(id(self.k.sched.current), [])))

    def call(self, tree: Tree | str, parent: str | None = None) -> None:
        """Run one function (and its callees) through the ftrace call sites."""
        if isinstance(tree, str):
            name, kids = tree, ()
        else:
            name, kids = tree[0], tree[1:]
        idx = self._index(name)
        if idx < 0 or getattr(self.k, "ftrace", None) is None:
            for kid in kids:
                self.call(kid, parent)
            return
        pidx = self._index(parent) if parent else -1
        pip = self.k.kallsyms.addrs[pidx] + 0x2B if pidx >= 0 else 0
        token = self._enter(idx, name, pip)
        for kid in kids:
            self.call(kid, name)
        self._exit(idx, name, token)

    def enter_chain(self, names: tuple[str, ...]) -> list[tuple[int, str, Any]]:
        """Enter nested functions without returning (the syscall is in progress)."""
        frames: list[tuple[int, str, Any]] = []
        if getattr(self.k, "ftrace", None) is None:
            return frames
        parent = None
        for name in names:
            idx = self._index(name)
            if idx < 0:
                continue
            pidx = self._index(parent) if parent else -1
            pip = self.k.kallsyms.addrs[pidx] + 0x2B if pidx >= 0 else 0
            frames.append((idx, name, self._enter(idx, name, pip)))
            parent = name
        return frames

    def leave_chain(self, frames: list[tuple[int, str, Any]]) -> None:
        for idx, name, token in reversed(frames):
            self._exit(idx, name, token)

    def tp(self, name: str) -> Any:
        ev = getattr(self.k, "events", None)
        if ev is None:
            return None
        tp = ev.tracepoint(name)
        return tp if tp is not None and tp.enabled else None

    # ------------------------------------------------------------------ syscalls
    def syscall_begin(self, op: str, args: tuple[int, ...] = (), name: str = "",
                      count: int = 0) -> list[tuple[int, str, Any]]:
        """Entry of a syscall in the current task: tracepoints, then its call chain."""
        if self.quiet():
            return []  # nothing attached: the path would leave no trace, skip it
        self.cur_name = name or "null"
        self.cur_count = count
        self.cur_file, self.cur_dentry = self.k.mem.file_object(self.cur_name)
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

    def syscall_end(self, op: str, frames: list[tuple[int, str, Any]], ret: int = 0) -> None:
        if not frames and self.quiet():
            return
        self.cur_ret = ret
        if op == "close":
            self.call(("__fput", "dput"), "fput")
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
        fg = getattr(k, "fgraph", None)
        if fg is not None:
            fg.probe_sched_switch(prev, nxt)
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
    def quiet(self) -> bool:
        """Nothing attached anywhere: no ftrace site and no tracepoint is live, so the
        background and the syscall paths would leave no trace and can be skipped (an
        idle machine with tracing off costs nothing observable)."""
        k = self.k
        ft = getattr(k, "ftrace", None)
        if ft is not None and ft.nr_active:
            return False
        kp = self.kprobes
        if kp is not None and kp.nr_bp_armed:
            return False
        ev = getattr(k, "events", None)
        return ev is None or not ev.nr_enabled_tps

    def tick(self, cpu: int) -> None:
        k = self.k
        sched = k.sched
        saved = (sched.cpu, sched.current, sched.irq_flags, sched.preempt_count)
        sched.run_on(cpu)
        sched.irq_flags = TRACE_FLAG_HARDIRQ | TRACE_FLAG_IRQS_OFF
        sched.preempt_count = 1  # trace_entry byte: depth 1 in the handler
        tp = self.tp("local_timer_entry")
        if tp:
            tp.fire(236)
        self.call(TIMER_IRQ)
        tp = self.tp("local_timer_exit")
        if tp:
            tp.fire(236)
        sched.irq_flags = TRACE_FLAG_SOFTIRQ
        sched.preempt_count = 0
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
        self.switch(cpu, self.shell)
        frames = self.syscall_begin("clone")
        self.fork(self.shell, child)
        self.syscall_end("clone", frames, child.pid)
        self.switch(cpu, child, prev_state=1)
        for op, name in (("openat", comm), ("read", comm), ("read", comm), ("write", "pts"),
                         ("close", comm)):
            frames = self.syscall_begin(op, (3, 0x7FFC0000, 4096), name=name, count=4096)
            self.syscall_end(op, frames, 0)
        self.switch(cpu, idle, prev_state=0x80)  # TASK_DEAD after exit
        self.exit(child)

    @property
    def kprobes(self) -> Any:
        return getattr(self.k, "kprobes", None)

    def fork(self, parent: Task, child: Task) -> None:
        """kernel_clone() → copy_process(): fork tracepoint and follow-fork hooks."""
        k = self.k
        self.call(FORK)
        tp = self.tp("sched_process_fork")
        if tp:
            tp.fire(parent.comm, parent.pid, child.comm, child.pid)
        ft = getattr(k, "ftrace", None)
        ev = getattr(k, "events", None)
        for tr in k.trace.all_arrays():
            if ft is not None:
                ft.sched_process_fork(tr, parent, child)
            if ev is not None and hasattr(ev, "sched_process_fork"):
                ev.sched_process_fork(tr, parent, child)

    def exit(self, task: Task) -> None:
        k = self.k
        tp = self.tp("sched_process_free")
        if tp:
            tp.fire(task.comm, task.pid, task.prio)
        ft = getattr(k, "ftrace", None)
        ev = getattr(k, "events", None)
        for tr in k.trace.all_arrays():
            if ft is not None:
                ft.sched_process_free(tr, task)
            if ev is not None and hasattr(ev, "sched_process_free"):
                ev.sched_process_free(tr, task)
        self.stacks.pop(id(task), None)
        k.sched.tasks.pop(task.pid, None)

    def catch_up(self) -> None:
        """Run the background activity owed since the last call."""
        if not self.enabled:
            return
        k = self.k
        if k.deterministic:
            self.calls += 1
            if self.calls % 4:
                return
            n = 1
            k.boot_clock.advance(TICK_NS * n)
        else:
            now = k.boot_clock.ns()
            n = (now - self.last_ns) // TICK_NS
            if n <= 0:
                return
            self.last_ns += n * TICK_NS
            n = min(n, MAX_TICKS_PER_CATCH_UP)
        if self.quiet():
            self.ticks += n
            return
        for _ in range(n):
            self.ticks += 1
            for cpu in range(k.nr_cpus):
                self.tick(cpu)


def _file_args(wl: Workload) -> tuple[int, ...]:
    return (wl.cur_file, wl.user_buf or 0x7FFC00001000, wl.cur_count or 4096, 0xFFFFC90000003E80)


FUNC_ARGS = {
    "vfs_read": _file_args, "vfs_write": _file_args, "rw_verify_area":
        lambda wl: (0, wl.cur_file, 0xFFFFC90000003E80, wl.cur_count or 4096),
    "security_file_permission": lambda wl: (wl.cur_file, 4),
    "dput": lambda wl: (wl.cur_dentry,),
    "vfs_open": lambda wl: (wl.cur_file + 64, wl.cur_file),
    "do_dentry_open": lambda wl: (wl.cur_file, 0),
    "filp_close": lambda wl: (wl.cur_file, 0),
    "fput": lambda wl: (wl.cur_file,),
    "__fput": lambda wl: (wl.cur_file,),
    "ksys_read": lambda wl: (3, 0x7FFC00001000, wl.cur_count or 4096),
    "ksys_write": lambda wl: (1, 0x7FFC00001000, wl.cur_count or 4096),
    "kfree": lambda wl: (0xFFFF888100A00000,),
    "kernel_clone": lambda wl: (0xFFFFC90000003F00,),
}
FUNC_RET = {
    "vfs_read": lambda wl: wl.cur_ret, "vfs_write": lambda wl: wl.cur_ret,
    "ksys_read": lambda wl: wl.cur_ret, "ksys_write": lambda wl: wl.cur_ret,
}


def boot(kernel: Kernel) -> Workload:
    return Workload(kernel)
