"""Who is calling: the host process behind a FUSE request, read from /proc.

A record carries the comm, pid and CPU of the task that made the syscall, and a
blocked read must end when its reader is signalled; FUSE hands us only the caller's
pid (and uid), so the rest comes from ``/proc/<pid>``.  Everything here is read-only;
what runs on every request is a pread(2) of a file kept open (see TaskInfo).
"""

from __future__ import annotations

import os
import time

from ..hostprocs import read_proc, stat_fields, status_fields

COMM_FDS_MAX = 256  # callers whose /proc/<pid>/comm stays open (the oldest is closed)
CPU_TTL = 0.02  # seconds a pid's last CPU is trusted (one request after another)


def possible_cpus(path: str = "/sys/devices/system/cpu/possible") -> int:
    """Number of possible CPUs of the host (what sysconf(_SC_NPROCESSORS_CONF) and
    trace-cmd use): the simulated kernel's default CPU count."""
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return os.cpu_count() or 1
    highest = -1
    for part in text.split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            highest = max(highest, int(hi or lo))
        except ValueError:
            continue
    return highest + 1 if highest >= 0 else (os.cpu_count() or 1)


def signal_pending(pid: int) -> bool | None:
    """True if ``pid`` has a pending unblocked signal, None if it is gone (or a zombie).

    ``/proc/<pid>/status``: (SigPnd | ShdPnd) & ~SigBlk (notes/tools.md §4).
    """
    fields = status_fields(pid, ("State", "SigPnd", "ShdPnd", "SigBlk"))
    if fields is None:
        return None
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
        text = read_proc(f"/proc/{pid}/fdinfo/{fd}")
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


def _read_comm(fd: int) -> str:
    """The comm behind an fd on /proc/<pid>/comm, formatted anew by this read."""
    return os.pread(fd, 64, 0).decode("utf-8", "replace").rstrip("\n")


class _Caller:
    """What is kept of one caller pid: an fd on its comm, the comm last read from it,
    and the CPU it last ran on with the monotonic time until which that is trusted."""

    __slots__ = ("fd", "comm", "cpu", "cpu_until")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.comm = "<...>"
        self.cpu = 0
        self.cpu_until = 0.0


class TaskInfo:
    """comm and CPU of a caller pid, cheap enough to ask on every request.

    A pid's comm changes at its exec, which nothing tells us; a cache with a lifetime
    gave a command exec'd right after its pid was looked up (perf's child, a subshell's
    ``exec``) the comm of what it was before.  So each caller's ``/proc/<pid>/comm``
    stays open and is read again with pread(2) at offset 0 on every request: proc
    formats it anew from the task (the new comm after an exec, ESRCH once the task is
    gone), several times cheaper than an open/read/close.  The CPU it last ran on is
    read from /proc/<pid>/stat at most every CPU_TTL.  A missing task is ESRCH or
    ENOENT, a hidden one EPERM/EACCES (its comm is then unknown: "<...>"); any other
    error (no fd left) is a fault and propagates."""

    def __init__(self, nr_cpus: int) -> None:
        self.nr_cpus = max(1, nr_cpus)
        self._callers: dict[int, _Caller] = {}

    def _caller(self, pid: int) -> _Caller | None:
        """The caller entry of the task with ``pid`` now, its comm read afresh (None:
        there is no such task).  The fd of a task that is gone gives ESRCH: the pid may
        be another task's by now, so its comm file is opened again."""
        c = self._callers.get(pid)
        if c is not None:
            try:
                c.comm = _read_comm(c.fd)
                return c
            except ProcessLookupError:
                self.refresh(pid)
        try:
            fd = os.open(f"/proc/{pid}/comm", os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None     # gone, or hidden from us (hidepid=1, a non-dumpable task)
        if len(self._callers) >= COMM_FDS_MAX:
            self.refresh(next(iter(self._callers)))
        c = self._callers[pid] = _Caller(fd)
        try:
            c.comm = _read_comm(fd)
        except ProcessLookupError:
            self.refresh(pid)
            return None
        return c

    def refresh(self, pid: int) -> None:
        """Forget ``pid``: its comm fd is closed."""
        c = self._callers.pop(pid, None)
        if c is not None:
            os.close(c.fd)

    def close(self) -> None:
        for pid in list(self._callers):
            self.refresh(pid)

    def _pinned(self, pid: int) -> int | None:
        """The one CPU ``pid`` may run on (None: several, the task is gone, or an LSM
        refuses to tell: SELinux process:getsched)."""
        try:
            allowed = os.sched_getaffinity(pid)
        except (ProcessLookupError, PermissionError):
            return None
        return next(iter(allowed)) % self.nr_cpus if len(allowed) == 1 else None

    def _last_cpu(self, pid: int) -> int | None:
        """The CPU ``pid`` last ran on (field 39 of /proc/<pid>/stat; None: gone)."""
        fields = stat_fields(pid)
        if fields is None:
            return None
        try:
            return int(fields[36]) % self.nr_cpus
        except (IndexError, ValueError):
            return 0

    def cpu(self, pid: int) -> int:
        """The CPU of a host task that is not making a request (a newcomer the host
        scan found, a sleeper it saw wake): nothing of it is kept."""
        if pid <= 0:
            return 0
        pinned = self._pinned(pid)
        if pinned is not None:
            return pinned
        cpu = self._last_cpu(pid)
        return 0 if cpu is None else cpu

    def lookup(self, pid: int) -> tuple[str, int]:
        """(comm, cpu) of a caller ``pid``: a pinned task runs on its one allowed CPU,
        any other on the CPU it last ran on, modulo nr_cpus.  The affinity is asked
        every time: ``taskset -c 1 echo x > trace_marker`` opens the file before
        taskset pins the process and writes right after.  A task just gone (``cat``
        closes and exits at once) keeps the comm and CPU last read, once; a pid never
        seen is "<...>" on CPU 0."""
        if pid <= 0:
            return "<idle>", 0
        last = self._callers.get(pid)
        c = self._caller(pid)
        if c is None:
            return (last.comm, last.cpu) if last is not None else ("<...>", 0)
        pinned = self._pinned(pid)
        if pinned is not None:
            return c.comm, pinned
        now = time.monotonic()
        if now < c.cpu_until:
            return c.comm, c.cpu
        cpu = self._last_cpu(pid)
        if cpu is not None:
            c.cpu = cpu
            c.cpu_until = now + CPU_TTL
        return c.comm, c.cpu
