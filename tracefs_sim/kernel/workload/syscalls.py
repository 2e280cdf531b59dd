"""Syscalls of the simulated tasks, of requests that reach the mount and of traced host
tasks (arch/x86/entry: do_syscall_64 → x64_sys_call → __x64_sys_NAME → …).

A simulated syscall is entered (``begin``: the raw_syscalls and syscalls:* entry
tracepoints, then its call chain left open) and left (``end``: the chain's returns and the
exit tracepoints).  The argument registers of the functions on the way (vfs_read's file
and count, do_sys_openat2's pathname pointer) come from the syscall in progress, so
probes with fetch args see the values a real call would pass.

A traced host task's real syscall is a ``SyscallCtx``: ``sys_enter`` (its entry
tracepoints), ``run`` (its path, by the ``Body`` registered for it: the families of the
machine — fs, mmap, process, signal, time, sys — fill the registry) and ``sys_exit``.
The registers of the functions on its path are the body's (``ctx.regs``), found through
the current task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .callsite import Frame
from .defs import FORK, Tree

if TYPE_CHECKING:
    from ..sched import Task
    from ..syscall_table import Syscall
    from ..trace_events import Tracepoint
    from . import Workload
    from .files import OpenFile
    from .traced import Thread

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
    # fork(2), vfork(2) (dash forks with it) and clone3(2) are kernel_clone() too (the
    # SYSCALL_DEFINE0 wrappers __x64_sys_fork/vfork are not traceable, __do_sys_* are)
    "fork": ("x64_sys_call", "__do_sys_fork", "kernel_clone"),
    "vfork": ("x64_sys_call", "__do_sys_vfork", "kernel_clone"),
    "clone3": ("x64_sys_call", "__x64_sys_clone3", "kernel_clone"),
    "execve": ("x64_sys_call", "__x64_sys_execve"),
    "exit_group": ("x64_sys_call", "__x64_sys_exit_group", "do_group_exit", "do_exit"),
    "wait4": ("x64_sys_call", "__x64_sys_wait4", "kernel_wait4", "do_wait"),
    "prctl": ("x64_sys_call", "__x64_sys_prctl"),
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
    "fork": (FORK[1],), "vfork": (FORK[1],), "clone3": (FORK[1],),
    # alloc_bprm() opens the file; load_elf_binary() opens the interpreter (ld.so)
    "execve": (("alloc_bprm", OPEN_EXEC), ("bprm_execve", ("load_elf_binary", ("open_exec", OPEN_EXEC),
                                                           "begin_new_exec"))),
    "exit_group": (), "wait4": (),
    # security_task_prctl(): capability's hook, then Yama's (both return -ENOSYS)
    "prctl": (("security_task_prctl", "cap_task_prctl", "yama_task_prctl"),),
}
# x86_64 syscall numbers
SYSCALL_NR = {"read": 0, "write": 1, "close": 3, "newfstatat": 262, "openat": 257, "mkdir": 83,
              "rmdir": 84, "getdents64": 217, "clock_nanosleep": 230, "execve": 59,
              "exit_group": 231, "clone": 56, "wait4": 61, "pread64": 17, "mmap": 9, "access": 21,
              "chdir": 80, "open": 2, "symlink": 88, "symlinkat": 266, "prctl": 157}
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
    "prctl": (15, 0x55D1E7B6A4C8, 0, 0, 0),    # PR_SET_NAME, a string in the program
}
# the dynamic loader (glibc's ld.so) of a new image: the libraries it maps
LIB_DIR = "/lib/x86_64-linux-gnu"
LIBS = {"bash": ("libtinfo.so.6", "libc.so.6"), "ls": ("libselinux.so.1", "libc.so.6", "libpcre2-8.so.0")}
EVENTFS_PARENT = 0xFFFF888103E5C300   # the system's struct eventfs_inode
EVENTFS_ENTRIES = 0xFFFFFFFFB1A3C2A0  # event_entries[] (.rodata)

def _file_args(sc: Syscalls) -> tuple[int, ...]:
    return (sc.cur_file, sc.user_buf or 0x7FFC00001000, sc.cur_count or 4096, 0xFFFFC90000003E80)


OPEN_HOW = 0xFFFFC90000003EE8      # do_sys_open()'s struct open_how on the kernel stack
SYMLINK_DIR = 0xFFFF888104A1C9C0   # the parent directory's inode


def _openat2_args(sc: Syscalls) -> tuple[int, ...]:
    """do_sys_openat2(dfd, filename, how): the caller's dfd and pathname pointer."""
    a = sc.sys_args
    if sc.sys_op == "open":
        return (AT_FDCWD, a[0] if a else 0, OPEN_HOW)
    return (a[0] if a else AT_FDCWD, a[1] if len(a) > 1 else 0, OPEN_HOW)


