"""The 9P root file system of the simulated VM (fs/9p/vfs_*.c, fid.c over the VFS's
dcache): what a traced program's path lookups, opens, reads, writes, stats, readdirs,
unlinks and closes cost on a root mounted as the reference VM mounts it.

Cache mode.  The reference VM loads 9p, 9pnet, 9pnet_virtio and netfs and nothing of
fscache/cachefiles, and its root is mounted by an init with no ``cache=`` option, so the
session runs with the kernel's default, ``cache=none``: every open file is P9L_DIRECT
(reads and writes go to the server through netfs's unbuffered paths), dentries are
dropped at their last reference (``always_delete_dentry``) and inodes at their last
iput (``v9fs_drop_inode`` returns 1), and every lookup asks the server (Twalk, then
Tgetattr for a fresh inode).  So a path component that no live dentry holds costs a
walk and a getattr, and its fid is clunked when the syscall lets go of it.

The VM's mount table: ``/`` is the 9P root; ``/proc``, ``/sys`` (with the tracing
mount), ``/dev`` and ``/run`` are other file systems (their files take no 9P path).
Dentries the VM keeps alive for its own processes (``/``, the shell's ``/usr/bin`` and
libc's directory, each traced process's working directory) are found in the dcache.

Files are the host's: the host layer's ``lstat`` gives each component's inode number
(qemu's qid path is the host's ``st_ino``), type, size and symlink target, and a stat
the traced program makes corrects them; without an answer a file is modelled (a
regular file with an inode number from its path).
"""

from __future__ import annotations

import posixpath
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..defs import KTHREADS
from ..filemap import AddressSpace, Filemap
from ..files import FileAttrs
from ..writeback import I_DIRTY, I_DIRTY_SYNC, Writeback
from .client import (
    IOUNIT,
    MAXDATA,
    P9_TFSYNC,
    P9_TGETATTR,
    P9_TLCREATE,
    P9_TLOPEN,
    P9_TMKDIR,
    P9_TREADDIR,
    P9_TREADLINK,
    P9_TRENAMEAT,
    P9_TSETATTR,
    P9_TSYMLINK,
    P9_TUNLINKAT,
    QTDIR,
    QTFILE,
    QTSYMLINK,
    Fid,
    P9Client,
    qid,
)
from .netfs import Netfs

if TYPE_CHECKING:
    from ...sched import Task
    from .. import Workload
    from ..syscalls import SyscallCtx
    from ..traced import Proc

VM_MOUNTS = frozenset(("/proc", "/sys", "/dev", "/run"))
PINNED = ("/usr/bin", "/usr/lib/x86_64-linux-gnu")   # the VM shell's exe and libc dirs
ALIVE = frozenset(("/usr", "/usr/lib", *PINNED))     # ... and what they hold
S_IFMT, S_IFDIR, S_IFREG, S_IFLNK = 0o170000, 0o040000, 0o100000, 0o120000
ENOENT, ENOTDIR, ELOOP = 2, 20, 40
MAXSYMLINKS = 40
O_ACCMODE, O_WRONLY, O_RDWR = 0o3, 0o1, 0o2
O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_NONBLOCK = 0o100, 0o200, 0o1000, 0o2000, 0o4000
O_DIRECTORY, O_NOFOLLOW = 0o200000, 0o400000
# the open flags v9fs_mapped_dotl_flags() passes on (P9_DOTL_* equal them on x86)
DOTL_FLAGS = (O_CREAT | O_EXCL | 0o400 | O_APPEND | O_NONBLOCK | 0o10000 | 0o20000 | 0o40000
              | 0o100000 | O_DIRECTORY | O_NOFOLLOW | 0o1000000 | 0o2000000 | 0o4000000)
P9L_DIRECT = 0x2000
P9_DOTL_AT_REMOVEDIR = 0x200
P9_STATS_BASIC, P9_STATS_GEN, P9_STATS_ALL = 0x7FF, 0x1000, 0x3FFF
BDI_NAME = "9p-1"               # super_setup_bdi()'s name of the first 9P superblock
S_DEV = 28                      # the root's anonymous dev_t (0:28)
INODES = 0xFFFF888107000000     # v9fs_inode objects (modelled)
DIRENT_FIXED = 24               # a 9P dirent: qid[13] offset[8] type[1] name[s] (+ the name)
LINUX_DIRENT = 19               # a linux_dirent64 before its name


@dataclass(slots=True, eq=False)
class Inode:
    """A ``struct v9fs_inode`` (its VFS inode and netfs context)."""

    ino: int
    mode: int
    size: int
    mtime: int
    target: str = ""
    state: int = 0
    dirtied_when: int = 0
    hashed: bool = True
    time_jiffy: int = -1            # the coarse time its c/mtime were last set to
    open_fids: list[Fid] = field(default_factory=list)
    mapping: AddressSpace = field(default_factory=lambda: AddressSpace(0, S_DEV))

    @property
    def is_dir(self) -> bool:
        return self.mode & S_IFMT == S_IFDIR

    @property
    def is_link(self) -> bool:
        return self.mode & S_IFMT == S_IFLNK

    @property
    def addr(self) -> int:
        return INODES + (self.ino & 0xFFFFF) * 0x400

    def qid(self) -> bytes:
        """The qid qemu gives it: type, version (mtime ^ size << 8), path (st_ino)."""
        qtype = QTDIR if self.is_dir else QTSYMLINK if self.is_link else QTFILE
        return qid(qtype, self.mtime ^ (self.size << 8), self.ino)


