"""The FUSE request handlers: each maps one request onto the tracefs tree, and nothing else.

A handler finds the node (``inodes.py``), runs the tree's operation as the calling
task (``_call``) and turns the answer into pyfuse3's.  A task traced under ``tracefs-sim
run`` is inside the real syscall that made the request (the tracer's records are drained
first: ``host/feed.py``), so the request runs there; any other caller (a plain mount's
users) gets the kernel's syscall path around it, with the caller from ``caller.py``.  Errors cross at one boundary
(``_boundary``): a ``KernelError`` becomes its errno, any other exception is logged
and answered EIO, so a bug in one file never takes the mount down.  What only a FUSE
server has to add:

* blocking reads: ``WOULD_BLOCK`` becomes a trio wait on the file's wait queue,
  bounded so that a signal to the blocked reader ends it with EINTR (pyfuse3 has no
  FUSE_INTERRUPT hook), and cancelled at unmount;
* poll: the latest ``PollHandle`` per open file is notified from the wait queue;
* attribute caching: stable dentries (``Dir.stable_child``) are replied with long
  timeouts, and a chown or remount invalidates what the VFS keeps;
* ownership: tracefs's rules (``tracefs/ownership.py``) keyed by the inode's path.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import select
import stat
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Concatenate, ParamSpec, TypeVar

import pyfuse3
import trio

from ..host.feed import TracerFeed
from ..host.proto import MODE_LIFECYCLE
from ..hostprocs import HostProcs
from ..kernel import Kernel
from ..kernel.errors import KernelError, _WouldBlock
from ..kernel.sched import TASK_COMM_LEN, Task
from ..kernel.waitqueue import WaitQueue
from ..sysctl_mirror import SysctlMirror
from ..tracefs.node import DEFAULT_POLL, Dir, File, Node, OpenFile, OpenMode
from ..tracefs.ownership import Ownership
from .caller import TaskInfo, fd_nonblock, signal_pending
from .inodes import ROOT_INODE, InodeTable

log = logging.getLogger("tracefs_sim.fuse")

ENTRY_TIMEOUT = 0.0  # the tree is dynamic: instances, probes and events come and go
# ... except the dentries that stay for the life of the mount (Dir.stable_child: the
# static files, built-in event directories): the VFS may keep those, which saves a LOOKUP
# per path component (ftracetest's reset greps open every events/*/*/trigger and filter)
STABLE_ENTRY_TIMEOUT = 300.0
ATTR_TIMEOUT = 0.0
# The attributes of stable nodes never change behind the VFS's back: modes are fixed,
# eventfs directories keep nlink 1, a chown/chgrp answers with the new attributes (and
# drops the cached ones of an instance's inodes, which take its owner), mkdir/rmdir make
# the VFS drop the parent's (fuse_dir_changed) and a remount invalidates them all.  With
# default_permissions every path component's permission check otherwise costs a GETATTR.
# A file's size: a write makes the VFS raise the i_size it caches to the write's end
# (fuse_write_update_attr) but also marks size and mtime stale, so the next stat asks
# again and sees tracefs's 0; an O_APPEND write starts at that i_size, and no tracefs
# write handler looks at the position.  What still costs a GETATTR per stat is atime:
# every read marks it stale (fuse_invalidate_atime), so grep's fstat() of a file read
# before asks again.
STABLE_ATTR_TIMEOUT = STABLE_ENTRY_TIMEOUT
SIGNAL_RECHECK = 0.05  # seconds between checks of a blocked reader's pending signals
REMOUNT_XATTR = b"trusted.tracefs_sim.remount"
ATTRS_CACHED = 4096  # files whose attributes are kept (eventfs nodes come and go)

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


@dataclass(slots=True, eq=False)
class Handle:
    """An open file (FUSE fh): the tree's OpenFile plus what only the adapter tracks."""

    fh: int
    ino: int
    openfile: OpenFile
    mode: OpenMode
    pid: int
    uid: int
    poll_handle: pyfuse3.PollHandle | None = None
    poll_wq: WaitQueue | None = None
    waits: set[trio.Event] = field(default_factory=set)
    closed: bool = False

    def notify_poll(self) -> None:
        """Wait-queue callback: wake a poll()/select() sleeping on this file."""
        ph, self.poll_handle = self.poll_handle, None
        if ph is not None:
            try:
                ph.notify()
            except (OSError, RuntimeError) as e:  # the waiter went away
                log.debug("poll notify fh=%d: %s", self.fh, e)


