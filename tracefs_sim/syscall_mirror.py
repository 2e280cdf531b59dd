"""Host syscalls of a traced command, mirrored into the simulated kernel.

The simulated kernel sees the requests that reach the mount; a test that opens
``/dev/null`` or makes a symlink in /tmp talks to the host kernel instead, and on the
machine the mount stands for, those syscalls pass ``do_sys_openat2()`` and
``vfs_symlink()``, where a kprobe may wait (ftracetest's kprobe_args_user.tc).  So a
command can be started under a seccomp filter whose listener belongs to the server
(seccomp user notification, ``SECCOMP_FILTER_FLAG_NEW_LISTENER``): each path syscall of
the command and its children stops until the server has run it through the simulated
kernel as that process (pathnames read from its memory), then continues unchanged on
the host (``SECCOMP_USER_NOTIF_FLAG_CONTINUE``).  When nothing is attached in the
simulated kernel the server answers at once.

Launcher (the command side)::

    python -m tracefs_sim.syscall_mirror SOCKET -- CMD [ARGS...]

connects to the server's socket (``mount.py --syscall-socket SOCKET``), installs the
filter, hands the listener over (SCM_RIGHTS), waits for the server's go and execs CMD.
Without a server it runs CMD unfiltered.  Opens of the mount itself are left to the
FUSE request, which runs the same kernel path with the file it knows.

x86-64 only, as the reference kernel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import logging
import os
import select
import socket
import struct
import sys
from collections.abc import Callable

log = logging.getLogger(__name__)

# x86-64 syscall numbers of the path syscalls mirrored -> the simulated kernel's op
SYSCALLS = {2: "open", 257: "openat", 88: "symlink", 266: "symlinkat"}
# which arguments are pathnames (the last one names the file)
PATH_ARGS = {"open": (0,), "openat": (1,), "symlink": (0, 1), "symlinkat": (0, 2)}

AUDIT_ARCH_X86_64 = 0xC000003E
SYS_SECCOMP = 317
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_USER_NOTIF = 0x7FC00000
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
PR_SET_NO_NEW_PRIVS = 38
# _IOWR('!', 0, struct seccomp_notif) and _IOWR('!', 1, struct seccomp_notif_resp)
SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101
# struct seccomp_notif: id, pid, flags, then struct seccomp_data: nr, arch, ip, args[6]
NOTIF = struct.Struct("=QIIiIQ6Q")
# struct seccomp_notif_resp: id, val, error, flags
RESP = struct.Struct("=QqiI")
# classic BPF
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_RET_K = 0x06
SOCK_FILTER = struct.Struct("=HBBI")
GO = b"G"


def filter_program(nrs: list[int]) -> bytes:
    """A seccomp filter: x86-64 syscalls in ``nrs`` notify the listener, the rest run."""
    n = len(nrs)
    insns = [(BPF_LD_W_ABS, 0, 0, 4),                           # seccomp_data.arch
             (BPF_JEQ_K, 0, n + 1, AUDIT_ARCH_X86_64),          # another ABI: allow
             (BPF_LD_W_ABS, 0, 0, 0)]                           # seccomp_data.nr
    for i, nr in enumerate(nrs):
        insns.append((BPF_JEQ_K, n - i, 0, nr))                 # -> the notify return
    insns += [(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW), (BPF_RET_K, 0, 0, SECCOMP_RET_USER_NOTIF)]
    return b"".join(SOCK_FILTER.pack(*i) for i in insns)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def install_filter(nrs: list[int]) -> int:
    """Filter the calling thread (and every child it makes); return the listener fd."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prog = filter_program(nrs)
    fprog = _SockFprog(len(prog) // SOCK_FILTER.size, prog)
    libc.syscall.restype = ctypes.c_long

    def seccomp() -> int:
        return libc.syscall(ctypes.c_long(SYS_SECCOMP), ctypes.c_ulong(SECCOMP_SET_MODE_FILTER),
                            ctypes.c_ulong(SECCOMP_FILTER_FLAG_NEW_LISTENER), ctypes.byref(fprog))

    fd = seccomp()
    if fd < 0 and ctypes.get_errno() == errno.EACCES:
        # without CAP_SYS_ADMIN a filter needs no_new_privs (setuid programs lose it)
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        fd = seccomp()
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"seccomp: {os.strerror(e)}")
    return int(fd)


def read_string(pid: int, addr: int, limit: int = 4096) -> str | None:
    """A NUL-terminated string of process ``pid`` (None: unreadable)."""
    if not addr:
        return None
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        out = b""
        while len(out) < limit:
            # stay inside one page per read: the next one may be unmapped
            chunk = 4096 - (addr + len(out)) % 4096
            try:
                data = os.pread(fd, chunk, addr + len(out))
            except OSError:
                return None
            if not data:
                return None
            nul = data.find(b"\0")
            if nul >= 0:
                return os.fsdecode(out + data[:nul])
            out += data
        return None
    finally:
        os.close(fd)