@dataclass(slots=True, eq=False)
class Dentry:
    """A dentry of the 9P root: its fids (d_fsdata) and references.  ``count`` is its
    d_lockref: the walks, files and working directories that hold it and its children
    (each holds its parent)."""

    name: str
    path: str
    parent: Dentry | None
    inode: Inode | None
    fids: list[Fid] = field(default_factory=list)
    count: int = 0
    pinned: bool = False
    children: dict[str, Dentry] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class V9Open:
    """What an open file of the 9P root holds: its dentry and the open fid
    (file->private_data), and the readdir buffer's state of a directory."""

    dentry: Dentry
    fid: Fid
    flags: int
    rdir_left: int = 0

    @property
    def inode(self) -> Inode:
        assert self.dentry.inode is not None
        return self.dentry.inode


class V9fs:
    """The 9P root: its client, netfs, page cache and writeback, the dcache of its
    paths and the working directories of the traced processes."""

    def __init__(self, wl: Workload) -> None:
        self.wl = wl
        self.client = P9Client(wl)
        self.netfs = Netfs(wl, self)
        self.filemap = Filemap(wl)
        self.writeback = Writeback(wl, BDI_NAME, S_DEV)
        root_attrs = FileAttrs(2, S_IFDIR | 0o755, 4096, 20, 0)
        self.root = Dentry("/", "/", None, self._new_inode(root_attrs), count=1, pinned=True)
        self.root.fids.append(self.client.system_fid())
        self.attrs: dict[str, FileAttrs | None] = {}
        self.cwds: dict[int, Dentry | None] = {}   # tgid -> its working directory (None: elsewhere)
        # tgid -> the host's cwd when syscalls were reported again, not applied yet
        self.resync_dirs: dict[int, str | None] = {}
        self.machine_pins = False

    # ------------------------------------------------------------------ host facts
    def on_9p(self, path: str) -> bool:
        """Is the absolute ``path`` on the 9P root?"""
        norm = posixpath.normpath("/" + path.lstrip("/"))
        top = "/" + norm.split("/", 2)[1] if norm != "/" else "/"
        return top not in VM_MOUNTS

    def file_attrs(self, ctx: SyscallCtx, path: str) -> FileAttrs | None:
        """What the host says of ``path`` (None: nothing there); a file found is
        remembered (it may be gone when asked again), a missing one asked again."""
        got = self.attrs.get(path)
        if got is None:
            got = self.wl.traced.host.lstat(ctx.thread.proc.tgid, path)
            self.attrs[path] = got
        return got

    def learn(self, path: str, ino: int, mode: int, size: int, nlink: int) -> None:
        """A stat the traced program made says what ``path`` is."""
        old = self.attrs.get(path)
        self.attrs[path] = FileAttrs(ino, mode, size, nlink, old.mtime if old else 0,
                                     old.target if old else "")

    def _modelled(self, path: str, mode: int = S_IFREG | 0o644) -> FileAttrs:
        """A file the host could not tell about (gone by the time it was asked)."""
        return FileAttrs(0x40000 + zlib.crc32(path.encode()) % 0x3FFFFF, mode, 0, 1, 0)

    def _new_inode(self, a: FileAttrs) -> Inode:
        return Inode(a.ino, a.mode, a.size, a.mtime, a.target,
                     mapping=AddressSpace(a.ino, S_DEV))

    def kworker(self) -> Task:
        """The unbound kworker that runs netfs's and writeback's work items."""
        comm, pid = next((c, p) for c, p, cpu in KTHREADS if c.startswith("kworker/u"))
        return self.wl.k.sched.task(pid, comm, kthread=True)

    # ------------------------------------------------------------------ dcache
    def _alive(self, ctx: SyscallCtx, path: str) -> Dentry:
        """The dentry of ``path``, which something of the VM keeps alive (no lookup:
        it is in the dcache), with the fid it got when it was looked up."""
        d = self.root
        for name in [c for c in path.split("/") if c]:
            child = d.children.get(name)
            if child is None:
                p = posixpath.join(d.path, name)
                a = self.file_attrs(ctx, p) or self._modelled(p, S_IFDIR | 0o755)
                child = Dentry(name, p, d, self._new_inode(a), [self.client.system_fid()])
                d.children[name] = child
                d.count += 1
            d = child
        return d

    def pin(self, d: Dentry) -> None:
        if not d.pinned:
            d.pinned = True
            d.count += 1

    def _pin_machine(self, ctx: SyscallCtx) -> None:
        """The dentries the VM's own processes hold (its shell's binary and libc)."""
        self.machine_pins = True
        for path in PINNED:
            self.pin(self._alive(ctx, path))

    def cwd(self, ctx: SyscallCtx) -> Dentry | None:
        """The working directory of the calling process (a forked one inherits its
        parent's; CMD's comes from the host).  None: not on the 9P root.  An entry from
        before a time the tracer reported no syscalls may miss a chdir: the directory
        the host named when syscalls became visible again (``syscalls_unseen``) replaces
        it (the old one's reference stays: its dput went unseen too)."""
        proc = ctx.thread.proc
        p: Proc | None = proc
        while p is not None:
            if p.tgid in self.resync_dirs:
                self._set_host_cwd(ctx, p.tgid, self.resync_dirs.pop(p.tgid))
            if p.tgid in self.cwds:
                d = self.cwds[p.tgid]
                if p is not proc:
                    self.cwds[proc.tgid] = d
                return d
            p = p.parent
        return self._set_host_cwd(ctx, proc.tgid, self.wl.traced.host.cwd(proc.tgid))

    def _set_host_cwd(self, ctx: SyscallCtx, tgid: int, host_path: str | None) -> Dentry | None:
        """``tgid``'s working directory is the host's ``host_path`` (kept alive by the VM:
        a process's first directory)."""
        path = posixpath.normpath(host_path or "/")
        if not self.on_9p(path):
            self.cwds[tgid] = None
            return None
        d = self.cwds.get(tgid)
        if d is None or d.path != path:
            d = self._alive(ctx, path)
            self.pin(d)
        self.cwds[tgid] = d
        return d

    def syscalls_unseen(self, host_dirs: dict[int, str | None]) -> None:
        """The tracer reports syscalls again after a while it did not: a chdir may have
        gone unseen.  ``host_dirs``: each traced process's working directory as the host
        names it now, before any syscall of the new mode runs (a relative chdir at the
        first syscall must start from there, not from where it leads); each replaces
        the model's at its next use (or its first child's that inherits it).  A process
        that is not traced any more keeps its stale entry; nothing asks for it."""
        self.resync_dirs = dict(host_dirs)

    def _get(self, d: Dentry) -> Dentry:
        d.count += 1
        return d

    def hold(self, d: Dentry) -> Dentry:
        """dget(): another reference (a working directory set from an open file)."""
        return self._get(d)

    def dput(self, ctx: SyscallCtx, d: Dentry | None) -> None:
        """dput(): a dentry nobody holds is killed (always_delete_dentry): its inode
        evicted, its fids put, then its parent put in turn."""
        s = self.wl.syscalls
        while d is not None:
            ctx.regs["dput"] = (0,)
            d.count -= 1
            if d.count > 0:
                return
            s.open(ctx, "dput")
            s.open(ctx, "__dentry_kill")
            parent = d.parent
            if parent is not None and parent.children.get(d.name) is d:
                del parent.children[d.name]
            if d.inode is not None:
                s.open(ctx, "dentry_unlink_inode")
                self.iput(ctx, d.inode)
                s.close(ctx, 1)
                d.inode = None
            self.d_release(ctx, d)
            s.close(ctx, 2)
            d = parent

    def d_release(self, ctx: SyscallCtx, d: Dentry) -> None:
        """v9fs_dentry_release(): the dentry's fids are put (the last put clunks)."""
        fids, d.fids = d.fids, []
        if not fids:
            return
        s = self.wl.syscalls
        s.open(ctx, "v9fs_dentry_release")
        for fid in fids:
            self.client.fid_put(ctx, fid)
        s.close(ctx, 1)

    def iput(self, ctx: SyscallCtx, inode: Inode) -> None:
        """iput() of the last reference: v9fs_drop_inode() says drop, evict():
        off the writeback lists, v9fs_evict_inode() (its page cache truncated)."""
        s = self.wl.syscalls
        ctx.regs["iput"] = (inode.addr,)
        s.open(ctx, "iput")
        s.call(ctx, "v9fs_drop_inode")
        s.open(ctx, "evict")
        self.writeback.forget(inode)
        s.call(ctx, "inode_io_list_del")
        s.call(ctx, "inode_wait_for_writeback")
        s.open(ctx, "v9fs_evict_inode")
        s.open(ctx, "truncate_inode_pages_final", "truncate_inode_pages_range")
        self.filemap.truncate(inode.mapping)
        s.close(ctx, 2)
        s.call(ctx, "netfs_clear_inode_writeback")
        s.call(ctx, "clear_inode")
        s.call(ctx, "filemap_fdatawrite")
        s.close(ctx, 1)
        s.call(ctx, ("destroy_inode", "v9fs_free_inode"))
        s.close(ctx, 2)

    # ------------------------------------------------------------------ fids
    def fid_lookup(self, ctx: SyscallCtx, d: Dentry) -> Fid:
        """v9fs_fid_lookup(): a reference on the dentry's fid (under d_lock), else on an
        open fid of its inode; a dentry left without one (after its unlink) walks a new
        one from its parent's."""
        s = self.wl.syscalls
        s.open(ctx, "v9fs_fid_lookup")
        s.call(ctx, "v9fs_fid_find")
        if d.fids:
            fid = self.client.fid_get(ctx, d.fids[0], locked=True)
        elif d.inode is not None and d.inode.open_fids:
            fid = self.client.fid_get(ctx, d.inode.open_fids[0], locked=True)
        else:
            parent = d.parent or self.root
            pfid = self.fid_lookup(ctx, parent)
            walked = self.client.walk(ctx, pfid, (d.name,), (d.inode.qid(),) if d.inode else ())
            self.client.fid_put(ctx, pfid)
            assert walked is not None
            d.fids.append(walked)
            fid = self.client.fid_get(ctx, walked, locked=True)
        ctx.rets["v9fs_fid_lookup"] = fid.addr
        s.close(ctx, 1)
        return fid

    # ------------------------------------------------------------------ lookups
    def _lookup(self, ctx: SyscallCtx, parent: Dentry, name: str, mode: int = S_IFDIR | 0o755) -> Dentry:
        """__lookup_slow() → d_alloc_parallel(), v9fs_vfs_lookup(): Twalk to the name
        from the parent's fid; a found name gets a fresh inode (Tgetattr) and keeps the
        walked fid; a missing one leaves a negative dentry.  A name the VM keeps alive
        is in the dcache already.  ``mode``: what a name the host cannot tell about is
        taken to be, when the syscall did not fail for a missing name."""
        path = posixpath.join(parent.path, name)
        if path in ALIVE and not self.machine_pins:
            self._pin_machine(ctx)
            child = parent.children.get(name)
            if child is not None:
                return self._get(child)
        a = self.file_attrs(ctx, path)
        if a is None and ctx.ret != -ENOENT:
            a = self._modelled(path, mode)
        return self._lookup_as(ctx, parent, name, a)

    def _lookup_as(self, ctx: SyscallCtx, parent: Dentry, name: str, a: FileAttrs | None) -> Dentry:
        """The lookup of ``name`` as the server answers it: ``a`` (None: no such name)."""
        s = self.wl.syscalls
        path = posixpath.join(parent.path, name)
        d = Dentry(name, path, parent, None, count=1)
        parent.children[name] = d
        parent.count += 1
        s.open(ctx, "__lookup_slow")
        s.call(ctx, ("d_alloc_parallel", "d_alloc", "__d_alloc"))
        ctx.regs["v9fs_vfs_lookup"] = (0, 0, 0)
        s.open(ctx, "v9fs_vfs_lookup")
        dfid = self.fid_lookup(ctx, parent)
        inode = self._new_inode(a) if a is not None else None
        fid = self.client.walk(ctx, dfid, (name,), (inode.qid(),) if inode else (),
                               0 if inode else -ENOENT)
        self.client.fid_put(ctx, dfid)
        if fid is not None and inode is not None:
            self.get_inode(ctx, fid, inode)
            d.inode = inode
        s.call(ctx, "d_splice_alias")
        if fid is not None:
            ctx.regs["v9fs_fid_add"] = (0, fid.addr)
            s.call(ctx, "v9fs_fid_add")
            d.fids.append(fid)
        s.close(ctx, 2)
        return d

    def get_inode(self, ctx: SyscallCtx, fid: Fid, inode: Inode) -> None:
        """v9fs_get_new_inode_from_fid() → v9fs_inode_from_fid_dotl(): Tgetattr, then
        iget5_locked() of a new inode (cache=none never reuses one)."""
        s = self.wl.syscalls
        s.open(ctx, "v9fs_inode_from_fid_dotl")
        self.getattr_rpc(ctx, fid, inode, P9_STATS_BASIC | P9_STATS_GEN)
        s.call(ctx, ("iget5_locked", ("alloc_inode", "v9fs_alloc_inode"), "v9fs_set_inode_dotl"))
        s.call(ctx, "v9fs_init_inode")
        s.call(ctx, "v9fs_stat2inode_dotl")
        s.call(ctx, "v9fs_set_netfs_context")
        s.call(ctx, "v9fs_cache_inode_get_cookie")
        s.call(ctx, "v9fs_get_acl")
        s.call(ctx, "unlock_new_inode")
        s.close(ctx, 1)

    def getattr_rpc(self, ctx: SyscallCtx, fid: Fid, inode: Inode, mask: int) -> None:
        """p9_client_getattr_dotl(fid, mask): Tgetattr; the reply's first bytes are the
        valid mask, the qid and the mode."""
        valid = P9_STATS_BASIC | (mask & P9_STATS_GEN)
        payload = struct.pack("<Q", valid) + inode.qid() + struct.pack("<I", inode.mode)
        self.client.simple(ctx, "p9_client_getattr_dotl", (fid.addr, mask), P9_TGETATTR, payload)

    def walk(self, ctx: SyscallCtx, path: str, follow: bool = True, parent: bool = False,
             base: Dentry | None = None, mode: int = S_IFREG | 0o644) -> tuple[Dentry | None, str, int] | None:
        """path_lookupat() / path_parentat(): the dentry ``path`` names (or, with
        ``parent``, its parent and last component), referenced for the caller; (None,
        last, -errno) when the walk fails.  None: the path is not on the 9P root.
        ``base``: the directory a relative path starts from (an fd's), else the
        working directory; ``mode``: what the last name is taken to be when the host
        cannot tell (directories on the way)."""
        if path.startswith("/"):
            start: Dentry | None = self.root
            absolute = path
        else:
            start = base if base is not None else self.cwd(ctx)
            if start is None:
                return None
            absolute = posixpath.join(start.path, path)
        if not path or not self.on_9p(absolute):
            return None
        comps = [c for c in path.split("/") if c]
        last = ""
        if parent:
            while comps and comps[-1] == ".":
                comps.pop()
            last = comps.pop() if comps else ""
        assert start is not None
        got = self._walk(ctx, start, comps, follow, 0, S_IFDIR | 0o755 if parent else mode)
        if got is None:
            return None
        d, err = got
        return d, last, err

    def _walk(self, ctx: SyscallCtx, start: Dentry, comps: list[str], follow: bool,
              depth: int, mode: int) -> tuple[Dentry | None, int] | None:
        """link_path_walk() + the last component: each name found in the dcache or
        looked up, symlinks followed (Treadlink) where the walk goes through them."""
        cur = self._get(start)
        for i, name in enumerate(comps):
            if name == ".":
                continue
            if name == "..":
                up = cur.parent or cur
                self._get(up)
                self.dput(ctx, cur)
                cur = up
                continue
            if cur.inode is not None and not cur.inode.is_dir:
                self.dput(ctx, cur)
                return None, -ENOTDIR
            if cur is self.root and "/" + name in VM_MOUNTS:
                self.dput(ctx, cur)
                return None                      # into another file system
            last = i == len(comps) - 1
            child = cur.children.get(name)
            if child is None:
                child = self._lookup(ctx, cur, name, mode if last else S_IFDIR | 0o755)
            else:
                self._get(child)
            self.dput(ctx, cur)
            if child.inode is None:
                self.dput(ctx, child)
                return None, -ENOENT
            if child.inode.is_link and (follow or not last):
                if depth >= MAXSYMLINKS:
                    self.dput(ctx, child)
                    return None, -ELOOP
                target = self.get_link(ctx, child)
                base = self.root if target.startswith("/") else child.parent or self.root
                if target.startswith("/") and not self.on_9p(posixpath.normpath(target)):
                    self.dput(ctx, child)
                    return None
                got = self._walk(ctx, base, [c for c in target.split("/") if c], True, depth + 1,
                                 mode if last else S_IFDIR | 0o755)
                self.dput(ctx, child)
                if got is None or got[0] is None:
                    return got
                child = got[0]
            cur = child
        return cur, 0

    def get_link(self, ctx: SyscallCtx, d: Dentry) -> str:
        """v9fs_vfs_get_link_dotl(): Treadlink through the dentry's fid."""
        s = self.wl.syscalls
        assert d.inode is not None
        target = d.inode.target or "."
        s.open(ctx, "v9fs_vfs_get_link_dotl")
        fid = self.fid_lookup(ctx, d)
        raw = target.encode("utf-8", "surrogateescape")
        self.client.simple(ctx, "p9_client_readlink", (fid.addr, 0), P9_TREADLINK,
                           struct.pack("<H", len(raw)) + raw)
        self.client.fid_put(ctx, fid)
        s.close(ctx, 1)
        return target

    # ------------------------------------------------------------------ open / close
    def lookup_open(self, ctx: SyscallCtx, path: str, flags: int, mode: int,
                    base: Dentry | None = None) -> Dentry | V9Open | None:
        """path_openat()'s lookups of a 9P path: the dentry to open (referenced for the
        file), or, for a new name under O_CREAT, the file atomic_open created and
        opened.  None: not on the 9P root, or the open fails (``ctx.ret`` < 0)."""
        failed = ctx.ret is not None and ctx.ret < 0
        if flags & O_CREAT:
            got = self.walk(ctx, path, parent=True, base=base)
            if got is None or got[0] is None:
                return None
            dirent, last, _ = got
            target = self._create_last(ctx, dirent, last, flags, mode, failed)
            self.dput(ctx, dirent)
            return target
        got = self.walk(ctx, path, follow=not flags & O_NOFOLLOW, base=base,
                        mode=S_IFDIR | 0o755 if flags & O_DIRECTORY else S_IFREG | 0o644)
        if got is None or got[0] is None:
            return None
        d = got[0]
        if failed:
            self.dput(ctx, d)
            return None
        return d

    def _create_last(self, ctx: SyscallCtx, dirent: Dentry, last: str, flags: int, mode: int,
                     failed: bool) -> Dentry | V9Open | None:
        """open_last_lookups() of an O_CREAT open: a name in the dcache is opened; else
        atomic_open → v9fs_vfs_atomic_open_dotl(): the lookup, then, when the name is
        new, Tlcreate on a clone of the directory's fid, which becomes the open fid.
        A name is taken as new unless the model saw it exist before (what existed at
        the open is not observable after it)."""
        s = self.wl.syscalls
        path = posixpath.join(dirent.path, last)
        d = dirent.children.get(last)
        if d is not None and d.inode is not None:
            self._get(d)
            if failed:
                self.dput(ctx, d)
                return None
            return d
        known = self.attrs.get(path)
        existed = known is not None and not flags & O_EXCL
        s.open(ctx, "v9fs_vfs_atomic_open_dotl")
        if path in ALIVE and not self.machine_pins:
            self._pin_machine(ctx)
        d = self._lookup_as(ctx, dirent, last, known if existed else None)
        if d.inode is not None or failed:
            if d.inode is not None:
                s.call(ctx, "finish_no_open")
            s.close(ctx, 1)
            if failed:
                self.dput(ctx, d)
                return None
            return d
        a = self.file_attrs(ctx, path) or self._modelled(path, S_IFREG | (mode & 0o7777 or 0o644))
        a = a._replace(size=0)
        self.attrs[path] = a
        inode = self._new_inode(a)
        client = self.client
        dfid = self.fid_lookup(ctx, dirent)
        ofid = client.walk(ctx, dfid, (), ())
        assert ofid is not None
        s.call(ctx, "v9fs_acl_mode")
        omode = dotl_flags(flags)
        client.simple(ctx, "p9_client_create_dotl", (ofid.addr, 0, omode, mode, 0), P9_TLCREATE,
                      inode.qid() + struct.pack("<I", IOUNIT))
        ofid.mode = omode | P9L_DIRECT
        ofid.iounit = IOUNIT
        fid = client.walk(ctx, dfid, (last,), (inode.qid(),))
        assert fid is not None
        self.get_inode(ctx, fid, inode)
        s.call(ctx, "v9fs_set_create_acl")
        s.call(ctx, "v9fs_fid_add")
        d.fids.append(fid)
        d.inode = inode
        s.call(ctx, "d_instantiate")
        s.call(ctx, ("finish_open", "do_dentry_open", "generic_file_open"))
        s.call(ctx, "v9fs_open_fid_add")
        inode.open_fids.append(ofid)
        client.fid_put(ctx, dfid)
        s.close(ctx, 1)
        return V9Open(d, ofid, flags)

    def file_open(self, ctx: SyscallCtx, d: Dentry, flags: int) -> V9Open:
        """do_dentry_open() → v9fs_file_open(): a clone of the dentry's fid (Twalk of
        no names), Tlopen'ed; the walk's reference on the dentry becomes the file's."""
        s = self.wl.syscalls
        client = self.client
        inode = d.inode
        assert inode is not None
        s.open(ctx, "v9fs_file_open")
        fid = self.fid_lookup(ctx, d)
        ofid = client.walk(ctx, fid, (), ())
        assert ofid is not None
        client.fid_put(ctx, fid)
        omode = dotl_flags(flags)
        client.simple(ctx, "p9_client_open", (ofid.addr, omode), P9_TLOPEN,
                      inode.qid() + struct.pack("<I", IOUNIT))
        ofid.mode = omode | P9L_DIRECT
        ofid.iounit = IOUNIT
        s.call(ctx, "v9fs_open_fid_add")
        inode.open_fids.append(ofid)
        s.close(ctx, 1)
        return V9Open(d, ofid, flags)

    def open_truncate(self, ctx: SyscallCtx, vo: V9Open) -> None:
        """do_open()'s O_TRUNC of an existing file, after the open: handle_truncate() →
        do_truncate() → notify_change() → v9fs_vfs_setattr_dotl() with the file's fid."""
        inode = vo.inode
        if not vo.flags & O_TRUNC or not vo.flags & O_ACCMODE or inode.is_dir:
            return
        s = self.wl.syscalls
        s.open(ctx, "do_truncate", "notify_change")
        self.setattr(ctx, inode, vo.fid, 0)
        s.close(ctx, 2)

    def setattr(self, ctx: SyscallCtx, inode: Inode, fid: Fid, size: int) -> None:
        """v9fs_vfs_setattr_dotl() of a size (a truncate): Tsetattr, the page cache cut,
        the inode marked dirty."""
        s = self.wl.syscalls
        s.open(ctx, "v9fs_vfs_setattr_dotl")
        s.call(ctx, "setattr_prepare")
        s.call(ctx, "filemap_fdatawrite")
        self.client.simple(ctx, "p9_client_setattr", (fid.addr, 0), P9_TSETATTR)
        if size != inode.size:
            s.call(ctx, ("truncate_setsize", "truncate_pagecache"))
            self.filemap.truncate(inode.mapping, (size + 4095) // 4096)
            inode.size = size
        s.call(ctx, "setattr_copy")
        self.writeback.mark_inode_dirty(ctx, inode, I_DIRTY)
        s.close(ctx, 1)

    def release(self, ctx: SyscallCtx, vo: V9Open) -> None:
        """__fput() of the last reference: v9fs_dir_release() puts the open fid (Tclunk),
        then the dentry is put."""
        s = self.wl.syscalls
        inode = vo.dentry.inode
        s.open(ctx, "v9fs_dir_release")
        if inode is not None:
            if inode.mode & S_IFMT == S_IFREG and vo.flags & O_ACCMODE:
                s.call(ctx, "filemap_fdatawrite")
            if vo.fid in inode.open_fids:
                inode.open_fids.remove(vo.fid)
        self.client.fid_put(ctx, vo.fid)
        s.close(ctx, 1)
        self.dput(ctx, vo.dentry)

    # ------------------------------------------------------------------ file I/O
    def read(self, ctx: SyscallCtx, vo: V9Open, pos: int, count: int, got: int) -> None:
        """v9fs_file_read_iter(): P9L_DIRECT → netfs_unbuffered_read_iter()."""
        s = self.wl.syscalls
        inode = vo.inode
        if got < count:
            inode.size = pos + max(got, 0)          # the read stopped at EOF
        elif pos + got > inode.size:
            inode.size = pos + got
        s.open(ctx, "v9fs_file_read_iter", "netfs_unbuffered_read_iter")
        self.netfs.read(ctx, vo.fid, inode, pos, count, max(got, 0), bool(vo.flags & O_NONBLOCK))
        s.close(ctx, 2)

    def write(self, ctx: SyscallCtx, vo: V9Open, pos: int, count: int, written: int) -> None:
        """v9fs_file_write_iter(): P9L_DIRECT → netfs_unbuffered_write_iter()."""
        s = self.wl.syscalls
        s.open(ctx, "v9fs_file_write_iter", "netfs_unbuffered_write_iter")
        self.netfs.write(ctx, vo.fid, vo.inode, pos, count, max(written, 0),
                         bool(vo.flags & O_APPEND), bool(vo.flags & O_NONBLOCK))
        s.close(ctx, 2)

    def update_time(self, ctx: SyscallCtx, inode: Inode) -> None:
        """file_update_time(): c/mtime move to the coarse current time when it is a new
        tick, which generic_update_time() dirties (I_DIRTY_SYNC)."""
        s = self.wl.syscalls
        s.open(ctx, "file_update_time")
        s.call(ctx, "inode_needs_update_time")
        now = self.writeback.jiffies()
        if inode.time_jiffy != now:
            inode.time_jiffy = now
            s.open(ctx, "inode_update_time", "generic_update_time")
            self.writeback.mark_inode_dirty(ctx, inode, I_DIRTY_SYNC)
            s.close(ctx, 2)
        s.close(ctx, 1)

    # ------------------------------------------------------------------ attributes
    def getattr(self, ctx: SyscallCtx, d: Dentry) -> None:
        """v9fs_vfs_getattr_dotl() (cache=none): Tgetattr of everything through the
        dentry's fid."""
        s = self.wl.syscalls
        inode = d.inode
        if inode is None:
            return
        s.open(ctx, "v9fs_vfs_getattr_dotl")
        fid = self.fid_lookup(ctx, d)
        self.getattr_rpc(ctx, fid, inode, P9_STATS_ALL)
        self.client.fid_put(ctx, fid)
        s.call(ctx, "v9fs_stat2inode_dotl")
        s.call(ctx, "generic_fillattr")
        s.close(ctx, 1)

    # ------------------------------------------------------------------ directories
    def readdir(self, ctx: SyscallCtx, vo: V9Open, count: int, got: int) -> None:
        """iterate_dir() → v9fs_dir_readdir_dotl(): a Treaddir when the buffer of the
        last one is used up (its entries fill getdents64's buffer, the rest stays for
        the next call); a full buffer keeps the rest, a short one used it all."""
        s = self.wl.syscalls
        fid = vo.fid
        s.open(ctx, "v9fs_dir_readdir_dotl")
        if not fid.rdir:
            fid.rdir = True
            s.call(ctx, ("v9fs_alloc_rdir_buf", "__kmalloc_large_noprof"))
        if vo.rdir_left == 0:
            # a 9P dirent is 24 bytes + name, a linux_dirent64 19 + name + NUL, 8-aligned
            nbytes = max(0, got) * DIRENT_FIXED // (LINUX_DIRENT + 5)
            size = MAXDATA                         # msize - P9_READDIRHDRSZ
            ctx.regs["p9_client_readdir"] = (fid.addr, 0, size, 0)
            ctx.rets["p9_client_readdir"] = nbytes
            s.open(ctx, "p9_client_readdir")
            self.client.io(ctx, P9_TREADDIR, fid, 0, size, nbytes)
            s.close(ctx, 1)
            vo.rdir_left = nbytes
        if got > 0:
            s.call(ctx, "p9dirent_read")
            s.call(ctx, "filldir64")
        full = got > 0 and count - got < 280      # another entry would not have fit
        if not full:
            vo.rdir_left = 0
        s.close(ctx, 1)

    def mkdir(self, ctx: SyscallCtx, path: str, mode: int, base: Dentry | None = None) -> bool:
        """filename_create() (a negative lookup), vfs_mkdir() → v9fs_vfs_mkdir_dotl():
        Tmkdir, a Twalk to the new directory and its inode (Tgetattr); the new dentry
        goes at done_path_create()."""
        return self._create(ctx, path, base, ("vfs_mkdir", "v9fs_vfs_mkdir_dotl", "p9_client_mkdir_dotl"),
                            mode, P9_TMKDIR, lambda full: self._modelled(full, S_IFDIR | (mode & 0o7777)),
                            mkdir=True)

    def symlink(self, ctx: SyscallCtx, target: str, path: str, base: Dentry | None = None) -> bool:
        """vfs_symlink() → v9fs_vfs_symlink_dotl(): Tsymlink, a Twalk to it, its inode."""
        return self._create(ctx, path, base, ("vfs_symlink", "v9fs_vfs_symlink_dotl", "p9_client_symlink"),
                            0, P9_TSYMLINK, lambda full: FileAttrs(
                                self._modelled(full).ino, S_IFLNK | 0o777, len(target.encode()), 1, 0, target),
                            mkdir=False)

    def _create(self, ctx: SyscallCtx, path: str, base: Dentry | None, names: tuple[str, str, str],
                mode: int, ptype: int, modelled: Callable[[str], FileAttrs], mkdir: bool) -> bool:
        """The body mkdir and symlink share: the parent's walk, the name's (negative)
        lookup, then vfs_*() → v9fs_vfs_*_dotl() (``names``: those two and the client
        call): the create request (``ptype``) through the parent's fid, a Twalk to the
        new file and its inode; the new dentry goes at done_path_create().  ``modelled``:
        the attributes when the host cannot tell.  ``mkdir``: the lookup is traced as
        filename_create() and v9fs_vfs_mkdir_dotl()'s ACL calls are made."""
        got = self.walk(ctx, path, parent=True, base=base)
        if got is None or got[0] is None:
            return got is not None
        dirent, last, _ = got
        s = self.wl.syscalls
        ok = ctx.ret is None or ctx.ret >= 0
        if mkdir:
            s.open(ctx, "filename_create")
        d = dirent.children.get(last)
        if d is None:
            d = self._lookup_as(ctx, dirent, last, None if ok else self.file_attrs(ctx, dirent.path + "/" + last))
        else:
            self._get(d)
        if mkdir:
            s.close(ctx, 1)
        if ok and d.inode is None:
            full = posixpath.join(dirent.path, last)
            inode = self._new_inode(self.file_attrs(ctx, full) or modelled(full))
            vfs, op, client_op = names
            s.open(ctx, vfs, op)
            dfid = self.fid_lookup(ctx, dirent)
            if mkdir:
                s.call(ctx, "v9fs_acl_mode")
            self.client.simple(ctx, client_op, (dfid.addr, 0, mode, 0), ptype, inode.qid())
            fid = self.client.walk(ctx, dfid, (last,), (inode.qid(),))
            assert fid is not None
            self.get_inode(ctx, fid, inode)
            if mkdir:
                s.call(ctx, "v9fs_set_create_acl")
            s.call(ctx, "v9fs_fid_add")
            d.fids.append(fid)
            d.inode = inode
            s.call(ctx, "d_instantiate")
            self.client.fid_put(ctx, dfid)
            s.close(ctx, 2)
        s.call(ctx, "done_path_create")
        self.dput(ctx, d)
        self.dput(ctx, dirent)
        return True

    def unlink(self, ctx: SyscallCtx, path: str, rmdir: bool, base: Dentry | None = None) -> bool:
        """do_unlinkat()/do_rmdir(): the parent's walk, the name's lookup, vfs_unlink()/
        vfs_rmdir() → v9fs_remove(): Tunlinkat through the parent's fid, the dentry's
        own fids put at once (d_release), the inode evicted by d_delete(), the
        dentry killed at the end."""
        got = self.walk(ctx, path, parent=True, base=base)
        if got is None or got[0] is None:
            return got is not None
        dirent, last, _ = got
        s = self.wl.syscalls
        d = dirent.children.get(last)
        if d is None:
            d = self._lookup(ctx, dirent, last, S_IFDIR | 0o755 if rmdir else S_IFREG | 0o644)
        else:
            self._get(d)
        ok = ctx.ret is None or ctx.ret >= 0
        if d.inode is not None and ok:
            vfs, op = ("vfs_rmdir", "v9fs_vfs_rmdir") if rmdir else ("vfs_unlink", "v9fs_vfs_unlink")
            s.open(ctx, vfs, op, "v9fs_remove")
            dfid = self.fid_lookup(ctx, dirent)
            self.client.simple(ctx, "p9_client_unlinkat", (dfid.addr, 0, P9_DOTL_AT_REMOVEDIR if rmdir else 0),
                               P9_TUNLINKAT)
            self.client.fid_put(ctx, dfid)
            self.d_release(ctx, d)
            s.close(ctx, 2)
            self.attrs[d.path] = None
            if d.count == 1:                    # d_delete(): nobody else holds it
                s.open(ctx, "d_delete", "dentry_unlink_inode")
                self.iput(ctx, d.inode)
                d.inode = None
                s.close(ctx, 2)
            s.close(ctx, 1)
        self.dput(ctx, d)
        self.dput(ctx, dirent)
        return True

    def rename(self, ctx: SyscallCtx, old: str, new: str, obase: Dentry | None = None,
               nbase: Dentry | None = None) -> bool:
        """do_renameat2() → vfs_rename() → v9fs_vfs_rename(): clones of both parents'
        fids, Trenameat, the clones clunked."""
        og = self.walk(ctx, old, parent=True, base=obase)
        ng = self.walk(ctx, new, parent=True, base=nbase)
        if og is None or ng is None or og[0] is None or ng[0] is None:
            for g in (og, ng):
                if g is not None and g[0] is not None:
                    self.dput(ctx, g[0])
            return og is not None and ng is not None
        odir, olast, _ = og
        ndir, nlast, _ = ng
        s = self.wl.syscalls
        od = odir.children.get(olast)
        od = self._get(od) if od is not None else self._lookup(ctx, odir, olast, S_IFREG | 0o644)
        nd = ndir.children.get(nlast)
        nd = self._get(nd) if nd is not None else self._lookup_as(
            ctx, ndir, nlast, self.file_attrs(ctx, posixpath.join(ndir.path, nlast)))
        ok = ctx.ret is None or ctx.ret >= 0
        if ok and od.inode is not None:
            client = self.client
            s.open(ctx, "vfs_rename", "v9fs_vfs_rename")
            oldfid = self.fid_lookup(ctx, od)
            dfid = self.fid_lookup(ctx, odir)
            olddirfid = client.walk(ctx, dfid, (), ())
            client.fid_put(ctx, dfid)
            dfid = self.fid_lookup(ctx, ndir)
            newdirfid = client.walk(ctx, dfid, (), ())
            client.fid_put(ctx, dfid)
            client.simple(ctx, "p9_client_renameat", (0, 0, 0, 0), P9_TRENAMEAT)
            s.call(ctx, "d_move")
            client.fid_put(ctx, newdirfid)
            client.fid_put(ctx, olddirfid)
            client.fid_put(ctx, oldfid)
            s.close(ctx, 2)
            self.attrs[nd.path] = self.attrs.pop(od.path, None)
        self.dput(ctx, nd)
        self.dput(ctx, od)
        self.dput(ctx, ndir)
        self.dput(ctx, odir)
        return True

    def chdir(self, ctx: SyscallCtx, d: Dentry | None) -> None:
        """set_fs_pwd(): the process's working directory becomes ``d`` (referenced by
        the caller, now the fs_struct's; None: a directory of another file system).  The
        old one is put unless another process has it or the VM holds it (CMD's first
        one is its shell's too)."""
        self.cwd(ctx)
        tgid = ctx.thread.proc.tgid
        old = self.cwds.get(tgid)
        self.cwds[tgid] = d
        if old is None or old is d:
            if old is d and d is not None:
                self.dput(ctx, d)             # the same directory: one reference is enough
            return
        if not old.pinned and old not in self.cwds.values():
            self.dput(ctx, old)

    # ------------------------------------------------------------------ sync
    def fsync(self, ctx: SyscallCtx, vo: V9Open, datasync: bool) -> None:
        """vfs_fsync_range() → v9fs_file_fsync_dotl(): nothing cached to write, Tfsync."""
        s = self.wl.syscalls
        s.open(ctx, "v9fs_file_fsync_dotl")
        s.call(ctx, "file_write_and_wait_range")
        self.client.simple(ctx, "p9_client_fsync", (vo.fid.addr, int(datasync)), P9_TFSYNC)
        s.close(ctx, 1)

    def sync(self, ctx: SyscallCtx) -> None:
        """ksys_sync()."""
        self.writeback.sync(ctx, self.client.virtio, self.kworker())

    def syncfs(self, ctx: SyscallCtx) -> None:
        """sync_filesystem() of the 9P root: its inodes as sync(2) writes them."""
        self.writeback.sync_inodes_sb(ctx, self.client.virtio, self.kworker())



def dotl_flags(flags: int) -> int:
    """v9fs_open_to_dotl_flags(): the access mode and the mapped flags."""
    return flags & O_ACCMODE | flags & DOTL_FLAGS
