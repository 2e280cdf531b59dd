"""The simulated machine's activity: what tracers and probes see.

Background: per-CPU timer ticks (hardirq → hrtimer → tick → softirqs), kworkers woken
to run work items, RCU, and a simulated shell session whose children (cat, ls, sleep,
seq) fork, exec, read, write and exit.  Foreground: every request that reaches the
mount runs the syscall path of the real kernel (``x64_sys_call`` → ``ksys_read`` →
``vfs_read`` → …) in the caller's task, so a probe on ``vfs_read`` fires when the user
runs ``cat``.  Host processes that reach the mount are scheduled in (``run_task``), and
the adapter reports the processes they forked and that exited (``host_spawn`` /
``host_exit``), so fork, exec and exit events follow what really ran.

Code paths are trees of real function names of the reference kernel; names that are
not traceable there are dropped at boot, so every site that fires is a real site.
Each function passes through its ftrace call site (``Ftrace.func_entry``/``func_exit``),
so a disabled site costs one list lookup.  Tracepoints fire through ``k.events`` at the
places the real kernel emits them, with the values (in field order) and the context
(irq flags, preempt depth) it would record.

Time: ``catch_up()`` runs the ticks that elapsed since the last call (bounded per call);
in deterministic mode (``--seed``) each call runs a fixed number of ticks instead.
"""

from __future__ import annotations

import random
import zlib
from typing import TYPE_CHECKING, Any

from .mm import Regs
from .sched import (
    TRACE_FLAG_HARDIRQ,
    TRACE_FLAG_IRQS_OFF,
    TRACE_FLAG_NEED_RESCHED,
    TRACE_FLAG_PREEMPT_RESCHED,
    TRACE_FLAG_SOFTIRQ,
    Task,
)

if TYPE_CHECKING:
    from .core import Kernel

Tree = tuple  # (name, child, child, ...) ; a str is a leaf

TICK_NS = 4_000_000  # HZ=250
HZ = 250
INITIAL_JIFFIES = (1 << 32) - 300 * HZ  # jiffies at boot (INITIAL_JIFFIES, 64-bit)
MAX_TICKS_PER_CATCH_UP = 25
HOST_TICKS = 2  # a host task idle for this many ticks has blocked (it is switched out)

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

# functions that only tail-call (jmp) the next one of a syscall's chain: no stack frame
TAIL_CALLS = ("x64_sys_call", "__x64_sys_read", "__x64_sys_write")
# return addresses below a syscall's first function: (symbol, offset)
SYSCALL_ENTRY_FRAMES = (("do_syscall_64", 0x82), ("entry_SYSCALL_64_after_hwframe", 0x76))
OPEN_EXEC: Tree = ("do_open_execat", ("do_filp_open", ("path_openat", ("vfs_open", "do_dentry_open"))))

SYSCALL_ENTRY: dict[str, tuple[str, ...]] = {
    "read": ("x64_sys_call", "__x64_sys_read", "ksys_read", "vfs_read"),
    "write": ("x64_sys_call", "__x64_sys_write", "ksys_write", "vfs_write"),
    "openat": ("x64_sys_call", "__x64_sys_openat", "do_sys_openat2", "do_filp_open", "path_openat",
               "vfs_open", "do_dentry_open"),
    # open(2) (and creat) reach do_sys_openat2() through do_sys_open()
    "open": ("x64_sys_call", "__x64_sys_open", "do_sys_open", "do_sys_openat2", "do_filp_open",
             "path_openat", "vfs_open", "do_dentry_open"),
    "close": ("x64_sys_call", "__x64_sys_close", "filp_close"),
    "symlinkat": ("x64_sys_call", "__x64_sys_symlinkat", "do_symlinkat"),
    "symlink": ("x64_sys_call", "__x64_sys_symlink", "do_symlinkat"),
    "newfstatat": ("x64_sys_call", "__x64_sys_newfstatat", "vfs_fstatat", "vfs_statx"),
    # glibc's fstat(fd) is newfstatat(fd, "", AT_EMPTY_PATH): vfs_fstatat() → vfs_fstat()
    "fstat": ("x64_sys_call", "__x64_sys_newfstatat", "vfs_fstatat", "vfs_fstat", "vfs_getattr"),
    "pread64": ("x64_sys_call", "__x64_sys_pread64", "vfs_read"),
    "mmap": ("x64_sys_call", "__x64_sys_mmap", "ksys_mmap_pgoff", "vm_mmap_pgoff", "do_mmap"),
    "access": ("x64_sys_call", "__x64_sys_access", "do_faccessat"),
    "mkdir": ("x64_sys_call", "__x64_sys_mkdir"),
    "chdir": ("x64_sys_call", "__x64_sys_chdir", "set_fs_pwd"),
    "rmdir": ("x64_sys_call", "__x64_sys_rmdir"),
    "getdents64": ("x64_sys_call", "__x64_sys_getdents64", "iterate_dir"),
    "clone": ("x64_sys_call", "__x64_sys_clone", "kernel_clone"),
    "execve": ("x64_sys_call", "__x64_sys_execve"),
    "exit_group": ("x64_sys_call", "__x64_sys_exit_group", "do_group_exit", "do_exit"),
    "wait4": ("x64_sys_call", "__x64_sys_wait4", "kernel_wait4", "do_wait"),
}
# do_sys_openat2() (openat and open): getname(), a free fd, the security hook, fd_install()
OPEN_LEAVES: tuple[Tree, ...] = (("getname", "getname_flags", "kmem_cache_alloc_noprof"),
                                 "alloc_fd", "security_file_open", "fd_install")
# do_symlinkat(): getname() of both names, filename_create(), vfs_symlink(), done_path_create()
SYMLINK_LEAVES: tuple[Tree, ...] = (("getname", "getname_flags"),
                                    ("filename_create", "lookup_one_qstr_excl"),
                                    ("vfs_symlink", "security_inode_symlink"),
                                    "done_path_create", "putname")
SYSCALL_LEAVES: dict[str, tuple[Tree, ...]] = {
    "read": ("fdget_pos", "rw_verify_area", "security_file_permission", "__fsnotify_parent"),
    "write": ("fdget_pos", "rw_verify_area", "security_file_permission", "__fsnotify_parent"),
    "openat": OPEN_LEAVES,
    "open": OPEN_LEAVES,
    "close": ("fput",),
    "symlinkat": SYMLINK_LEAVES,
    "symlink": SYMLINK_LEAVES,
    "newfstatat": ("filename_lookup", ("vfs_statx_path", ("vfs_getattr", "security_inode_getattr",
                                                          "vfs_getattr_nosec"))),
    "fstat": ("security_inode_getattr", "vfs_getattr_nosec"),
    "pread64": ("rw_verify_area", "security_file_permission", "__fsnotify_parent"),
    "mmap": ("__get_unmapped_area", "mmap_region"),
    "access": ("filename_lookup",),
    "mkdir": (), "rmdir": (), "getdents64": (),
    "clone": (FORK[1],),   # kernel_clone() → copy_process()
    # alloc_bprm() opens the file; load_elf_binary() opens the interpreter (ld.so)
    "execve": (("alloc_bprm", OPEN_EXEC), ("bprm_execve", ("load_elf_binary", ("open_exec", OPEN_EXEC),
                                                           "begin_new_exec"))),
    "exit_group": (), "wait4": (),
}
# x86_64 syscall numbers
SYSCALL_NR = {"read": 0, "write": 1, "close": 3, "newfstatat": 262, "openat": 257, "mkdir": 83,
              "rmdir": 84, "getdents64": 217, "clock_nanosleep": 230, "execve": 59,
              "exit_group": 231, "clone": 56, "wait4": 61, "pread64": 17, "mmap": 9, "access": 21,
              "chdir": 80, "open": 2, "symlink": 88, "symlinkat": 266}
