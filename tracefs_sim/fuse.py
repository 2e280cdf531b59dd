"""The pyfuse3 adapter: maps FUSE requests onto the tracefs tree, and nothing else.

The tree (``tracefs/node.py``) never sees pyfuse3 or trio; this module never
interprets tracing.  What it adds is what only a FUSE server can do
(see ../shared/notes/fuse.md for the measurements behind each choice):

* inode numbers: one per ``Node`` object, never reused, with kernel lookup counts;
* the caller's context (pid, comm, CPU, uid) around every request
  (``Kernel.syscall_enter``/``syscall_exit``), because records carry it;
* blocking reads: ``WOULD_BLOCK`` becomes a trio wait on the file's wait queue,
  bounded so that a signal to the blocked reader ends it with EINTR (pyfuse3 has
  no FUSE_INTERRUPT hook), and cancellable at unmount;
* poll: the latest ``PollHandle`` per open file is notified from the wait queue;
* errors at one boundary: ``KernelError`` → its errno, anything else → logged + EIO,
  so a bug in one file never takes the mount down.
"""

from __future__ import annotations

import errno
import faulthandler
import functools
import logging
import os
import resource
import select
import signal
import socket
import stat
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import pyfuse3
import trio

from . import syscall_mirror
from .hostprocs import HostProcs
from .kernel.errors import KernelError, _WouldBlock
from .tracefs.node import DEFAULT_POLL, Dir, File, Node, OpenFile, OpenMode

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
COMM_TTL = 0.2  # seconds a pid's comm is trusted (exec changes it)
CPU_TTL = 0.02  # seconds a pid's last CPU is trusted (one request after another)
IDLE_TICK = 0.01
MAX_TASKS = 10000


