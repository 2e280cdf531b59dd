"""Syscalls of the simulated tasks and of requests that reach the mount
(arch/x86/entry: do_syscall_64 → x64_sys_call → __x64_sys_NAME → …).

A syscall in progress is entered (``begin``: the raw_syscalls and syscalls:* entry
tracepoints, then its call chain left open) and left (``end``: the chain's returns and the
exit tracepoints).  The argument registers of the functions on the way (vfs_read's file
and count, do_sys_openat2's pathname pointer) come from the syscall in progress, so
probes with fetch args see the values a real call would pass.
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




@dataclass(slots=True)
class SyscallCtx:
    """One real syscall in progress (a traced host task's): what its body works with."""

    sc: Syscall
    args: tuple[int, ...]
    caps: dict[int, bytes]       # argument index -> the user memory the tracer read
    task: Task
    fname: str                   # the file behind its fd or path ("" when none)
    frames: list[Frame]          # its open call chain
    data: dict[str, int] = field(default_factory=dict)   # what its entry part leaves its exit


@dataclass(frozen=True, slots=True)
class Body:
    """What the simulated kernel does for one syscall between its entry and its exit
    tracepoints, beyond the entry chain: ``enter`` right after the chain is entered
    (the registers are real), ``exit`` once the real return value is known, before the
    chain returns.  The families of the machine (fs, mm, net, process, time…) register
    the bodies of their syscalls with ``Syscalls.register``."""

    enter: Callable[[SyscallCtx], None] | None = None
    exit: Callable[[SyscallCtx, int], None] | None = None


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
        for name, fn in FUNC_ARGS.items():
            wl.sites.args[name] = self._bind(fn)
        for name, fn in FUNC_RET.items():
            wl.sites.rets[name] = self._bind_ret(fn)

    def _bind(self, fn: Callable[[Syscalls], tuple[int, ...]]) -> Callable[[], tuple[int, ...]]:
        return lambda: fn(self)

    def _bind_ret(self, fn: Callable[[Syscalls], int]) -> Callable[[], tuple[int, ...]]:
        return lambda: (fn(self),)

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

    def enter(self, sc: Syscall, args: tuple[int, ...], caps: dict[int, bytes] | None = None,
              fname: str = "", count: int = 0) -> SyscallCtx:
        """A traced host task's real syscall enters, with its number and registers and the
        user memory the tracer read (``caps``: argument index -> bytes); ``fname`` names
        the file behind its fd or path (what probes on the way see in
        ``file->f_path.dentry->d_name.name``), ``count`` its byte count.  Its body's
        entry part runs (or, without a body, the leaves of the legacy tables)."""
        wl = self.wl
        self.cur_name = fname or "null"
        self.cur_count = count
        self.cur_file, self.cur_dentry = wl.k.mem.file_object(self.cur_name)
        self.sys_args = args
        self.sys_op = sc.name
        self.sys_paths = ()
        chain = SYSCALL_ENTRY.get(sc.name) or ("x64_sys_call", sc.symbol or "__x64_sys_ni_syscall")
        body = self.bodies.get(sc.name)
        ctx = SyscallCtx(sc, args, caps or {}, wl.k.sched.current, fname, [])
        ctx.frames = self._enter(sc.name, sc.event or "", sc.nr, args, chain,
                                 leaves=body is None)
        if body is not None and body.enter is not None:
            body.enter(ctx)
        return ctx

    def exit(self, ctx: SyscallCtx, ret: int) -> None:
        """The traced syscall returns ``ret`` (its real value; -errno on failure): its
        body's exit part, then the returns of its chain and the exit tracepoints."""
        sc = ctx.sc
        body = self.bodies.get(sc.name)
        if body is not None and body.exit is not None:
            body.exit(ctx, ret)
        self._leave(sc.name, sc.event or "", sc.nr, ctx.frames, ret)

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