# ops that are a special path of another syscall (its number and tracepoints)
SYSCALL_ALIAS = {"fstat": "newfstatat"}
AT_EMPTY_PATH = 0x1000
AT_FDCWD = 0xFFFFFF9C  # -100 as the int the caller passed
USER_PTR = 0x7FFC00001000
# typical argument registers of a request that reached the mount (the adapter does not
# see the caller's registers): fd 3, a stack buffer, the request's byte count
# the pathname argument of the path syscalls (its index)
PATH_ARG: dict[str, int | tuple[int, ...]] = {
    "openat": 1, "newfstatat": 1, "mkdir": 0, "rmdir": 0, "chdir": 0, "open": 0, "access": 0,
    "symlinkat": (0, 2), "symlink": (0, 1)}   # (target, link path)
SYSCALL_ARGS: dict[str, tuple[int, ...]] = {
    "read": (3, USER_PTR, 4096), "write": (1, USER_PTR, 4096),
    "openat": (AT_FDCWD, 0x7FFC00002F40, 0x80000, 0), "close": (3,),
    "open": (0x7FFC00002F40, 0x8241, 0o666),
    "symlinkat": (0x7FFC00002F00, AT_FDCWD, 0x7FFC00002F40), "symlink": (0x7FFC00002F00, 0x7FFC00002F40),
    "newfstatat": (AT_FDCWD, 0x7FFC00002F40, 0x7FFC00001E30, 0),
    "getdents64": (3, 0x55D1E7B70000, 32768), "mkdir": (0x7FFC00002F40, 0o777),
    "rmdir": (0x7FFC00002F40,), "chdir": (0x7FFC00002F40,), "execve": (0x55D1E7B6F2A0, 0x55D1E7B6F300, 0x55D1E7B6A010),
    "exit_group": (0,), "wait4": (0xFFFFFFFF, 0x7FFC00001D9C, 0, 0),
    "fstat": (3, 0x7F3A5C1F8F2D, 0x7FFC00001E30, AT_EMPTY_PATH),
    "pread64": (3, 0x7FFC00001B60, 784, 64), "mmap": (0, 0x2000, 1, 0x802, 3, 0),
    "access": (0x7F3A5C1F9B20, 4),
}
# the dynamic loader (glibc's ld.so) of a new image: the libraries it maps
LIB_DIR = "/lib/x86_64-linux-gnu"
LIBS = {"bash": ("libtinfo.so.6", "libc.so.6"), "ls": ("libselinux.so.1", "libc.so.6", "libpcre2-8.so.0")}
EVENTFS_PARENT = 0xFFFF888103E5C300   # the system's struct eventfs_inode
EVENTFS_ENTRIES = 0xFFFFFFFFB1A3C2A0  # event_entries[] (.rodata)
CLONE_FLAGS = 0x01200011  # CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID | SIGCHLD
CLONE_THREAD_FLAGS = 0x003D0F00  # pthread_create()

# sched_switch prev_state as __trace_sched_switch_state() reports it
STATE_RUNNING = 0
STATE_S = 0x1  # TASK_INTERRUPTIBLE
HOST_RUNS_MAX = 8   # wakeups replayed per host task and poll
STATE_D = 0x2  # TASK_UNINTERRUPTIBLE
STATE_Z = 0x20  # EXIT_ZOMBIE
STATE_I = 0x80  # TASK_IDLE (TASK_REPORT_IDLE)
STATE_PREEMPTED = 0x100  # TASK_REPORT_MAX: "R+"
PWR_EVENT_EXIT = 0xFFFFFFFF
SIGCHLD = 17
CLD_EXITED = 1
NR_CPUS = 8192  # CONFIG_NR_CPUS: req_cpu of work queued on WORK_CPU_UNBOUND

# gfp flags (include/linux/gfp_types.h, 6.12 bit numbers)
GFP_KERNEL = 0xCC0
GFP_ZERO = 0x100
GFP_COMP = 0x40000
GFP_ACCOUNT = 0x400000
GFP_KERNEL_ACCOUNT = GFP_KERNEL | GFP_ACCOUNT
GFP_HIGHUSER_MOVABLE = 0x100CCA
# timer flags (include/linux/timer.h)
TIMER_DEFERRABLE = 0x80000
TIMER_PINNED = 0x100000
TIMER_IRQSAFE = 0x200000
HRTIMER_MODE_ABS = 0
HRTIMER_MODE_ABS_PINNED_HARD = 10

PCPU_BASE = 0xFFFF88807DA00000  # per-CPU areas: base + cpu * PCPU_STRIDE
PCPU_STRIDE = 0x200000
TICK_SCHED_TIMER = 0x1E3C0  # &tick_cpu_sched.sched_timer within a per-CPU area
VMSTAT_WORK = 0x1D4A0  # &vmstat_work (a delayed_work: its timer is at +0x20)
MEMCG_FLUSH_WORK = 0xFFFFFFFFB3A4E6E0  # stats_flush_dwork (a static delayed_work)
KTHREAD_STACK = 0xFFFFC90000080000  # kthread stacks: base + pid * 0x4000
TIMER_VECTOR = 236  # LOCAL_TIMER_VECTOR
NET_IRQ, NET_IRQ_NAME = 26, "virtio0-input.0"

KTHREADS = (("rcu_preempt", 18, None), ("ksoftirqd/0", 17, 0), ("ksoftirqd/1", 27, 1),
            ("kworker/0:0", 9, 0), ("kworker/1:1", 46, 1), ("kworker/u8:3", 100, None),
            ("kcompactd0", 39, None))
CHILD_PROGRAMS = (("cat", "/usr/bin/cat"), ("ls", "/usr/bin/ls"), ("sleep", "/usr/bin/sleep"),
                  ("seq", "/usr/bin/seq"))
# slab caches of the syscall paths: (object size, slab size, gfp, accounted)
CACHES = {"names_cache": (4096, 4096, GFP_KERNEL, 0), "filp": (232, 256, GFP_KERNEL | GFP_ZERO, 1),
          "task_struct": (13248, 13312, GFP_KERNEL, 0), "mm_struct": (1408, 1536, GFP_KERNEL, 1),
          "seq_file": (120, 128, GFP_KERNEL | GFP_ZERO, 0)}

# trace_entry context of the code that fires an event: (irq flags, preempt depth)
D = TRACE_FLAG_IRQS_OFF
HARDIRQ = TRACE_FLAG_HARDIRQ | TRACE_FLAG_IRQS_OFF
NEED_RESCHED = TRACE_FLAG_NEED_RESCHED | TRACE_FLAG_PREEMPT_RESCHED  # 'N'


