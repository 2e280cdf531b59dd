"""The open files of traced host processes (fs/file.c: files_struct and its fd table).

What probes see of a file is its ``struct file``: ``file->f_path.dentry->d_name.name``
names it (the last component of the path it was opened by; a pipe's dentry is "", a
socket's is its protocol's name, an anon inode's its kind: "[eventfd]").  The model keeps
each traced process's fd table from what it observed: opens, dups, closes, pipes,
sockets, CLOEXEC on exec, tables copied by fork or shared by CLONE_FILES.  A file that was
open before the model saw it (CMD's stdin, stdout and stderr) is named by the host layer
from /proc/PID/fd when it is first used (``TracedTasks.host``).

Each open file counts the fd-table entries that hold it (``refs``: its f_count as far
as fds go): the close, exec or exit that drops the last one is where the kernel runs its
``__fput()`` (a 9P file's release clunks its fid).  A file of the 9P root carries its
fid and dentry (``v9``) and its position (``pos``), so reads and writes know their
offsets.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from .net.sock import Sock, proto_name, sock_for, sock_from_name

if TYPE_CHECKING:
    from .fs9p.vfs import V9Open
    from .syscalls import SyscallCtx
    from .traced import Thread

O_NONBLOCK = 0o4000
O_CLOEXEC = 0o2000000
O_DIRECTORY = 0o200000

# file kinds: what the f_op of the file is, as far as the model's paths care
REGULAR = "file"
DIRECTORY = "dir"
PIPE = "pipe"
SOCKET = "socket"
TTY = "tty"
ANON = "anon"       # an anon inode (eventfd, epoll, timerfd, signalfd, inotify, ...)
CHAR = "chr"        # another character device (/dev/null)

class FileAttrs(NamedTuple):
    """What lstat(2) of a path says on the host: what the VM's 9P server (qemu) passes
    on for it: inode number (the qid path), mode, size, link count, mtime (seconds: the
    qid version's part) and a symlink's target."""

    ino: int
    mode: int
    size: int
    nlink: int
    mtime: int
    target: str = ""


@dataclass(slots=True, eq=False)
class Pipe:
    """A pipe_inode_info: the threads asleep reading it, woken by a write."""

    readers: list[Thread] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class OpenFile:
    """A ``struct file``: shared by the fds dup'd from it and across fork."""

    name: str                   # its dentry's name
    kind: str = REGULAR
    pipe: Pipe | None = None    # a pipe end: the pipe
    writer: bool = False        # the write end of a pipe
    v9: V9Open | None = None    # a file of the 9P root: its fid and dentry
    pos: int = 0                # f_pos
    refs: int = 0               # the fd-table entries that hold it
    sock: Sock | None = None    # a socket: its struct sock (net/sock.py)

    @property
    def stream(self) -> bool:
        """FMODE_STREAM (stream_open()): no file position, ksys_read() passes ppos NULL."""
        return self.kind in (PIPE, SOCKET)


@dataclass(slots=True, eq=False)
class FdTable:
    """A files_struct: fd -> open file, and the close-on-exec bits."""

    fds: dict[int, OpenFile] = field(default_factory=dict)
    cloexec: set[int] = field(default_factory=set)
    # another process was given this very table (CLONE_FILES without CLONE_THREAD):
    # only then can its exit leave users behind (files_struct.count)
    shared: bool = False

    def get(self, fd: int) -> OpenFile | None:
        return self.fds.get(fd)

    def install(self, fd: int, f: OpenFile, cloexec: bool = False) -> None:
        """fd_install() (replacing what the fd named: dup2/dup3 close it first)."""
        old = self.fds.get(fd)
        if old is not None:
            old.refs -= 1
        self.fds[fd] = f
        f.refs += 1
        if cloexec:
            self.cloexec.add(fd)
        else:
            self.cloexec.discard(fd)

    def close(self, fd: int) -> OpenFile | None:
        self.cloexec.discard(fd)
        f = self.fds.pop(fd, None)
        if f is not None:
            f.refs -= 1
        return f

    def close_range(self, first: int, last: int) -> None:
        for fd in [fd for fd in self.fds if first <= fd <= last]:
            self.close(fd)

    def close_all(self) -> list[OpenFile]:
        """put_files_struct() of the table's last user: every fd closed; the files
        whose last reference that was."""
        gone = []
        for fd in list(self.fds):
            f = self.close(fd)
            if f is not None and f.refs == 0:
                gone.append(f)
        return gone

    def set_cloexec(self, fd: int, on: bool) -> None:
        if fd not in self.fds:
            return
        if on:
            self.cloexec.add(fd)
        else:
            self.cloexec.discard(fd)

    def copy(self) -> FdTable:
        """dup_fd(): a fork without CLONE_FILES gets a copy (the files are shared)."""
        for f in self.fds.values():
            f.refs += 1
        return FdTable(dict(self.fds), set(self.cloexec))

    def exec(self) -> list[OpenFile]:
        """do_close_on_exec(): the files whose last reference went."""
        gone = []
        for fd in list(self.cloexec):
            f = self.close(fd)
            if f is not None and f.refs == 0:
                gone.append(f)
        self.cloexec.clear()
        return gone


TTY_PREFIXES = ("/dev/pts/", "/dev/tty", "/dev/console")


def file_from_link(link: str, proto: str, pipes: dict[int, Pipe]) -> OpenFile:
    """An fd the model did not see opened, from readlink(/proc/PID/fd/N) (``proto``: a
    socket's protocol name, when the host found it); the two ends of one pipe share
    their ``Pipe`` through ``pipes`` (by inode)."""
    if link.startswith("pipe:["):
        ino = int(link[6:-1]) if link[6:-1].isdigit() else -1
        pipe = pipes.setdefault(ino, Pipe()) if ino >= 0 else Pipe()
        return OpenFile("", PIPE, pipe)
    if link.startswith("socket:["):
        return OpenFile(proto, SOCKET, sock=sock_from_name(proto))
    if link.startswith("anon_inode:"):
        return OpenFile(link[len("anon_inode:"):], ANON)
    path = link.removesuffix(" (deleted)")
    name = "/" if path == "/" else path.rpartition("/")[2]
    if path.startswith(TTY_PREFIXES):
        return OpenFile(name, TTY)
    return OpenFile(name, CHAR if path.startswith("/dev/") else REGULAR)


# fd-making syscalls whose file is an anon inode: its name
ANON_NAMES = {"eventfd": "[eventfd]", "eventfd2": "[eventfd]", "epoll_create": "[eventpoll]",
              "epoll_create1": "[eventpoll]", "timerfd_create": "[timerfd]",
              "signalfd": "[signalfd]", "signalfd4": "[signalfd]", "inotify_init": "inotify",
              "inotify_init1": "inotify", "fanotify_init": "[fanotify]",
              "userfaultfd": "[userfaultfd]", "perf_event_open": "[perf_event]",
              "io_uring_setup": "[io_uring]"}
# (syscall, index of its flags argument) of the anon-inode makers (their CLOEXEC is O_CLOEXEC)
ANON_FLAGS = {"eventfd2": 1, "epoll_create1": 0, "timerfd_create": 1, "signalfd4": 3,
              "inotify_init1": 0, "fanotify_init": 0, "userfaultfd": 0, "perf_event_open": 4}
PERF_FLAG_FD_CLOEXEC = 8
MFD_CLOEXEC = 1
CLOSE_RANGE_UNSHARE, CLOSE_RANGE_CLOEXEC = 2, 4
F_DUPFD, F_SETFD, F_DUPFD_CLOEXEC = 0, 2, 1030
FD_CLOEXEC = 1


def _fd(v: int) -> int:
    return v & 0xFFFFFFFF


def opened(path: str, flags: int) -> OpenFile:
    """The file an open of ``path`` returned."""
    name = "/" if path.rstrip("/") == "" and path else path.rstrip("/").rpartition("/")[2]
    if path.startswith(TTY_PREFIXES):
        return OpenFile(name, TTY)
    if path.startswith("/dev/"):
        return OpenFile(name, CHAR)
    return OpenFile(name, DIRECTORY if flags & O_DIRECTORY else REGULAR)


def track(ctx: SyscallCtx, ret: int) -> None:
    """What a successful syscall did to its process's fd table (open, dup, close, pipe,
    socket, an anon inode, CLOEXEC changes)."""
    if ret < 0 or not ctx.entered:
        return
    name = ctx.sc.name
    a = ctx.args
    files = ctx.thread.proc.files
    if name in ("openat", "open", "creat", "openat2"):
        i = 1 if name in ("openat", "openat2") else 0
        path = ctx.caps.get(i, b"").decode("utf-8", "surrogateescape")
        if name == "openat2":
            raw = ctx.caps.get(2, b"")
            flags = int.from_bytes(raw[:8], "little") if len(raw) >= 8 else 0
        else:
            flags = 0 if name == "creat" else a[2 if name == "openat" else 1]
        # the file the open's path made (a 9P file), else one named from the path
        f = ctx.file if ctx.file is not None else opened(path, flags)
        files.install(ret, f, bool(flags & O_CLOEXEC))
    elif name == "close":
        files.close(_fd(a[0]))
    elif name == "close_range":
        first, last, flags = _fd(a[0]), _fd(a[1]), _fd(a[2])
        if flags & CLOSE_RANGE_UNSHARE:
            ctx.thread.proc.files = files = files.copy()
        if flags & CLOSE_RANGE_CLOEXEC:
            for fd in [fd for fd in files.fds if first <= fd <= last]:
                files.set_cloexec(fd, True)
        else:
            files.close_range(first, last)
    elif name in ("dup", "dup2", "dup3") and ctx.file is not None:
        files.install(ret, ctx.file, name == "dup3" and bool(a[2] & O_CLOEXEC))
    elif name == "fcntl" and ctx.file is not None:
        cmd = _fd(a[1])
        if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
            files.install(ret, ctx.file, cmd == F_DUPFD_CLOEXEC)
        elif cmd == F_SETFD:
            files.set_cloexec(_fd(a[0]), bool(a[2] & FD_CLOEXEC))
    elif name in ("pipe", "pipe2", "socketpair"):
        raw = ctx.outs.get(3 if name == "socketpair" else 0)
        if raw is None or len(raw) < 8:
            return
        r, w = struct.unpack_from("<ii", raw)
        if name == "socketpair":
            cloexec = bool(a[1] & O_CLOEXEC)
            family, type_, protocol = _fd(a[0]), _fd(a[1]), _fd(a[2])
            sock = proto_name(family, type_, protocol)
            files.install(r, OpenFile(sock, SOCKET, sock=sock_for(family, type_, protocol)), cloexec)
            files.install(w, OpenFile(sock, SOCKET, sock=sock_for(family, type_, protocol)), cloexec)
        else:
            cloexec = name == "pipe2" and bool(a[1] & O_CLOEXEC)
            pipe = Pipe()
            files.install(r, OpenFile("", PIPE, pipe), cloexec)
            files.install(w, OpenFile("", PIPE, pipe, writer=True), cloexec)
    elif name == "socket":
        # the struct sock and struct socket the network model gave it (net/socket.py)
        family, type_, protocol = _fd(a[0]), _fd(a[1]), _fd(a[2])
        sock = sock_for(family, type_, protocol, ctx.data.get("sk", 0), ctx.data.get("socket", 0))
        files.install(ret, OpenFile(sock.name, SOCKET, sock=sock), bool(a[1] & O_CLOEXEC))
    elif name in ("accept", "accept4"):
        listening = ctx.file.name if ctx.file is not None else ""
        lsock = ctx.file.sock if ctx.file is not None else None
        child = lsock.accepted(ctx.data.get("sk", 0)) if lsock is not None else None
        files.install(ret, OpenFile(listening, SOCKET, sock=child),
                      name == "accept4" and bool(a[3] & O_CLOEXEC))
    elif name == "memfd_create":
        label = ctx.caps.get(0, b"").decode("utf-8", "surrogateescape")
        files.install(ret, OpenFile(f"memfd:{label}", REGULAR), bool(a[1] & MFD_CLOEXEC))
    elif name in ANON_NAMES:
        i = ANON_FLAGS.get(name, -1)
        flag = PERF_FLAG_FD_CLOEXEC if name == "perf_event_open" else O_CLOEXEC
        files.install(ret, OpenFile(ANON_NAMES[name], ANON), i >= 0 and bool(a[i] & flag))