# ------------------------------------------------------------------------- caller context
def _read_proc(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return None


def signal_pending(pid: int) -> bool | None:
    """True if ``pid`` has a pending unblocked signal, None if it is gone (or a zombie).

    ``/proc/<pid>/status``: (SigPnd | ShdPnd) & ~SigBlk (notes/tools.md §4).
    """
    text = _read_proc(f"/proc/{pid}/status")
    if text is None:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("State", "SigPnd", "ShdPnd", "SigBlk"):
            fields[key] = value.strip()
    if fields.get("State", "").startswith(("Z", "X")):
        return None
    try:
        pending = int(fields.get("SigPnd", "0"), 16) | int(fields.get("ShdPnd", "0"), 16)
        blocked = int(fields.get("SigBlk", "0"), 16)
    except ValueError:
        return False
    return bool(pending & ~blocked)


def fd_nonblock(pid: int, ino: int, name: str) -> bool:
    """True if ``pid`` holds an fd on our inode ``ino`` with O_NONBLOCK set *now*.

    pyfuse3's read() gets no file flags, so an ``fcntl(F_SETFL, O_NONBLOCK)`` after open
    (perf ftrace's trace_pipe fd) is invisible; without this its final drain read, made
    after tracing_on=0 on an empty buffer, blocks for ever.  Asked only before blocking:
    ``/proc/<pid>/fdinfo/N`` (flags, ino) of fds whose link names ``name``.
    """
    try:
        fds = os.listdir(f"/proc/{pid}/fdinfo")
    except OSError:
        return False
    for fd in fds:
        text = _read_proc(f"/proc/{pid}/fdinfo/{fd}")
        if text is None or f"\nino:\t{ino}\n" not in text + "\n":
            continue
        try:
            if not os.readlink(f"/proc/{pid}/fd/{fd}").endswith("/" + name):
                continue
            flags = int(text.split("flags:", 1)[1].split()[0], 8)
        except (OSError, IndexError, ValueError):
            continue
        if flags & os.O_NONBLOCK:
            return True
    return False


class TaskInfo:
    """comm and CPU of a caller pid, cheap enough to ask on every request."""

    def __init__(self, nr_cpus: int) -> None:
        self.nr_cpus = max(1, nr_cpus)
        self._comm: dict[int, tuple[float, str]] = {}
        self._stat: dict[int, tuple[float, str, int]] = {}

    def comm(self, pid: int) -> str:
        now = time.monotonic()
        hit = self._comm.get(pid)
        if hit is not None and now - hit[0] < COMM_TTL:
            return hit[1]
        text = _read_proc(f"/proc/{pid}/comm")
        comm = text.rstrip("\n") if text is not None else (hit[1] if hit else "<...>")
        self._remember(pid, now, comm)
        return comm

    def _remember(self, pid: int, now: float, comm: str) -> None:
        if len(self._comm) > 4096:  # drop stale entries now and then
            self._comm = {p: v for p, v in self._comm.items() if now - v[0] < COMM_TTL}
        self._comm[pid] = (now, comm)

    def refresh(self, pid: int) -> None:
        """Forget what is cached of ``pid`` (a syscall it makes right after an exec
        must see the new comm)."""
        self._comm.pop(pid, None)
        self._stat.pop(pid, None)

    def lookup(self, pid: int) -> tuple[str, int]:
        """(comm, cpu) of ``pid``: a pinned task runs on its one allowed CPU, any other
        on the CPU it last ran on (field 39 of /proc/<pid>/stat), modulo nr_cpus.  The
        affinity is asked every time: ``taskset -c 1 echo x > trace_marker`` opens the
        file before taskset pins the process and writes right after."""
        if pid <= 0:
            return "<idle>", 0
        try:
            allowed = os.sched_getaffinity(pid)
        except OSError:
            allowed = set()
        if len(allowed) == 1:
            return self.comm(pid), next(iter(allowed)) % self.nr_cpus
        now = time.monotonic()
        hit = self._stat.get(pid)
        if hit is not None and now - hit[0] < CPU_TTL:
            return hit[1], hit[2]
        text = _read_proc(f"/proc/{pid}/stat")
        if text is None:
            return self.comm(pid), 0
        head, _, tail = text.rpartition(")")
        comm = head.partition("(")[2]
        self._remember(pid, time.monotonic(), comm)
        try:
            cpu = int(tail.split()[36]) % self.nr_cpus  # field 39; tail starts at field 3
        except (IndexError, ValueError):
            cpu = 0
        if len(self._stat) > 4096:
            self._stat.clear()
        self._stat[pid] = (now, comm, cpu)
        return comm, cpu


# ------------------------------------------------------------------------- open files
REMOUNT_XATTR = b"trusted.tracefs_sim.remount"

class Handle:
    """An open file (FUSE fh): the tree's OpenFile plus what only the adapter tracks."""

    __slots__ = ("fh", "ino", "openfile", "mode", "pid", "uid", "poll_handle", "poll_wq",
                 "waits", "closed")

    def __init__(self, fh: int, ino: int, openfile: OpenFile, mode: OpenMode, pid: int,
                 uid: int) -> None:
        self.fh = fh
        self.ino = ino
        self.openfile = openfile
        self.mode = mode
        self.pid = pid
        self.uid = uid
        self.poll_handle: pyfuse3.PollHandle | None = None
        self.poll_wq: Any = None
        self.waits: set[trio.Event] = set()
        self.closed = False

    def notify_poll(self) -> None:
        """Wait-queue callback: wake a poll()/select() sleeping on this file."""
        ph, self.poll_handle = self.poll_handle, None
        if ph is not None:
            try:
                ph.notify()
            except (OSError, RuntimeError) as e:  # the waiter went away
                log.debug("poll notify fh=%d: %s", self.fh, e)


class DirHandle:
    __slots__ = ("ino", "entries", "pid", "uid")

    def __init__(self, ino: int, pid: int, uid: int) -> None:
        self.ino = ino
        self.pid = pid
        self.uid = uid
        self.entries: list[tuple[bytes, Node]] | None = None


def _boundary(fn: Callable) -> Callable:
    """The one error boundary: KernelError → errno, anything else → log + EIO."""

    @functools.wraps(fn)
    async def wrapper(self: Operations, *args: Any) -> Any:
        try:
            return await fn(self, *args)
        except pyfuse3.FUSEError:
            raise
        except KernelError as e:
            raise pyfuse3.FUSEError(e.errno) from None
        except Exception:
            log.exception("%s%r failed", fn.__name__, args[:3])
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper


class Operations(pyfuse3.Operations):
    """pyfuse3 operations over a tracefs ``Dir``."""

    supports_dot_lookup = False
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, kernel: Any, root: Dir) -> None:
        super().__init__()
        self.kernel = kernel
        self.root = root
        self.uid = os.getuid()
        self.gid = os.getgid()
        self.mount_ns = time.time_ns()
        self.tasks = TaskInfo(kernel.nr_cpus)
        self.hostprocs = HostProcs()  # host forks/exits since the last request
        self.sysctl: Any = None  # a SysctlMirror (mount --sysctl-dir): synced per request
        self.mountpoint = ""  # absolute, set by run(): the pathnames callers pass
        self._mps: list[str] = []    # where the mount is visible (bind mounts too)
        self._mps_until = 0.0
        # inode numbers: per Node object, never reused
        self._ino_of: weakref.WeakKeyDictionary[Node, int] = weakref.WeakKeyDictionary()
        self._node_of: weakref.WeakValueDictionary[int, Node] = weakref.WeakValueDictionary()
        self._pinned: dict[int, Node] = {}  # inodes the kernel holds (lookup count > 0)
        self._lookups: dict[int, int] = {}
        self._parent: dict[int, int] = {}
        self._paths: dict[int, str] = {pyfuse3.ROOT_INODE: ""}
        self._owner: dict[str, tuple[int | None, int | None]] = {}
        self._names: dict[int, str] = {}
        self._stable: set[int] = {pyfuse3.ROOT_INODE}  # inodes whose dentry may be cached
        self._next_ino = pyfuse3.ROOT_INODE + 1
        self._ino_of[root] = pyfuse3.ROOT_INODE
        self._node_of[pyfuse3.ROOT_INODE] = root
        self._pinned[pyfuse3.ROOT_INODE] = root
        self._parent[pyfuse3.ROOT_INODE] = pyfuse3.ROOT_INODE
        # open files
        self._handles: dict[int, Handle] = {}
        self._dirs: dict[int, DirHandle] = {}
        self._next_fh = 1
        # blocked waits, cancelled at shutdown
        self._wait_scopes: set[trio.CancelScope] = set()
        self.closing = False

    # ------------------------------------------------------------------ helpers
    def ino(self, node: Node, parent: int | None = None, name: str = "") -> int:
        ino = self._ino_of.get(node)
        if ino is None:
            ino = self._next_ino
            self._next_ino += 1
            self._ino_of[node] = ino
            self._node_of[ino] = node
        if parent is not None and node.is_dir:
            self._parent[ino] = parent
        if name:
            self._names[ino] = name
            if parent is not None:
                self._paths[ino] = f"{self._paths.get(parent, '')}/{name}"
                pnode = self._node_of.get(parent)
                if (parent in self._stable and isinstance(pnode, Dir)
                        and pnode.stable_child(name)):
                    self._stable.add(ino)
        return ino

    def node(self, ino: int) -> Node:
        node = self._node_of.get(ino)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return node

    def _dir(self, ino: int) -> Dir:
        node = self.node(ino)
        if not isinstance(node, Dir):
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return node

    def _count_lookup(self, ino: int, node: Node) -> None:
        self._lookups[ino] = self._lookups.get(ino, 0) + 1
        self._pinned[ino] = node

    def attrs(self, node: Node, ino: int) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = ino
        a.generation = 0
        if ino in self._stable:
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
        a.st_uid, a.st_gid = self.owner_of(self._paths.get(ino, ""))
        a.st_rdev = 0
        a.st_size = 0
        a.st_blksize = 4096
        a.st_blocks = 0
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = self.mount_ns
        return a

    def _enter(self, pid: int, uid: int, op: str = "", name: str = "", count: int = 0,
               path: str = "") -> None:
        if self.sysctl is not None:
            self.sysctl.sync()
        lookup = self.tasks.lookup
        comm, cpu = lookup(pid)
        self.hostprocs.sync(self.kernel, pid, lambda p: (comm, cpu) if p == pid else lookup(p))
        self.kernel.syscall_enter(pid, comm, cpu, uid, op=op, name=name, count=count, path=path,
                                  before=lambda: self.hostprocs.chdir(self.kernel, pid))

    def _call(self, pid: int, uid: int, fn: Callable[..., Any], *args: Any, op: str = "",
              name: str = "", count: int = 0, path: str = "") -> Any:
        """Run ``fn`` in the simulated kernel as task ``pid`` (one syscall ``op`` on the
        file ``name``: the kernel runs that syscall's code path around ``fn``)."""
        self._enter(pid, uid, op, name, count, path)
        ret = 0
        try:
            res = fn(*args)
            # the syscall's return value (what a return probe of vfs_read sees)
            if isinstance(res, (bytes, bytearray)):
                ret = len(res)
            elif isinstance(res, int) and not isinstance(res, bool):
                ret = res
            return res
        except KernelError as e:
            ret = -e.errno
            raise
        finally:
            self.kernel.syscall_exit(ret)
            if self.sysctl is not None:
                self.sysctl.publish()

    def _in_task(self, pid: int, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` as task ``pid`` without a syscall of its own: RELEASE reaches us
        asynchronously (the closer does not wait for it), so it neither advances the
        background workload nor schedules the task (a seeded run stays reproducible);
        the close(2) itself ran at FLUSH."""
        sched = getattr(self.kernel, "sched", None)
        if sched is None:
            return fn()
        comm, cpu = self.tasks.lookup(pid)
        cpu %= self.kernel.nr_cpus
        saved = sched.cpu, sched.current, sched.curr[cpu]
        sched.set_current(cpu, sched.task(pid, comm))
        try:
            return fn()
        finally:
            sched.cpu, sched.current, sched.curr[cpu] = saved

    def _abspath(self, ino: int) -> str:
        """The file's absolute path through the mount (what a caller's pathname names)."""
        return self.mountpoint + self._paths.get(ino, "")

    def _handle(self, fh: int) -> Handle:
        h = self._handles.get(fh)
        if h is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        return h

    def _name(self, name: bytes) -> str:
        return os.fsdecode(name)

    def host_syscall(self, n: syscall_mirror.Notification) -> None:
        """A path syscall a filtered host process makes (``syscall_mirror``): run it
        through the simulated kernel as that process, unless nothing is attached (it
        would leave no trace) or it names a file of the mount (the FUSE request that
        follows runs the same path with the file it knows)."""
        wl = getattr(self.kernel, "workload", None)
        if wl is None or wl.quiet() or n.op is None:
            return
        paths = n.paths()
        if paths is None:
            return
        target = syscall_mirror.resolve(n, paths[-1])
        now = time.monotonic()
        if now >= self._mps_until:
            self._mps = syscall_mirror.mount_points(self.mountpoint)
            self._mps_until = now + 1.0
        if any(target == mp or target.startswith(mp + "/") for mp in self._mps):
            return
        try:
            uid = os.stat(f"/proc/{n.pid}").st_uid
        except OSError:
            return      # gone
        self.tasks.refresh(n.pid)
        self._enter(n.pid, uid, n.op, os.path.basename(target) or target,
                    path=paths if len(paths) > 1 else paths[0])
        self.kernel.syscall_exit(3 if n.op in ("open", "openat") else 0)

    # ------------------------------------------------------------------ inodes
    @_boundary
    async def lookup(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
                     ) -> pyfuse3.EntryAttributes:
        parent = self._dir(parent_inode)
        if name == b".":
            node: Node | None = parent
        elif name == b"..":
            node = self.node(self._parent.get(parent_inode, pyfuse3.ROOT_INODE))
        else:
            node = self._call(ctx.pid, ctx.uid, parent.lookup, self._name(name))
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        ino = self.ino(node, parent_inode, self._name(name))
        self._count_lookup(ino, node)
        return self.attrs(node, ino)

    async def forget(self, inode_list: list[tuple[int, int]]) -> None:
        try:
            for ino, nlookup in inode_list:
                left = self._lookups.get(ino, 0) - nlookup
                if left > 0:
                    self._lookups[ino] = left
                    continue
                self._lookups.pop(ino, None)
                if ino != pyfuse3.ROOT_INODE:
                    self._pinned.pop(ino, None)
                    if ino not in self._node_of:    # gone from the tree: never seen again
                        self._parent.pop(ino, None)
                        self._paths.pop(ino, None)
                        self._names.pop(ino, None)
                        self._stable.discard(ino)
        except Exception:
            log.exception("forget failed")

    @_boundary
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.attrs(self.node(inode), inode)

    @_boundary
    async def setattr(self, inode: int, attr: pyfuse3.EntryAttributes, fields: pyfuse3.SetattrFields,
                      fh: int | None, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        node = self.node(inode)
        if fields.update_size:
            if not isinstance(node, File):
                raise pyfuse3.FUSEError(errno.EISDIR)
            if attr.st_size != 0:
                raise pyfuse3.FUSEError(errno.EINVAL)
            self._call(ctx.pid, ctx.uid, node.truncate)
        if fields.update_uid or fields.update_gid:
            # tracefs keeps chown/chgrp per inode (eventfs per entry) until a remount
            # with uid=/gid= resets them: keyed by path, as lazy nodes are recreated
            path = self._paths.get(inode, "")
            uid, gid = self._owner.get(path, (None, None))
            if fields.update_uid:
                uid = attr.st_uid
            if fields.update_gid:
                gid = attr.st_gid
            self._owner[path] = (uid, gid)
            # an instance's files take its directory's owner (owner_of): drop the
            # attributes the VFS keeps for the ones below
            self._invalidate_attrs(ino for ino, p in list(self._paths.items())
                                   if p.startswith(path + "/"))
        # mode and times: accepted and not kept
        return self.attrs(node, inode)

    def owner_of(self, path: str) -> tuple[int, int]:
        """set_tracefs_inode_owner(): the inode's own chown/chgrp, else its root's (the
        instance directory for files of an instance), else the mount's uid/gid."""
        uid, gid = self._owner.get(path, (None, None))
        if uid is None or gid is None:
            parts = path.split("/")
            if len(parts) > 3 and parts[1] == "instances":
                ruid, rgid = self._owner.get("/".join(parts[:3]), (None, None))
                uid = ruid if uid is None else uid
                gid = rgid if gid is None else gid
        return (self.uid if uid is None else uid, self.gid if gid is None else gid)

    @_boundary
    async def setxattr(self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext) -> None:
        """``trusted.tracefs_sim.remount`` on the root: the tracefs remount options
        (``uid=``/``gid=``) that FUSE cannot deliver (scripts/tools/mount sends them)."""
        if inode != pyfuse3.ROOT_INODE or name != REMOUNT_XATTR:
            raise pyfuse3.FUSEError(errno.ENOTSUP)
        self.remount(value.decode("latin-1"))
        # every inode's owner may have changed: drop the attributes the VFS keeps
        self._invalidate_attrs([pyfuse3.ROOT_INODE, *self._lookups])

    def _invalidate_attrs(self, inodes: Iterable[int]) -> None:
        """Make the VFS ask again for the attributes of ``inodes`` (it caches only the
        stable ones').  Attributes only: no page cache, no inode lock, safe in a handler."""
        for ino in inodes:
            if ino not in self._stable:
                continue
            try:
                pyfuse3.invalidate_inode(ino, attr_only=True)
            except OSError:
                pass    # forgotten meanwhile

    def remount(self, options: str) -> None:
        """tracefs_apply_options(): new owner/group for every inode, chown/chgrp reset."""
        for opt in options.split(","):
            key, _, val = opt.partition("=")
            if key in ("uid", "gid") and val.isdigit():
                idx = 0 if key == "uid" else 1
                setattr(self, key, int(val))
                for path, owner in list(self._owner.items()):
                    cleared = (None, owner[1]) if idx == 0 else (owner[0], None)
                    self._owner[path] = cleared

    @_boundary
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_blocks = s.f_bfree = s.f_bavail = 0
        s.f_files = s.f_ffree = s.f_favail = 0
        s.f_namemax = 255
        return s

    # ------------------------------------------------------------------ directories
    @_boundary
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        self._dir(inode)
        name = self._paths.get(inode, "").rsplit("/", 1)[-1] or "."
        self._call(ctx.pid, ctx.uid, lambda: None, op="openat", name=name,
                   path=self._abspath(inode))
        fh = self._next_fh
        self._next_fh += 1
        self._dirs[fh] = DirHandle(inode, ctx.pid, ctx.uid)
        return fh

    @_boundary
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        dh = self._dirs.get(fh)
        if dh is None:
            raise pyfuse3.FUSEError(errno.EBADF)
        d = self._dir(dh.ino)
        if start_id == 0 or dh.entries is None:  # a snapshot per opendir/rewind: stable cookies
            parent = self.node(self._parent.get(dh.ino, pyfuse3.ROOT_INODE))
            children = [(os.fsencode(n), c)
                        for n, c in self._call(dh.pid, dh.uid, lambda: list(d.entries()),
                                               op="getdents64")]
            dh.entries = [(b".", d), (b"..", parent), *children]
        for idx in range(start_id, len(dh.entries)):
            name, node = dh.entries[idx]
            ino = self.ino(node, None if name in (b".", b"..") else dh.ino)
            if not pyfuse3.readdir_reply(token, name, self.attrs(node, ino), idx + 1):
                return
            if name not in (b".", b".."):  # readdirplus counts as a lookup, except . and ..
                self._count_lookup(ino, node)

    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)     # asynchronous, like RELEASE: no syscall path

    @_boundary
    async def mkdir(self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
                    ) -> pyfuse3.EntryAttributes:
        parent = self._dir(parent_inode)
        node = self._call(ctx.pid, ctx.uid, parent.mkdir, self._name(name), op="mkdir",
                          path=f"{self._abspath(parent_inode)}/{self._name(name)}")
        ino = self.ino(node, parent_inode, self._name(name))
        path = self._paths.get(ino, "")
        self._owner.pop(path, None)  # a new instance takes its parent's explicit owner
        if self._paths.get(parent_inode, "") in self._owner:
            self._owner[path] = self._owner[self._paths[parent_inode]]
        self._count_lookup(ino, node)
        return self.attrs(node, ino)

    @_boundary
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        parent = self._dir(parent_inode)
        self._call(ctx.pid, ctx.uid, parent.rmdir, self._name(name), op="rmdir",
                   path=f"{self._abspath(parent_inode)}/{self._name(name)}")
        gone = f"{self._paths.get(parent_inode, '')}/{self._name(name)}"
        for path in [p for p in self._owner if p == gone or p.startswith(gone + "/")]:
            del self._owner[path]

    @_boundary
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        raise pyfuse3.FUSEError(errno.EPERM)

    @_boundary
    async def rename(self, *args: Any) -> None:
        raise pyfuse3.FUSEError(errno.EPERM)

    @_boundary
    async def mknod(self, *args: Any) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    @_boundary
    async def symlink(self, *args: Any) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    @_boundary
    async def link(self, *args: Any) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    # ------------------------------------------------------------------ files
    def _open(self, ino: int, node: Node, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if not isinstance(node, File):
            raise pyfuse3.FUSEError(errno.EISDIR)
        mode = OpenMode.from_flags(flags)
        openfile = self._call(ctx.pid, ctx.uid, node.open, mode, op="openat",
                              name=self._names.get(ino, ""), path=self._abspath(ino))
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = Handle(fh, ino, openfile, mode, ctx.pid, ctx.uid)
        return pyfuse3.FileInfo(fh=fh, direct_io=True, keep_cache=False,
                                nonseekable=bool(openfile.nonseekable))

    @_boundary
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        return self._open(inode, self.node(inode), flags, ctx)

    @_boundary
    async def create(self, parent_inode: int, name: bytes, mode: int, flags: int,
                     ctx: pyfuse3.RequestContext) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        parent = self._dir(parent_inode)
        node = self._call(ctx.pid, ctx.uid, parent.create, self._name(name))
        ino = self.ino(node, parent_inode, self._name(name))
        fi = self._open(ino, node, flags & ~(os.O_CREAT | os.O_EXCL), ctx)
        self._count_lookup(ino, node)
        return fi, self.attrs(node, ino)

    @_boundary
    async def read(self, fh: int, off: int, size: int) -> bytes:
        h = self._handle(fh)
        while True:
            data = self._call(h.pid, h.uid, h.openfile.read, off, size, op="read",
                              name=self._names.get(h.ino, ""), count=size)
            if not isinstance(data, _WouldBlock):
                return bytes(data)
            if h.mode.nonblock or fd_nonblock(h.pid, h.ino, self._names.get(h.ino, "")):
                raise pyfuse3.FUSEError(errno.EAGAIN)
            if not await self._wait(h):
                return b""

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
        return not (scope.cancelled_caught or h.closed or self.closing)

    @_boundary
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        h = self._handle(fh)
        return self._call(h.pid, h.uid, h.openfile.write, off, buf, op="write",
                          name=self._names.get(h.ino, ""), count=len(buf))

    @_boundary
    async def flush(self, fh: int) -> None:
        """close(2) of one descriptor: the caller waits for FLUSH, so the close syscall's
        path (filp_close, fput) runs here, in order with the caller's other requests."""
        h = self._handle(fh)
        self._call(h.pid, h.uid, h.openfile.flush, op="close", name=self._names.get(h.ino, ""))

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
    async def poll(self, inode: int, fh: int, poll_handle: pyfuse3.PollHandle | None,
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
        return len(self._wait_scopes)

    def cancel_waits(self) -> None:
        self.closing = True
        for scope in list(self._wait_scopes):
            scope.cancel()

    async def destroy(self) -> None:  # type: ignore[override]
        self.cancel_waits()


# ------------------------------------------------------------------------- main loop
async def _idle_ticker(kernel: Any, ops: Any = None) -> None:
    while True:
        await trio.sleep(IDLE_TICK)
        try:
            kernel.idle_tick()
            if ops is not None:
                ops.hostprocs.poll(kernel, ops.tasks.lookup)
        except Exception:
            log.exception("idle_tick failed")


async def _signal_watcher(ops: Operations) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("%s: unmounting", signal.Signals(signum).name)
            ops.cancel_waits()
            # let the cancelled readers answer EINTR before the session goes away
            # (otherwise they end with ECONNABORTED when the connection is aborted)
            with trio.move_on_after(1.0):
                while ops.waiting():
                    await trio.sleep(0.005)
            pyfuse3.terminate()
            return


async def _syscall_socket(ops: Operations, path: str, nursery: trio.Nursery) -> None:
    """Accept syscall_mirror launchers: each hands over a seccomp listener."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.setblocking(False)
    srv.bind(path)
    srv.listen(8)
    try:
        while True:
            await trio.lowlevel.wait_readable(srv)
            try:
                conn, _ = srv.accept()
            except BlockingIOError:
                continue
            with conn:
                conn.setblocking(False)
                await trio.lowlevel.wait_readable(conn)
                try:
                    _, fds, _, _ = socket.recv_fds(conn, 16, 4)
                except OSError:
                    continue
                for fd in fds:
                    nursery.start_soon(_mirror_syscalls, ops, syscall_mirror.Listener(fd))
                conn.setblocking(True)
                conn.sendall(syscall_mirror.GO if fds else b"N")
    finally:
        srv.close()
        try:
            os.unlink(path)
        except OSError:
            pass


async def _mirror_syscalls(ops: Operations, lst: syscall_mirror.Listener) -> None:
    """Serve one listener until every process under its filter is gone."""
    poller = select.poll()
    poller.register(lst.fd, select.POLLIN)
    try:
        while True:
            await trio.lowlevel.wait_readable(lst.fd)
            events = dict(poller.poll(0)).get(lst.fd, 0)
            if not events & select.POLLIN:
                if events & (select.POLLHUP | select.POLLERR):
                    return
                continue
            n = lst.receive()
            if n is None:
                continue
            try:
                ops.host_syscall(n)
            except Exception:
                log.exception("mirroring syscall %d of pid %d failed", n.nr, n.pid)
            finally:
                lst.proceed(n)
    finally:
        lst.close()


async def _serve(ops: Operations, kernel: Any, syscall_socket: str | None = None) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_signal_watcher, ops)
        if not getattr(kernel, "deterministic", False):
            nursery.start_soon(_idle_ticker, kernel, ops)
        if syscall_socket:
            nursery.start_soon(_syscall_socket, ops, syscall_socket, nursery)
        await pyfuse3.main(min_tasks=1, max_tasks=MAX_TASKS)
        ops.cancel_waits()
        nursery.cancel_scope.cancel()


def _connection_aborted(exc: BaseException) -> bool:
    """True when ``exc`` (possibly a nested exception group) is only the end of the session."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_connection_aborted(sub) for sub in exc.exceptions)
    return isinstance(exc, ConnectionAbortedError)


def fuse_options(allow_other: bool, debug: bool) -> set[str]:
    opts = set(pyfuse3.default_options)  # default_permissions
    opts |= {"fsname=tracefs", "subtype=tracefs", "default_permissions"}
    if allow_other:
        opts.add("allow_other")
    if debug:
        opts.add("debug")
    return opts


def run(mountpoint: str, kernel: Any, tree: Dir, allow_other: bool = False,
        debug: bool = False, sysctl: Any = None, syscall_socket: str | None = None) -> int:
    """Mount ``tree`` on ``mountpoint`` and serve until unmounted or SIGINT/SIGTERM."""
    faulthandler.enable()
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    ops = Operations(kernel, tree)
    ops.sysctl = sysctl
    ops.mountpoint = os.path.abspath(mountpoint)
    pyfuse3.init(ops, mountpoint, fuse_options(allow_other, debug))
    log.info("mounted on %s (%d CPUs)", mountpoint, kernel.nr_cpus)
    unmount = True
    try:
        trio.run(_serve, ops, kernel, syscall_socket)
    except BaseException as e:  # ExceptionGroup from pyfuse3.main: still unmount, then report
        if isinstance(e, KeyboardInterrupt):
            log.info("interrupted")
        elif _connection_aborted(e):
            # a lazy unmount (fusermount -u -z) or an abort through
            # /sys/fs/fuse/connections ends the session with ECONNABORTED instead of
            # ENODEV: the mount is gone either way, which is a normal end for us
            log.info("connection aborted: %s", mountpoint)
        else:
            log.exception("FUSE main loop failed")
            return 1
    finally:
        # the loop is over: a late SIGTERM/SIGINT (e.g. from a test teardown racing a
        # fusermount -u) must not kill us half-way through the unmount
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        pyfuse3.close(unmount=unmount)
        ops.hostprocs.close()
        ru = resource.getrusage(resource.RUSAGE_SELF)
        log.info("unmounted: %.2f s user, %.2f s system, max RSS %d KiB",
                 ru.ru_utime, ru.ru_stime, ru.ru_maxrss)
    return 0