def jiffies_of(ns: int) -> int:
    return (INITIAL_JIFFIES + ns // TICK_NS) & 0xFFFFFFFFFFFFFFFF


def wheel_bucket(expires: int, clk: int) -> tuple[int, int]:
    """calc_wheel_index(): (bucket_expiry, idx) of a timer-wheel timer (levels 0-2)."""
    delta = expires - clk
    lvl = 0 if delta < 63 else 1 if delta < 504 else 2
    shift = 3 * lvl
    e = (expires >> shift) + 1
    return e << shift, lvl * 64 + (e & 63)


class Workload:
    """Drives simulated tasks through real kernel code paths."""

    def __init__(self, kernel: Kernel) -> None:
        self.k = kernel
        self.rng = random.Random(kernel.seed if kernel.seed is not None else 12345)
        self.last_ns = kernel.boot_clock.ns()
        self._idx: dict[str, int] = {}
        self.kthreads: list[Task] = []
        self.kthread_cpu: dict[int, int | None] = {}
        for comm, pid, cpu in KTHREADS:
            t = kernel.sched.task(pid, comm, kthread=True)
            t.prio = 120
            if cpu is not None and cpu >= kernel.nr_cpus:
                continue
            self.kthreads.append(t)
            self.kthread_cpu[pid] = cpu
        self.rcu = kernel.sched.task(18, "rcu_preempt", kthread=True)
        self.shell = kernel.sched.task(168, "sh")
        self.children: list[Task] = []
        self.enabled = True
        self.ticks = 0
        self.stacks: dict[int, list[int]] = {}
        self._tpc: dict[str, Any] = {}
        self._sites: dict[str, int] = {}
        self._tail_sites: set[int] | None = None
        self._entry_sites: list[int] = []
        self.calls = 0
        self.cur_name = "null"
        self.cur_count = 0
        self.cur_ret = 0
        self.sys_args: tuple[int, ...] = ()
        self.sys_op = ""
        self.sys_paths: tuple[str, ...] = ()
        self.cur_file = self.cur_dentry = 0
        self.user_buf = 0
        self.cur_dir_name = 0
        n = kernel.nr_cpus
        # scheduling state the tracepoints report
        self.task_cpu: dict[int, int] = {}        # pid -> CPU it last ran on
        self.run_start: dict[int, int] = {}       # pid -> ns it was switched in
        self.host: list[Task | None] = [None] * n  # host task running on a CPU since a request
        self.host_tick = [0] * n                   # tick of that task's last request
        self.asleep: set[int] = set()              # host pids switched out asleep
        self.raised = [0] * n                      # pending softirq bits per CPU
        self.obj = 0xFFFF888104000000              # slab objects handed out
        self.parent_of: dict[int, int] = {}        # host pid -> parent pid
        self.seen: set[int] = {self.shell.pid}     # host pids whose start is accounted for
        # the mount of a deterministic kernel sets this: its requesters' forks are not
        # watched, so a new requester's start is simulated (``spawn_requester``)
        self.synth_host_start = False

    # ------------------------------------------------------------------ call sites
    def _index(self, name: str) -> int:
        idx = self._idx.get(name)
        if idx is None:
            i = self.k.kallsyms.index_of(name)
            idx = -1 if i is None else i
            self._idx[name] = idx
        return idx

    def site(self, name: str) -> int:
        """A return address inside ``name`` (a call site of it: ``_RET_IP_``)."""
        addr = self._sites.get(name)
        if addr is None:
            ks = self.k.kallsyms
            base = ks.addr_of(name) or 0
            r = ks.lookup_addr(base) if base else None
            size = r[2] if r else 0x40
            addr = base + 0x10 + zlib.crc32(name.encode()) % max(1, size - 0x18) if base else 0
            self._sites[name] = addr
        return addr

    def _ret_in(self, name: str, off: int) -> int:
        """``name+off``, kept inside the symbol (sizes of non-traceable symbols are
        reconstructed, smaller than the reference kernel's)."""
        base = self.sym(name)
        r = self.k.kallsyms.lookup_addr(base)
        size = r[2] if r else off + 8
        return base + (off if off < size else size - 8)

    def sym(self, name: str) -> int:
        return self.k.kallsyms.addr_of(name) or 0

    def args_for(self, name: str) -> tuple[int, ...]:
        """The argument registers of a call of ``name`` in the current context."""
        fn = FUNC_ARGS.get(name)
        return fn(self) if fn is not None else ()

    def _enter(self, idx: int, name: str, pip: int) -> Any:
        """Pass a function's ftrace call site: one list lookup when the site is off."""
        k = self.k
        stack = self.stacks.setdefault(id(k.sched.current), [])
        stack.append(self._sites.get(name) or self.site(name))  # a return address in it
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
        """Return addresses of the current task's simulated call chain, innermost first,
        as the ORC unwinder reports them: tail calls leave no frame (``x64_sys_call``
        jumps to ``__x64_sys_read``, which jumps to ``ksys_read``) and a syscall's
        chain sits on ``do_syscall_64`` and the entry code."""
        chain = self.stacks.get(id(self.k.sched.current))
        if not chain:
            return []
        tail = self._tail_sites
        if tail is None:
            tail = self._tail_sites = {a for a in map(self.site, TAIL_CALLS) if a}
            self._entry_sites = [self._ret_in(n, off) for n, off in SYSCALL_ENTRY_FRAMES if self.sym(n)]
        out = [a for a in reversed(chain) if a not in tail]
        if chain[0] == self.site("x64_sys_call"):
            out += self._entry_sites
        return out

    def _sites_armed(self) -> bool:
        """Can a function's entry do anything: an ftrace site patched, or an int3
        kprobe armed inside some function body?"""
        ft = getattr(self.k, "ftrace", None)
        if ft is not None and ft.nr_active:
            return True
        kp = getattr(self.k, "kprobes", None)
        return kp is not None and bool(kp.nr_bp_armed)

    def call(self, tree: Tree | str, parent: str | None = None) -> None:
        """Run one function (and its callees) through the ftrace call sites.  With no
        site patched and no int3 probe armed the whole call returns having left no
        mark (its frames are popped again), so it is skipped: a disabled call site
        costs almost nothing."""
        if not self._sites_armed():
            return
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

    def enter_chain(self, names: tuple[str, ...], parent: str | None = None
                    ) -> list[tuple[int, str, Any]]:
        """Enter nested functions without returning (the syscall is in progress)."""
        frames: list[tuple[int, str, Any]] = []
        k = self.k
        if getattr(k, "ftrace", None) is None:
            return frames
        if not self._sites_armed():
            # no site patched: only the frames (a stack trace taken inside shows them)
            stack = self.stacks.setdefault(id(k.sched.current), [])
            sites = self._sites
            for name in names:
                idx = self._index(name)
                if idx >= 0:
                    stack.append(sites.get(name) or self.site(name))
                    frames.append((idx, name, None))
            return frames
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

    # ------------------------------------------------------------------ tracepoints
    def tp(self, name: str) -> Any:
        """The tracepoint ``name`` when something is attached to it, else None."""
        tp = self._tpc.get(name, False)
        if tp is False:
            ev = getattr(self.k, "events", None)
            if ev is None:
                return None
            tp = ev.tracepoint(name)
            self._tpc[name] = tp
        return tp if tp is not None and tp.enabled else None

    def emit(self, name: str, *values: Any) -> None:
        """trace_NAME(...) in the current context."""
        tp = self.tp(name)
        if tp:
            tp.fire(*values)

    def emit_ctx(self, flags: int, depth: int, name: str, *values: Any) -> None:
        """trace_NAME(...) under extra locks/irq state: the record's flags and preempt
        depth are those of the tracepoint's call site."""
        tp = self.tp(name)
        if tp:
            sched = self.k.sched
            saved = sched.irq_flags, sched.preempt_count
            sched.irq_flags = flags | (saved[0] & (TRACE_FLAG_HARDIRQ | TRACE_FLAG_SOFTIRQ))
            sched.preempt_count = depth
            try:
                tp.fire(*values)
            finally:
                sched.irq_flags, sched.preempt_count = saved

    def _base(self) -> int:
        """Preempt depth of the running task: the idle loop runs with preemption off."""
        sched = self.k.sched
        return 1 if sched.current is sched.idle[sched.cpu] else 0

    def alloc_obj(self, size: int) -> int:
        self.obj += (size + 63) & ~63
        if self.obj > 0xFFFF888140000000:
            self.obj = 0xFFFF888104000000
        return self.obj

    def cache_alloc(self, cache: str, caller: str, ptr: int = 0) -> int:
        """kmem_cache_alloc(cachep) called from ``caller``: the object's address."""
        size, slab, gfp, acct = CACHES[cache]
        ptr = ptr or self.alloc_obj(slab)
        self.emit("kmem_cache_alloc", self.site(caller), ptr, size, slab, gfp, -1, acct)
        return ptr

    def cache_free(self, cache: str, caller: str, ptr: int) -> None:
        self.emit("kmem_cache_free", self.site(caller), ptr, cache)

    def kmalloc(self, caller: str, size: int, gfp: int = GFP_KERNEL) -> int:
        alloc = max(8, 1 << (size - 1).bit_length())
        ptr = self.alloc_obj(alloc)
        self.emit("kmalloc", self.site(caller), ptr, size, alloc, gfp, -1)
        return ptr

    def kfree(self, caller: str, ptr: int) -> None:
        self.emit("kfree", self.site(caller), ptr)

    def page_alloc(self, gfp: int, migratetype: int) -> None:
        if self.tp("mm_page_alloc"):
            self.emit("mm_page_alloc", 0x100000 + self.rng.randrange(0x3FFFF), 0, gfp, migratetype)

    # ------------------------------------------------------------------ syscalls
    def syscall_begin(self, op: str, args: tuple[int, ...] = (), name: str = "",
                      count: int = 0, path: str | tuple[str, ...] = "") -> list[tuple[int, str, Any]]:
        """Entry of a syscall in the current task: tracepoints, then its call chain.

        ``path`` is the pathname the caller passed (openat/newfstatat/mkdir/rmdir): it is
        placed in the task's user memory and its address becomes the filename argument,
        so ``+0($arg2):ustring`` and ``$filename`` fetches read it."""
        if self.quiet():
            return []  # nothing attached: the path would leave no trace, skip it
        paths = (path,) if isinstance(path, str) else tuple(path)
        self.cur_name = name or "null"
        self.cur_count = count
        self.cur_file, self.cur_dentry = self.k.mem.file_object(self.cur_name)
        sc = SYSCALL_ALIAS.get(op, op)
        nr = SYSCALL_NR.get(sc, 0)
        if not args:
            args = SYSCALL_ARGS.get(op, ())
            if count and op in ("read", "write", "getdents64", "pread64"):
                args = (*args[:2], count, *args[3:])
            pos = PATH_ARG.get(op)
            if path and pos is not None:
                # one pathname, or several (symlinkat: target, link) for as many slots
                slots = (pos,) if isinstance(pos, int) else pos
                regs = list(args)
                for slot, (i, p) in enumerate(zip(slots, paths, strict=False)):
                    regs[i] = self.k.mem.user_path(p, slot)
                args = tuple(regs)
        self.sys_args = args
        self.sys_op = op
        self.sys_paths = paths
        tp = self.tp("sys_enter")
        if tp:
            a = (list(args) + [0] * 6)[:6]
            tp.fire(nr, a)
        tp = self.tp(f"sys_enter_{sc}")
        if tp:
            tp.fire_defaults(nr, *args)
        chain = SYSCALL_ENTRY.get(op, ("x64_sys_call",))
        frames = self.enter_chain(chain)
        parent = chain[-1] if chain else None
        for leaf in SYSCALL_LEAVES.get(op, ()):
            self.call(leaf, parent)
        if op in ("openat", "open", "newfstatat", "mkdir", "rmdir"):
            # getname_flags() copies the path into a names_cache buffer; putname() frees it
            names = self.cache_alloc("names_cache", "getname_flags")
            if op in ("openat", "open"):
                self.cache_alloc("filp", "alloc_empty_file", self.cur_file)
            self.cache_free("names_cache", "putname", names)
        return frames

    def syscall_end(self, op: str, frames: list[tuple[int, str, Any]], ret: int = 0) -> None:
        if not frames and self.quiet():
            return
        self.cur_ret = ret
        if op == "close":
            self.call(("__fput", "dput"), "fput")
        self.leave_chain(frames)
        sc = SYSCALL_ALIAS.get(op, op)
        nr = SYSCALL_NR.get(sc, 0)
        tp = self.tp(f"sys_exit_{sc}")
        if tp:
            tp.fire_defaults(nr, ret)
        tp = self.tp("sys_exit")
        if tp:
            tp.fire(nr, ret)
        if op == "close":
            # the last fput() defers __fput() to task_work: it runs on the way to user space
            self.cache_free("filp", "__fput", self.cur_file)

    def eventfs_create_dir(self, name: str) -> None:
        """event_create_dir() of a new event: ``eventfs_create_dir(name, parent, entries,
        size, data)`` in the task that added it, ``name`` a kernel string (probes on it
        fetch ``+0(%di):string``)."""
        self.cur_dir_name = self.k.mem.kernel_string(name)
        self.call("eventfs_create_dir", "trace_add_event_call")

    def syscall(self, op: str, args: tuple[int, ...] = (), name: str = "", count: int = 0,
                path: str = "") -> None:
        """A whole syscall of a simulated task, returning what it would (fd, bytes).
        ``path``: the pathname it passes (its last component names the file)."""
        ret = 3 if op in ("openat", "open") else count if op in ("read", "write", "pread64") else 0
        if path and not name:
            name = path.rpartition("/")[2]
        self.syscall_end(op, self.syscall_begin(op, args, name, count, path), ret)

    # ------------------------------------------------------------------ scheduling
    def switch(self, cpu: int, nxt: Task, prev_state: int = 0) -> None:
        """__schedule() on ``cpu``: the current task gives the CPU to ``nxt``."""
        k = self.k
        sched = k.sched
        prev = sched.curr[cpu]
        if prev is nxt:
            return
        sched.run_on(cpu)
        self.call(SCHEDULE)
        now = 0
        if prev.pid and self.tp("sched_stat_runtime"):
            now = k.boot_clock.ns()
            ran = now - self.run_start.get(prev.pid, now)
            runtime = ran if ran > 20_000 else ran + 6_000 + self.rng.randrange(40_000)
            self.emit_ctx(D, 2, "sched_stat_runtime", prev.comm, prev.pid, runtime)
        tracing = k.trace
        tracing.record_task(prev)
        tracing.record_task(nxt)
        self.emit_ctx(D, 2, "sched_switch", prev.comm, prev.pid, prev.prio, prev_state,
                      nxt.comm, nxt.pid, nxt.prio)
        fg = getattr(k, "fgraph", None)
        if fg is not None:
            fg.probe_sched_switch(prev, nxt)
        sched.set_current(cpu, nxt)
        if nxt.pid:
            self.task_cpu[nxt.pid] = cpu
            if now or self.tp("sched_stat_runtime"):
                self.run_start[nxt.pid] = now or k.boot_clock.ns()
        if prev is self.host[cpu]:
            self.host[cpu] = None
            if prev_state not in (STATE_RUNNING, STATE_PREEMPTED, STATE_Z):
                self.asleep.add(prev.pid)

    def wakeup(self, cpu: int, task: Task) -> None:
        """try_to_wake_up(task) from the code running on ``cpu``, onto ``cpu``."""
        self.k.sched.run_on(cpu)
        base = self._base()
        self.emit_ctx(D, base + 2, "sched_waking", task.comm, task.pid, task.prio, cpu)
        self.call(WAKEUP)
        last = self.task_cpu.get(task.pid)
        if task.pid and last is not None and last != cpu:
            self.emit_ctx(D, base + 2, "sched_migrate_task", task.comm, task.pid, task.prio, last, cpu)
        self.task_cpu[task.pid] = cpu
        # the woken task preempts idle: need-resched is set when the wakeup is traced
        resched = NEED_RESCHED if self.k.sched.curr[cpu].pid == 0 else 0
        self.emit_ctx(D | resched, base + 3, "sched_wakeup", task.comm, task.pid, task.prio, cpu)
        self.asleep.discard(task.pid)

    def wakeup_new(self, cpu: int, task: Task) -> None:
        """wake_up_new_task(): the forked child is put on ``cpu``'s run queue."""
        self.task_cpu[task.pid] = cpu
        self.emit_ctx(D, self._base() + 2, "sched_wakeup_new", task.comm, task.pid, task.prio, cpu)

    def run_task(self, cpu: int, task: Task) -> None:
        """A host task's request starts on ``cpu``: the scheduler gave it the CPU
        (woken first when it had blocked), unless it is already running there."""
        sched = self.k.sched
        if not self.enabled or task.pid <= 0:
            sched.set_current(cpu, task)
            return
        if task.pid not in self.seen:
            self.seen.add(task.pid)
            if self.synth_host_start and not self.quiet():
                self.spawn_requester(cpu, task)
        for c, t in enumerate(self.host):
            if t is task and c != cpu:     # it moved: it blocked on the other CPU
                self._host_off(c, STATE_S)
        if self.host[cpu] is not task:
            if self.host[cpu] is not None:
                self._host_off(cpu, STATE_S)
            sched.set_current(cpu, sched.idle[cpu])
            if task.pid in self.asleep:
                self.wakeup(cpu, task)
            self.emit_ctx(D, 1, "cpu_idle", PWR_EVENT_EXIT, cpu)
            self.switch(cpu, task)
            self.host[cpu] = task
        self.host_tick[cpu] = self.ticks
        sched.set_current(cpu, task)

    def _host_off(self, cpu: int, state: int) -> None:
        """The host task running on ``cpu`` blocks (or exits): the CPU goes idle."""
        task = self.host[cpu]
        if task is None:
            return
        sched = self.k.sched
        saved = sched.cpu, sched.current
        sched.set_current(cpu, task)
        self.switch(cpu, sched.idle[cpu], prev_state=state)
        self.emit_ctx(D, 1, "cpu_idle", 1, cpu)
        self.host[cpu] = None
        sched.set_current(cpu, sched.idle[cpu])
        if saved[0] != cpu:
            sched.cpu, sched.current = saved

    # ------------------------------------------------------------------ ticks
    def quiet(self) -> bool:
        """Nothing attached anywhere: no ftrace site (or only callbacks that can record
        nothing, such as the function tracer with tracing off) and no tracepoint is
        live, so the background and the syscall paths would leave no trace and can be
        skipped (an idle machine with tracing off costs nothing observable)."""
        k = self.k
        ft = getattr(k, "ftrace", None)
        if ft is not None and ft.nr_active and not ft.ops_quiet():
            return False
        kp = self.kprobes
        if kp is not None and kp.nr_bp_armed:
            return False
        ev = getattr(k, "events", None)
        return ev is None or not ev.nr_enabled_tps

    @property
    def kprobes(self) -> Any:
        return getattr(self.k, "kprobes", None)

    def tick(self, cpu: int) -> None:
        k = self.k
        sched = k.sched
        saved = (sched.cpu, sched.current, sched.irq_flags, sched.preempt_count)
        sched.run_on(cpu)
        host = self.host[cpu]
        if host is not None and self.ticks - self.host_tick[cpu] >= HOST_TICKS:
            self._host_off(cpu, STATE_S)    # no request for a while: it blocked
        elif host is not None:
            sched.set_current(cpu, host)    # interrupted in user space
        cur = sched.current
        idle = cur is sched.idle[cpu]
        base = 1 if idle else 0
        now = k.boot_clock.ns()
        jiffies = jiffies_of(now)
        # ---- hardirq: the local APIC timer
        sched.irq_flags = HARDIRQ
        sched.preempt_count = base
        self.emit("local_timer_entry", TIMER_VECTOR)
        frames = self.enter_chain(("__sysvec_apic_timer_interrupt", "hrtimer_interrupt"))
        tick_timer = PCPU_BASE + cpu * PCPU_STRIDE + TICK_SCHED_TIMER
        nohz = self.sym("tick_nohz_handler")
        self.emit_ctx(HARDIRQ, base + 1, "hrtimer_cancel", tick_timer)
        inner = self.enter_chain(("__hrtimer_run_queues",), "hrtimer_interrupt")
        self.emit("hrtimer_expire_entry", tick_timer, now, nohz)
        upt = self.enter_chain(("tick_nohz_handler", "update_process_times"), "__hrtimer_run_queues")
        self.call("account_process_tick", "update_process_times")
        r = self.rng.random()
        kt = self._timer_task(cpu, r)
        vecs = [1]                                       # run_local_timers(): TIMER_SOFTIRQ
        self.emit("softirq_raise", 1)
        self.call("rcu_sched_clock_irq", "update_process_times")
        if kt is self.rcu or self.ticks % 2 == 0:
            vecs.append(9)                               # rcu_sched_clock_irq(): RCU_SOFTIRQ
            self.emit("softirq_raise", 9)
        sched_tick = self.enter_chain(("sched_tick",), "update_process_times")
        if not idle:
            runtime = TICK_NS - self.rng.randrange(TICK_NS // 4)
            self.emit_ctx(HARDIRQ, base + 1, "sched_stat_runtime", cur.comm, cur.pid, runtime)
        self.leave_chain(sched_tick)
        self.leave_chain(upt)
        self.emit("hrtimer_expire_exit", tick_timer)
        expires = (now // TICK_NS + 1) * TICK_NS
        self.emit_ctx(HARDIRQ, base + 1, "hrtimer_start", tick_timer, nohz, expires, expires,
                      HRTIMER_MODE_ABS, 0)
        self.leave_chain(inner)
        self.call("_raw_spin_lock", "hrtimer_interrupt")
        self.call("_raw_spin_unlock", "hrtimer_interrupt")
        self.leave_chain(frames)
        self.emit("local_timer_exit", TIMER_VECTOR)
        if r > 0.97:
            # a virtio-net receive interrupt: NET_RX work for the softirq
            self.emit("irq_handler_entry", NET_IRQ, NET_IRQ_NAME)
            self.emit_ctx(HARDIRQ, base, "softirq_raise", 3)
            self.emit("irq_handler_exit", NET_IRQ, 1)
            vecs.insert(0, 3)
        # ---- softirqs on the way out of the interrupt
        sched.irq_flags = TRACE_FLAG_SOFTIRQ
        sched.preempt_count = base
        woken: Task | None = None
        for vec in vecs:
            self.emit("softirq_entry", vec)
            if vec == 1:
                self.call(SOFTIRQ)
                if kt is not None:
                    woken = kt
                    self._expire_timer(cpu, kt, jiffies, base)
            elif vec == 9:
                self.call("rcu_core")
                if r < 0.1:   # a grace period ended: kfree_rcu() callbacks run
                    self.kfree("rcu_do_batch", self.alloc_obj(64))
            else:
                self.call("net_rx_action")
            self.emit("softirq_exit", vec)
        sched.irq_flags, sched.preempt_count = 0, 0
        if idle:
            self.emit_ctx(D, 1, "cpu_idle", PWR_EVENT_EXIT, cpu)
        # ---- the woken kthread runs, or the shell runs a child
        if woken is not None:
            self._run_kthread(cpu, woken, jiffies)
        elif r < 0.35 and self.rng.random() < 0.4 and self.host[cpu] is None:
            self.run_child(cpu)
        if sched.curr[cpu] is sched.idle[cpu]:
            self.emit_ctx(D, 1, "cpu_idle", 1, cpu)
        sched.cpu, sched.current, sched.irq_flags, sched.preempt_count = saved

    def _timer_task(self, cpu: int, r: float) -> Task | None:
        """The kthread whose timer expires in this tick on ``cpu``, if any: the RCU
        grace-period kthread every other jiffy, now and then a kworker or kcompactd."""
        if self.rcu in self.kthreads and self.ticks % 2 == 1 and \
                cpu == (self.ticks // 2) % self.k.nr_cpus:
            return self.rcu
        if r < 0.2:
            cands = [t for t in self.kthreads if t is not self.rcu
                     and self.kthread_cpu.get(t.pid) in (None, cpu) and not t.comm.startswith("ksoftirqd")]
            if cands:
                return self.rng.choice(cands)
        return None

    def _work_of(self, kt: Task, cpu: int) -> tuple[int, str, str, int, int]:
        """(work struct, function, workqueue, req_cpu, pool cpu) a kworker runs."""
        if self.kthread_cpu.get(kt.pid) is None:
            return MEMCG_FLUSH_WORK, "flush_memcg_stats_dwork", "events_unbound", NR_CPUS, -1
        work = PCPU_BASE + cpu * PCPU_STRIDE + VMSTAT_WORK
        return work, "vmstat_update", "mm_percpu_wq", cpu, cpu

    def _expire_timer(self, cpu: int, kt: Task, jiffies: int, base: int) -> None:
        """expire_timers() in the timer softirq: the timer of ``kt`` runs."""
        worker = kt.comm.startswith("kworker")
        if worker:
            work, fn, wq, req_cpu, pool_cpu = self._work_of(kt, cpu)
            timer, tfn = work + 0x20, "delayed_work_timer_fn"
        else:
            timer, tfn = KTHREAD_STACK + kt.pid * 0x4000 + 0x3D60, "process_timeout"
        tfn_addr = self.sym(tfn)
        self.emit_ctx(D, base + 1, "timer_cancel", timer)
        self.emit("timer_expire_entry", timer, jiffies, tfn_addr, jiffies)
        if worker:
            self.emit_ctx(D, base + 1, "workqueue_queue_work", work, self.sym(fn), wq, req_cpu, pool_cpu)
            self.emit_ctx(D, base + 1, "workqueue_activate_work", work, self.sym(fn))
        self.wakeup(cpu, kt)
        self.emit("timer_expire_exit", timer)

    def _run_kthread(self, cpu: int, kt: Task, jiffies: int) -> None:
        sched = self.k.sched
        host = self.host[cpu]
        prev = sched.curr[cpu]
        self.switch(cpu, kt, prev_state=STATE_PREEMPTED if prev.pid else STATE_RUNNING)
        sched.set_current(cpu, kt)
        state = STATE_S
        if kt.comm.startswith("kworker"):
            work, fn, wq, req_cpu, _ = self._work_of(kt, cpu)
            fn_addr = self.sym(fn)
            self.emit("workqueue_execute_start", work, fn_addr)
            self.call(WORK)
            # the work re-arms itself: queue_delayed_work() → add_timer()
            timer = work + 0x20
            expires = jiffies + HZ
            bucket, idx = wheel_bucket(expires, jiffies)
            flags = cpu | TIMER_DEFERRABLE | TIMER_IRQSAFE | (TIMER_PINNED if req_cpu != NR_CPUS else 0)
            self.emit_ctx(D, 1, "timer_start", timer, self.sym("delayed_work_timer_fn"), expires,
                          bucket, jiffies, flags | idx << 22)
            self.emit("workqueue_execute_end", work, fn_addr)
            state = STATE_I
        else:
            # schedule_timeout(): an on-stack timer that wakes the thread again
            timer = KTHREAD_STACK + kt.pid * 0x4000 + 0x3D60
            delay = 2 if kt is self.rcu else HZ // 2
            expires = jiffies + delay
            bucket, idx = wheel_bucket(expires, jiffies)
            self.emit("timer_init", timer)
            self.emit_ctx(D, 1, "timer_start", timer, self.sym("process_timeout"), expires, bucket,
                          jiffies, cpu | idx << 22)
            if kt is self.rcu:
                state = STATE_I
        if host is not None and prev is host:
            self.switch(cpu, host, prev_state=state)   # the preempted host task resumes
            self.host[cpu] = host
        else:
            self.switch(cpu, sched.idle[cpu], prev_state=state)

    def run_child(self, cpu: int) -> None:
        """The shell runs ``cat``/``ls``: fork, exec, a few syscalls, exit, reaped."""
        k = self.k
        sched = k.sched
        comm, path = self.rng.choice(CHILD_PROGRAMS)
        shell = self.shell
        idle = sched.idle[cpu]
        # the shell wakes up and forks
        self.wakeup(cpu, shell)
        self.switch(cpu, shell)
        child = sched.task(sched.alloc_pid(), shell.comm)
        child.tgid = child.pid
        self.clone(cpu, shell, child)
        frames = self.syscall_begin("wait4")
        self.emit("sched_process_wait", shell.comm, 0, shell.prio)
        self.switch(cpu, child, prev_state=STATE_S)   # the shell waits for it
        self.execve(child, comm, path)
        data = f"/usr/share/doc/{comm}/README"
        for op, name in (("openat", data), ("newfstatat", data), ("read", "README"),
                         ("read", "README"), ("write", "stdout"), ("close", "README")):
            self.syscall(op, name="" if name == data else name, path=name if name == data else "",
                         count=4096 if op == "read" else 64 if op == "write" else 0)
        self.exit_task(cpu, child, parent=shell)
        # the shell returns from wait4() with the child reaped, handles SIGCHLD, sleeps
        self.syscall_end("wait4", frames, ret=child.pid)
        self.emit_ctx(D, 1, "signal_deliver", SIGCHLD, 0, CLD_EXITED, 0x55D1E7B6E1A0, 0x14000000)
        self.exit(child)
        self.switch(cpu, idle, prev_state=STATE_S)

    def clone(self, cpu: int, parent: Task, child: Task, flags: int = CLONE_FLAGS,
              target: int | None = None) -> None:
        """clone(): copy_process() and the new task's first wakeup, in ``parent``."""
        frames = self.syscall_begin("clone", (flags, 0, 0, 0x7F3A5C1D5A10, 0))
        self.cache_alloc("task_struct", "copy_process")
        self.emit("task_newtask", child.pid, child.comm, flags, 0)
        self.fork(parent, child)
        wake = self.enter_chain(("wake_up_new_task",), "kernel_clone")
        self.wakeup_new(cpu if target is None else target, child)
        self.leave_chain(wake)
        self.syscall_end("clone", frames, ret=child.pid)

    def execve(self, task: Task, comm: str, path: str) -> None:
        """execve() in ``task``: a new mm, the comm change, the exec event."""
        frames = self.syscall_begin("execve", name=path)
        bprm = self.kmalloc("alloc_bprm", 432, GFP_KERNEL | GFP_ZERO)
        self.cache_alloc("mm_struct", "mm_alloc")
        self.emit("sched_prepare_exec", path, path, task.pid, task.comm)
        old = task.comm
        task.comm = comm[:15]
        self.emit_ctx(0, 1, "task_rename", task.pid, old, task.comm, 0)
        self.emit("sched_process_exec", path, task.pid, task.pid)
        self.kfree("free_bprm", bprm)
        self.syscall_end("execve", frames, ret=0)
        for _ in range(2):   # the first page faults of the new image
            self.page_alloc(GFP_HIGHUSER_MOVABLE | GFP_ZERO, 1)
        self.load_libraries(task.comm)

    def load_libraries(self, comm: str) -> None:
        """What glibc's ld.so does in a new dynamically linked image before main():
        ld.so.preload, ld.so.cache, then each library's ELF header (read), program
        headers (pread64), fstat and mappings."""
        if self.quiet():
            return
        self.syscall("access", path="/etc/ld.so.preload")
        self.syscall("openat", path="/etc/ld.so.cache")
        self.syscall("fstat", name="ld.so.cache")
        self.syscall("mmap", name="ld.so.cache")
        self.syscall("close", name="ld.so.cache")
        for lib in LIBS.get(comm, ("libc.so.6",)):
            self.syscall("openat", path=f"{LIB_DIR}/{lib}")
            self.syscall("read", name=lib, count=832)
            libc = lib.startswith("libc.")
            if libc:   # the PT_NOTE/PT_GNU_PROPERTY segments, read again by offset
                self.syscall("pread64", name=lib, count=784)
            self.syscall("fstat", name=lib)
            if libc:
                self.syscall("pread64", name=lib, count=784)
            self.syscall("mmap", name=lib)
            self.syscall("mmap", name=lib)
            self.syscall("close", name=lib)

    def exit_task(self, cpu: int, task: Task, parent: Task | None = None) -> None:
        """exit_group() in ``task`` (current on ``cpu``): do_exit(), the parent's
        SIGCHLD and wakeup, the last switch (to the parent when it was woken here)."""
        frames = self.syscall_begin("exit_group")
        self.emit("sched_process_exit", task.comm, task.pid, task.prio)
        if parent is not None:
            for c, t in enumerate(self.host):
                if t is parent:            # it was blocked in wait4() all along
                    self._host_off(c, STATE_S)
                    self.k.sched.set_current(cpu, task)
            self.emit_ctx(D, 2, "signal_generate", SIGCHLD, 0, CLD_EXITED, parent.comm, parent.pid, 1, 0)
            self.wakeup(cpu, parent)
        self.leave_chain(frames)
        nxt = parent if parent is not None and self.task_cpu.get(parent.pid) == cpu \
            else self.k.sched.idle[cpu]
        if self.host[cpu] is task:
            self.host[cpu] = None
        self.switch(cpu, nxt, prev_state=STATE_Z)

    def fork(self, parent: Task, child: Task) -> None:
        """copy_process(): fork tracepoint and the pid-list follow-fork hooks."""
        k = self.k
        self.emit("sched_process_fork", parent.comm, parent.pid, child.comm, child.pid)
        ft = getattr(k, "ftrace", None)
        if ft is not None:
            for tr in k.trace.all_arrays():
                ft.sched_process_fork(tr, parent, child)
        ev = getattr(k, "events", None)
        if ev is not None:
            ev.on_fork(parent.pid, child.pid)

    def exit(self, task: Task) -> None:
        """delayed_put_task_struct(): sched_process_free (an RCU callback) and the
        pid-list hooks registered on it."""
        k = self.k
        sched = k.sched
        saved = sched.irq_flags, sched.preempt_count
        sched.irq_flags, sched.preempt_count = TRACE_FLAG_SOFTIRQ, self._base()
        self.emit("sched_process_free", task.comm, task.pid, task.prio)
        sched.irq_flags, sched.preempt_count = saved
        ft = getattr(k, "ftrace", None)
        if ft is not None:
            for tr in k.trace.all_arrays():
                ft.sched_process_free(tr, task)
        ev = getattr(k, "events", None)
        if ev is not None:
            ev.on_exit(task.pid)
        self.stacks.pop(id(task), None)
        self.task_cpu.pop(task.pid, None)
        self.run_start.pop(task.pid, None)
        self.asleep.discard(task.pid)
        k.sched.tasks.pop(task.pid, None)

    # ------------------------------------------------------------------ host processes
    def host_spawn(self, parent_pid: int, parent_comm: str, pid: int, comm: str, cpu: int,
                   exe: str | None = None, alive: bool = True, thread: bool = False) -> None:
        """A host process forked ``pid`` (seen by the adapter): the clone in the
        parent, the exec when its comm changed, its exit when it is already gone."""
        if not self.enabled:
            return
        k = self.k
        sched = k.sched
        cpu %= k.nr_cpus
        self.seen.update((parent_pid, pid))
        self.catch_up()
        saved = sched.cpu, sched.current
        parent = sched.task(parent_pid, parent_comm)
        pcpu = next((c for c, t in enumerate(self.host) if t is parent), cpu)
        self.run_task(pcpu, parent)
        child = sched.task(pid, parent.comm)
        child.tgid = parent.tgid if thread else pid
        self.parent_of[pid] = parent_pid
        self.clone(pcpu, parent, child, CLONE_THREAD_FLAGS if thread else CLONE_FLAGS, target=cpu)
        self.host_tick[pcpu] = self.ticks
        self.run_task(cpu, child)
        if not thread and comm != parent.comm:
            self.execve(child, comm, exe or f"/usr/bin/{comm}")
        elif comm != child.comm:
            child.comm = comm[:15]
        if not alive:
            self.host_exit(pid)
        sched.cpu, sched.current = saved

    def forks_observed(self) -> bool:
        """Would a host fork leave a mark now: something attached (kernel_clone probes,
        sched events) or a pid list that follows forks (event-fork, function-fork)?"""
        if not self.quiet():
            return True
        from .trace import ITER_EVENT_FORK, ITER_FUNC_FORK

        tracing = getattr(self.k, "trace", None)
        return tracing is not None and any(
            tr.flags & (ITER_EVENT_FORK | ITER_FUNC_FORK) for tr in tracing.all_arrays())

    def sched_traced(self) -> bool:
        """Is any scheduler tracepoint a host task's wakeups would pass enabled?"""
        return bool(self.tp("sched_switch") or self.tp("sched_waking") or self.tp("sched_wakeup"))

    def host_run(self, pid: int, cpu: int, n: int) -> None:
        """Host task ``pid`` slept and was woken ``n`` times since last seen (its
        voluntary context switches): each time woken, switched in, and blocking again."""
        task = self.k.sched.tasks.get(pid)
        if task is None or not self.enabled:
            return
        self.catch_up()
        sched = self.k.sched
        saved = sched.cpu, sched.current
        cpu %= self.k.nr_cpus
        for _ in range(min(n, HOST_RUNS_MAX)):
            if task.pid not in self.asleep and self.host[cpu] is not task:
                self.asleep.add(task.pid)
            self.run_task(cpu, task)
            self._host_off(cpu, STATE_S)
        sched.cpu, sched.current = saved

    def chdir_traced(self) -> bool:
        return bool(self.tp("sys_enter_chdir") or self.tp("sys_exit_chdir")
                    or self.tp("sys_enter") or self.tp("sys_exit"))

    def host_chdir(self, path: str) -> None:
        """The current (requesting) host task changed directory to ``path`` since its
        last request: its chdir(2), with the pathname in its user memory."""
        self.syscall_end("chdir", self.syscall_begin("chdir", name=path.rsplit("/", 1)[-1],
                                                     path=path), 0)

    def host_exec(self, pid: int, comm: str) -> None:
        """Host task ``pid`` changed its comm: it exec'd ``comm``."""
        task = self.k.sched.tasks.get(pid)
        if task is None or not self.enabled or task.comm == comm[:15]:
            return
        sched = self.k.sched
        saved = sched.cpu, sched.current
        cpu = self.task_cpu.get(pid, 0) % self.k.nr_cpus
        self.run_task(cpu, task)
        self.execve(task, comm, f"/usr/bin/{comm}")
        self._host_off(cpu, STATE_S)
        sched.cpu, sched.current = saved

    def spawn_requester(self, cpu: int, task: Task) -> None:
        """A deterministic kernel does not watch the host's forks (they are not
        reproducible): a process whose first request this is was just started by the
        shell.  Its clone in the shell, the exec of its program and the dynamic loader
        run before the request, as they would have on the machine."""
        comm = task.comm
        self.host_spawn(self.shell.pid, self.shell.comm, task.pid, comm, cpu, f"/usr/bin/{comm}")

    def host_exit(self, pid: int) -> None:
        """Host task ``pid`` exited (and was reaped): exit_group(), last switch, free."""
        k = self.k
        sched = k.sched
        task = sched.tasks.get(pid)
        if task is None or not self.enabled:
            return
        saved = sched.cpu, sched.current
        cpu = next((c for c, t in enumerate(self.host) if t is task), None)
        if cpu is None:
            cpu = self.task_cpu.get(pid, 0) % k.nr_cpus
            self.run_task(cpu, task)
        sched.set_current(cpu, task)
        ppid = self.parent_of.pop(pid, None)
        parent = sched.tasks.get(ppid) if ppid is not None else None
        self.exit_task(cpu, task, parent if parent is not None and parent.pid else None)
        if sched.curr[cpu] is sched.idle[cpu]:
            self.emit_ctx(D, 1, "cpu_idle", 1, cpu)
        else:
            self.host[cpu] = sched.curr[cpu]
            self.host_tick[cpu] = self.ticks
        self.exit(task)
        if saved[1] is not task:
            sched.cpu, sched.current = saved
        else:
            sched.set_current(cpu, sched.idle[cpu])

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


OPEN_HOW = 0xFFFFC90000003EE8      # do_sys_open()'s struct open_how on the kernel stack
SYMLINK_DIR = 0xFFFF888104A1C9C0   # the parent directory's inode


def _openat2_args(wl: Workload) -> tuple[int, ...]:
    """do_sys_openat2(dfd, filename, how): the caller's dfd and pathname pointer."""
    a = wl.sys_args
    if wl.sys_op == "open":
        return (AT_FDCWD, a[0] if a else 0, OPEN_HOW)
    return (a[0] if a else AT_FDCWD, a[1] if len(a) > 1 else 0, OPEN_HOW)


def _symlink_args(wl: Workload) -> tuple[int, ...]:
    """vfs_symlink(idmap, dir, dentry, oldname): kernel objects only (oldname is the
    getname() copy of the target)."""
    target = wl.sys_paths[0] if wl.sys_paths and wl.sys_paths[0] else "?"
    return (wl.sym("nop_mnt_idmap"), SYMLINK_DIR, wl.cur_dentry, wl.k.mem.kernel_string(target))


FUNC_ARGS = {
    "do_sys_openat2": _openat2_args,
    "do_sys_open": lambda wl: (AT_FDCWD, *(wl.sys_args[:3] or (0, 0, 0))),
    "vfs_symlink": _symlink_args,
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
    "eventfs_create_dir": lambda wl: (wl.cur_dir_name, EVENTFS_PARENT, EVENTFS_ENTRIES, 6, wl.cur_file),
    "kernel_clone": lambda wl: (0xFFFFC90000003F00,),
}
FUNC_RET = {
    "vfs_read": lambda wl: wl.cur_ret, "vfs_write": lambda wl: wl.cur_ret,
    "ksys_read": lambda wl: wl.cur_ret, "ksys_write": lambda wl: wl.cur_ret,
    "kernel_clone": lambda wl: wl.cur_ret,
}


def boot(kernel: Kernel) -> Workload:
    return Workload(kernel)