def _symlink_args(sc: Syscalls) -> tuple[int, ...]:
    """vfs_symlink(idmap, dir, dentry, oldname): kernel objects only (oldname is the
    getname() copy of the target)."""
    target = sc.sys_paths[0] if sc.sys_paths and sc.sys_paths[0] else "?"
    return (sc.wl.sites.sym("nop_mnt_idmap"), SYMLINK_DIR, sc.cur_dentry, sc.wl.k.mem.kernel_string(target))


FUNC_ARGS = {
    "do_sys_openat2": _openat2_args,
    "do_sys_open": lambda sc: (AT_FDCWD, *(sc.sys_args[:3] or (0, 0, 0))),
    "vfs_symlink": _symlink_args,
    "vfs_read": _file_args, "vfs_write": _file_args, "rw_verify_area":
        lambda sc: (0, sc.cur_file, 0xFFFFC90000003E80, sc.cur_count or 4096),
    "security_file_permission": lambda sc: (sc.cur_file, 4),
    "dput": lambda sc: (sc.cur_dentry,),
    "vfs_open": lambda sc: (sc.cur_file + 64, sc.cur_file),
    "do_dentry_open": lambda sc: (sc.cur_file, 0),
    "filp_close": lambda sc: (sc.cur_file, 0),
    "fput": lambda sc: (sc.cur_file,),
    "__fput": lambda sc: (sc.cur_file,),
    "ksys_read": lambda sc: (3, 0x7FFC00001000, sc.cur_count or 4096),
    "ksys_write": lambda sc: (1, 0x7FFC00001000, sc.cur_count or 4096),
    "kfree": lambda sc: (0xFFFF888100A00000,),
    "eventfs_create_dir": lambda sc: (sc.cur_dir_name, EVENTFS_PARENT, EVENTFS_ENTRIES, 6, sc.cur_file),
    "kernel_clone": lambda sc: (0xFFFFC90000003F00,),
}
FUNC_RET = {
    "vfs_read": lambda sc: sc.cur_ret, "vfs_write": lambda sc: sc.cur_ret,
    "ksys_read": lambda sc: sc.cur_ret, "ksys_write": lambda sc: sc.cur_ret,
    "kernel_clone": lambda sc: sc.cur_ret,
}




# where a task's pt_regs sit: the top of its kernel stack (THREAD_SIZE 16 KiB), below it the
# frames of the syscall's functions
TASK_STACKS = 0xFFFFC90000200000
PT_REGS_OFF = 0x3F58            # THREAD_SIZE - sizeof(struct pt_regs)
FRAME_OFF = 0x3E00              # a local of the syscall's functions (a loff_t, a struct)


def arg_int(v: int) -> int:
    """An ``int`` argument register: its low 32 bits, signed."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def arg_long(v: int) -> int:
    """A ``long`` argument register, signed."""
    return v - (1 << 64) if v >= 1 << 63 else v


def task_stack(pid: int) -> int:
    """The base of task ``pid``'s kernel stack (one 16 KiB slot per pid)."""
    return TASK_STACKS + (pid & 0xFFFF) * 0x4000