class Notification:
    """One stopped syscall: who made it, which, its argument registers."""

    __slots__ = ("id", "pid", "nr", "args")

    def __init__(self, raw: bytes) -> None:
        nid, pid, _flags, nr, _arch, _ip, *args = NOTIF.unpack(raw)
        self.id = nid
        self.pid = pid
        self.nr = nr
        self.args = tuple(args)

    @property
    def op(self) -> str | None:
        return SYSCALLS.get(self.nr)

    def paths(self) -> tuple[str, ...] | None:
        """The pathname arguments, read from the caller's memory (None: unreadable)."""
        op = self.op
        if op is None:
            return None
        out = []
        for i in PATH_ARGS[op]:
            s = read_string(self.pid, self.args[i])
            if s is None:
                return None
            out.append(s)
        return tuple(out)

    def dirfd(self) -> int | None:
        """The directory fd a relative path is resolved against (None: the cwd)."""
        fd = {"openat": self.args[0], "symlinkat": self.args[1]}.get(self.op or "")
        if fd is None:
            return None
        fd &= 0xFFFFFFFF
        return None if fd == 0xFFFFFF9C else fd   # AT_FDCWD


class Listener:
    """The server's end of one launcher's filter."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = bytearray(NOTIF.size)

    def closed(self) -> bool:
        """Every filtered process is gone (the listener reports a hang-up)."""
        p = select.poll()
        p.register(self.fd, select.POLLIN)
        return any(ev & (select.POLLHUP | select.POLLERR) for _, ev in p.poll(0))

    def receive(self) -> Notification | None:
        """The next stopped syscall (None: none pending, or its process died)."""
        self._buf[:] = bytes(NOTIF.size)    # the kernel wants a zeroed struct
        try:
            fcntl.ioctl(self.fd, SECCOMP_IOCTL_NOTIF_RECV, self._buf, True)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.EINTR, errno.EAGAIN):
                return None
            raise
        return Notification(bytes(self._buf))

    def proceed(self, n: Notification) -> None:
        """Let the syscall run on the host as it was made."""
        try:
            fcntl.ioctl(self.fd, SECCOMP_IOCTL_NOTIF_SEND,
                        bytearray(RESP.pack(n.id, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE)), True)
        except OSError as e:
            if e.errno != errno.ENOENT:     # it died meanwhile
                raise

    def close(self) -> None:
        os.close(self.fd)


def resolve(n: Notification, path: str) -> str:
    """``path`` as an absolute path, seen from the caller (its cwd or directory fd)."""
    if path.startswith("/"):
        return os.path.normpath(path)
    fd = n.dirfd()
    try:
        base = os.readlink(f"/proc/{n.pid}/fd/{fd}" if fd is not None else f"/proc/{n.pid}/cwd")
    except OSError:
        base = "/"
    return os.path.normpath(os.path.join(base, path))


def mount_points(mountpoint: str) -> list[str]:
    """Where the file system mounted at ``mountpoint`` is visible (bind mounts too), from
    /proc/self/mountinfo (never a stat of the mount: that would wait for ourselves)."""
    dev = None
    lines = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                p = line.split()
                if len(p) > 4:
                    lines.append((p[2], p[4].replace("\\040", " ")))
    except OSError:
        return [mountpoint]
    for d, mp in lines:
        if mp == mountpoint:
            dev = d
    return [mp for d, mp in lines if d == dev] if dev is not None else [mountpoint]


def launch(sock_path: str, argv: list[str], nrs: list[int] | None = None) -> None:
    """The launcher: filter ourselves, pass the listener to the server, exec ``argv``."""
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock_path)
    except OSError as e:
        print(f"syscall_mirror: no server at {sock_path} ({e}): running unfiltered",
              file=sys.stderr)
        _exec(argv)
    try:
        fd = install_filter(nrs or sorted(SYSCALLS))
    except OSError as e:   # no seccomp user notification here: the command still runs
        print(f"syscall_mirror: {e}: running unfiltered", file=sys.stderr)
        s.close()
        _exec(argv)
    socket.send_fds(s, [b"L"], [fd])
    os.close(fd)
    if s.recv(1) != GO:
        print("syscall_mirror: the server refused the listener", file=sys.stderr)
    s.close()
    _exec(argv)


def _exec(argv: list[str]) -> None:
    """exec ``argv``; a command that cannot run exits 127/126 as a shell's would."""
    try:
        os.execvp(argv[0], argv)
    except OSError as e:
        print(f"{argv[0]}: {e.strerror}", file=sys.stderr)
        os._exit(127 if isinstance(e, FileNotFoundError) else 126)


def main(args: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if args is None else args)
    if "--" in args:
        i = args.index("--")
        args = args[:i] + args[i + 1:]
    if len(args) < 2:
        print("usage: python -m tracefs_sim.syscall_mirror SOCKET -- CMD [ARGS...]", file=sys.stderr)
        return 2
    launch(args[0], args[1:])
    return 127


Handler = Callable[[Notification], None]

if __name__ == "__main__":
    sys.exit(main())
