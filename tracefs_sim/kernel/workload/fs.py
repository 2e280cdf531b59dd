"""The VFS syscalls of traced host tasks (fs/read_write.c, open.c, stat.c, readdir.c,
namei.c, pipe.c, file.c, fcntl.c, ioctl.c, d_path.c): their paths below
``__x64_sys_NAME`` with the registers each function really gets.

vfs_read/vfs_write get the open file behind the fd (``file->f_path.dentry->d_name.name``
names it), the user buffer, the real count and the position (the caller's stack
``loff_t``, NULL for a stream: pipes, sockets); do_sys_openat2 and getname get the
caller's pathname pointer (``+0($arg2):ustring`` reads the captured path); getname hands
a ``struct filename`` whose ``name`` is the kernel copy.  A failing call takes its error
path (an openat that fails the lookup never reaches vfs_open; a read of a bad fd stops in
ksys_read).  A write to a pipe wakes the task asleep reading it; a write to a pipe or
socket nobody reads (-EPIPE) sends SIGPIPE.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..lib import MASK64
from .defs import T_ASLEEP
from .files import DIRECTORY, PIPE, REGULAR, SOCKET, TTY, OpenFile
from .fs9p.vfs import V9fs, V9Open
from .signal import SI_USER, SIGPIPE
from .syscall_define import SyscallDefines
from .syscalls import SyscallCtx, arg_int

if TYPE_CHECKING:
    from . import Workload
    from .fs9p.vfs import Dentry
    from .traced import Proc, Thread

AT_FDCWD = 0xFFFFFF9C       # -100 as the int register
AT_EMPTY_PATH = 0x1000
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
O_WRONLY, O_CREAT, O_TRUNC = 0o1, 0o100, 0o1000
O_LARGEFILE = 0o100000
MAY_WRITE, MAY_READ = 2, 4
READ, WRITE = 0, 1
STATX_BASIC_STATS = 0x7FF
LOOKUP_FOLLOW, LOOKUP_RCU = 0x1, 0x40
RLIMIT_NOFILE_CUR = 1024
EBADF, EPIPE, ESPIPE = 9, 32, 29
FILENAME = struct.Struct("<QQiiQ")      # struct filename: name, uptr, refcnt, pad, aname
NAMES_ISIZE = FILENAME.size             # iname[] follows
READ_ITER = {PIPE: "pipe_read", TTY: "tty_read", SOCKET: "sock_read_iter"}
WRITE_ITER = {PIPE: "pipe_write", TTY: "tty_write", SOCKET: "sock_write_iter"}
# read_write.c's plain reads and writes: (READ/WRITE, their ksys_*, with a position)
KSYS_RW = {"read": (READ, "ksys_read", False), "write": (WRITE, "ksys_write", False),
           "pread64": (READ, "ksys_pread64", True), "pwrite64": (WRITE, "ksys_pwrite64", True)}
READS = frozenset(("read", "readv", "pread64", "preadv", "preadv2"))
V9FS = "9p"                 # the file-ops kind of a file of the 9P root
STAT_BUF = {"stat": 1, "lstat": 1, "fstat": 1, "newfstatat": 2, "statx": 4}   # the buffer's argument
S_IFMT, S_IFDIR = 0o170000, 0o040000
# A kind of file's read_iter/write_iter below vfs_read/vfs_write: (ctx, READ/WRITE, the
# file, its position (None: a stream), the count).  Families register their own kinds.
FileIo = Callable[[SyscallCtx, int, OpenFile, "int | None", int], None]


def err_ptr(ret: int) -> int:
    """ERR_PTR(ret) as a register."""
    return ret & MASK64


class Fs:
    """The bodies of the VFS syscalls."""

    SYSCALLS = SyscallDefines()

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.v9fs = V9fs(wl)
        # per kind of file: what its read_iter/write_iter run (``register_io``)
        self.io: dict[str, FileIo] = {PIPE: self._iter_io, TTY: self._iter_io, SOCKET: self._sock_io,
                                      V9FS: self._v9_io}
        self.SYSCALLS.register(wl.syscalls, self)

    def register_io(self, kind: str, io: FileIo) -> None:
        """What the read_iter/write_iter of files of ``kind`` run (a family's)."""
        self.io[kind] = io

    # ------------------------------------------------------------------ helpers
    def _file(self, f: OpenFile | None) -> int:
        """The struct file of ``f`` (named by its dentry)."""
        return self.wl.k.mem.file_object(f.name if f is not None else "")[0]

    def _f_path(self, f: OpenFile | None) -> int:
        """&file->f_path of ``f``'s struct file."""
        mem = self.wl.k.mem
        return self._file(f) + mem.offset("file", "f_path")

    def _path(self, ctx: SyscallCtx, i: int) -> str:
        raw = ctx.caps.get(i)
        return raw.decode("utf-8", "surrogateescape") if raw is not None else ""

    def getname(self, ctx: SyscallCtx, i: int, flags: int = 0, parent: str | None = None) -> int:
        """getname_flags(): the pathname argument ``i`` copied into a names_cache buffer
        (a ``struct filename`` whose ``name`` is the kernel copy); its address."""
        wl = self.wl
        proc = ctx.thread.proc
        mem = wl.k.mem
        if not proc.names:
            proc.names = mem.alloc(4096)
        raw = ctx.caps.get(i, b"")[:4096 - NAMES_ISIZE - 1]
        addr = proc.names
        mem.write(addr, FILENAME.pack(addr + NAMES_ISIZE, ctx.args[i], 1, 0, 0) + raw + b"\0")
        ctx.regs["getname"] = (ctx.args[i],)
        ctx.regs["getname_flags"] = (ctx.args[i], flags)
        ctx.rets["getname"] = ctx.rets["getname_flags"] = addr
        ctx.rets["kmem_cache_alloc_noprof"] = addr
        s = wl.syscalls
        s.call(ctx, ("getname", ("getname_flags", "kmem_cache_alloc_noprof")) if flags == 0
               else ("getname_flags", "kmem_cache_alloc_noprof"), parent)
        wl.slab.cache_alloc("names_cache", "getname_flags", addr)
        return addr

    def _putname(self, ctx: SyscallCtx, name: int) -> None:
        ctx.regs["putname"] = (name,)
        self.wl.syscalls.call(ctx, "putname")
        self.wl.slab.cache_free("names_cache", "putname", name)

    def _fdget(self, ctx: SyscallCtx, fd: int, fn: str = "fdget_pos") -> bool:
        """fdget_pos(fd) (or fdget): False when the fd is bad (the call fails -EBADF).
        An fd the model cannot name (inherited, and gone from /proc by the time the
        record is read) is good when the call's real return says so."""
        good = ctx.ret != -EBADF and (ctx.file is not None or ctx.ret is not None)
        ctx.regs[fn] = (fd & 0xFFFFFFFF,)
        ctx.rets[fn] = self._file(ctx.file) if good else 0
        self.wl.syscalls.call(ctx, fn)
        return good

    def _verify(self, ctx: SyscallCtx, rw: int, file: int, pos: int, count: int) -> None:
        """rw_verify_area() → security_file_permission()."""
        ctx.regs["rw_verify_area"] = (rw, file, pos, count)
        ctx.regs["security_file_permission"] = (file, MAY_WRITE if rw == WRITE else MAY_READ)
        ctx.rets["rw_verify_area"] = ctx.rets["security_file_permission"] = 0
        self.wl.syscalls.call(ctx, ("rw_verify_area", "security_file_permission"))

    def _rw(self, ctx: SyscallCtx, rw: int, vfs: str, buf: int, count: int, pos: int | None) -> None:
        """vfs_read/vfs_write(file, buf, count, pos) and the file's read_iter/write_iter,
        left open (a pipe read sleeps in pipe_read).  ``pos``: pread/pwrite's offset
        (None: the file's position)."""
        s = self.wl.syscalls
        f = ctx.file
        file = self._file(f)
        ppos = 0 if f is None or f.stream else ctx.frame
        ctx.regs[vfs] = (file, buf, count, ppos)
        s.open(ctx, vfs)
        self._verify(ctx, rw, file, ppos, count)
        if f is not None:
            self._file_io(ctx, rw, f, pos, count)
        if rw == WRITE:
            self._after_write(ctx)

    def _file_io(self, ctx: SyscallCtx, rw: int, f: OpenFile, pos: int | None, count: int) -> None:
        """The file's read_iter/write_iter, by the kind of file (``register_io``)."""
        io = self.io.get(V9FS if f.v9 is not None else f.kind)
        if io is not None:
            io(ctx, rw, f, None if f.stream else pos, count)

    def _iter_io(self, ctx: SyscallCtx, rw: int, f: OpenFile, pos: int | None, count: int) -> None:
        """A pipe's, tty's or socket's read_iter/write_iter, left open (a read may sleep
        in it)."""
        op = (WRITE_ITER if rw == WRITE else READ_ITER)[f.kind]
        ctx.regs[op] = (ctx.frame + 0x40, ctx.frame + 0x80)   # the kiocb, the iov_iter
        self.wl.syscalls.open(ctx, op)

    def _sock_io(self, ctx: SyscallCtx, rw: int, f: OpenFile, pos: int | None, count: int) -> None:
        """sock_read_iter()/sock_write_iter(): the socket's path is the network family's."""
        self._iter_io(ctx, rw, f, pos, count)
        net = self.wl.net
        (net.write_iter if rw == WRITE else net.read_iter)(ctx, f, count)

    def _v9_io(self, ctx: SyscallCtx, rw: int, f: OpenFile, pos: int | None, count: int) -> None:
        """A 9P file's v9fs_file_read_iter/write_iter at ``pos`` (the file's position for
        read/write; pread's own), moving the bytes the syscall really moved."""
        vo = f.v9
        assert vo is not None
        at = f.pos if pos is None else pos
        done = count if ctx.ret is None else ctx.ret
        if rw == WRITE:
            self.v9fs.write(ctx, vo, at, count, done)
        else:
            self.v9fs.read(ctx, vo, at, count, done)

    @SYSCALLS.exit("read", "readv")
    def _read_exit(self, ctx: SyscallCtx, ret: int) -> None:
        """read/readv returned: the position moves; a socket read that waited ends in
        the network family."""
        self._advance(ctx, ret)
        f = ctx.file
        if f is not None and f.kind == SOCKET and f.sock is not None and "wait" in ctx.data \
                and "done" not in ctx.data:
            self.wl.net.finish_recv(ctx, f.sock, ret)

    @SYSCALLS.exit("write", "writev")
    def _advance(self, ctx: SyscallCtx, ret: int) -> None:
        """read/write/readv/writev moved the file position by what they moved (an
        O_APPEND write's to the file's end)."""
        f = ctx.file
        if f is None or f.v9 is None or ret < 0:
            return
        if ctx.sc.name in ("write", "writev") and f.v9.flags & 0o2000:
            f.pos = f.v9.inode.size if f.v9.dentry.inode is not None else f.pos + ret
        else:
            f.pos += ret

    @SYSCALLS.exit("lseek")
    def _seeked(self, ctx: SyscallCtx, ret: int) -> None:
        """lseek() returns the new position."""
        if ctx.file is not None and ret >= 0:
            ctx.file.pos = ret

    def _after_write(self, ctx: SyscallCtx) -> None:
        """What a write to a pipe does to others: the reader asleep on it wakes
        (pipe_write's wake_up_interruptible_sync_poll); nobody reading: SIGPIPE."""
        f = ctx.file
        if f is None or f.kind not in (PIPE, SOCKET):
            return
        wl = self.wl
        tr = wl.traced
        if ctx.ret == -EPIPE:
            # send_sig(SIGPIPE, current, 0)
            wl.signals.generate(SIGPIPE, 0, SI_USER, ctx.thread.proc, ctx.thread)
            return
        if f.pipe is None or (ctx.ret is not None and ctx.ret <= 0):
            return
        for t in list(tr.sleepers()):
            p = t.pending
            if (p is not None and t is not ctx.thread and p.ctx.sc.name in READS
                    and p.ctx.file is not None and p.ctx.file.pipe is f.pipe and p.t0 <= ctx.t0):
                tr.ensure_asleep(t)
                if t.state == T_ASLEEP:
                    tr.wake(t, wl.k.sched.cpu, locks=1)     # the pipe's rd_wait lock

    # ------------------------------------------------------------------ read_write.c
    @SYSCALLS.enter("read", "write", "pread64", "pwrite64")
    def _ksys(self, ctx: SyscallCtx) -> None:
        """read/write() → ksys_read/ksys_write(fd, buf, count) → fdget_pos(), vfs_read/
        vfs_write(); pread64/pwrite64() → ksys_pread64/ksys_pwrite64(fd, buf, count, pos)
        → fdget(), vfs_read/vfs_write(&pos)."""
        rw, ksys, positioned = KSYS_RW[ctx.sc.name]
        fd, buf, count = ctx.args[0], ctx.args[1], ctx.args[2]
        ctx.regs[ksys] = (fd & 0xFFFFFFFF, buf, count, ctx.args[3]) if positioned else \
            (fd & 0xFFFFFFFF, buf, count)
        self.wl.syscalls.open(ctx, ksys)
        if self._fdget(ctx, fd, "fdget" if positioned else "fdget_pos"):
            self._rw(ctx, rw, "vfs_write" if rw == WRITE else "vfs_read", buf, count,
                     ctx.args[3] if positioned else None)

    @SYSCALLS.enter("readv", "writev")
    def _vec(self, ctx: SyscallCtx) -> None:
        """readv/writev() → do_readv/do_writev(fd, vec, vlen, 0) → vfs_readv/vfs_writev(
        file, vec, vlen, pos, 0) → do_iter_readv_writev() → the file's iter op."""
        s = self.wl.syscalls
        rw = WRITE if ctx.sc.name == "writev" else READ
        fd, vec, vlen = ctx.args[:3]
        top, vfs = ("do_writev", "vfs_writev") if rw == WRITE else ("do_readv", "vfs_readv")
        ctx.regs[top] = (fd, vec, vlen, 0)
        s.open(ctx, top)
        if not self._fdget(ctx, fd):
            return
        f = ctx.file
        file = self._file(f)
        ppos = 0 if f is None or f.stream else ctx.frame
        ctx.regs[vfs] = (file, vec, vlen, ppos, 0)
        s.open(ctx, vfs)
        self._verify(ctx, rw, file, ppos, ctx.ret if ctx.ret is not None and ctx.ret > 0 else 0)
        ctx.regs["do_iter_readv_writev"] = (file, ctx.frame + 0x80, ppos, rw, 0)
        s.open(ctx, "do_iter_readv_writev")
        if f is not None:
            # a socket's readv before its return: at most a page run's worth waits
            count = ctx.ret if ctx.ret is not None and ctx.ret > 0 else (
                1 << 16 if f.kind == SOCKET else 0)
            self._file_io(ctx, rw, f, None, count)
        if rw == WRITE:
            self._after_write(ctx)

    @SYSCALLS.enter("lseek")
    def _lseek(self, ctx: SyscallCtx) -> None:
        """lseek() → ksys_lseek() → fdget_pos(), vfs_llseek() → the file's llseek."""
        s = self.wl.syscalls
        fd, off, whence = ctx.args[:3]
        ctx.regs["ksys_lseek"] = (fd, off, whence)
        s.open(ctx, "ksys_lseek")
        if not self._fdget(ctx, fd):
            return
        file = self._file(ctx.file)
        ctx.regs["vfs_llseek"] = (file, off, whence)
        s.open(ctx, "vfs_llseek")
        if ctx.ret != -ESPIPE and ctx.file is not None and ctx.file.kind not in (PIPE, SOCKET):
            ctx.regs["generic_file_llseek"] = (file, off, whence)
            s.call(ctx, "generic_file_llseek")

    # ------------------------------------------------------------------ open.c
    @SYSCALLS.enter("openat")
    def _openat(self, ctx: SyscallCtx) -> None:
        """openat() → do_sys_open() → do_sys_openat2(dfd, filename, &how)."""
        self._openat2_path(ctx, ctx.args[0] & 0xFFFFFFFF, 1, arg_int(ctx.args[2]) | O_LARGEFILE,
                           ctx.args[3] & 0o7777)

    @SYSCALLS.enter("open")
    def _open(self, ctx: SyscallCtx) -> None:
        ctx.regs["do_sys_open"] = (AT_FDCWD, ctx.args[0], ctx.args[1], ctx.args[2])
        self.wl.syscalls.open(ctx, "do_sys_open")
        self._openat2_path(ctx, AT_FDCWD, 0, arg_int(ctx.args[1]) | O_LARGEFILE, ctx.args[2] & 0o7777)

    @SYSCALLS.enter("creat")
    def _creat(self, ctx: SyscallCtx) -> None:
        flags = O_CREAT | O_WRONLY | O_TRUNC | O_LARGEFILE
        ctx.regs["do_sys_open"] = (AT_FDCWD, ctx.args[0], flags, ctx.args[1])
        self.wl.syscalls.open(ctx, "do_sys_open")
        self._openat2_path(ctx, AT_FDCWD, 0, flags, ctx.args[1] & 0o7777)

    @SYSCALLS.enter("openat2")
    def _openat2(self, ctx: SyscallCtx) -> None:
        raw = ctx.caps.get(2, b"")
        flags = int.from_bytes(raw[:8], "little") if len(raw) >= 8 else 0
        mode = int.from_bytes(raw[8:16], "little") & 0o7777 if len(raw) >= 16 else 0
        self._openat2_path(ctx, ctx.args[0] & 0xFFFFFFFF, 1, flags, mode)

    def _base(self, ctx: SyscallCtx, dfd: int, path: str) -> tuple[bool, Dentry | None]:
        """Where ``path`` starts on the 9P root: (False, None) when it is not there (a
        relative path from an fd of another file system); (True, the directory dfd
        names) for a relative path from a 9P directory's fd; (True, None) otherwise (the
        root, or the working directory)."""
        if path.startswith("/") or dfd == AT_FDCWD:
            return True, None
        f = self.wl.traced.file(ctx.thread.proc, arg_int(dfd))
        if f is None or f.v9 is None:
            return False, None
        return True, f.v9.dentry

    def _openat2_path(self, ctx: SyscallCtx, dfd: int, i: int, flags: int, mode: int) -> None:
        """do_sys_openat2(): getname(), get_unused_fd_flags(), do_filp_open() →
        path_openat() → (found) vfs_open() → do_dentry_open() — left open, the file's
        open may be a request of the mount's; fd_install or put_unused_fd and putname at
        the return."""
        wl = self.wl
        s = wl.syscalls
        how = ctx.frame + 0x20
        ctx.regs["do_sys_openat2"] = (dfd, ctx.args[i], how)
        s.open(ctx, "do_sys_openat2")
        name = self.getname(ctx, i)
        ctx.data["name"] = name
        proc = ctx.thread.proc
        fd = ctx.ret if ctx.ret is not None and ctx.ret >= 0 else lowest_free(proc)
        ctx.data["fd"] = fd
        ctx.regs["get_unused_fd_flags"] = (flags,)
        ctx.regs["alloc_fd"] = (0, RLIMIT_NOFILE_CUR, flags)
        ctx.rets["get_unused_fd_flags"] = ctx.rets["alloc_fd"] = fd
        s.call(ctx, ("get_unused_fd_flags", "alloc_fd"))
        path = self._path(ctx, i)
        f = wl.k.mem.file_object(path.rpartition("/")[2] if path != "/" else "/")[0]
        ok = ctx.ret is None or ctx.ret >= 0
        op = ctx.frame + 0x60
        ctx.regs["do_filp_open"] = (dfd, name, op)
        ctx.regs["path_openat"] = (ctx.frame + 0x100, op, LOOKUP_FOLLOW | LOOKUP_RCU)
        ctx.rets["do_filp_open"] = ctx.rets["path_openat"] = f if ok else err_ptr(ctx.ret or 0)
        s.open(ctx, "do_filp_open", "path_openat")
        ctx.regs["alloc_empty_file"] = (flags, 0xFFFF888100E2A540)   # the caller's cred
        ctx.rets["alloc_empty_file"] = f
        s.call(ctx, "alloc_empty_file")
        wl.slab.cache_alloc("filp", "alloc_empty_file", f)
        v9 = self.v9fs
        on9p, base = self._base(ctx, dfd, path)
        got = v9.lookup_open(ctx, path, flags, mode, base) if on9p else None
        if ok:
            ctx.regs["vfs_open"] = (ctx.frame + 0x100, f)
            ctx.regs["do_dentry_open"] = (f, 0)
            ctx.regs["security_file_open"] = (f,)
            ctx.rets["vfs_open"] = ctx.rets["do_dentry_open"] = ctx.rets["security_file_open"] = 0
            vo: V9Open | None = None
            if isinstance(got, V9Open):
                vo = got                        # a new file: atomic_open opened it
            else:
                s.open(ctx, "vfs_open", "do_dentry_open")
                s.call(ctx, "security_file_open")
                if got is not None:             # an existing 9P file: v9fs_file_open()
                    vo = v9.file_open(ctx, got, flags)
                    s.close_to(ctx, "path_openat")
                    v9.open_truncate(ctx, vo)
            if vo is not None:
                kind = DIRECTORY if vo.inode.mode & S_IFMT == S_IFDIR else REGULAR
                ctx.file = OpenFile(vo.dentry.name, kind, v9=vo)
        ctx.data["file"] = f

    @SYSCALLS.exit("openat", "open", "creat", "openat2")
    def _open_exit(self, ctx: SyscallCtx, ret: int) -> None:
        """do_sys_openat2()'s end: the open file installed or the fd given back, the
        name buffer freed."""
        s = self.wl.syscalls
        if "file" not in ctx.data:
            return
        s.close_to(ctx, "do_sys_openat2")
        if ret < 0 and ctx.file is not None and ctx.file.v9 is not None:
            self.v9fs.release(ctx, ctx.file.v9)     # it failed after all: fput()
            ctx.file = None
        if ret >= 0:
            ctx.regs["fd_install"] = (ret, ctx.data["file"])
            s.call(ctx, "fd_install")
        else:
            ctx.regs["put_unused_fd"] = (ctx.data["fd"],)
            s.call(ctx, "put_unused_fd")
        self._putname(ctx, ctx.data["name"])

    @SYSCALLS.enter("close")
    def _close(self, ctx: SyscallCtx) -> None:
        """close() → file_close_fd(), filp_flush(), __fput_sync()."""
        s = self.wl.syscalls
        fd = ctx.args[0] & 0xFFFFFFFF
        file = self._file(ctx.file)
        ctx.regs["file_close_fd"] = (fd,)
        ctx.rets["file_close_fd"] = file if ctx.file is not None else 0
        s.call(ctx, "file_close_fd")
        if ctx.file is None or ctx.ret == -EBADF:
            return
        ctx.regs["filp_flush"] = (file, 0xFFFF888104F3A000)   # current->files
        ctx.rets["filp_flush"] = 0
        s.call(ctx, "filp_flush")
        ctx.regs["__fput_sync"] = (file,)
        ctx.regs["__fput"] = (file,)
        if ctx.file.v9 is not None and ctx.file.refs <= 1:
            # the last reference: __fput() releases the 9P file (its fid clunked)
            s.open(ctx, "__fput_sync", "__fput")
            self.v9fs.release(ctx, ctx.file.v9)
            s.close(ctx, 2)
        elif ctx.file.kind == SOCKET and not self.wl.net.shared(ctx.file):
            # the last reference: __fput() → the file's release, sock_close()
            n = len(ctx.frames)
            s.open(ctx, "__fput_sync", "__fput")
            self.wl.net.release(ctx, ctx.file)
            s.call(ctx, "dput")
            s.close(ctx, len(ctx.frames) - n)
        else:
            s.call(ctx, ("__fput_sync", ("__fput", "dput")))
        self.wl.slab.cache_free("filp", "__fput", file)

    # ------------------------------------------------------------------ stat.c
    def _walk9(self, ctx: SyscallCtx, dfd: int, i: int, follow: bool = True,
               parent: bool = False) -> tuple[Dentry | None, str, int] | None:
        """The walk of pathname argument ``i`` (relative to ``dfd``) on the 9P root
        (None: not there): V9fs.walk's (dentry, last, -errno)."""
        path = self._path(ctx, i)
        on9p, base = self._base(ctx, dfd, path)
        return self.v9fs.walk(ctx, path, follow=follow, parent=parent, base=base) if on9p else None

    def _statx_path(self, ctx: SyscallCtx, dfd: int, name: int, flags: int, mask: int, i: int) -> None:
        """vfs_statx(dfd, filename, flags, stat, mask) → filename_lookup() → (found)
        vfs_statx_path() → vfs_getattr() → security_inode_getattr(), vfs_getattr_nosec()
        (a 9P file's getattr asks the server); path_put()."""
        s = self.wl.syscalls
        stat = ctx.frame + 0x100
        path = ctx.frame + 0x40
        ctx.regs["vfs_statx"] = (dfd, name, flags, stat, mask)
        s.open(ctx, "vfs_statx")
        ctx.regs["filename_lookup"] = (dfd, name, 0 if flags & AT_SYMLINK_NOFOLLOW else LOOKUP_FOLLOW,
                                       path, 0)
        ctx.rets["filename_lookup"] = ctx.ret if ctx.ret is not None and ctx.ret < 0 else 0
        s.open(ctx, "filename_lookup", "path_lookupat")
        got = self._walk9(ctx, dfd, i, follow=not flags & AT_SYMLINK_NOFOLLOW)
        s.close(ctx, 2)
        d = got[0] if got is not None else None
        if ctx.ret is not None and ctx.ret < 0:
            if d is not None:
                self.v9fs.dput(ctx, d)
            return
        ctx.regs["vfs_statx_path"] = (path, flags, stat, mask)
        ctx.regs["vfs_getattr"] = (path, stat, mask, flags)
        ctx.regs["security_inode_getattr"] = (path,)
        ctx.regs["vfs_getattr_nosec"] = (path, stat, mask, flags)
        for fn in ("vfs_statx_path", "vfs_getattr", "security_inode_getattr", "vfs_getattr_nosec"):
            ctx.rets[fn] = 0
        s.open(ctx, "vfs_statx_path", "vfs_getattr")
        s.call(ctx, "security_inode_getattr")
        s.open(ctx, "vfs_getattr_nosec")
        if d is not None:
            self.v9fs.getattr(ctx, d)
            self._learn(ctx, d)
        s.close(ctx, 3)
        self._path_put(ctx, d)           # the same struct path (ctx.frame + 0x40)

    def _learn(self, ctx: SyscallCtx, d: Dentry) -> None:
        """What the program's stat(2) says of a 9P file (its buffer, read at the exit)."""
        raw = ctx.outs.get(STAT_BUF.get(ctx.sc.name, -1))
        if raw is None:
            return
        if ctx.sc.name == "statx" and len(raw) >= 48:
            nlink, mode, ino, size = struct.unpack_from("<I", raw, 16)[0], \
                struct.unpack_from("<H", raw, 28)[0], *struct.unpack_from("<QQ", raw, 32)
        elif len(raw) >= 56:
            ino, nlink, mode = struct.unpack_from("<QQI", raw, 8)
            size = struct.unpack_from("<q", raw, 48)[0]
        else:
            return
        self.v9fs.learn(d.path, ino, mode, size, nlink)

    def _fstatat_path(self, ctx: SyscallCtx, dfd: int, i: int, flags: int) -> None:
        """vfs_fstatat(dfd, filename, stat, flags): fstat of the fd for "" with
        AT_EMPTY_PATH, else getname_flags(), vfs_statx(), putname(); then cp_new_stat()."""
        s = self.wl.syscalls
        stat = ctx.frame + 0x100
        ctx.regs["vfs_fstatat"] = (dfd, ctx.args[i], stat, flags)
        s.open(ctx, "vfs_fstatat")
        if flags == AT_EMPTY_PATH and not ctx.caps.get(i):
            ctx.file = self.wl.traced.file(ctx.thread.proc, arg_int(dfd))
            self._fstat_path(ctx, dfd)
        else:
            name = self.getname(ctx, i, LOOKUP_FOLLOW if not flags & AT_SYMLINK_NOFOLLOW else 0)
            self._statx_path(ctx, dfd, name, flags | 0x800, STATX_BASIC_STATS, i)   # AT_NO_AUTOMOUNT
            self._putname(ctx, name)
        s.close_to(ctx, "vfs_fstatat")
        self._cp_stat(ctx, "cp_new_stat", stat, ctx.args[i + 1])

    def _fstat_path(self, ctx: SyscallCtx, fd: int) -> None:
        """vfs_fstat(fd, stat) → fdget_raw(), vfs_getattr(&file->f_path)."""
        s = self.wl.syscalls
        stat = ctx.frame + 0x100
        ctx.regs["vfs_fstat"] = (fd, stat)
        s.open(ctx, "vfs_fstat")
        if ctx.file is None or ctx.ret == -EBADF:
            return
        fpath = self._f_path(ctx.file)
        ctx.regs["vfs_getattr"] = (fpath, stat, STATX_BASIC_STATS, 0)
        ctx.regs["security_inode_getattr"] = (fpath,)
        ctx.regs["vfs_getattr_nosec"] = (fpath, stat, STATX_BASIC_STATS, 0)
        for fn in ("vfs_getattr", "security_inode_getattr", "vfs_getattr_nosec"):
            ctx.rets[fn] = 0
        vo = ctx.file.v9
        if vo is None:
            s.call(ctx, ("vfs_getattr", "security_inode_getattr", "vfs_getattr_nosec"))
            return
        s.open(ctx, "vfs_getattr")
        s.call(ctx, "security_inode_getattr")
        s.open(ctx, "vfs_getattr_nosec")
        self.v9fs.getattr(ctx, vo.dentry)
        self._learn(ctx, vo.dentry)
        s.close(ctx, 2)

    def _cp_stat(self, ctx: SyscallCtx, fn: str, stat: int, buf: int) -> None:
        if ctx.ret is not None and ctx.ret < 0:
            return
        ctx.regs[fn] = (stat, buf)
        ctx.rets[fn] = 0
        self.wl.syscalls.call(ctx, fn)

    @SYSCALLS.enter("newfstatat")
    def _fstatat(self, ctx: SyscallCtx) -> None:
        self._fstatat_path(ctx, ctx.args[0] & 0xFFFFFFFF, 1, arg_int(ctx.args[3]))

    @SYSCALLS.enter("stat")
    def _stat(self, ctx: SyscallCtx) -> None:
        """stat() → vfs_stat() = vfs_fstatat(AT_FDCWD, filename, stat, 0)."""
        self._fstatat_path(ctx, AT_FDCWD, 0, 0)

    @SYSCALLS.enter("lstat")
    def _lstat(self, ctx: SyscallCtx) -> None:
        self._fstatat_path(ctx, AT_FDCWD, 0, AT_SYMLINK_NOFOLLOW)

    @SYSCALLS.enter("fstat")
    def _fstat(self, ctx: SyscallCtx) -> None:
        """fstat() (newfstat) → vfs_fstat(fd), cp_new_stat()."""
        stat = ctx.frame + 0x100
        self._fstat_path(ctx, ctx.args[0] & 0xFFFFFFFF)
        self.wl.syscalls.close_to(ctx, "vfs_fstat")
        self.wl.syscalls.close(ctx, 1)
        self._cp_stat(ctx, "cp_new_stat", stat, ctx.args[1])

    @SYSCALLS.enter("statx")
    def _statx(self, ctx: SyscallCtx) -> None:
        """statx() → getname_flags(), do_statx() → vfs_statx(), cp_statx(); putname()."""
        s = self.wl.syscalls
        dfd, flags, mask, buf = ctx.args[0] & 0xFFFFFFFF, arg_int(ctx.args[2]), ctx.args[3], ctx.args[4]
        stat = ctx.frame + 0x100
        if flags & ~0x6800 == AT_EMPTY_PATH and not ctx.caps.get(1):
            ctx.file = self.wl.traced.file(ctx.thread.proc, arg_int(dfd))
            ctx.regs["do_statx_fd"] = (dfd, flags, mask, buf)
            s.open(ctx, "do_statx_fd")
            self._fstat_path(ctx, dfd)
            s.close_to(ctx, "do_statx_fd")
            self._cp_stat(ctx, "cp_statx", stat, buf)
            return
        name = self.getname(ctx, 1, LOOKUP_FOLLOW)
        ctx.regs["do_statx"] = (dfd, name, flags, mask, buf)
        s.open(ctx, "do_statx")
        self._statx_path(ctx, dfd, name, flags, mask, 1)
        s.close_to(ctx, "do_statx")
        self._cp_stat(ctx, "cp_statx", stat, buf)
        s.close(ctx, 1)
        self._putname(ctx, name)

    # ------------------------------------------------------------------ readdir.c
    @SYSCALLS.enter("getdents64")
    def _getdents64(self, ctx: SyscallCtx) -> None:
        """getdents64() → fdget_pos(), iterate_dir(file, &buf.ctx) → the fs's iterate
        (filldir64 per entry)."""
        s = self.wl.syscalls
        fd = ctx.args[0]
        if not self._fdget(ctx, fd):
            return
        file = self._file(ctx.file)
        ctx.regs["iterate_dir"] = (file, ctx.frame + 0x40)
        ctx.rets["iterate_dir"] = 0
        s.open(ctx, "iterate_dir")
        vo = ctx.file.v9 if ctx.file is not None else None
        if vo is not None and (ctx.ret is None or ctx.ret >= 0):
            got = ctx.ret if ctx.ret is not None else 0
            self.v9fs.readdir(ctx, vo, ctx.args[2] & 0xFFFFFFFF, got)
        if ctx.ret is not None and ctx.ret > 0:
            ctx.regs["filldir64"] = (ctx.frame + 0x40, 0, 0, 0, 0, 0)
            ctx.rets["filldir64"] = 1
            for _ in range(max(1, min(ctx.ret // 24, 64))):   # an entry is 24 bytes and up
                s.call(ctx, "filldir64")

    # ------------------------------------------------------------------ namei.c
    def _create_path(self, ctx: SyscallCtx, dfd: int, i: int, mode: int) -> None:
        """do_mkdirat(dfd, name, mode) → filename_create(), vfs_mkdir(), done_path_create()."""
        s = self.wl.syscalls
        name = self.getname(ctx, i)
        ctx.regs["do_mkdirat"] = (dfd, name, mode)
        s.open(ctx, "do_mkdirat")
        path = ctx.frame + 0x40
        dentry = self.wl.k.mem.file_object(self._path(ctx, i).rpartition("/")[2])[1]
        ctx.regs["filename_create"] = (dfd, name, path, 0x200)      # LOOKUP_DIRECTORY
        ctx.rets["filename_create"] = dentry if ctx.ret is None or ctx.ret >= 0 else err_ptr(ctx.ret)
        ctx.regs["vfs_mkdir"] = (self.wl.sites.sym("nop_mnt_idmap"), 0xFFFF888104A1C9C0, dentry, mode)
        ctx.regs["done_path_create"] = (path, dentry)
        p = self._path(ctx, i)
        on9p, base = self._base(ctx, dfd, p)
        if on9p and self.v9fs.mkdir(ctx, p, mode, base):
            return
        s.call(ctx, "filename_create")
        if ctx.ret is not None and ctx.ret < 0 and ctx.ret != -28:   # ENOSPC comes from vfs_mkdir
            return
        s.call(ctx, "vfs_mkdir")
        ctx.regs["done_path_create"] = (path, dentry)
        s.call(ctx, "done_path_create")

    @SYSCALLS.enter("mkdir")
    def _mkdir(self, ctx: SyscallCtx) -> None:
        self._create_path(ctx, AT_FDCWD, 0, ctx.args[1] & 0xFFFF)

    @SYSCALLS.enter("mkdirat")
    def _mkdirat(self, ctx: SyscallCtx) -> None:
        self._create_path(ctx, ctx.args[0] & 0xFFFFFFFF, 1, ctx.args[2] & 0xFFFF)

    def _remove_path(self, ctx: SyscallCtx, top: str, vfs: str, dfd: int, i: int) -> None:
        """do_rmdir/do_unlinkat(dfd, name) → the lookup, vfs_rmdir/vfs_unlink()."""
        s = self.wl.syscalls
        name = self.getname(ctx, i)
        ctx.regs[top] = (dfd, name)
        s.open(ctx, top)
        dentry = self.wl.k.mem.file_object(self._path(ctx, i).rpartition("/")[2])[1]
        ctx.regs[vfs] = (self.wl.sites.sym("nop_mnt_idmap"), 0xFFFF888104A1C9C0, dentry) + \
            ((0,) if vfs == "vfs_unlink" else ())
        p = self._path(ctx, i)
        on9p, base = self._base(ctx, dfd, p)
        if on9p and self.v9fs.unlink(ctx, p, vfs == "vfs_rmdir", base):
            return
        if ctx.ret is not None and ctx.ret < 0:
            return
        s.call(ctx, vfs)

    @SYSCALLS.enter("rmdir")
    def _rmdir(self, ctx: SyscallCtx) -> None:
        self._remove_path(ctx, "do_rmdir", "vfs_rmdir", AT_FDCWD, 0)

    @SYSCALLS.enter("unlink")
    def _unlink(self, ctx: SyscallCtx) -> None:
        self._remove_path(ctx, "do_unlinkat", "vfs_unlink", AT_FDCWD, 0)

    @SYSCALLS.enter("unlinkat")
    def _unlinkat(self, ctx: SyscallCtx) -> None:
        dfd = ctx.args[0] & 0xFFFFFFFF
        if arg_int(ctx.args[2]) & AT_REMOVEDIR:
            self._remove_path(ctx, "do_rmdir", "vfs_rmdir", dfd, 1)
        else:
            self._remove_path(ctx, "do_unlinkat", "vfs_unlink", dfd, 1)

    def _rename_path(self, ctx: SyscallCtx, olddfd: int, oi: int, newdfd: int, ni: int,
                     flags: int) -> None:
        """do_renameat2(olddfd, from, newdfd, to, flags) → vfs_rename(&rd)."""
        s = self.wl.syscalls
        old = self.getname(ctx, oi)
        new = old + 0x800                      # a second names_cache buffer
        ctx.regs["do_renameat2"] = (olddfd, old, newdfd, new, flags)
        s.open(ctx, "do_renameat2")
        ctx.regs["vfs_rename"] = (ctx.frame + 0x40,)
        op, np_ = self._path(ctx, oi), self._path(ctx, ni)
        on_o, obase = self._base(ctx, olddfd, op)
        on_n, nbase = self._base(ctx, newdfd, np_)
        if on_o and on_n and self.v9fs.rename(ctx, op, np_, obase, nbase):
            return
        if ctx.ret is not None and ctx.ret < 0:
            return
        s.call(ctx, "vfs_rename")

    @SYSCALLS.enter("rename")
    def _rename(self, ctx: SyscallCtx) -> None:
        self._rename_path(ctx, AT_FDCWD, 0, AT_FDCWD, 1, 0)

    @SYSCALLS.enter("renameat2")
    def _renameat2(self, ctx: SyscallCtx) -> None:
        self._rename_path(ctx, ctx.args[0] & 0xFFFFFFFF, 1, ctx.args[2] & 0xFFFFFFFF, 3,
                          ctx.args[4] & 0xFFFFFFFF)

    # ------------------------------------------------------------------ pipe.c, file.c, fcntl.c
    @SYSCALLS.enter("pipe", "pipe2")
    def _pipe(self, ctx: SyscallCtx) -> None:
        """pipe/pipe2() → do_pipe2(fildes, flags) → create_pipe_files(),
        get_unused_fd_flags() ×2, fd_install() ×2 (pipe(): flags 0)."""
        s = self.wl.syscalls
        flags = arg_int(ctx.args[1]) if ctx.sc.name == "pipe2" else 0
        ctx.regs["do_pipe2"] = (ctx.args[0], flags)
        s.open(ctx, "do_pipe2")
        files = ctx.frame + 0x20
        ctx.regs["create_pipe_files"] = (files, flags)
        ctx.rets["create_pipe_files"] = 0
        s.call(ctx, ("create_pipe_files", "alloc_pipe_info"))
        if ctx.ret is not None and ctx.ret < 0:
            return
        fds = fd_pair(ctx.outs.get(0)) or (lowest_free(ctx.thread.proc), lowest_free(ctx.thread.proc) + 1)
        pipe = self.wl.k.mem.file_object("")[0]
        for fd in fds:
            ctx.regs["get_unused_fd_flags"] = (flags,)
            ctx.rets["get_unused_fd_flags"] = fd
            s.call(ctx, "get_unused_fd_flags")
        for fd in fds:
            ctx.regs["fd_install"] = (fd, pipe)
            s.call(ctx, "fd_install")

    @SYSCALLS.enter("dup")
    def _dup(self, ctx: SyscallCtx) -> None:
        """dup(fildes) → fget_raw(), get_unused_fd_flags(0), fd_install()."""
        s = self.wl.syscalls
        if ctx.file is None or (ctx.ret is not None and ctx.ret < 0):
            return
        ctx.regs["get_unused_fd_flags"] = (0,)
        ctx.rets["get_unused_fd_flags"] = ctx.ret if ctx.ret is not None else lowest_free(ctx.thread.proc)
        s.call(ctx, "get_unused_fd_flags")
        ctx.regs["fd_install"] = (ctx.rets["get_unused_fd_flags"] or 0, self._file(ctx.file))
        s.call(ctx, "fd_install")

    def _dup3_path(self, ctx: SyscallCtx, flags: int) -> None:
        """dup2/dup3() → ksys_dup3(oldfd, newfd, flags) → do_dup2()."""
        s = self.wl.syscalls
        old, new = ctx.args[0] & 0xFFFFFFFF, ctx.args[1] & 0xFFFFFFFF
        ctx.regs["ksys_dup3"] = (old, new, flags)
        s.open(ctx, "ksys_dup3")
        if ctx.file is None or (ctx.ret is not None and ctx.ret < 0):
            return
        ctx.regs["do_dup2"] = (0xFFFF888104F3A000, self._file(ctx.file), new, flags)
        tofree = ctx.thread.proc.files.get(new)
        if tofree is None:
            s.call(ctx, "do_dup2")
            return
        # do_dup2() closes what newfd named (filp_close(): its fput() is deferred to task
        # work); the last reference of a 9P file is released there, its fids clunked (the
        # model has no exit-to-user frames: the task work runs inside the syscall)
        s.call(ctx, ("do_dup2", ("filp_close", "filp_flush", "fput")))
        if tofree is not ctx.file and tofree.refs <= 1:
            self.release_files(ctx.thread, [tofree])

    @SYSCALLS.enter("dup2")
    def _dup2(self, ctx: SyscallCtx) -> None:
        if ctx.args[0] == ctx.args[1]:
            return      # dup2(fd, fd): the fd is checked and returned
        self._dup3_path(ctx, 0)

    @SYSCALLS.enter("dup3")
    def _dup3(self, ctx: SyscallCtx) -> None:
        self._dup3_path(ctx, arg_int(ctx.args[2]))

    @SYSCALLS.enter("fcntl")
    def _fcntl(self, ctx: SyscallCtx) -> None:
        """fcntl() → fdget_raw(), do_fcntl(fd, cmd, arg, file) (F_DUPFD: f_dupfd();
        F_SETFD: set_close_on_exec())."""
        s = self.wl.syscalls
        fd, cmd, arg = ctx.args[0] & 0xFFFFFFFF, arg_int(ctx.args[1]), ctx.args[2]
        if ctx.file is None or ctx.ret == -EBADF:
            return
        file = self._file(ctx.file)
        ctx.regs["do_fcntl"] = (fd, cmd, arg, file)
        s.open(ctx, "do_fcntl")
        if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
            ctx.regs["f_dupfd"] = (arg & 0xFFFFFFFF, file, 0o2000000 if cmd == F_DUPFD_CLOEXEC else 0)
            s.call(ctx, "f_dupfd")
        elif cmd == F_SETFD:
            ctx.regs["set_close_on_exec"] = (fd, arg & 1)
            s.call(ctx, "set_close_on_exec")

    @SYSCALLS.enter("ioctl")
    def _ioctl(self, ctx: SyscallCtx) -> None:
        """ioctl() → fdget(), do_vfs_ioctl(file, fd, cmd, arg) → vfs_ioctl() → the file's
        unlocked_ioctl (tty_ioctl for a terminal)."""
        s = self.wl.syscalls
        fd, cmd, arg = ctx.args[0] & 0xFFFFFFFF, ctx.args[1] & 0xFFFFFFFF, ctx.args[2]
        if not self._fdget(ctx, fd, "fdget"):
            return
        file = self._file(ctx.file)
        ctx.regs["do_vfs_ioctl"] = (file, fd, cmd, arg)
        s.open(ctx, "do_vfs_ioctl")
        ctx.regs["vfs_ioctl"] = (file, cmd, arg)
        s.open(ctx, "vfs_ioctl")
        if ctx.file is not None and ctx.file.kind == TTY:
            ctx.regs["tty_ioctl"] = (file, cmd, arg)
            s.open(ctx, "tty_ioctl")

    # ------------------------------------------------------------------ the working directory
    def _user_path(self, ctx: SyscallCtx, dfd: int, i: int, flags: int) -> tuple[bool, Dentry | None]:
        """user_path_at(dfd, name, flags, &path): getname_flags(), filename_lookup() (the
        9P walk), putname().  (on the 9P root, the dentry referenced or None)."""
        s = self.wl.syscalls
        path = ctx.frame + 0x40
        ctx.regs["user_path_at"] = (dfd, ctx.args[i], flags, path)
        ctx.rets["user_path_at"] = ctx.ret if ctx.ret is not None and ctx.ret < 0 else 0
        s.open(ctx, "user_path_at")
        s.call(ctx, ("getname_flags", "kmem_cache_alloc_noprof"))
        s.open(ctx, "filename_lookup")
        got = self._walk9(ctx, dfd, i, follow=bool(flags & LOOKUP_FOLLOW))
        s.close(ctx, 1)
        s.call(ctx, "putname")
        s.close(ctx, 1)
        if got is None:
            return False, None
        d = got[0]
        if d is not None and ctx.ret is not None and ctx.ret < 0 and ctx.sc.name in ("chdir",):
            self.v9fs.dput(ctx, d)          # found, but not a directory one may enter
            d = None
        return True, d

    def _path_put(self, ctx: SyscallCtx, d: Dentry | None) -> None:
        """path_put() of the syscall frame's ``struct path``: a 9P dentry is put, any
        other one leaves a bare call."""
        s = self.wl.syscalls
        ctx.regs["path_put"] = (ctx.frame + 0x40,)
        if d is None:
            s.call(ctx, "path_put")
            return
        s.open(ctx, "path_put")
        self.v9fs.dput(ctx, d)
        s.close(ctx, 1)

    @SYSCALLS.enter("chdir")
    def _chdir(self, ctx: SyscallCtx) -> None:
        """chdir() → user_path_at(), (found) set_fs_pwd(), path_put()."""
        s = self.wl.syscalls
        on9p, d = self._user_path(ctx, AT_FDCWD, 0, LOOKUP_FOLLOW | 0x200)
        if ctx.ret is not None and ctx.ret < 0:
            return
        ctx.regs["set_fs_pwd"] = (0xFFFF888104F3B000, ctx.frame + 0x40)     # current->fs
        s.call(ctx, "set_fs_pwd")
        self.v9fs.chdir(ctx, d if on9p else None)     # the walk's reference becomes the pwd's
        ctx.regs["path_put"] = (ctx.frame + 0x40,)
        s.call(ctx, "path_put")

    @SYSCALLS.enter("fchdir")
    def _fchdir(self, ctx: SyscallCtx) -> None:
        s = self.wl.syscalls
        if not self._fdget(ctx, ctx.args[0], "fdget_raw"):
            return
        ctx.regs["set_fs_pwd"] = (0xFFFF888104F3B000, self._f_path(ctx.file))
        s.call(ctx, "set_fs_pwd")
        if ctx.ret is not None and ctx.ret < 0:
            return
        vo = ctx.file.v9 if ctx.file is not None else None
        self.v9fs.chdir(ctx, self.v9fs.hold(vo.dentry) if vo is not None else None)

    # ------------------------------------------------------------------ open.c, stat.c: by path
    @SYSCALLS.enter("access")
    def _access(self, ctx: SyscallCtx) -> None:
        self._faccess_path(ctx, AT_FDCWD, 0, 0)

    @SYSCALLS.enter("faccessat", "faccessat2")
    def _faccessat(self, ctx: SyscallCtx) -> None:
        flags = arg_int(ctx.args[3]) if ctx.sc.name == "faccessat2" else 0
        self._faccess_path(ctx, ctx.args[0] & 0xFFFFFFFF, 1, flags)

    def _faccess_path(self, ctx: SyscallCtx, dfd: int, i: int, flags: int) -> None:
        """do_faccessat(dfd, filename, mode, flags) → user_path_at(), inode_permission()
        (9P checks on the client: no request), path_put()."""
        s = self.wl.syscalls
        ctx.regs["do_faccessat"] = (dfd, ctx.args[i], ctx.args[i + 1], flags)
        s.open(ctx, "do_faccessat")
        _, d = self._user_path(ctx, dfd, i, 0 if flags & AT_SYMLINK_NOFOLLOW else LOOKUP_FOLLOW)
        if d is None:
            return
        s.call(ctx, ("inode_permission", "generic_permission"))
        self._path_put(ctx, d)

    @SYSCALLS.enter("readlink")
    def _readlink(self, ctx: SyscallCtx) -> None:
        self._readlink_path(ctx, AT_FDCWD, 0)

    @SYSCALLS.enter("readlinkat")
    def _readlinkat(self, ctx: SyscallCtx) -> None:
        self._readlink_path(ctx, ctx.args[0] & 0xFFFFFFFF, 1)

    def _readlink_path(self, ctx: SyscallCtx, dfd: int, i: int) -> None:
        """do_readlinkat() → user_path_at_empty() (the link itself), vfs_readlink() →
        the link's get_link (9P: Treadlink), path_put()."""
        s = self.wl.syscalls
        ctx.regs["do_readlinkat"] = (dfd, ctx.args[i], ctx.args[i + 1], ctx.args[i + 2])
        s.open(ctx, "do_readlinkat")
        _, d = self._user_path(ctx, dfd, i, 0)
        if d is None:
            return
        if d.inode is not None and d.inode.is_link and (ctx.ret is None or ctx.ret >= 0):
            s.open(ctx, "vfs_readlink")
            self.v9fs.get_link(ctx, d)
            s.close(ctx, 1)
        self._path_put(ctx, d)

    @SYSCALLS.enter("symlink")
    def _symlink(self, ctx: SyscallCtx) -> None:
        self._symlink_path(ctx, 0, AT_FDCWD, 1)

    @SYSCALLS.enter("symlinkat")
    def _symlinkat(self, ctx: SyscallCtx) -> None:
        self._symlink_path(ctx, 0, ctx.args[1] & 0xFFFFFFFF, 2)

    def _symlink_path(self, ctx: SyscallCtx, ti: int, dfd: int, i: int) -> None:
        """do_symlinkat(from, newdfd, to): getname() of both, filename_create(),
        vfs_symlink(), done_path_create(), putname()."""
        s = self.wl.syscalls
        target = self.getname(ctx, ti)
        name = self.getname(ctx, i)
        ctx.regs["do_symlinkat"] = (target, dfd, name)
        s.open(ctx, "do_symlinkat")
        p = self._path(ctx, i)
        on9p, base = self._base(ctx, dfd, p)
        if not (on9p and self.v9fs.symlink(ctx, self._path(ctx, ti), p, base)):
            s.call(ctx, ("filename_create", "lookup_one_qstr_excl"))
            if ctx.ret is None or ctx.ret >= 0:
                s.call(ctx, ("vfs_symlink", "security_inode_symlink"))
                s.call(ctx, "done_path_create")
        s.close(ctx, 1)
        self._putname(ctx, name)
        self._putname(ctx, target)

    @SYSCALLS.enter("truncate")
    def _truncate(self, ctx: SyscallCtx) -> None:
        """truncate() → do_sys_truncate() → user_path_at(), vfs_truncate() → do_truncate()
        → notify_change() → the fs's setattr (9P: Tsetattr through the dentry's fid)."""
        s = self.wl.syscalls
        length = ctx.args[1]
        ctx.regs["do_sys_truncate"] = (ctx.args[0], length)
        s.open(ctx, "do_sys_truncate")
        _, d = self._user_path(ctx, AT_FDCWD, 0, LOOKUP_FOLLOW)
        if d is None:
            return
        if d.inode is not None and (ctx.ret is None or ctx.ret >= 0):
            s.open(ctx, "vfs_truncate", "do_truncate", "notify_change")
            fid = self.v9fs.fid_lookup(ctx, d)
            self.v9fs.setattr(ctx, d.inode, fid, length)
            self.v9fs.client.fid_put(ctx, fid)
            s.close(ctx, 3)
        self._path_put(ctx, d)

    @SYSCALLS.enter("ftruncate")
    def _ftruncate(self, ctx: SyscallCtx) -> None:
        """ftruncate() → do_sys_ftruncate() → do_ftruncate() → do_truncate(file) →
        notify_change() → the fs's setattr (9P: Tsetattr through the open fid)."""
        s = self.wl.syscalls
        length = ctx.args[1]
        ctx.regs["do_sys_ftruncate"] = (ctx.args[0], length, 1)
        s.open(ctx, "do_sys_ftruncate")
        if not self._fdget(ctx, ctx.args[0], "fdget"):
            return
        vo = ctx.file.v9 if ctx.file is not None else None
        if vo is None or (ctx.ret is not None and ctx.ret < 0):
            return
        s.open(ctx, "do_ftruncate", "do_truncate", "notify_change")
        self.v9fs.setattr(ctx, vo.inode, vo.fid, length)
        s.close(ctx, 3)

    # ------------------------------------------------------------------ sync.c
    @SYSCALLS.enter("fsync", "fdatasync")
    def _fsync(self, ctx: SyscallCtx) -> None:
        """fsync/fdatasync() → do_fsync() → vfs_fsync() → vfs_fsync_range() → the file's
        fsync (9P: v9fs_file_fsync_dotl, Tfsync)."""
        s = self.wl.syscalls
        datasync = ctx.sc.name == "fdatasync"
        fd = ctx.args[0] & 0xFFFFFFFF
        ctx.regs["do_fsync"] = (fd, int(datasync))
        s.open(ctx, "do_fsync")
        if ctx.file is None or ctx.ret == -EBADF:
            return
        file = self._file(ctx.file)
        ctx.regs["vfs_fsync_range"] = (file, 0, MASK64 >> 1, int(datasync))
        s.open(ctx, "vfs_fsync", "vfs_fsync_range")
        if ctx.file.v9 is not None:
            self.v9fs.fsync(ctx, ctx.file.v9, datasync)

    @SYSCALLS.enter("sync")
    def _sync(self, ctx: SyscallCtx) -> None:
        """sync() → ksys_sync()."""
        self.v9fs.sync(ctx)

    @SYSCALLS.enter("syncfs")
    def _syncfs(self, ctx: SyscallCtx) -> None:
        """syncfs(fd) → sync_filesystem() of the fd's superblock (the 9P root's inodes
        written as sync(2) writes them)."""
        s = self.wl.syscalls
        if ctx.file is None or ctx.ret == -EBADF:
            return
        s.open(ctx, "sync_filesystem")
        if ctx.file.v9 is not None:
            self.v9fs.syncfs(ctx)

    # ------------------------------------------------------------------ exit, exec
    def release_files(self, t: Thread, files: list[OpenFile]) -> None:
        """The last references of ``files`` went with an exit or an exec (exit_files(),
        do_close_on_exec()): their __fput() runs in ``t`` (task_work on its way out)."""
        v9 = [f.v9 for f in files if f.v9 is not None]
        if not v9 or self.wl.quiet():
            return
        ctx = self._task_ctx(t)
        s = self.wl.syscalls
        s.open(ctx, "task_work_run")
        for vo in v9:
            s.open(ctx, "__fput")
            self.v9fs.release(ctx, vo)
            s.close(ctx, 1)
        s.close(ctx, 1)

    def exit_files(self, t: Thread) -> None:
        """exit_files(): the table's last user gone, every fd is closed."""
        proc = t.proc
        table = proc.files
        if table.shared and any(p is not proc and p.files is table and p.live()
                                for p in self.wl.traced.procs.values()):
            return
        self.release_files(t, table.close_all())

    def _task_ctx(self, t: Thread) -> SyscallCtx:
        """The syscall ``t`` is in (its exit_group, its execve), where the release runs."""
        p = t.pending
        if p is not None and p.ctx.ran:
            return p.ctx
        sc = self.wl.traced.table.by_nr[231]              # exit_group
        return SyscallCtx(sc, (), {}, t, t0=self.wl.traced.now)

    @SYSCALLS.enter("getcwd")
    def _getcwd(self, ctx: SyscallCtx) -> None:
        """getcwd() → d_path of the pwd: prepend_path()."""
        ctx.regs["prepend_path"] = (ctx.frame + 0x40, ctx.frame + 0x60, ctx.frame + 0x80)
        self.wl.syscalls.call(ctx, "prepend_path")


F_DUPFD, F_SETFD, F_DUPFD_CLOEXEC = 0, 2, 1030


def lowest_free(proc: Proc) -> int:
    """alloc_fd(0, …): the lowest fd the model knows to be free."""
    fd = 0
    fds = proc.files.fds
    while fd in fds:
        fd += 1
    return fd


def fd_pair(raw: bytes | None) -> tuple[int, int] | None:
    """The two ``int``s pipe/socketpair wrote (their OUT capture)."""
    if raw is None or len(raw) < 8:
        return None
    a, b = struct.unpack_from("<ii", raw)
    return a, b