@dataclass(slots=True, eq=False)
class DirHandle:
    """An open directory: its entries are snapshotted at the first readdir."""

    ino: int
    pid: int
    uid: int
    entries: list[tuple[bytes, Node]] | None = None


def _found(obj: T | None, err: int) -> T:
    """A lookup's result, or the FUSE error ``err`` when it found nothing."""
    if obj is None:
        raise pyfuse3.FUSEError(err)
    return obj


def _fuse_error(name: str, args: tuple[object, ...], e: Exception) -> pyfuse3.FUSEError:
    """The answer to a handler's exception: a KernelError's errno, else EIO (logged with
    its traceback: called inside the ``except`` block)."""
    if isinstance(e, KernelError):
        return pyfuse3.FUSEError(e.errno)
    log.exception("%s%r failed", name, args[:3])
    return pyfuse3.FUSEError(errno.EIO)


def _boundary(fn: Callable[Concatenate[Operations, P], R]
              ) -> Callable[Concatenate[Operations, P], Awaitable[R]]:
    """The one error boundary: KernelError → errno, anything else → log + EIO
    (``read``, which may wait, has it written out).

    The handler itself is a plain function (it never waits): the coroutine pyfuse3
    awaits is this wrapper's, so a request builds one coroutine, not two."""

    @functools.wraps(fn)
    async def wrapper(self: Operations, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(self, *args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except Exception as e:
            raise _fuse_error(fn.__name__, args, e) from None

    return wrapper


def _fs_name(name: bytes) -> str:
    return os.fsdecode(name)


class Operations(pyfuse3.Operations):
    """pyfuse3 operations over a tracefs ``Dir``."""

    supports_dot_lookup = False
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, kernel: Kernel, root: Dir, mountpoint: str = "",
                 sysctl: SysctlMirror | None = None, feed: TracerFeed | None = None) -> None:
        super().__init__()
        self.kernel = kernel
        self.root = root
        self.mountpoint = mountpoint  # absolute: the pathnames callers pass
        self.sysctl = sysctl  # mount --sysctl-dir: synced before and published after a request
        self.mount_ns = time.time_ns()
        self.tasks = TaskInfo(kernel.nr_cpus)
        self.feed = feed      # tracefs-sim run: the tracer's records of every process there
        self.hostprocs = HostProcs()  # host forks/exits since the last request
        if feed is not None:
            # the tracer reports every process that can reach the mount (run's private
            # namespace): a /proc scan would report them a second time
            self.hostprocs.enabled = False
        self.owners = Ownership(os.getuid(), os.getgid())
        self.inodes = InodeTable(root)
        # ino -> (node, stable, attributes) of files: see attrs()
        self._file_attrs: dict[int, tuple[weakref.ref[Node], bool, pyfuse3.EntryAttributes]] = {}
        # open files
        self._handles: dict[int, Handle] = {}
        self._dirs: dict[int, DirHandle] = {}
        self._next_fh = 1
        # blocked waits, cancelled at shutdown
        self._wait_scopes: set[trio.CancelScope] = set()
        self._cancelled: set[int] = set()      # handles whose wait cancel_waits() ended
        self.closing = False

    # ------------------------------------------------------------------ helpers
    def _node(self, ino: int) -> Node:
        return _found(self.inodes.node(ino), errno.ENOENT)

    def _dir(self, ino: int) -> Dir:
        node = self._node(ino)
        if not isinstance(node, Dir):
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return node

    def _handle(self, fh: int) -> Handle:
        return _found(self._handles.get(fh), errno.EBADF)

    def _abspath(self, ino: int) -> str:
        """The file's absolute path through the mount (what a caller's pathname names)."""
        return self.mountpoint + self.inodes.path(ino)

    def attrs(self, node: Node, ino: int) -> pyfuse3.EntryAttributes:
        """The inode's attributes.  A file's never change behind our back except by an
        owner change (chown, remount, mkdir/rmdir of an instance: ``_owners_changed``),
        so they are built once per inode and handed out again (pyfuse3 copies them into
        the reply); a directory's nlink follows its children and is built every time."""
        stable = self.inodes.stable(ino)
        if not isinstance(node, Dir):
            hit = self._file_attrs.get(ino)
            if hit is not None and hit[0]() is node and hit[1] == stable:
                return hit[2]
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.generation = 0
        if stable:
            a.entry_timeout = STABLE_ENTRY_TIMEOUT
            a.attr_timeout = STABLE_ATTR_TIMEOUT
        else:
            a.entry_timeout, a.attr_timeout = ENTRY_TIMEOUT, ATTR_TIMEOUT
        if isinstance(node, Dir):
            a.st_mode = stat.S_IFDIR | (node.mode & 0o7777)
            a.st_nlink = node.nlink()
        else:
            a.st_mode = stat.S_IFREG | (node.mode & 0o7777)
            a.st_nlink = 1
        a.st_uid, a.st_gid = self.owners.owner_of(self.inodes.path(ino))
        a.st_rdev = 0
        a.st_size = 0
        a.st_blksize = 4096
        a.st_blocks = 0
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = self.mount_ns
        if not isinstance(node, Dir):
            if len(self._file_attrs) >= ATTRS_CACHED:
                self._file_attrs.clear()
            # weakly: the cache must not keep a node removed from the tree alive
            self._file_attrs[ino] = (weakref.ref(node), stable, a)
        return a

    def _owners_changed(self) -> None:
        """An owner rule changed (chown, remount, an instance made or removed): the
        files' attributes are built again."""
        self._file_attrs.clear()

    def _unobserved(self) -> bool:
        """Could a READ go without its syscall, the caller's identity and the host scan?
        A read attaches nothing; while nothing is attached (``Workload.quiet``) its path,
        its task and what the host did meanwhile leave no mark, and the next request
        that can leave one learns them.  Under ``run`` only while the tracer reports no
        syscalls (its lifecycle mode): the records it sent are still drained as they
        come (``serve._tracer_records``), none is a syscall this read would run in."""
        feed = self.feed
        return self.kernel.workload.quiet() and (feed is None or feed.mode == MODE_LIFECYCLE)

    def _traced(self, pid: int) -> bool:
        """Is ``pid`` traced (its syscalls reach the kernel from the tracer)?"""
        return self.feed is not None and self.kernel.workload.traced.owns(pid)

    def _enter(self, pid: int, uid: int, op: str = "", name: str = "", count: int = 0,
               path: str | tuple[str, ...] = "") -> bool:
        """The request starts running as ``pid``; True when ``pid`` is traced.

        Runs before every request: what a seeded kernel (no host-process scan, no
        working-directory check) or a mount without mirrors and tracer does not need is
        not done at all, not even a closure built for it."""
        kernel = self.kernel
        if self.sysctl is not None:
            self.sysctl.sync()
        if self.feed is not None:
            self.feed.drain()      # the caller's syscall entry (and all before it) first
            traced = kernel.workload.traced
            if traced.owns(pid):
                # inside its pending syscall, on its CPU; without one (lifecycle mode:
                # nothing attached) the CPU it last ran on
                cpu = 0 if traced.in_syscall(pid) else self.tasks.lookup(pid)[1]
                traced.request_enter(pid, cpu)
                return True
        tasks = self.tasks
        comm, cpu = tasks.lookup(pid)
        if kernel.deterministic:    # host activity is not reproducible: never reported
            kernel.syscall_enter(pid, comm, cpu, uid, op=op, name=name, count=count, path=path)
            return False
        self.hostprocs.sync(kernel, pid, comm, lambda p: cpu if p == pid else tasks.cpu(p))
        kernel.syscall_enter(pid, comm, cpu, uid, op=op, name=name, count=count, path=path,
                             before=lambda: self.hostprocs.chdir(kernel, pid))
        return False

    def _exit(self, pid: int, traced: bool, ret: int) -> None:
        """The request returns ``ret``; then the tracer's mode follows what it attached."""
        if traced:
            self.kernel.workload.traced.request_exit(pid)
        else:
            self.kernel.syscall_exit(ret)
        if self.feed is not None:
            self.feed.sync_mode()
        if self.sysctl is not None:
            self.sysctl.publish()

    def _call(self, pid: int, uid: int, fn: Callable[..., R], *args: object, op: str = "",
              name: str = "", count: int = 0, path: str = "") -> R:
        """Run ``fn`` in the simulated kernel as task ``pid`` (one syscall ``op`` on the
        file ``name``: for an untraced caller the kernel runs that syscall's code path
        around ``fn``; a traced one is in its real syscall already)."""
        traced = self._enter(pid, uid, op, name, count, path)
        try:
            res = fn(*args)
        except KernelError as e:
            self._exit(pid, traced, -e.errno)
            raise
        except BaseException:
            self._exit(pid, traced, 0)
            raise
        # the syscall's return value (what a return probe of vfs_read sees)
        if isinstance(res, (bytes, bytearray, memoryview)):
            self._exit(pid, traced, len(res))
        elif isinstance(res, int) and not isinstance(res, bool):
            self._exit(pid, traced, res)
        else:
            self._exit(pid, traced, 0)
        return res

    def _in_task(self, pid: int, fn: Callable[[], None]) -> None:
        """Run ``fn`` as task ``pid`` without a syscall of its own: RELEASE reaches us
        asynchronously (the closer does not wait for it), so it neither advances the
        background workload nor schedules the task (a seeded run stays reproducible);
        the close(2) itself ran at FLUSH.

        It often comes after the closer has exited (``cat`` closes and exits at once),
        when /proc no longer names it: a task the kernel knows runs as it is (its comm
        is what saved_cmdlines keeps), and a pid it no longer knows is not added to its
        task table."""
        sched = self.kernel.sched
        comm, cpu = self.tasks.lookup(pid)
        cpu %= self.kernel.nr_cpus
        task = sched.tasks.get(pid) or Task(pid, pid, comm[:TASK_COMM_LEN - 1])
        saved = sched.cpu, sched.current, sched.curr[cpu]
        sched.set_current(cpu, task)
        try:
            fn()
        finally:
            sched.cpu, sched.current, sched.curr[cpu] = saved

    def _invalidate_attrs(self, inodes: Iterable[int]) -> None:
        """Make the VFS ask again for the attributes of ``inodes`` (it caches only the
        stable ones').  Attributes only: no page cache, no inode lock, safe in a handler."""
        for ino in inodes:
            if not self.inodes.stable(ino):
                continue
            try:
                pyfuse3.invalidate_inode(ino, attr_only=True)
            except OSError:
                pass    # forgotten meanwhile

    # ------------------------------------------------------------------ inodes
    @_boundary
    def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
                     ) -> pyfuse3.EntryAttributes:
        parent = self._dir(parent_inode)
        if name == b".":
            node: Node | None = parent
        elif name == b"..":
            node = self._node(self.inodes.parent(parent_inode))
        else:
            node = self._call(ctx.pid, ctx.uid, parent.lookup, _fs_name(name))
        node = _found(node, errno.ENOENT)
        ino = self.inodes.ino(node, parent_inode, _fs_name(name))
        self.inodes.count_lookup(ino, node)
        return self.attrs(node, ino)

    async def forget(self, inode_list: list[tuple[int, int]]) -> None:
        try:
            for ino, nlookup in inode_list:
                self.inodes.forget(ino, nlookup)
        except Exception:
            log.exception("forget failed")

    @_boundary
    def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.attrs(self._node(inode), inode)

    @_boundary
    def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = self._node(inode)
        if fields.update_size:
            if not isinstance(node, File):
                raise pyfuse3.FUSEError(errno.EISDIR)
            if attr.st_size != 0:
                raise pyfuse3.FUSEError(errno.EINVAL)
            self._call(ctx.pid, ctx.uid, node.truncate)
        if fields.update_uid or fields.update_gid:
            path = self.inodes.path(inode)
            self.owners.chown(path, attr.st_uid if fields.update_uid else None,
                              attr.st_gid if fields.update_gid else None)
            self._owners_changed()
            # an instance's files take its directory's owner: drop the attributes the
            # VFS keeps for the ones below
            self._invalidate_attrs(self.inodes.below(path))
        # mode and times: accepted and not kept
        return self.attrs(node, inode)

    @_boundary
    def setxattr(self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        """``trusted.tracefs_sim.remount`` on the root: the tracefs remount options
        (``uid=``/``gid=``) that FUSE cannot deliver (scripts/tools/mount sends them)."""
        if inode != ROOT_INODE or name != REMOUNT_XATTR:
            raise pyfuse3.FUSEError(errno.ENOTSUP)
        self.owners.remount(value.decode("latin-1"))
        self._owners_changed()
        # every inode's owner may have changed: drop the attributes the VFS keeps
        self._invalidate_attrs([ROOT_INODE, *self.inodes.held()])

    @_boundary
    def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_blocks = s.f_bfree = s.f_bavail = 0
        s.f_files = s.f_ffree = s.f_favail = 0
        s.f_namemax = 255
        return s

    # ------------------------------------------------------------------ directories
    @_boundary
    def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        self._dir(inode)
        name = self.inodes.path(inode).rsplit("/", 1)[-1] or "."
        self._call(ctx.pid, ctx.uid, lambda: None, op="openat", name=name,
                   path=self._abspath(inode))
        fh = self._next_fh
        self._next_fh += 1
        self._dirs[fh] = DirHandle(inode, ctx.pid, ctx.uid)
        return fh

    @_boundary
    def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        dh = _found(self._dirs.get(fh), errno.EBADF)
        d = self._dir(dh.ino)
        if start_id == 0 or dh.entries is None:  # a snapshot per opendir/rewind: stable cookies
            parent = self._node(self.inodes.parent(dh.ino))
            children = [(os.fsencode(n), c)
                        for n, c in self._call(dh.pid, dh.uid, lambda: list(d.entries()),
                                               op="getdents64")]
            dh.entries = [(b".", d), (b"..", parent), *children]
        for idx in range(start_id, len(dh.entries)):
            name, node = dh.entries[idx]
            ino = self.inodes.ino(node, None if name in (b".", b"..") else dh.ino)
            if not pyfuse3.readdir_reply(token, name, self.attrs(node, ino), idx + 1):
                return
            if name not in (b".", b".."):  # readdirplus counts as a lookup, except . and ..
                self.inodes.count_lookup(ino, node)

    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)     # asynchronous, like RELEASE: no syscall path

    @_boundary
    def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
                    ) -> pyfuse3.EntryAttributes:
        parent = self._dir(parent_inode)
        node = self._call(ctx.pid, ctx.uid, parent.mkdir, _fs_name(name), op="mkdir",
                          path=f"{self._abspath(parent_inode)}/{_fs_name(name)}")
        ino = self.inodes.ino(node, parent_inode, _fs_name(name))
        self.owners.mkdir(self.inodes.path(parent_inode), self.inodes.path(ino))
        self._owners_changed()
        self.inodes.count_lookup(ino, node)
        return self.attrs(node, ino)

    @_boundary
    def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        parent = self._dir(parent_inode)
        self._call(ctx.pid, ctx.uid, parent.rmdir, _fs_name(name), op="rmdir",
                   path=f"{self._abspath(parent_inode)}/{_fs_name(name)}")
        self.owners.rmdir(f"{self.inodes.path(parent_inode)}/{_fs_name(name)}")
        self._owners_changed()

    @_boundary
    def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        raise pyfuse3.FUSEError(errno.EPERM)

    @_boundary
    def rename(self, *args: object) -> None:
        raise pyfuse3.FUSEError(errno.EPERM)

    @_boundary
    def mknod(self, *args: object) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    @_boundary
    def symlink(self, *args: object) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    @_boundary
    def link(self, *args: object) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    # ------------------------------------------------------------------ files
    def _open(self, ino: int, node: Node, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if not isinstance(node, File):
            raise pyfuse3.FUSEError(errno.EISDIR)
        mode = OpenMode.from_flags(flags)
        openfile = self._call(ctx.pid, ctx.uid, node.open, mode, op="openat",
                              name=self.inodes.name(ino), path=self._abspath(ino))
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = Handle(fh, ino, openfile, mode, ctx.pid, ctx.uid)
        return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False,
                                nonseekable=bool(openfile.nonseekable))

    @_boundary
    def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        return self._open(inode, self._node(inode), flags, ctx)

    @_boundary
    def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        parent = self._dir(parent_inode)
        node = self._call(ctx.pid, ctx.uid, parent.create, _fs_name(name))
        ino = self.inodes.ino(node, parent_inode, _fs_name(name))
        fi = self._open(ino, node, flags & ~(os.O_CREAT | os.O_EXCL), ctx)
        self.inodes.count_lookup(ino, node)
        return fi, self.attrs(node, ino)

    async def read(self, fh: int, off: int, size: int) -> bytes | memoryview:
        """READ: the one handler that may wait (``_wait``), and the busiest (a
        trace_pipe_raw reader makes one per page), so its error boundary is written
        out here instead of wrapping it in a second coroutine."""
        try:
            h = self._handle(fh)
            while True:
                if self._unobserved():
                    # nothing attached can see this read: it is not run as a syscall
                    if self.sysctl is not None:
                        self.sysctl.sync()      # a sysctl written meanwhile applies first
                    self.kernel.workload.catch_up()    # a seeded clock still ticks
                    data = h.openfile.read(off, size)
                else:
                    data = self._call(h.pid, h.uid, h.openfile.read, off, size, op="read",
                                      name=self.inodes.name(h.ino), count=size)
                if not isinstance(data, _WouldBlock):
                    # pyfuse3 replies from the buffer before anything can run: a view
                    # (a big file's slice) needs no copy of its own
                    return data if isinstance(data, memoryview) else bytes(data)
                if h.mode.nonblock or fd_nonblock(h.pid, h.ino, self.inodes.name(h.ino)):
                    raise pyfuse3.FUSEError(errno.EAGAIN)
                if not await self._wait(h):
                    return b""
        except pyfuse3.FUSEError:
            raise
        except Exception as e:
            raise _fuse_error("read", (fh, off, size), e) from None

    async def _wait(self, h: Handle) -> bool:
        """Sleep until the file's wait queue is woken (True: read again).

        EINTR when the reader has a pending signal or has died (checked every
        SIGNAL_RECHECK: pyfuse3 has no FUSE_INTERRUPT).  False (answer EOF) when the
        file was released or the mount is going away: an EINTR would only make
        coreutils' safe_read() retry until the connection is aborted.
        """
        wq = h.openfile.wait_queue
        if wq is None:
            raise KernelError(errno.EIO, "WOULD_BLOCK without a wait queue")
        if self.closing or h.closed:
            return False
        # (an unobserved read did not run as a syscall: its task does not sleep in one)
        traced = self._traced(h.pid) and not self._unobserved()
        if traced:
            self.kernel.workload.traced.request_block(h.pid)   # asleep in its syscall
        ev = trio.Event()
        scope = trio.CancelScope()
        wq.add(ev.set)
        h.waits.add(ev)
        self._wait_scopes.add(scope)
        try:
            with scope:
                while not ev.is_set():
                    with trio.move_on_after(SIGNAL_RECHECK):
                        await ev.wait()
                    # check before consuming data: a dead or signalled reader must not eat it
                    if signal_pending(h.pid) is not False:
                        raise pyfuse3.FUSEError(errno.EINTR)
        finally:
            wq.remove(ev.set)
            h.waits.discard(ev)
            self._wait_scopes.discard(scope)
        again = not (scope.cancelled_caught or h.closed or self.closing)
        if again and traced:
            self.kernel.workload.traced.request_wake(h.pid)
        return again

    @_boundary
    def write(self, fh: int, off: int, buf: bytes) -> int:
        h = self._handle(fh)
        return self._call(h.pid, h.uid, h.openfile.write, off, buf, op="write",
                          name=self.inodes.name(h.ino), count=len(buf))

    @_boundary
    def flush(self, fh: int) -> None:
        """close(2) of one descriptor: the caller waits for FLUSH, so the close syscall's
        path (filp_close, fput) runs here, in order with the caller's other requests."""
        h = self._handle(fh)
        self._call(h.pid, h.uid, h.openfile.flush, op="close", name=self.inodes.name(h.ino))

    async def release(self, fh: int) -> None:
        h = self._handles.pop(fh, None)
        if h is None:
            return
        h.closed = True
        for ev in list(h.waits):
            ev.set()
        try:
            if h.poll_wq is not None:
                h.poll_wq.remove(h.notify_poll)
            self._in_task(h.pid, h.openfile.release)
        except Exception:
            log.exception("release fh=%d failed", fh)

    async def fsync(self, fh: int, datasync: bool) -> None:
        return None

    @_boundary
    def poll(self, inode: int, fh: int, poll_handle: pyfuse3.PollHandle | None,
                   ctx: pyfuse3.RequestContext) -> int:
        h = self._handles.get(fh)
        if h is None:
            return DEFAULT_POLL
        try:
            if poll_handle is not None:
                h.poll_handle = poll_handle
                if h.poll_wq is None:
                    wq = h.openfile.wait_queue
                    if wq is not None:
                        wq.add(h.notify_poll)
                        h.poll_wq = wq
            return int(self._call(ctx.pid or h.pid, ctx.uid, h.openfile.poll))
        except Exception:  # never an errno (ENOSYS would disable poll for the mount)
            log.exception("poll fh=%d failed", fh)
            return select.POLLERR

    # ------------------------------------------------------------------ shutdown
    def waiting(self) -> int:
        """Requests still asleep in a wait, plus the handles whose wait was cancelled and
        which their reader has not closed yet: the session must outlive both, or the
        reader's close(2) after its EOF ends with ECONNABORTED."""
        return len(self._wait_scopes) + sum(1 for fh in self._cancelled if fh in self._handles)

    def cancel_waits(self) -> None:
        self.closing = True
        self._cancelled |= {fh for fh, h in self._handles.items() if h.waits}
        for scope in list(self._wait_scopes):
            scope.cancel()

    async def destroy(self) -> None:  # type: ignore[override]
        self.cancel_waits()