@dataclass(slots=True, eq=False)
class SyscallCtx:
    """One real syscall of a traced host task in progress: what its body works with.

    ``regs``/``rets`` are the argument registers and return values of the functions on
    its path (what probes on them fetch), filled by its body; a function of the open
    chain without an entry in ``rets`` returns the syscall's value."""

    sc: Syscall
    args: tuple[int, ...]
    caps: dict[int, bytes]              # argument index -> the user memory read at the entry
    thread: Thread
    file: OpenFile | None = None        # the open file its fd argument names
    frames: list[Frame] = field(default_factory=list)   # its open call chain
    regs: dict[str, tuple[int, ...]] = field(default_factory=dict)
    rets: dict[str, int | None] = field(default_factory=dict)   # None: the syscall's value
    ret: int | None = None              # its real return value, once known
    outs: dict[int, bytes] = field(default_factory=dict)  # argument index -> output read at the exit
    entered: bool = True                # its entry was seen (False: only its exit is shown)
    ran: bool = False                   # its path ran (Syscalls.run)
    compat: bool = False                # an i386 syscall (int 0x80), numbered as on i386
    t0: int = 0                         # boot ns of its entry
    data: dict[str, int] = field(default_factory=dict)   # what its path leaves its return

    @property
    def task(self) -> Task:
        return self.thread.task

    @property
    def pt_regs(self) -> int:
        return task_stack(self.thread.task.pid) + PT_REGS_OFF

    @property
    def frame(self) -> int:
        """An address in the syscall's stack frames (its locals: a loff_t, an open_how)."""
        return task_stack(self.thread.task.pid) + FRAME_OFF


@dataclass(frozen=True, slots=True)
class Body:
    """What the simulated kernel does for one syscall between its entry and its exit
    tracepoints, below ``x64_sys_call`` → ``__x64_sys_NAME``.

    ``enter`` runs the path up to where the syscall could sleep: it opens the chain that
    stays entered until the return (``Syscalls.open``) and calls what runs on the way
    (``Syscalls.call``), with the real registers.  It runs once the syscall's outcome is
    known or needed: at its exit (``ctx.ret`` is the real value, so a failing call takes
    its error path), or earlier when a request of the task reaches the mount, it has
    slept past the horizon or a waker needs it asleep (``ctx.ret`` is None: the
    successful path).  ``exit`` runs once it returns (after it was woken), before the
    chain returns.  ``wake`` is how the task was woken when nothing the model saw woke
    it: it runs the waker's path at the given time on the task's CPU (the hrtimer
    interrupt of a sleep) and returns True, or returns False for the default (a wakeup
    in the CPU's idle context).  The families of the machine (fs, mm, net, process,
    time…) register their bodies with ``Syscalls.register``."""

    enter: Callable[[SyscallCtx], None] | None = None
    exit: Callable[[SyscallCtx, int], None] | None = None
    wake: Callable[[SyscallCtx, int], bool] | None = None


class Syscalls:
    """The syscall in progress on the current task and its entry/exit paths."""

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.cur_name = "null"
        self.cur_count = 0
        self.cur_ret = 0
        self.sys_args: tuple[int, ...] = ()
        self.sys_op = ""
        self.sys_paths: tuple[str, ...] = ()
        self.cur_file = self.cur_dentry = 0
        self.user_buf = 0
        self.cur_dir_name = 0
        self.bodies: dict[str, Body] = {}
        self.ctxs: dict[int, SyscallCtx] = {}     # pid -> its traced syscall that ran
        self._provided: set[str] = set()
        self._provided_trees: set[Tree | str] = set()   # every name of these is provided
        self._event_tps: dict[int, tuple[Tracepoint | None, Tracepoint | None]] = {}
        self._raw_enter = self._raw("sys_enter")
        self._raw_exit = self._raw("sys_exit")
        for name in FUNC_ARGS.keys() | FUNC_RET.keys():
            self._provide(name)

    def _raw(self, name: str) -> Tracepoint:
        tp = self.wl.tracepoint(name)
        if tp is None:
            raise RuntimeError(f"no raw_syscalls:{name} tracepoint")
        return tp

    def begin(self, op: str, args: tuple[int, ...] = (), name: str = "",
              count: int = 0, path: str | tuple[str, ...] = "") -> list[Frame]:
        """Entry of a syscall in the current task: tracepoints, then its call chain.

        ``path`` is the pathname the caller passed (openat/newfstatat/mkdir/rmdir): it is
        placed in the task's user memory and its address becomes the filename argument,
        so ``+0($arg2):ustring`` and ``$filename`` fetches read it."""
        wl = self.wl
        if wl.quiet():
            return []  # nothing attached: the path would leave no trace, skip it
        paths = (path,) if isinstance(path, str) else tuple(path)
        self.cur_name = name or "null"
        self.cur_count = count
        self.cur_file, self.cur_dentry = wl.k.mem.file_object(self.cur_name)
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
                    regs[i] = wl.k.mem.user_path(p, slot)
                args = tuple(regs)
        self.sys_args = args
        self.sys_op = op
        self.sys_paths = paths
        return self._enter(op, sc, nr, args, SYSCALL_ENTRY.get(op, ("x64_sys_call",)))

    def register(self, name: str, body: Body) -> None:
        """``name``'s body (by the syscall table's name): one per syscall."""
        if name in self.bodies:
            raise ValueError(f"syscall {name} has a body already")
        self.bodies[name] = body

    # ------------------------------------------------------------------ traced syscalls
    def sys_enter(self, ctx: SyscallCtx) -> None:
        """The entry tracepoints of a traced task's syscall (syscall_trace_enter(): the
        raw_syscalls:sys_enter event, then ftrace_syscall_enter()'s syscalls:* event);
        an i386 syscall has no syscalls:* event (trace_get_syscall_nr() says -1)."""
        sc = ctx.sc
        tp = self._raw_enter
        if tp.enabled:
            tp.fire(sc.nr, list(ctx.args))
        if not ctx.compat:
            tp = self._tracepoints(sc)[0]
            if tp is not None and tp.enabled:
                self._fire_syscall_event(tp, sc.nr, *ctx.args)

    def _tracepoints(self, sc: Syscall) -> tuple[Tracepoint | None, Tracepoint | None]:
        """``sc``'s syscalls:sys_enter_NAME and sys_exit_NAME tracepoints, looked up once
        per number (None for a number the kernel does not implement: it has none)."""
        tps = self._event_tps.get(sc.nr)
        if tps is None or sc.entry is None:
            ev = sc.event
            tps = ((self.wl.tracepoint(f"sys_enter_{ev}"), self.wl.tracepoint(f"sys_exit_{ev}"))
                   if ev else (None, None))
            self._event_tps[sc.nr] = tps
        return tps

    def run(self, ctx: SyscallCtx) -> None:
        """do_syscall_64() → x64_sys_call() → __x64_sys_NAME(): the syscall's path up to
        where it could sleep (its body's ``enter``)."""
        ctx.ran = True
        sc = ctx.sc
        self.ctxs[ctx.thread.task.pid] = ctx
        if ctx.compat:
            return      # do_int80_syscall_32() → ia32_sys_call(): not modelled
        regs = ctx.pt_regs
        ctx.regs["x64_sys_call"] = (regs, sc.nr)
        symbol = sc.symbol or "__x64_sys_ni_syscall"
        ctx.regs[symbol] = (regs,)
        self.open(ctx, "x64_sys_call", symbol)
        body = self.bodies.get(sc.name)
        if body is not None and body.enter is not None:
            body.enter(ctx)

    def sys_exit(self, ctx: SyscallCtx, ret: int) -> None:
        """The syscall returns ``ret`` (its real value; -errno on failure): its body's
        ``exit``, the returns of its chain, then syscall_exit_work()'s tracepoints
        (ftrace_syscall_exit()'s syscalls:* event, then raw_syscalls:sys_exit)."""
        wl = self.wl
        sc = ctx.sc
        ctx.ret = ret
        if ctx.ran:
            body = self.bodies.get(sc.name)
            if body is not None and body.exit is not None:
                body.exit(ctx, ret)
            wl.sites.leave_chain(ctx.frames)
            ctx.frames = []
            if self.ctxs.get(ctx.thread.task.pid) is ctx:
                del self.ctxs[ctx.thread.task.pid]
        if not ctx.compat:
            tp = self._tracepoints(sc)[1]
            if tp is not None and tp.enabled:
                self._fire_syscall_event(tp, sc.nr, ret)
        tp = self._raw_exit
        if tp.enabled:
            tp.fire(sc.nr, ret)
        wl.entry.syscall_exit(ctx, ret)

    def abandon(self, ctx: SyscallCtx) -> None:
        """The task left the syscall without returning (do_exit() inside it): its frames
        never return."""
        pid = ctx.thread.task.pid
        if self.ctxs.get(pid) is ctx:
            del self.ctxs[pid]
        stack = self.wl.sites.stacks.get(id(ctx.thread.task))
        if stack:
            del stack[max(0, len(stack) - len(ctx.frames)):]
        ctx.frames = []

    def rekey(self, ctx: SyscallCtx, old_pid: int) -> None:
        """The task of ``ctx`` changed pid (a non-leader's exec took the leader's)."""
        if self.ctxs.get(old_pid) is ctx:
            del self.ctxs[old_pid]
            self.ctxs[ctx.thread.task.pid] = ctx

    def open(self, ctx: SyscallCtx, *names: str) -> None:
        """Enter ``names`` (each calling the next) below the syscall's open chain, left
        open until its return.  Their registers are ``ctx.regs[name]``; without an entry
        in ``ctx.rets`` they return the syscall's value."""
        sites = self.wl.sites
        provided = self._provided
        rets = ctx.rets
        for name in names:
            if name not in provided:
                self._provide(name)
            if name not in rets:
                rets[name] = None
        parent = ctx.frames[-1][1] if ctx.frames else None
        ctx.frames += sites.enter_chain(names, parent)

    def close(self, ctx: SyscallCtx, n: int) -> None:
        """The innermost ``n`` open functions return (before the syscall does)."""
        if n <= 0:
            return
        frames = ctx.frames[-n:]
        del ctx.frames[-n:]
        self.wl.sites.leave_chain(frames)

    def close_to(self, ctx: SyscallCtx, name: str) -> None:
        """The open functions called by ``name`` return (``name`` stays open)."""
        for i in range(len(ctx.frames) - 1, -1, -1):
            if ctx.frames[i][1] == name:
                self.close(ctx, len(ctx.frames) - 1 - i)
                return

    def call(self, ctx: SyscallCtx, tree: Tree | str, parent: str | None = None) -> None:
        """Run ``tree`` (a function and its callees) to its return, called from
        ``parent`` (default: the innermost open function), with the registers and
        return values of ``ctx.regs``/``ctx.rets`` (0 when not given)."""
        sites = self.wl.sites
        if not sites.armed():
            return
        # its names' register sources, as soon as anything is armed (whether this tree
        # is live or not): another path may walk one of them before this one does
        if tree not in self._provided_trees:
            self._provide_tree(tree)
            self._provided_trees.add(tree)
        if not sites.live(tree):
            return
        sites.walk(tree, parent if parent is not None else ctx.frames[-1][1] if ctx.frames else None)

    def _provide_tree(self, tree: Tree | str) -> None:
        if isinstance(tree, str):
            self._provide(tree)
            return
        self._provide(tree[0])
        for kid in tree[1:]:
            self._provide_tree(kid)

    def _provide(self, name: str) -> None:
        """Register ``name``'s argument and return-value sources: the current task's
        traced syscall when it has them, else the simulated workload's (FUNC_ARGS)."""
        if name in self._provided:
            return
        self._provided.add(name)
        legacy_args = FUNC_ARGS.get(name)
        legacy_ret = FUNC_RET.get(name)
        ctxs = self.ctxs
        sched = self.wl.k.sched

        def args() -> tuple[int, ...]:
            ctx = ctxs.get(sched.current.pid)
            if ctx is not None:
                regs = ctx.regs.get(name)
                if regs is not None:
                    return regs
            return legacy_args(self) if legacy_args is not None else ()

        def ret() -> tuple[int, ...]:
            ctx = ctxs.get(sched.current.pid)
            if ctx is not None and name in ctx.rets:
                value = ctx.rets[name]
                return (ctx.ret or 0 if value is None else value,)
            return (legacy_ret(self) if legacy_ret is not None else 0,)

        self.wl.sites.args[name] = args
        self.wl.sites.rets[name] = ret

    def _enter(self, op: str, event: str, nr: int, args: tuple[int, ...],
               chain: tuple[str, ...], leaves: bool = True) -> list[Frame]:
        """do_syscall_64(): the sys_enter tracepoint (raw_syscalls:sys_enter, then the
        syscalls:sys_enter_NAME probe, which records with preemption disabled once more:
        its preempt depth is 1), the call chain left open, the leaves of its body."""
        wl = self.wl
        tp = wl.tp("sys_enter")
        if tp:
            a = (list(args) + [0] * 6)[:6]
            tp.fire(nr, a)
        tp = wl.tp(f"sys_enter_{event}")
        if tp:
            self._fire_syscall_event(tp, nr, *args)
        frames = wl.sites.enter_chain(chain)
        if not leaves:
            return frames
        parent = chain[-1] if chain else None
        for leaf in SYSCALL_LEAVES.get(op, ()):
            wl.sites.call(leaf, parent)
        if op in ("openat", "open", "newfstatat", "mkdir", "rmdir"):
            # getname_flags() copies the path into a names_cache buffer; putname() frees it
            names = wl.slab.cache_alloc("names_cache", "getname_flags")
            if op in ("openat", "open"):
                wl.slab.cache_alloc("filp", "alloc_empty_file", self.cur_file)
            wl.slab.cache_free("names_cache", "putname", names)
        return frames

    def end(self, op: str, frames: list[Frame], ret: int = 0) -> None:
        if not frames and self.wl.quiet():
            return
        sc = SYSCALL_ALIAS.get(op, op)
        self._leave(op, sc, SYSCALL_NR.get(sc, 0), frames, ret)

    def _leave(self, op: str, event: str, nr: int, frames: list[Frame], ret: int) -> None:
        wl = self.wl
        self.cur_ret = ret
        if op == "close":
            wl.sites.call(("__fput", "dput"), "fput")
        wl.sites.leave_chain(frames)
        tp = wl.tp(f"sys_exit_{event}")
        if tp:
            self._fire_syscall_event(tp, nr, ret)
        tp = wl.tp("sys_exit")
        if tp:
            tp.fire(nr, ret)
        if op == "close":
            # the last fput() defers __fput() to task_work: it runs on the way to user space
            wl.slab.cache_free("filp", "__fput", self.cur_file)

    def _fire_syscall_event(self, tp: Tracepoint, *values: int) -> None:
        """ftrace_syscall_enter/exit(): guard(preempt_notrace) inside the tracepoint's own
        preempt-disabled section, and trace_event_buffer_reserve() takes one level off:
        the record shows preempt depth 1 (``...1.``)."""
        sched = self.wl.k.sched
        saved = sched.preempt_count
        sched.preempt_count = saved + 1
        try:
            tp.fire_defaults(*values)
        finally:
            sched.preempt_count = saved

    def eventfs_create_dir(self, name: str) -> None:
        """event_create_dir() of a new event: ``eventfs_create_dir(name, parent, entries,
        size, data)`` in the task that added it, ``name`` a kernel string (probes on it
        fetch ``+0(%di):string``)."""
        wl = self.wl
        self.cur_dir_name = wl.k.mem.kernel_string(name)
        wl.sites.call("eventfs_create_dir", "trace_add_event_call")

    def syscall(self, op: str, args: tuple[int, ...] = (), name: str = "", count: int = 0,
                path: str = "") -> None:
        """A whole syscall of a simulated task, returning what it would (fd, bytes).
        ``path``: the pathname it passes (its last component names the file)."""
        ret = 3 if op in ("openat", "open") else count if op in ("read", "write", "pread64") else 0
        if path and not name:
            name = path.rpartition("/")[2]
        self.end(op, self.begin(op, args, name, count, path), ret)

